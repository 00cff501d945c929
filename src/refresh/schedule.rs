//! When to refresh: the due-time formula, retry backoff, and the one task
//! that sleeps until the earliest due grant whose provider's refresh budget
//! has a permit.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::queue::{Queues, UNKNOWN_PROVIDER};
use super::{Outcome, RefreshError, Refresher, Trigger};
use crate::clock::UnixMillis;
use crate::config::RefreshConfig;
use crate::model::{GrantId, GrantState, Status};

/// How often the scheduler looks again, in real time, while the store
/// refuses writes and grants are due.
const STORE_RECHECK: Duration = Duration::from_secs(1);

/// `expires_at - min(max(min_lead, lead_fraction * lifetime), lifetime / 2) - jitter`,
/// with `jitter = unit * jitter_fraction * lifetime` and `unit` uniform in `[0, 1)`.
/// The lifetime/2 cap keeps short-lived tokens from being refreshed in a loop.
pub fn due_at(
    expires_at: UnixMillis,
    lifetime_secs: i64,
    cfg: &RefreshConfig,
    unit: f64,
) -> UnixMillis {
    let lifetime = (lifetime_secs.max(1) * 1000) as f64;
    let lead = (cfg.min_lead_secs as f64 * 1000.0)
        .max(cfg.lead_fraction * lifetime)
        .min(lifetime / 2.0);
    let jitter = unit.clamp(0.0, 1.0) * cfg.jitter_fraction * lifetime;
    expires_at - lead.round() as i64 - jitter.round() as i64
}

/// Exponential backoff with full jitter: the `failures`-th retry (1-based)
/// waits `unit * min(retry_max, retry_initial * 2^(failures-1))`.
pub fn backoff(failures: i64, cfg: &RefreshConfig, unit: f64) -> Duration {
    let exp = (failures.max(1) - 1).min(62) as i32;
    let cap = (cfg.retry_initial_secs * 2f64.powi(exp)).min(cfg.retry_max_secs);
    Duration::from_secs_f64(cap * unit.clamp(0.0, 1.0))
}

#[derive(Debug)]
pub enum Msg {
    Schedule {
        grant: GrantId,
        /// The budget's index of the grant's provider (`UNKNOWN_PROVIDER` if not known).
        provider: u16,
        due: UnixMillis,
        expires_at: UnixMillis,
    },
    Unschedule(GrantId),
    /// The budget lets these grants lapse: out of the schedule.
    Lapse(Vec<GrantId>),
    /// These lapsed grants were handed out again: back into the schedule,
    /// unless they are there already.
    Rewarm(Vec<super::budget::Rewarm>),
    /// A permit of this provider's budget was put back: look again now
    /// rather than when the next one was due.
    GaveBack(u16),
    /// Answer: the loop is alive (the systemd watchdog).
    Ping(tokio::sync::oneshot::Sender<()>),
}

impl Refresher {
    /// Whether the scheduler loop answers within `limit` (the watchdog).
    pub async fn alive(&self, limit: Duration) -> bool {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.inner.schedule_tx.send(Msg::Ping(tx)).is_err() {
            return false;
        }
        matches!(tokio::time::timeout(limit, rx).await, Ok(Ok(())))
    }

    /// Publishes a grant's state to the cache and (re)schedules it.
    pub(super) fn publish(&self, grant: &GrantState) {
        self.inner.cache.publish(grant);
        self.schedule(grant);
    }

    pub(super) fn schedule(&self, grant: &GrantState) {
        self.schedule_from(grant, self.inner.clock.now());
    }

    /// Schedules a grant at its due time, or at `floor` if that has passed;
    /// a grant the budget lets lapse stays out of the schedule.
    pub(super) fn schedule_from(&self, grant: &GrantState, floor: UnixMillis) {
        let lapsed = grant
            .credentials
            .first()
            .is_some_and(|c| self.inner.cache.is_lapsed(&c.id));
        let msg = match placement(grant, floor).filter(|_| !lapsed) {
            Some((due, expires_at)) => Msg::Schedule {
                grant: grant.id,
                provider: self.inner.budgets.index(&grant.provider),
                due,
                expires_at,
            },
            None => Msg::Unschedule(grant.id),
        };
        let _ = self.inner.schedule_tx.send(msg);
    }

