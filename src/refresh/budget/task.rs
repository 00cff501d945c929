//! The budget's bookkeeping, every few seconds on the injected clock: the
//! projected need of each provider's grants, the cut between warm and
//! lapsed, grants moved out of the schedule (lapsed) or back into it (handed
//! out again), where each provider stands (metrics, `STATUS=`), one WARN an
//! hour while the need exceeds the budget; and about once a minute, the
//! last hand-outs written to the store, so a restart keeps the order. No
//! background refresh starts before the first round (`Budgets::decided`).
//!
//! Two walks over the cache's table per round, no sort: at a million
//! credentials under 90 ms of CPU on a loaded shared machine
//! (`ONLY=budget bench/run.sh` measures it).

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::watch;

use super::hand_outs::{Running, secs};
use super::warm::{Cut, Demand, calls_per_minute, class};
use crate::clock::UnixMillis;
use crate::config::RefreshMode;
use crate::model::GrantId;
use crate::refresh::Refresher;
use crate::refresh::schedule::{Msg, due_at};

/// How often the warm set is brought up to date with the hand-outs (on
/// the clock's marks: every multiple of it).
pub const EVERY: Duration = Duration::from_secs(5);
/// Rounds between writes of the last hand-outs (about a minute).
const PERSIST_EVERY: u32 = 12;
const WARN_EVERY_MS: i64 = 3_600_000;
/// Grants per message to the scheduler.
const BATCH: usize = 4_096;

/// A grant handed out again: where it goes back into the schedule.
#[derive(Debug, Clone, Copy)]
pub struct Rewarm {
    pub grant: GrantId,
    pub provider: u16,
    pub due: UnixMillis,
    pub expires_at: UnixMillis,
}

/// A grant with several credentials, seen in the first walk.
struct Linked {
    handed_out: u32,
    provider: usize,
    lifetime_secs: u32,
    /// The last round kept it warm (none of its credentials lapsed).
    was_warm: bool,
    /// Decided in the second walk (at its first credential): lapses or not.
    lapses: Option<bool>,
}

