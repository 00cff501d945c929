//! The cache at start, and afterwards the writes of other processes.
//!
//! The CLI (and a second daemon) may change the store this daemon serves
//! from. Every write transaction stamps what it touches with a change
//! number; whenever the store says there may be news (SQLite: every couple
//! of seconds, one cheap query), the changes since the last number are read.

use tokio::sync::watch;

use super::queue::Queues;
use super::schedule::placement;
use super::{RefreshError, Refresher};
use crate::model::Status;

impl Refresher {
    /// Loads every grant into the cache and into the scheduler's queue
    /// (built here, not sent to the scheduler one message at a time); returns
    /// the change number the cache reflects, and the queue.
    pub(super) async fn load(&self) -> Result<(i64, Queues), RefreshError> {
        let started = std::time::Instant::now();
        let now = self.inner.clock.now();
        let (mut grants, mut credentials, mut overdue) = (0usize, 0usize, 0usize);
        let size = self.inner.store.count_grants().await?;
        let mut queue = Queues::with_capacity(size);
        let seq = self
            .inner
            .store
            .load_each(&mut |grant| {
                grants += 1;
                credentials += grant.credentials.len();
                if grant.status == Status::Active && grant.next_refresh_at.is_none_or(|t| t <= now)
                {
                    overdue += 1;
                }
                self.inner.cache.publish(&grant);
                if let Some((due, expires_at)) = placement(&grant, now) {
                    let provider = self.inner.budgets.index(&grant.provider);
                    queue.set(provider, grant.id, due, expires_at);
                }
            })
            .await?;
        tracing::info!(
            grants,
            credentials,
            overdue,
            duration_ms = started.elapsed().as_millis() as u64,
            "token cache loaded"
        );
        Ok((seq, queue))
    }

    /// Follows other processes' writes until `stop`.
    pub(super) async fn follow(self, mut seq: i64, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = self.inner.store.wait_for_changes() => {}
            }
            match self.catch_up(seq).await {
                Ok(next) => seq = next,
                Err(e) => {
                    if let RefreshError::Store(e) = &e {
                        let store = &self.inner.store;
                        store.health().report(&store.location(), e);
                    }
                    tracing::warn!(error = %e, "cannot read changes from the database")
                }
            }
        }
    }

    /// Applies what changed after `seq`; returns the new change number.
    /// Holds the feed lock from the read to the last change applied, so a
    /// credential this process deletes meanwhile is not brought back by a
    /// batch read before its deletion ([`Refresher::delete`] takes it too).
    pub(super) async fn catch_up(&self, seq: i64) -> Result<i64, RefreshError> {
        let _feed = self.inner.feed.lock().await;
        let changes = self.inner.store.changes_since(seq).await?;
        for grant in &changes.grants {
            let cached = grant
                .credentials
                .first()
                .and_then(|c| self.inner.cache.get(&c.id))
                .filter(|e| e.grant_id == grant.id);
            // A snapshot older than what this process published is stale.
            if cached.is_some_and(|e| e.generation > grant.generation) {
                continue;
            }
            self.publish(grant);
        }
        for id in &changes.deleted_credentials {
            self.inner.cache.remove_credential(id);
        }
        Ok(changes.seq)
    }
}
