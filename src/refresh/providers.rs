//! The providers as the refresher holds them: replaced on SIGHUP, paused
//! by a 429 from their API, and what they report (rate-limit pauses, the
//! refresh budgets) for metrics and `STATUS=`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::flight::lease_lifetime;
use super::{Refresher, budget};
use crate::clock::UnixMillis;
use crate::config::Config;
use crate::provider::{Provider, Providers};

impl Refresher {
    /// Replaces the providers (SIGHUP): secrets, limits, endpoints.
    pub fn set_providers(&self, providers: Providers, config: &Config) {
        self.inner.budgets.configure(config);
        self.inner
            .lease_ms
            .store(lease_lifetime(config), Ordering::Relaxed);
        self.inner.providers.store(Arc::new(providers));
    }

    /// How many times a 429 paused each provider since start (a metric).
    pub fn rate_limit_pauses(&self) -> Vec<(String, u64)> {
        self.inner
            .providers
            .load()
            .iter()
            .map(|(name, p)| (name.clone(), p.rate_limit_pauses()))
            .collect()
    }

    /// Each configured provider's refresh budget and where it stands
    /// (metrics, `STATUS=`).
    pub fn budget_report(&self) -> Vec<budget::Report> {
        self.inner.budgets.report()
    }

    /// The budget's bookkeeping rounds so far and the time they took in all
    /// (benchmarks).
    pub fn budget_rounds(&self) -> (u64, std::time::Duration) {
        self.inner.budgets.rounds()
    }

    /// The clock's time at the budget's last bookkeeping round (a metric).
    pub fn budget_round_at(&self) -> UnixMillis {
        self.inner.budgets.round_at()
    }

    /// The provider's API answered a proxied request with 429: its calls
    /// (background refreshes included) wait `retry_after`, as after a 429
    /// from its token endpoint. An unknown provider is ignored.
    pub fn pause_provider(&self, name: &str, retry_after: std::time::Duration) {
        if let Some(provider) = self.provider(name) {
            provider.pause(retry_after);
        }
    }

    pub(super) fn provider(&self, name: &str) -> Option<Arc<dyn Provider>> {
        self.inner.providers.load().get(name).cloned()
    }
}