    pub(super) fn unschedule(&self, grant: GrantId) {
        let _ = self.inner.schedule_tx.send(Msg::Unschedule(grant));
    }
}

/// Where a grant belongs in the queue, `(due, expires_at)`: at its due time,
/// or at `floor` if that has passed (overdue grants then queue by expiry,
/// soonest first); nowhere when it is dead or has no credentials left.
pub(super) fn placement(grant: &GrantState, floor: UnixMillis) -> Option<(UnixMillis, UnixMillis)> {
    (grant.status == Status::Active && !grant.credentials.is_empty()).then(|| {
        (
            grant.next_refresh_at.map_or(floor, |t| t.max(floor)),
            grant.access.as_ref().map_or(0, |a| a.expires_at),
        )
    })
}

/// The scheduler task: sleeps until the earliest due grant, starts its
/// refresh when its provider's budget has a permit and a concurrency permit
/// is free, and is woken by `Msg`s. No polling: with nothing due it sleeps
/// until the next due time (or the next budget permit).
pub(super) async fn run(
    refresher: Refresher,
    mut queues: Queues,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    mut stop: watch::Receiver<bool>,
) {
    let clock = refresher.inner.clock.clone();
    let budgets = Arc::clone(&refresher.inner.budgets);
    let permits = Arc::clone(&refresher.inner.permits);
    // From when each provider's budget has a permit again (by index).
    let mut spent_until: HashMap<u16, UnixMillis> = HashMap::new();
    loop {
        let now = clock.now();
        // The provider whose earliest grant is due first, among those with
        // a permit; else when to look again.
        let (mut ready, mut wake_at) = (None::<(UnixMillis, u16)>, UnixMillis::MAX);
        for (provider, queue) in queues.iter_mut() {
            let Some((due, _)) = queue.peek() else {
                continue;
            };
            if provider != UNKNOWN_PROVIDER && !budgets.refreshes_in_background(provider) {
                continue;
            }
            let at = due.max(spent_until.get(&provider).copied().unwrap_or(0));
            if at > now {
                wake_at = wake_at.min(at);
            } else if ready.is_none_or(|(d, _)| due < d) {
                ready = Some((due, provider));
            }
        }
        // While the store refuses writes nothing starts (a refresh could not
        // be kept): due grants wait in the queue, looked at every second.
        let store_down = ready.is_some() && !refresher.store_takes_writes();
        if store_down {
            ready = None;
        }
        // Nothing starts before the budget's first round: it may lapse some.
        let undecided = !budgets.is_decided();
        if undecided {
            ready = None;
        }
        let mut acquired = None;
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            msg = rx.recv() => match msg {
                Some(Msg::Schedule { grant, provider, due, expires_at }) => queues.set(provider, grant, due, expires_at),
                Some(Msg::Unschedule(grant)) => queues.remove(grant),
                Some(Msg::Lapse(grants)) => grants.into_iter().for_each(|g| queues.remove(g)),
                Some(Msg::Rewarm(grants)) => for g in grants {
                    queues.set_if_absent(g.provider, g.grant, g.due, g.expires_at);
                },
                Some(Msg::GaveBack(provider)) => { spent_until.remove(&provider); }
                Some(Msg::Ping(reply)) => { let _ = reply.send(()); }
                None => break,
            },
            permit = permits.clone().acquire_owned(), if ready.is_some() => {
                let Ok(permit) = permit else { break };
                acquired = Some(permit);
            }
            _ = tokio::time::sleep(STORE_RECHECK), if store_down => {}
            _ = budgets.decided(), if undecided => {}
            _ = clock.sleep_until(wake_at), if ready.is_none() && wake_at != UnixMillis::MAX => {}
        }
        // Outside the `select!`: the budget's take may wait for the database.
        let (Some(permit), Some((_, provider))) = (acquired, ready) else {
            continue;
        };
        if provider != UNKNOWN_PROVIDER
            && let Err(at) = budgets.take(provider).await
        {
            spent_until.insert(provider, at);
            continue;
        }
        if let Some(grant) = queues.get_mut(provider).and_then(|q| q.pop()) {
            let (r, budgets) = (refresher.clone(), Arc::clone(&budgets));
            tokio::spawn(async move {
                // Errors are logged and rescheduled inside; a permit not
                // used for a call goes back to the budget.
                let result = r
                    .refresh_grant_with(grant, Trigger::Scheduled, Some(permit))
                    .await;
                if provider != UNKNOWN_PROVIDER && made_no_call(&result) {
                    budgets.give_back(provider).await;
                    let _ = r.inner.schedule_tx.send(Msg::GaveBack(provider));
                }
            });
        }
    }
    tracing::debug!(pending = queues.len(), "scheduler stopped");
}

