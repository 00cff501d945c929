//! Where background refreshes take their permits: the seam, the bucket
//! each process keeps for itself ([`LocalPermits`], SQLite), and the
//! cluster's ([`SharedPermits`], PostgreSQL: one bucket per provider that
//! every member takes from, so the budget holds for the cluster together).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::clock::{Clock, UnixMillis};
use crate::provider::EpochClock;
use crate::provider::bucket::{BucketRate, SharedBuckets, SharedStock, Taken};

/// The size of one provider's budget bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Permits a minute on average (`refresh_share × max_requests_per_minute`).
    pub per_minute: f64,
    /// At most this many at once (the provider's `burst`).
    pub burst: u32,
}

/// The budget buckets, one per provider.
#[async_trait]
pub trait Permits: Send + Sync + std::fmt::Debug {
    /// Sizes `provider`'s bucket (at start and on SIGHUP). A bucket whose
    /// size does not change keeps its state.
    fn configure(&self, provider: &str, rate: Rate);

    /// Takes one permit from `provider`'s bucket, or says from when one
    /// may be there. A provider without a bucket has no budget to keep.
    async fn take(&self, provider: &str) -> Result<(), UnixMillis>;

    /// Puts back a permit taken for a refresh that made no call (another
    /// member had it, or it was no longer due). This process's own buckets
    /// keep it spent: that happens only beside a CLI command there.
    async fn give_back(&self, provider: &str) {
        let _ = provider;
    }
}

type Gcra = RateLimiter<NotKeyed, InMemoryState, EpochClock, NoOpMiddleware<Duration>>;

/// This process's own buckets (GCRA, on the injected clock).
#[derive(Debug)]
pub struct LocalPermits {
    clock: Clock,
    /// A std mutex: held to find a bucket and check it, never across an await.
    buckets: Mutex<HashMap<String, (Rate, Gcra)>>,
}

impl LocalPermits {
    pub fn new(clock: Clock) -> Self {
        LocalPermits {
            clock,
            buckets: Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait]
impl Permits for LocalPermits {
    fn configure(&self, provider: &str, rate: Rate) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.get(provider).is_some_and(|(r, _)| *r == rate) {
            return;
        }
        // One permit every 60 s / per_minute; at least a millisecond apart.
        let period = Duration::from_secs_f64(60.0 / rate.per_minute.max(1e-6))
            .clamp(Duration::from_millis(1), Duration::from_secs(86_400 * 365));
        let burst = NonZeroU32::new(rate.burst.max(1)).expect("at least 1");
        let quota = Quota::with_period(period)
            .expect("a period of at least a millisecond")
            .allow_burst(burst);
        let gcra = RateLimiter::direct_with_clock(quota, EpochClock(self.clock.clone()));
        buckets.insert(provider.to_owned(), (rate, gcra));
    }

    async fn take(&self, provider: &str) -> Result<(), UnixMillis> {
        self.try_take(provider)
    }
}

impl LocalPermits {
    /// [`Permits::take`], without waiting for anything.
    pub fn try_take(&self, provider: &str) -> Result<(), UnixMillis> {
        let buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let Some((_, gcra)) = buckets.get(provider) else {
            return Ok(());
        };
        gcra.check().map_err(|not_until| {
            let at = not_until.earliest_possible().as_nanos().div_ceil(1_000_000);
            UnixMillis::try_from(at).unwrap_or(UnixMillis::MAX)
        })
    }
}

/// The cluster's buckets (`budget:PROVIDER` in the shared store), with this
/// process's own as the fallback while the database cannot be reached.
#[derive(Debug)]
pub struct SharedPermits {
    shared: Arc<dyn SharedBuckets>,
    clock: Clock,
    /// A std mutex: held to look a bucket up, never across an await.
    buckets: Mutex<HashMap<String, (Rate, Arc<SharedStock>)>>,
    fallback: LocalPermits,
}

impl SharedPermits {
    pub fn new(shared: Arc<dyn SharedBuckets>, clock: Clock) -> Self {
        SharedPermits {
            shared,
            fallback: LocalPermits::new(clock.clone()),
            clock,
            buckets: Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait]
impl Permits for SharedPermits {
    fn configure(&self, provider: &str, rate: Rate) {
        self.fallback.configure(provider, rate);
        let stock = SharedStock::new(Arc::clone(&self.shared), format!("budget:{provider}"));
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        buckets.insert(provider.to_owned(), (rate, Arc::new(stock)));
    }

    async fn take(&self, provider: &str) -> Result<(), UnixMillis> {
        let Some((size, stock)) = self.bucket(provider) else {
            return Ok(());
        };
        match stock.take(size, self.clock.now()).await {
            Ok(Taken::Cells(_)) => Ok(()),
            Ok(Taken::NotBefore(at) | Taken::Paused(at)) => Err(at),
            Err(e) => {
                tracing::debug!(error = %e, provider, "refresh budget: this member's own bucket for now");
                self.fallback.try_take(provider)
            }
        }
    }

    async fn give_back(&self, provider: &str) {
        let Some((size, stock)) = self.bucket(provider) else {
            return;
        };
        if let Err(e) = stock.give_back(size, self.clock.now()).await {
            tracing::debug!(error = %e, provider, "refresh budget: a permit not put back");
        }
    }
}

impl SharedPermits {
    fn bucket(&self, provider: &str) -> Option<(BucketRate, Arc<SharedStock>)> {
        let buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let (rate, stock) = buckets.get(provider)?;
        let size = BucketRate {
            per_minute: rate.per_minute,
            burst: rate.burst.max(1),
        };
        Some((size, Arc::clone(stock)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_gives_its_burst_then_its_rate() {
        let clock = Clock::manual(1_000_000);
        let p = LocalPermits::new(clock.clone());
        let rate = Rate {
            per_minute: 30.0,
            burst: 3,
        };
        p.configure("c", rate);
        for _ in 0..3 {
            p.try_take("c").unwrap();
        }
        assert_eq!(p.try_take("c"), Err(1_002_000), "one permit every 2 s");
        clock.advance(Duration::from_secs(2));
        p.try_take("c").unwrap();
        assert!(p.try_take("c").is_err());
        // The same size again keeps the state; another size starts afresh.
        p.configure("c", rate);
        assert!(p.try_take("c").is_err());
        p.configure(
            "c",
            Rate {
                per_minute: 60.0,
                burst: 1,
            },
        );
        p.try_take("c").unwrap();
        assert_eq!(p.try_take("unknown"), Ok(()));
        // Sixty seconds after an empty bucket: thirty permits at 30 a minute,
        // however they are asked for.
        p.configure("d", rate);
        let mut taken = 0;
        for _ in 0..600 {
            while p.try_take("d").is_ok() {
                taken += 1;
            }
            clock.advance(Duration::from_millis(100));
        }
        assert!((30..=33).contains(&taken), "{taken}");
    }
}
