//! The refresh budget: how much of each provider's rate background
//! refreshes may use, and which grants they keep warm.
//!
//! Token requests, forced refreshes and new grants never wait for the
//! budget: they may use the provider's whole rate, and go first in its
//! limiter ([`crate::provider::in_background`]). Background refreshes take
//! a permit from the provider's budget bucket ([`Permits`]:
//! `refresh_share × max_requests_per_minute` a minute, the provider's
//! `burst`) before they start, then their cell from the provider's bucket.
//!
//! In `auto` mode, while the projected need of a provider's grants (one
//! call per refresh interval each) exceeds its budget, only the grants
//! handed out most recently are kept warm, as many as the budget covers;
//! the others lapse: they leave the schedule and are refreshed when next
//! requested (single-flight, like any token request that needs a refresh).
//!
//! - `permits`: the seam for the buckets, and this process's own.
//! - `warm`: the projected need and the cut between warm and lapsed.
//! - `task`: the bookkeeping every few seconds: the cut, grants moved in or
//!   out of the schedule, the metrics and the WARN line.
//! - `hand_outs`: the last hand-outs read back at start, written about once
//!   a minute and at the stop.

mod hand_outs;
mod permits;
mod task;
mod warm;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

pub use permits::{LocalPermits, Permits, Rate, SharedPermits};
pub use task::{EVERY, Rewarm};

use crate::clock::UnixMillis;
use crate::config::{Config, ProviderConfig, RefreshMode};

/// What the budget knows of one provider, by the index the scheduler's
/// queues use.
#[derive(Debug, Clone)]
struct Provider {
    name: Arc<str>,
    /// `None` for a provider that is not configured (a grant that names a
    /// provider the configuration lost): no budget to keep.
    settings: Option<Settings>,
    /// What the last bookkeeping found.
    standing: Standing,
}

/// Where one provider stands against its budget (metrics, `STATUS=`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Standing {
    /// Calls a minute to keep every active grant warm.
    pub need_per_minute: f64,
    /// Active grants kept warm.
    pub warm: u64,
    /// Active grants not kept warm: refreshed on their next request.
    pub lapsed: u64,
    /// When the last "need exceeds the budget" WARN was logged.
    pub warned_at: Option<UnixMillis>,
}

/// One provider's line in the budget report.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub provider: Arc<str>,
    pub mode: RefreshMode,
    pub budget_per_minute: f64,
    pub standing: Standing,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    pub mode: RefreshMode,
    /// Background refreshes a minute the budget allows.
    pub per_minute: f64,
}

impl Settings {
    fn of(config: &ProviderConfig) -> Settings {
        Settings {
            mode: config.refresh_mode,
            per_minute: config.refresh_share * f64::from(config.max_requests_per_minute),
        }
    }
}

/// Every provider's budget. Shared by the scheduler and the budget's
/// bookkeeping; a provider's index is stable for the life of the process.
///
/// Until the bookkeeping's first round has said which grants lapse, no
/// background refresh starts ([`Budgets::decided`]): at a start every
/// overdue grant is in the schedule, and the permits would otherwise go to
/// whichever of them come first, lapsed or not.
#[derive(Debug)]
pub struct Budgets {
    permits: Arc<dyn Permits>,
    /// A std mutex: held to look up or update a handful of entries.
    providers: Mutex<Vec<Provider>>,
    /// Bookkeeping rounds done, and the time they took (the benchmark's
    /// measure of what the bookkeeping costs).
    rounds: AtomicU64,
    round_nanos: AtomicU64,
    /// The clock's time at the last round (Unix ms; 0 before the first).
    round_at: AtomicI64,
    /// Whether a round has run (the scheduler waits for the first).
    decided: watch::Sender<bool>,
    /// Whether the bookkeeping task runs (a shutdown waits for its last
    /// write of the hand-outs).
    running: watch::Sender<bool>,
}

impl Budgets {
    pub fn new(config: &Config, permits: Arc<dyn Permits>) -> Self {
        let budgets = Budgets {
            permits,
            providers: Mutex::new(Vec::new()),
            rounds: AtomicU64::new(0),
            round_nanos: AtomicU64::new(0),
            round_at: AtomicI64::new(0),
            decided: watch::Sender::new(false),
            running: watch::Sender::new(false),
        };
        budgets.configure(config);
        budgets
    }

