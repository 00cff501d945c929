//! Whether the store takes writes now, whatever the backend: a disk that is
//! full or gone read-only, a database file deleted under the daemon, a
//! database server that cannot be reached.
//!
//! While the store is down tokend serves the tokens it holds that are still
//! valid and makes no refresh call (it could not keep a rotated result); a
//! request that needs a refresh gets 503 `store_unavailable`. Whoever meets
//! a store failure reports it here ([`StoreHealth::report`]); the first one
//! turns the state to down with one WARN line, and [`StoreHealth::watch`]
//! then proves every second whether writes work again
//! ([`super::Backend::check_writable`]) and turns it back up, with one INFO
//! line. A write that succeeds turns it up too.
//!
//! `/metrics` shows it as `tokend_store_up` (1 up, 0 down); `/readyz` stays
//! 200 while the cache is loaded and says `"store": "down"` in its body.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{Store, StoreError};

/// How often a store that is down is asked again whether it takes writes.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);

/// How long a caller refused for a store outage is told to wait
/// (`Retry-After`): a few probes.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);

/// The shared up/down state of one store. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct StoreHealth(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    /// `true` while down: the default (up) is all zeroes.
    down: AtomicBool,
    /// Since when it is down, and the error that said so. A std mutex:
    /// held for a copy, never across an await.
    since: Mutex<Option<(Instant, String)>>,
}

impl StoreHealth {
    /// Whether the store takes writes, as far as anyone has seen.
    pub fn is_up(&self) -> bool {
        !self.0.down.load(Ordering::Acquire)
    }

    /// The error that turned the store down, while it is down.
    pub fn reason(&self) -> Option<String> {
        self.lock().as_ref().map(|(_, e)| e.clone())
    }

    /// Reports a store failure: an outage ([`StoreError::is_outage`]) turns
    /// the state down; any other error (a conflict, corrupt data) says
    /// nothing about the store taking writes. Returns whether it was an outage.
    pub fn report(&self, location: &str, error: &StoreError) -> bool {
        if !error.is_outage() {
            return false;
        }
        self.down(location, &error.to_string());
        true
    }

    /// Turns the state down (one WARN line on the change).
    pub fn down(&self, location: &str, error: &str) {
        let mut since = self.lock();
        if since.is_none() {
            *since = Some((Instant::now(), error.to_owned()));
            self.0.down.store(true, Ordering::Release);
            tracing::warn!(database = %location, error = %error,
                "the database refuses writes: serving the tokens that are still valid, \
                 no refreshes until it takes writes again");
        }
    }

    /// A write was made durable: the store takes writes (one INFO line on
    /// the change).
    pub fn up(&self) {
        if self.is_up() {
            return;
        }
        let mut since = self.lock();
        if let Some((at, _)) = since.take() {
            self.0.down.store(false, Ordering::Release);
            tracing::info!(
                down_secs = at.elapsed().as_secs(),
                "the database takes writes again; refreshes resume"
            );
        }
    }

    /// While the store is down, asks it every [`PROBE_EVERY`] whether it
    /// takes writes, and turns the state up when it does. Ends at `stop`.
    pub async fn watch(self, store: Store, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(PROBE_EVERY) => {}
            }
            if self.is_up() {
                continue;
            }
            match store.check_writable().await {
                Ok(()) => self.up(),
                Err(e) => {
                    tracing::debug!(error = %e, "the database still refuses writes");
                    if let Some((_, reason)) = self.lock().as_mut() {
                        *reason = e.to_string();
                    }
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Instant, String)>> {
        self.0.since.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_turns_it_down_and_a_write_up_again() {
        let health = StoreHealth::default();
        assert!(health.is_up());
        assert!(!health.report("db", &StoreError::Corrupt("bad row".into())));
        assert!(health.is_up(), "a logical error is no outage");
        let full = StoreError::Unwritable {
            database: "db".into(),
            reason: "the disk is full".into(),
        };
        assert!(health.report("db", &full));
        assert!(!health.is_up());
        assert!(health.reason().unwrap().contains("the disk is full"));
        health.up();
        assert!(health.is_up());
        assert_eq!(health.reason(), None);
    }
}
