//! Buckets shared by every member of a cluster: the seam, and the local
//! stock a member keeps of what it took.
//!
//! In cluster mode (a PostgreSQL store) a provider's request limit
//! (`max_requests_per_minute`, `burst`), the pause a 429 imposes and the
//! refresh budget hold for the cluster together, not per member: each is a
//! GCRA bucket in the database ([`SharedBuckets`], implemented by the store)
//! that every member takes its cells from.
//!
//! A take is one round trip. So that a high rate does not cost one round
//! trip per call, a member takes up to [`STOCK_WINDOW`] worth of cells at
//! once (at most a quarter of the burst, at least one) and keeps the rest for that long;
//! a cell not used in time is dropped, never spent late, so a member can
//! only ever use fewer cells than it took. At Cronofy's 500 a minute that
//! window holds less than one cell: every call is its own take.
//!
//! When a stock runs out under load, one caller refills it while the others
//! wait for that take and then count their cells out of it: without that,
//! every refresh in flight went to the bucket's row at once, and they queued
//! on its row lock with a durable commit each.

use std::fmt;
use std::sync::Arc;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::clock::UnixMillis;

/// How long cells taken ahead stay usable (ms).
pub const STOCK_WINDOW_MS: f64 = 50.0;
/// See [`STOCK_WINDOW_MS`].
pub const STOCK_WINDOW: std::time::Duration = std::time::Duration::from_millis(50);

/// A bucket's size, as the member taking from it is configured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketRate {
    /// Cells a minute on average.
    pub per_minute: f64,
    /// At most this many at once.
    pub burst: u32,
}

impl BucketRate {
    /// Milliseconds between two cells.
    pub fn interval_ms(&self) -> f64 {
        60_000.0 / self.per_minute.max(1e-9)
    }

    /// How many cells to ask for at once: the window's worth, at most a
    /// quarter of the burst (a member never takes the whole burst ahead of
    /// the others), at least one.
    fn batch(&self) -> u32 {
        let window = (STOCK_WINDOW_MS / self.interval_ms()).floor();
        (window.min(f64::from(self.burst / 4))).max(1.0) as u32
    }
}

/// What a take got.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Taken {
    /// This many cells (at least one).
    Cells(u32),
    /// None now; the next one from then (Unix ms).
    NotBefore(UnixMillis),
    /// None: a 429 paused the bucket until then (Unix ms).
    Paused(UnixMillis),
}

/// Why a shared bucket could not be used (the database could not be
/// reached): the caller falls back to its own bucket. Never a secret.
#[derive(Debug, thiserror::Error)]
#[error("the shared rate bucket cannot be reached: {0}")]
pub struct BucketError(pub String);

/// Buckets every member of a cluster takes from, by key.
#[async_trait]
pub trait SharedBuckets: Send + Sync + fmt::Debug {
    /// Takes up to `want` cells (at least one, or none) from `key`'s bucket
    /// sized `rate`, at `now` on this member's clock, in one atomic step.
    async fn take(
        &self,
        key: &str,
        rate: BucketRate,
        want: u32,
        now: UnixMillis,
    ) -> Result<Taken, BucketError>;

    /// Pauses `key`'s bucket until `until` (never shortens a pause).
    async fn pause(&self, key: &str, until: UnixMillis) -> Result<(), BucketError>;

    /// Puts back one cell taken for a call that was not made.
    async fn give_back(&self, key: &str, rate: BucketRate) -> Result<(), BucketError>;
}

/// One shared bucket as a member uses it: its key, and the cells it took
/// ahead (how many, and until when they may be used).
pub struct SharedStock {
    buckets: Arc<dyn SharedBuckets>,
    key: String,
    /// A std mutex: held to count a cell out, never across an await.
    stock: Mutex<(u32, UnixMillis)>,
    /// Held across a batch take (an await on the database), so that one
    /// caller refills the stock while the others wait for it.
    refill: tokio::sync::Mutex<()>,
}

