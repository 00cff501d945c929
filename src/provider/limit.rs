//! The per-provider call budget: a GCRA rate limiter (`governor`) and the
//! pause a 429 imposes.
//!
//! Both read the injected [`Clock`], not `Instant::now()`, so tests move time
//! with a manual clock instead of sleeping. Every call that reaches the
//! provider (token, revocation, application calendar, and every retry with a
//! previous client secret) takes one cell: providers count them all.
//!
//! Background refreshes (run inside [`in_background`]) wait while a token
//! request, forced refresh or new grant waits for a cell: those go first and
//! may use the whole rate (the refresh budget keeps background refreshes to
//! their share before they get here).
//!
//! In cluster mode the cells and the pause come from the provider's bucket
//! shared by every member ([`super::bucket`]); the limiter's own bucket is
//! then only the fallback while the database cannot be reached.

use std::fmt;
use std::future::Future;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use governor::clock::Clock as GovernorClock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use super::ProviderError;
use super::bucket::{BucketRate, SharedStock, Taken};
use crate::clock::{Clock, UnixMillis, millis};

/// Our clock as governor sees it: instants are durations since the Unix
/// epoch, which governor already knows how to do arithmetic on.
#[derive(Clone, Debug)]
pub(crate) struct EpochClock(pub(crate) Clock);

impl GovernorClock for EpochClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.0.now()).unwrap_or(0))
    }
}

tokio::task_local! {
    /// Set for the provider calls of a background (scheduled) refresh.
    static BACKGROUND: ();
}

/// Runs `work` as background work: its provider calls yield to every
/// foreground call waiting for the same provider.
pub async fn in_background<F: Future>(work: F) -> F::Output {
    BACKGROUND.scope((), work).await
}

fn is_background() -> bool {
    BACKGROUND.try_with(|_| ()).is_ok()
}

type Gcra = RateLimiter<NotKeyed, InMemoryState, EpochClock, NoOpMiddleware<Duration>>;

pub(crate) struct Limiter {
    gcra: Gcra,
    /// The cluster's bucket for this provider, when there is a cluster.
    shared: Option<Arc<SharedStock>>,
    rate: BucketRate,
    /// Whether the shared bucket's last take failed (logged once a spell).
    shared_failing: AtomicBool,
    clock: Clock,
    /// Unix ms until which a 429 told us to stay away; 0 when not paused.
    /// An atomic rather than a lock: it is read on every call and only ever
    /// moves forward (`fetch_max`).
    paused_until: AtomicI64,
    /// How many 429s paused this provider (a metric).
    pauses: AtomicU64,
    /// Foreground calls waiting for a cell: background calls wait for none.
    foreground_waiting: AtomicUsize,
    /// Told when the last waiting foreground call got its cell (or gave up).
    foreground_done: Notify,
}

/// Counts a foreground call as waiting for as long as it lives.
struct Waiting<'a>(&'a Limiter);

impl<'a> Waiting<'a> {
    fn new(limiter: &'a Limiter) -> Self {
        limiter.foreground_waiting.fetch_add(1, Ordering::AcqRel);
        Waiting(limiter)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.0.foreground_waiting.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.foreground_done.notify_waiters();
        }
    }
}

impl Limiter {
    /// `per_minute` calls a minute on average, at most `burst` at once;
    /// taken from `shared` (the cluster's bucket) when given.
    pub(crate) fn new(
        per_minute: NonZeroU32,
        burst: NonZeroU32,
        clock: Clock,
        shared: Option<SharedStock>,
    ) -> Self {
        let quota = Quota::per_minute(per_minute).allow_burst(burst);
        Limiter {
            gcra: RateLimiter::direct_with_clock(quota, EpochClock(clock.clone())),
            shared: shared.map(Arc::new),
            rate: BucketRate {
                per_minute: f64::from(per_minute.get()),
                burst: burst.get(),
            },
            shared_failing: AtomicBool::new(false),
            clock,
            paused_until: AtomicI64::new(0),
            pauses: AtomicU64::new(0),
            foreground_waiting: AtomicUsize::new(0),
            foreground_done: Notify::new(),
        }
    }

    /// Waits for a cell. Fails at once, without taking one, while a 429 pause
    /// runs: the caller's own retry schedule is better than a queue here.
    pub(crate) async fn acquire(&self) -> Result<(), ProviderError> {
        let background = is_background();
        let _waiting = (!background).then(|| Waiting::new(self));
        loop {
            self.check_pause()?;
            if background && self.foreground_waiting.load(Ordering::Acquire) > 0 {
                let done = self.foreground_done.notified();
                tokio::pin!(done);
                done.as_mut().enable();
                if self.foreground_waiting.load(Ordering::Acquire) > 0 {
                    done.await;
                }
                continue;
            }
            if let Some(shared) = &self.shared {
                match shared.take(self.rate, self.clock.now()).await {
                    Ok(taken) => {
                        self.shared_failing.store(false, Ordering::Relaxed);
                        match taken {
                            Taken::Cells(_) => return Ok(()),
                            Taken::NotBefore(at) => self.clock.sleep_until(at).await,
                            // Another member's 429: the pause is the cluster's.
                            Taken::Paused(until) => {
                                self.paused_until.fetch_max(until, Ordering::AcqRel);
                            }
                        }
                        continue;
                    }
                    Err(e) => {
                        if !self.shared_failing.swap(true, Ordering::Relaxed) {
                            tracing::warn!(error = %e, "using this member's own rate limit until the database is back");
                        }
                    }
                }
            }
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
    /// In a cluster the pause is written to the shared bucket too (beside
    /// the caller: the caller's answer does not wait for the database).
    pub(crate) fn pause(&self, retry_after: Duration) {
        let until = self.clock.now().saturating_add(millis(retry_after));
        self.paused_until.fetch_max(until, Ordering::AcqRel);
        self.pauses.fetch_add(1, Ordering::Relaxed);
        if let (Some(shared), Ok(runtime)) = (&self.shared, tokio::runtime::Handle::try_current()) {
            let shared = Arc::clone(shared);
            runtime.spawn(async move {
                if let Err(e) = shared.pause(until).await {
                    tracing::warn!(error = %e, "the 429's pause holds for this member only");
                }
            });
        }
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
#[path = "limit_tests.rs"]
mod tests;
