//! Keeping systemd informed: `STATUS=` with grant counts (and whether the
//! database refuses writes), and `WATCHDOG=1`
//! at half of `WatchdogSec=` — sent only while the refresher's scheduler
//! answers, so a wedged scheduler gets the process restarted.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::api::Services;
use crate::cache::Cache;
use crate::config::Config;
use crate::refresh::Refresher;
use crate::store::StoreHealth;
use crate::telemetry::systemd;

const STATUS_EVERY: Duration = Duration::from_secs(10);

/// What the status line counts (the cache) and what the watchdog asks (the
/// refresher's scheduler).
#[derive(Clone, Debug)]
pub(super) struct Supervisor {
    cache: Arc<Cache>,
    refresher: Refresher,
    store: StoreHealth,
    failing_after: i64,
}

impl Supervisor {
    pub(super) fn new(services: &Services, config: &Config) -> Self {
        Supervisor {
            cache: Arc::clone(&services.cache),
            refresher: services.refresher.clone(),
            store: services.store.health().clone(),
            failing_after: i64::from(config.notify.failing_after),
        }
    }

    pub(super) fn status_line(&self) -> String {
        let c = self.cache.grant_counts(self.failing_after);
        let store = match self.store.is_up() {
            true => "",
            false => "; the database refuses writes (no refreshes)",
        };
        let mut line = format!(
            "{} credentials; grants: {} active, {} failing, {} need re-authorization{store}",
            self.cache.len(),
            c.active,
            c.failing,
            c.needs_reauth
        );
        // Lapsed: active grants the refresh budget does not keep warm.
        let lapsed: Vec<String> = self
            .refresher
            .budget_report()
            .iter()
            .filter(|r| r.standing.lapsed > 0)
            .map(|r| format!("{} {}", r.standing.lapsed, r.provider))
            .collect();
        if !lapsed.is_empty() {
            line.push_str(&format!("; lapsed: {}", lapsed.join(", ")));
        }
        line
    }

    pub(super) async fn run(self, mut stop: watch::Receiver<bool>) {
        let watchdog = systemd::watchdog_interval();
        let tick = watchdog.map_or(STATUS_EVERY, |w| w.min(STATUS_EVERY));
        let mut since_status = Duration::ZERO;
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(tick) => {}
            }
            if let Some(interval) = watchdog {
                if self.refresher.alive(interval).await {
                    systemd::watchdog();
                } else {
                    tracing::error!(
                        "the refresh scheduler does not answer; withholding the watchdog ping"
                    );
                }
            }
            since_status += tick;
            if since_status >= STATUS_EVERY {
                since_status = Duration::ZERO;
                systemd::status(&self.status_line());
            }
        }
    }
}
