//! Keeping systemd informed: `STATUS=` with grant counts, and `WATCHDOG=1`
//! at half of `WatchdogSec=` — sent only while the refresher's scheduler
//! answers, so a wedged scheduler gets the process restarted.

use std::time::Duration;

use tokio::sync::watch;

use crate::refresh::Refresher;
use crate::telemetry::systemd;

const STATUS_EVERY: Duration = Duration::from_secs(10);

pub(super) fn status_line(refresher: &Refresher) -> String {
    let c = refresher.cache().grant_counts(refresher.failing_after());
    format!(
        "{} credentials; grants: {} active, {} failing, {} need re-authorization",
        refresher.cache().len(),
        c.active,
        c.failing,
        c.needs_reauth
    )
}

pub(super) async fn run(refresher: Refresher, mut stop: watch::Receiver<bool>) {
    let watchdog = systemd::watchdog_interval();
    let tick = watchdog.map_or(STATUS_EVERY, |w| w.min(STATUS_EVERY));
    let mut since_status = Duration::ZERO;
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(tick) => {}
        }
        if let Some(interval) = watchdog {
            if refresher.alive(interval).await {
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
            systemd::status(&status_line(&refresher));
        }
    }
}