impl fmt::Debug for SharedStock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedStock")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl SharedStock {
    pub fn new(buckets: Arc<dyn SharedBuckets>, key: String) -> Self {
        SharedStock {
            buckets,
            key,
            stock: Mutex::new((0, 0)),
            refill: tokio::sync::Mutex::new(()),
        }
    }

    /// One cell: from the stock while it lasts, else from the shared bucket
    /// (the surplus of a batch kept for [`STOCK_WINDOW`]).
    pub async fn take(&self, rate: BucketRate, now: UnixMillis) -> Result<Taken, BucketError> {
        if self.take_stocked(now) {
            return Ok(Taken::Cells(1));
        }
        // A take of one cell stocks nothing for others to wait for.
        let batch = rate.batch();
        let _refill = if batch > 1 {
            let guard = self.refill.lock().await;
            // Another caller may have refilled the stock meanwhile.
            if self.take_stocked(now) {
                return Ok(Taken::Cells(1));
            }
            Some(guard)
        } else {
            None
        };
        let taken = self.buckets.take(&self.key, rate, batch, now).await?;
        if let Taken::Cells(n) = taken
            && n > 1
        {
            let mut stock = self.lock();
            *stock = (n - 1, now.saturating_add(STOCK_WINDOW_MS as i64));
        }
        Ok(taken.min_one())
    }

    /// Pauses the shared bucket until `until`, and drops the stock.
    pub async fn pause(&self, until: UnixMillis) -> Result<(), BucketError> {
        *self.lock() = (0, 0);
        self.buckets.pause(&self.key, until).await
    }

    /// Puts back one cell taken for a call that was not made: into the
    /// stock while it is usable, else into the shared bucket.
    pub async fn give_back(&self, rate: BucketRate, now: UnixMillis) -> Result<(), BucketError> {
        {
            let mut stock = self.lock();
            if stock.0 > 0 && now < stock.1 {
                stock.0 += 1;
                return Ok(());
            }
        }
        self.buckets.give_back(&self.key, rate).await
    }

    fn take_stocked(&self, now: UnixMillis) -> bool {
        let mut stock = self.lock();
        if stock.0 > 0 && now < stock.1 {
            stock.0 -= 1;
            return true;
        }
        *stock = (0, 0);
        false
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (u32, UnixMillis)> {
        self.stock.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Taken {
    /// What the caller of one cell gets: one, not the batch.
    fn min_one(self) -> Taken {
        match self {
            Taken::Cells(_) => Taken::Cells(1),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_the_window_s_worth_within_one_and_the_burst() {
        let cronofy = BucketRate {
            per_minute: 500.0,
            burst: 50,
        };
        assert_eq!(cronofy.batch(), 1);
        let fast = BucketRate {
            per_minute: 600_000.0,
            burst: 1000,
        };
        assert_eq!(fast.batch(), 250);
        let narrow = BucketRate {
            per_minute: 600_000.0,
            burst: 20,
        };
        assert_eq!(narrow.batch(), 5);
        let tiny = BucketRate {
            per_minute: 600_000.0,
            burst: 3,
        };
        assert_eq!(tiny.batch(), 1);
    }

    /// Counts takes; each answers with the cells asked for, after letting
    /// the other callers run.
    #[derive(Debug, Default)]
    struct Counting {
        takes: std::sync::atomic::AtomicU32,
    }

    #[async_trait]
    impl SharedBuckets for Counting {
        async fn take(
            &self,
            _: &str,
            _: BucketRate,
            want: u32,
            _: UnixMillis,
        ) -> Result<Taken, BucketError> {
            self.takes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::task::yield_now().await;
            Ok(Taken::Cells(want))
        }

        async fn pause(&self, _: &str, _: UnixMillis) -> Result<(), BucketError> {
            Ok(())
        }

        async fn give_back(&self, _: &str, _: BucketRate) -> Result<(), BucketError> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn callers_meeting_an_empty_stock_wait_for_one_refill() {
        let counting = Arc::new(Counting::default());
        let stock = Arc::new(SharedStock::new(counting.clone(), "p".into()));
        let fast = BucketRate {
            per_minute: 600_000.0,
            burst: 1000,
        };
        let callers: Vec<_> = (0..20)
            .map(|_| {
                let stock = Arc::clone(&stock);
                tokio::spawn(async move { stock.take(fast, 1_000).await })
            })
            .collect();
        for caller in callers {
            assert_eq!(caller.await.unwrap().unwrap(), Taken::Cells(1));
        }
        // One batch of 250 covers all 20.
        assert_eq!(counting.takes.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