/// Whether a refresh ended before calling the provider: another process
/// had it or had done it, it is gone, or the store could not keep a result.
fn made_no_call(result: &Result<Outcome, RefreshError>) -> bool {
    matches!(
        result,
        Ok(Outcome::Current)
            | Err(RefreshError::Gone
                | RefreshError::NeedsReauth(_)
                | RefreshError::Store(_)
                | RefreshError::StoreUnavailable)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> RefreshConfig {
        RefreshConfig {
            lead_fraction: 0.2,
            min_lead_secs: 300,
            jitter_fraction: 0.05,
            max_lifetime_secs: 86400,
            max_concurrency: 16,
            retry_initial_secs: 1.0,
            retry_max_secs: 300.0,
            force_refresh_min_interval_secs: 10,
            handout_margin_ms: 1000,
            handout_wait_ms: 2000,
        }
    }

    #[test]
    fn due_time_formula() {
        let c = cfg();
        let exp = 10_000_000;
        // 1 h token: lead = max(300 s, 720 s) = 720 s.
        assert_eq!(due_at(exp, 3600, &c, 0.0), exp - 720_000);
        // 10 min token: lead = max(300, 120) = 300 s, under the cap of 300 s.
        assert_eq!(due_at(exp, 600, &c, 0.0), exp - 300_000);
        // 2 min token: min_lead would be 300 s, capped at half the lifetime.
        assert_eq!(due_at(exp, 120, &c, 0.0), exp - 60_000);
        // Jitter moves it earlier by at most jitter_fraction * lifetime.
        assert_eq!(due_at(exp, 3600, &c, 1.0), exp - 720_000 - 180_000);
        for i in 0..100 {
            let unit = f64::from(i) / 100.0;
            let d = due_at(exp, 3600, &c, unit);
            assert!(d <= exp - 720_000 && d >= exp - 900_000);
        }
        // Never before the token was issued, whatever the settings allow.
        let c = RefreshConfig {
            lead_fraction: 0.5,
            jitter_fraction: 0.49,
            ..cfg()
        };
        assert!(due_at(exp, 60, &c, 1.0) > exp - 60_000);
    }

    #[test]
    fn backoff_grows_within_bounds() {
        let c = cfg();
        let caps: Vec<f64> = (1..=12)
            .map(|n| backoff(n, &c, 1.0).as_secs_f64())
            .collect();
        assert_eq!(&caps[..4], &[1.0, 2.0, 4.0, 8.0]);
        assert_eq!(caps[9], 300.0, "capped at retry_max_secs");
        assert!(caps.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(backoff(5, &c, 0.0), Duration::ZERO);
        assert_eq!(backoff(5, &c, 0.5).as_secs_f64(), 8.0);
        assert_eq!(backoff(10_000, &c, 1.0).as_secs_f64(), 300.0);
    }
}
