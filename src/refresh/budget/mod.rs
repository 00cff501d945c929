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
//! - `permits`: the seam for the buckets, and this process's own.

mod permits;

use std::sync::{Arc, Mutex};

pub use permits::{LocalPermits, Permits, Rate};

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
#[derive(Debug)]
pub struct Budgets {
    permits: Arc<dyn Permits>,
    /// A std mutex: held to look up or update a handful of entries.
    providers: Mutex<Vec<Provider>>,
}

impl Budgets {
    pub fn new(config: &Config, permits: Arc<dyn Permits>) -> Self {
        let budgets = Budgets {
            permits,
            providers: Mutex::new(Vec::new()),
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
    pub fn try_take(&self, index: u16) -> Result<(), UnixMillis> {
        let Some(name) = self.name(index) else {
            return Ok(());
        };
        self.permits.try_take(&name)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Provider>> {
        self.providers.lock().unwrap_or_else(|e| e.into_inner())
    }
}
