//! Wall-clock time as Unix milliseconds, and sleeping until such a time.
//!
//! Everything time-dependent (due times, backoff, `Retry-After`, leases,
//! state expiry) reads this clock, so tests use [`Clock::manual`] and move
//! time with [`Clock::advance`] instead of sleeping.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

const MAX_SLEEP_MS: i64 = 86_400_000;

/// Milliseconds since the Unix epoch.
pub type UnixMillis = i64;

#[derive(Clone, Debug)]
pub struct Clock {
    inner: Arc<Inner>,
}

#[derive(Debug)]
enum Inner {
    System,
    /// Time stands still until a test advances it; sleepers watch the value.
    Manual(watch::Sender<UnixMillis>),
}

impl Clock {
    pub fn system() -> Self {
        Clock {
            inner: Arc::new(Inner::System),
        }
    }

    pub fn manual(start: UnixMillis) -> Self {
        let (tx, _) = watch::channel(start);
        Clock {
            inner: Arc::new(Inner::Manual(tx)),
        }
    }

    pub fn now(&self) -> UnixMillis {
        match &*self.inner {
            Inner::System => system_now(),
            Inner::Manual(tx) => *tx.borrow(),
        }
    }

    /// Moves a manual clock forward and wakes every sleeper whose time came.
    ///
    /// # Panics
    /// On the system clock: real time cannot be moved.
    pub fn advance(&self, by: Duration) {
        match &*self.inner {
            Inner::System => panic!("the system clock cannot be advanced"),
            Inner::Manual(tx) => tx.send_modify(|now| *now += millis(by)),
        }
    }

    pub async fn sleep_until(&self, at: UnixMillis) {
        match &*self.inner {
            Inner::System => loop {
                // Re-read the wall clock at least daily, so a far deadline
                // neither overflows a timer nor drifts from a stepped clock.
                let wait = at.saturating_sub(system_now()).min(MAX_SLEEP_MS);
                if wait <= 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(wait as u64)).await;
            },
            Inner::Manual(tx) => {
                let mut rx = tx.subscribe();
                // The sender lives as long as `self`, so this cannot fail.
                let _ = rx.wait_for(|now| *now >= at).await;
            }
        }
    }

    pub async fn sleep(&self, d: Duration) {
        self.sleep_until(self.now().saturating_add(millis(d))).await;
    }
}

fn system_now() -> UnixMillis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, millis)
}

/// A duration in whole milliseconds, saturating.
pub fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z: RFC 3339 has four digits
/// for the year, so these are the first and last seconds it can write.
const RFC3339_FIRST_SECOND: i64 = -62_167_219_200;
const RFC3339_LAST_SECOND: i64 = 253_402_300_799;

/// RFC 3339 in UTC with second precision, as the API shows times. A time
/// outside what RFC 3339 can write is shown as the nearest one it can: a
/// far-future expiry must never read as 1970 (a token that looks expired).
pub fn rfc3339(at: UnixMillis) -> String {
    let secs = at
        .div_euclid(1000)
        .clamp(RFC3339_FIRST_SECOND, RFC3339_LAST_SECOND);
    time::OffsetDateTime::from_unix_timestamp(secs)
        .expect("clamped into the range every build of `time` supports")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("years 0000-9999 format as RFC 3339")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_clock_wakes_sleepers_only_when_advanced_far_enough() {
        let clock = Clock::manual(1_000);
        let c = clock.clone();
        let sleeper = tokio::spawn(async move { c.sleep_until(5_000).await });
        clock.advance(Duration::from_secs(3));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(Duration::from_secs(1));
        tokio::time::timeout(Duration::from_secs(1), sleeper)
            .await
            .expect("sleeper woke")
            .unwrap();
        assert_eq!(clock.now(), 5_000);
    }

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_999), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn never_renders_an_impossible_date() {
        // Past year 9999 RFC 3339 has no digits left: the last second it can write.
        let last = "9999-12-31T23:59:59Z";
        assert_eq!(rfc3339(253_402_300_799_000), last);
        for far in [253_402_300_800_000, i64::MAX / 2, i64::MAX] {
            assert_eq!(rfc3339(far), last, "{far}");
        }
        // Before year 0000 likewise: never a negative year, never 1970 by accident.
        let first = "0000-01-01T00:00:00Z";
        for early in [-62_167_219_200_001, i64::MIN / 2, i64::MIN] {
            assert_eq!(rfc3339(early), first, "{early}");
        }
        assert_eq!(rfc3339(-1_000), "1969-12-31T23:59:59Z");
    }
}
