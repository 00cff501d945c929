//! The per-provider call budget: a GCRA rate limiter (`governor`) and the
//! pause a 429 imposes.
//!
//! Both read the injected [`Clock`], not `Instant::now()`, so tests move time
//! with a manual clock instead of sleeping. Every call that reaches the
//! provider (token, revocation, application calendar, and every retry with a
//! previous client secret) takes one cell: providers count them all.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::Clock as GovernorClock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use super::ProviderError;
use crate::clock::{Clock, UnixMillis, millis};

/// Our clock as governor sees it: instants are durations since the Unix
/// epoch, which governor already knows how to do arithmetic on.
#[derive(Clone, Debug)]
struct EpochClock(Clock);

impl GovernorClock for EpochClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.0.now()).unwrap_or(0))
    }
}

type Gcra = RateLimiter<NotKeyed, InMemoryState, EpochClock, NoOpMiddleware<Duration>>;

pub(crate) struct Limiter {
    gcra: Gcra,
    clock: Clock,
    /// Unix ms until which a 429 told us to stay away; 0 when not paused.
    /// An atomic rather than a lock: it is read on every call and only ever
    /// moves forward (`fetch_max`).
    paused_until: AtomicI64,
    /// How many 429s paused this provider (a metric).
    pauses: AtomicU64,
}

impl Limiter {
    /// `per_minute` calls a minute on average, at most `burst` at once.
    pub(crate) fn new(per_minute: NonZeroU32, burst: NonZeroU32, clock: Clock) -> Self {
        let quota = Quota::per_minute(per_minute).allow_burst(burst);
        Limiter {
            gcra: RateLimiter::direct_with_clock(quota, EpochClock(clock.clone())),
            clock,
            paused_until: AtomicI64::new(0),
            pauses: AtomicU64::new(0),
        }
    }

    /// Waits for a cell. Fails at once, without taking one, while a 429 pause
    /// runs: the caller's own retry schedule is better than a queue here.
    pub(crate) async fn acquire(&self) -> Result<(), ProviderError> {
        loop {
            self.check_pause()?;
            match self.gcra.check() {
                Ok(()) => return Ok(()),
                Err(not_until) => {
                    // Round up: waking a fraction of a millisecond early would
                    // only find the cell still missing and spin.
                    let at = not_until.earliest_possible().as_nanos().div_ceil(1_000_000);
                    let at = UnixMillis::try_from(at).unwrap_or(UnixMillis::MAX);
                    self.clock.sleep_until(at).await;
                    // Another waiter may have taken the cell meanwhile: check again.
                }
            }
        }
    }

    /// Pauses the provider for `retry_after` from now (never shortens a pause).
    pub(crate) fn pause(&self, retry_after: Duration) {
        let until = self.clock.now().saturating_add(millis(retry_after));
        self.paused_until.fetch_max(until, Ordering::AcqRel);
        self.pauses.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn pauses(&self) -> u64 {
        self.pauses.load(Ordering::Relaxed)
    }

    pub(crate) fn paused_until(&self) -> Option<UnixMillis> {
        let until = self.paused_until.load(Ordering::Acquire);
        (until > self.clock.now()).then_some(until)
    }

    fn check_pause(&self) -> Result<(), ProviderError> {
        match self.paused_until() {
            Some(until) => {
                let remaining = until.saturating_sub(self.clock.now()).max(0);
                Err(ProviderError::RateLimited {
                    retry_after: Duration::from_millis(remaining as u64),
                })
            }
            None => Ok(()),
        }
    }
}

impl fmt::Debug for Limiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limiter")
            .field("paused_until", &self.paused_until())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_minute: u32, burst: u32, clock: &Clock) -> Limiter {
        Limiter::new(
            NonZeroU32::new(per_minute).unwrap(),
            NonZeroU32::new(burst).unwrap(),
            clock.clone(),
        )
    }

    #[tokio::test]
    async fn burst_then_one_cell_per_interval() {
        let clock = Clock::manual(1_000_000);
        let l = std::sync::Arc::new(limiter(60, 2, &clock));
        l.acquire().await.unwrap();
        l.acquire().await.unwrap();
        let l2 = l.clone();
        let third = tokio::spawn(async move { l2.acquire().await });
        tokio::task::yield_now().await;
        assert!(!third.is_finished());
        clock.advance(Duration::from_millis(999));
        tokio::task::yield_now().await;
        assert!(!third.is_finished());
        clock.advance(Duration::from_millis(1));
        tokio::time::timeout(Duration::from_secs(1), third)
            .await
            .expect("third call went through once a second passed")
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn pause_fails_fast_and_ends() {
        let clock = Clock::manual(5_000);
        let l = limiter(600, 10, &clock);
        l.pause(Duration::from_secs(30));
        l.pause(Duration::from_secs(5)); // a shorter pause does not shorten it
        assert_eq!(l.paused_until(), Some(35_000));
        clock.advance(Duration::from_secs(10));
        assert_eq!(
            l.acquire().await,
            Err(ProviderError::RateLimited {
                retry_after: Duration::from_secs(20)
            })
        );
        clock.advance(Duration::from_secs(20));
        assert_eq!(l.paused_until(), None);
        l.acquire().await.unwrap();
    }
}
