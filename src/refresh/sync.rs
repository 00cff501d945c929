//! The cache at start, and afterwards the writes of other processes.
//!
//! The CLI (and a second daemon) may change the database this daemon
//! serves from. Every write transaction stamps the rows it touches with a
//! change number; every couple of seconds one cheap query asks for the
//! current number, and only when it moved are the changed grants read.

use std::time::Duration;

use tokio::sync::watch;

use super::flight::store_err;
use super::queue::Queue;
use super::schedule::placement;
use super::{RefreshError, Refresher};
use crate::store::Status;

/// How often to look for other processes' writes.
const FOLLOW_INTERVAL: Duration = Duration::from_secs(2);

impl Refresher {
    /// Loads every grant into the cache and into the scheduler's queue
    /// (built here, not sent to the scheduler one message at a time); returns
    /// the change number the cache reflects, and the queue.
    pub(super) async fn load(&self) -> Result<(i64, Queue), RefreshError> {
        let started = std::time::Instant::now();
        let now = self.clock().now();
        let (mut grants, mut credentials, mut overdue) = (0usize, 0usize, 0usize);
        let size = self.store().count_grants().await.map_err(store_err)?;
        let mut queue = Queue::with_capacity(size);
        let seq = self
            .store()
            .load_each(|grant| {
                grants += 1;
                credentials += grant.credentials.len();
                if grant.status == Status::Active && grant.next_refresh_at.is_none_or(|t| t <= now)
                {
                    overdue += 1;
                }
                self.inner.cache.publish(&grant);
                if let Some((due, expires_at)) = placement(&grant, now) {
                    queue.set(grant.id, due, expires_at);
                }
            })
            .await
            .map_err(store_err)?;
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
                _ = tokio::time::sleep(FOLLOW_INTERVAL) => {}
            }
            match self.catch_up(seq).await {
                Ok(next) => seq = next,
                Err(e) => tracing::warn!(error = %e, "cannot read changes from the database"),
            }
        }
    }

    /// Applies what changed after `seq`; returns the new change number.
    pub async fn catch_up(&self, seq: i64) -> Result<i64, RefreshError> {
        let changes = self.store().changes_since(seq).await.map_err(store_err)?;
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