    /// Applies the providers' settings (at start and on SIGHUP).
    pub fn configure(&self, config: &Config) {
        let mut providers = self.lock();
        for p in providers.iter_mut() {
            p.settings = None;
        }
        for (name, c) in &config.providers {
            let settings = Settings::of(c);
            self.permits.configure(
                name,
                Rate {
                    per_minute: settings.per_minute,
                    burst: c.burst,
                },
            );
            match providers.iter_mut().find(|p| &*p.name == name.as_str()) {
                Some(p) => p.settings = Some(settings),
                None => providers.push(Provider {
                    name: Arc::from(name.as_str()),
                    settings: Some(settings),
                    standing: Standing::default(),
                }),
            }
        }
    }

    /// The index of a provider's name, added when new.
    pub fn index(&self, name: &str) -> u16 {
        let mut providers = self.lock();
        if let Some(i) = providers.iter().position(|p| &*p.name == name) {
            return i as u16;
        }
        providers.push(Provider {
            name: Arc::from(name),
            settings: None,
            standing: Standing::default(),
        });
        (providers.len() - 1) as u16
    }

    pub fn name(&self, index: u16) -> Option<Arc<str>> {
        self.lock().get(usize::from(index)).map(|p| p.name.clone())
    }

    pub fn settings(&self, index: u16) -> Option<Settings> {
        self.lock().get(usize::from(index)).and_then(|p| p.settings)
    }

    /// Whether background refreshes run for this provider at all.
    pub fn refreshes_in_background(&self, index: u16) -> bool {
        self.settings(index)
            .is_none_or(|s| s.mode != RefreshMode::OnDemand)
    }

    /// Takes a permit for one background refresh of a grant of this
    /// provider, or says from when one may be there.
    pub async fn take(&self, index: u16) -> Result<(), UnixMillis> {
        let Some(name) = self.name(index) else {
            return Ok(());
        };
        self.permits.take(&name).await
    }

    /// Puts back the permit of a background refresh that made no call.
    pub async fn give_back(&self, index: u16) {
        if let Some(name) = self.name(index) {
            self.permits.give_back(&name).await;
        }
    }

    pub fn standing(&self, index: u16) -> Standing {
        self.lock()
            .get(usize::from(index))
            .map(|p| p.standing)
            .unwrap_or_default()
    }

    pub fn set_standing(&self, index: u16, standing: Standing) {
        if let Some(p) = self.lock().get_mut(usize::from(index)) {
            p.standing = standing;
        }
    }

    /// A round for the clock's time `at` took `took`.
    pub fn count_round(&self, at: UnixMillis, took: Duration) {
        self.round_at.store(at, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.round_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.rounds.fetch_add(1, Ordering::Relaxed);
        self.decided
            .send_if_modified(|d| !std::mem::replace(d, true));
    }

    /// Whether the first round has run: which grants lapse is known.
    pub fn is_decided(&self) -> bool {
        *self.decided.borrow()
    }

    /// Waits for the first round.
    pub async fn decided(&self) {
        let _ = self.decided.subscribe().wait_for(|d| *d).await;
    }

    /// Waits until the bookkeeping task is not running (at once if it never
    /// started): after a stop, its last write of the hand-outs is done.
    pub async fn stopped(&self) {
        let _ = self.running.subscribe().wait_for(|r| !*r).await;
    }

    /// Rounds done so far and the time they took in all.
    pub fn rounds(&self) -> (u64, Duration) {
        let nanos = self.round_nanos.load(Ordering::Relaxed);
        (
            self.rounds.load(Ordering::Relaxed),
            Duration::from_nanos(nanos),
        )
    }

    /// The clock's time at the last round (Unix ms; 0 before the first).
    pub fn round_at(&self) -> UnixMillis {
        self.round_at.load(Ordering::Relaxed)
    }

    /// Every configured provider: its budget and where it stands.
    pub fn report(&self) -> Vec<Report> {
        self.lock()
            .iter()
            .filter_map(|p| {
                let s = p.settings?;
                Some(Report {
                    provider: p.name.clone(),
                    mode: s.mode,
                    budget_per_minute: s.per_minute,
                    standing: p.standing,
                })
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Provider>> {
        self.providers.lock().unwrap_or_else(|e| e.into_inner())
    }
}