impl Refresher {
    /// The bookkeeping task, until `stop`: counted as running from this
    /// call until its last write of the hand-outs is done (or it panicked),
    /// so that a shutdown can wait for that write before the store closes.
    pub(in crate::refresh) fn keep_budget(
        self,
        stop: watch::Receiver<bool>,
    ) -> impl Future<Output = ()> + Send + 'static {
        let running = Running::start(std::sync::Arc::clone(&self.inner.budgets));
        async move {
            self.run_budget(stop).await;
            drop(running);
        }
    }

    async fn run_budget(self, mut stop: watch::Receiver<bool>) {
        let clock = self.inner.clock.clone();
        let mut persisted_to = secs(clock.now());
        self.inner.cache.set_now(persisted_to);
        self.restore_hand_outs().await;
        let mut round = 0u32;
        // The write of the last hand-outs runs beside the rounds, so that a
        // slow database never delays the warm set; one write at a time.
        let mut writing: Option<tokio::task::JoinHandle<u32>> = None;
        loop {
            let now = clock.now();
            self.inner.cache.set_now(secs(now));
            round += 1;
            if let Some(done) = writing.take_if(|w| w.is_finished()) {
                persisted_to = done.await.unwrap_or(persisted_to);
            }
            let persist = round.is_multiple_of(PERSIST_EVERY) && writing.is_none();
            let started = std::time::Instant::now();
            let seen = self.rebalance(now, persist.then_some(persisted_to));
            self.inner.budgets.count_round(now, started.elapsed());
            if persist {
                let this = self.clone();
                writing = Some(tokio::spawn(async move {
                    this.persist_hand_outs(seen, secs(now)).await
                }));
            }
            // On the clock's 5-second marks, whenever this round ran.
            let every = EVERY.as_millis() as i64;
            let next = (clock.now() / every + 1) * every;
            tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                _ = clock.sleep_until(next) => {}
            }
        }
        if let Some(w) = writing {
            persisted_to = w.await.unwrap_or(persisted_to);
        }
        let seen = self.rebalance(clock.now(), Some(persisted_to));
        self.persist_hand_outs(seen, persisted_to).await;
    }

    /// One round: the need, the cut, grants moved in or out of the schedule,
    /// the standings. Returns the credentials handed out at or after
    /// `persist_since` (when given), to be written.
    pub(in crate::refresh) fn rebalance(
        &self,
        now: UnixMillis,
        persist_since: Option<u32>,
    ) -> Vec<(String, UnixMillis)> {
        let (cache, budgets, cfg) = (&self.inner.cache, &self.inner.budgets, &self.inner.config);
        let tick = secs(now);
        // The budget's index of each of the cache's provider indexes.
        let providers: Vec<u16> = cache
            .provider_names()
            .iter()
            .map(|name| budgets.index(name))
            .collect();
        let n = providers.len();
        let mut demand = vec![Demand::default(); n];
        let mut linked: HashMap<GrantId, Linked> = HashMap::new();
        let mut seen = Vec::new();
        cache.usage(|u| {
            let handed_out = u.handed_out();
            if persist_since.is_some_and(|since| handed_out >= since && handed_out > 0) {
                seen.push((u.credential_id().to_owned(), i64::from(handed_out) * 1000));
            }
            if !u.is_active() || u.provider() >= n {
                return;
            }
            if u.is_linked() {
                let l = linked.entry(u.grant_id()).or_insert(Linked {
                    handed_out: 0,
                    provider: u.provider(),
                    lifetime_secs: u.lifetime_secs(),
                    was_warm: true,
                    lapses: None,
                });
                l.handed_out = l.handed_out.max(handed_out);
                l.was_warm &= !u.is_lapsed();
                return;
            }
            demand[u.provider()].add(
                class(tick, handed_out),
                calls_per_minute(u.lifetime_secs(), cfg),
                !u.is_lapsed(),
            );
        });
        for l in linked.values() {
            demand[l.provider].add(
                class(tick, l.handed_out),
                calls_per_minute(l.lifetime_secs, cfg),
                l.was_warm,
            );
        }
        let settings: Vec<_> = providers.iter().map(|&p| budgets.settings(p)).collect();
        let mut cuts: Vec<Option<Cut>> = settings
            .iter()
            .zip(&demand)
            .map(|(s, d)| match s.map(|s| (s.mode, s.per_minute)) {
                Some((RefreshMode::Auto, budget)) => d.cut(budget),
                Some((RefreshMode::OnDemand, _)) => Some(Cut::ALL),
                _ => None,
            })
            .collect();

        let (mut warm, mut lapsed) = (vec![0u64; n], vec![0u64; n]);
        let (mut to_lapse, mut to_warm) = (Vec::new(), Vec::new());
        cache.usage(|u| {
            let p = u.provider();
            let active = u.is_active() && p < n;
            // A grant is decided once, at its first credential; the others follow.
            let (lapse, first) = if active && u.is_linked() {
                match linked.get_mut(&u.grant_id()) {
                    Some(Linked {
                        lapses: Some(lapse),
                        ..
                    }) => (*lapse, false),
                    Some(l) => {
                        let c = class(tick, l.handed_out);
                        let need = calls_per_minute(l.lifetime_secs, cfg);
                        let lapse = cuts[p]
                            .as_mut()
                            .is_some_and(|cut| cut.lapses(c, need, l.was_warm));
                        l.lapses = Some(lapse);
                        (lapse, true)
                    }
                    None => (false, true),
                }
            } else {
                let c = class(tick, u.handed_out());
                let need = calls_per_minute(u.lifetime_secs(), cfg);
                let was_warm = !u.is_lapsed();
                (
                    active
                        && cuts[p]
                            .as_mut()
                            .is_some_and(|cut| cut.lapses(c, need, was_warm)),
                    true,
                )
            };
            if active && first {
                if lapse { lapsed[p] += 1 } else { warm[p] += 1 }
            }
            if !u.set_lapsed(lapse) {
                return;
            }
            if lapse {
                to_lapse.push(u.grant_id());
            } else if active {
                let expires_at = u.expires_at().unwrap_or(0);
                let due = match (u.next_refresh_at(), u.expires_at()) {
                    (Some(retry), _) => retry,
                    (None, Some(exp)) if u.lifetime_secs() > 0 => {
                        due_at(exp, i64::from(u.lifetime_secs()), cfg, rand::random())
                    }
                    _ => now,
                };
                to_warm.push(Rewarm {
                    grant: u.grant_id(),
                    provider: providers[p],
                    due: due.max(now),
                    expires_at,
                });
            }
        });
        for chunk in to_lapse.chunks(BATCH) {
            let _ = self.inner.schedule_tx.send(Msg::Lapse(chunk.to_vec()));
        }
        for chunk in to_warm.chunks(BATCH) {
            let _ = self.inner.schedule_tx.send(Msg::Rewarm(chunk.to_vec()));
        }
        for (i, &p) in providers.iter().enumerate() {
            let mut standing = budgets.standing(p);
            standing.need_per_minute = demand[i].total();
            standing.warm = warm[i];
            standing.lapsed = lapsed[i];
            if let Some(s) = settings[i]
                && s.mode != RefreshMode::OnDemand
                && standing.need_per_minute > s.per_minute
                && standing.warned_at.is_none_or(|t| now - t >= WARN_EVERY_MS)
            {
                standing.warned_at = Some(now);
                warn_over_budget(
                    &budgets.name(p).unwrap_or_default(),
                    s.mode,
                    s.per_minute,
                    &standing,
                );
            }
            budgets.set_standing(p, standing);
        }
        seen
    }
}

fn warn_over_budget(provider: &str, mode: RefreshMode, budget: f64, s: &super::Standing) {
    let need = s.need_per_minute;
    let what = match mode {
        RefreshMode::Auto => format!(
            "{} grants not handed out recently lapse (still active) and are refreshed on their next request",
            s.lapsed
        ),
        _ => "background refreshes fall behind and tokens may expire before they are refreshed"
            .to_owned(),
    };
    tracing::warn!(
        provider,
        need_per_minute = need.round() as u64,
        budget_per_minute = budget.round() as u64,
        lapsed = s.lapsed,
        "refresh budget of provider {provider} exceeded: keeping every grant warm takes {:.0} calls a minute, \
         {:.0} more than its budget of {:.0} (refresh_share × max_requests_per_minute); {what}. \
         Raise the rate limit with the provider (and max_requests_per_minute), raise refresh_share if your \
         own API calls leave room, or accept the lapses",
        need,
        need - budget,
        budget,
    );
}
