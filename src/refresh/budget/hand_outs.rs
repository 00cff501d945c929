//! The last hand-outs across restarts: read back into the cache at start,
//! before the first round (so no background refresh goes to a grant that
//! then lapses), and written to the store about once a minute and once
//! more at the stop. A shutdown waits for that last write ([`Running`],
//! `Budgets::stopped`) before it closes the store. In a cluster each
//! minute's write is followed by a read of the other members' hand-outs.

use std::sync::Arc;

use super::Budgets;
use crate::clock::UnixMillis;
use crate::refresh::Refresher;

/// How far back each minute's read of the other members' hand-outs looks:
/// they write theirs about once a minute too, so a hand-out reaches the
/// database up to a minute or two after it happened.
const FOLLOW_SECS: u32 = 180;

/// Unix ms to the seconds the cache records hand-outs in.
pub(super) fn secs(at: UnixMillis) -> u32 {
    (at / 1000).clamp(0, i64::from(u32::MAX)) as u32
}

/// Marks the bookkeeping task running while it lives, however it ends.
pub(super) struct Running(Arc<Budgets>);

impl Running {
    pub(super) fn start(budgets: Arc<Budgets>) -> Self {
        budgets.running.send_replace(true);
        Running(budgets)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.send_replace(false);
    }
}

impl Refresher {
    /// Reads the last hand-outs back into the cache (a later one recorded
    /// meanwhile is kept). A store that cannot answer starts the order afresh.
    pub(super) async fn restore_hand_outs(&self) {
        let mut restored = 0usize;
        let cache = Arc::clone(&self.inner.cache);
        let read = self
            .inner
            .store
            .hand_outs_each(&mut |id, at| {
                cache.restore_hand_out(id, secs(at));
                restored += 1;
            })
            .await;
        match read {
            Ok(()) => tracing::debug!(restored, "last hand-outs restored"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the last hand-outs; the refresh budget's order starts afresh")
            }
        }
    }

    /// Writes `seen`; returns from when hand-outs are still to be written.
    /// Then reads what the other members wrote.
    pub(super) async fn persist_hand_outs(&self, seen: Vec<(String, UnixMillis)>, now: u32) -> u32 {
        let persisted = match seen.iter().map(|(_, at)| secs(*at)).min() {
            None => now,
            Some(oldest) => match self.inner.store.record_hand_outs(&seen).await {
                Ok(()) => now,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot record the last hand-outs; trying again in a minute");
                    oldest
                }
            },
        };
        self.follow_hand_outs(now).await;
        persisted
    }

    /// Takes in the hand-outs other members recorded in the last few
    /// minutes (cluster mode), so that every member keeps the same grants
    /// warm: the order is the cluster's.
    async fn follow_hand_outs(&self, now: u32) {
        let since = i64::from(now.saturating_sub(FOLLOW_SECS)) * 1000;
        let cache = &self.inner.cache;
        let read = self
            .inner
            .store
            .hand_outs_since(since, &mut |id, at| cache.restore_hand_out(id, secs(at)))
            .await;
        if let Err(e) = read {
            tracing::debug!(error = %e, "cannot read the other members' hand-outs; trying again in a minute");
        }
    }
}
