//! The single entry point every trigger goes through: concurrent callers
//! for one grant share one attempt and its result; the attempt runs to its
//! end even if every caller goes away; forced refreshes are limited per grant.

use std::sync::Arc;
use std::time::Duration;

use futures::future::FutureExt;
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument;

use super::{Flight, Outcome, RefreshError, Refresher, Trigger};
use crate::clock::UnixMillis;
use crate::model::GrantId;

impl Refresher {
    /// Refreshes a grant if `trigger` still calls for it once the grant's
    /// lease is held. Concurrent callers for one grant share one attempt and
    /// its result; the attempt runs to completion even if every caller goes away.
    pub async fn refresh_grant(
        &self,
        grant: GrantId,
        trigger: Trigger,
    ) -> Result<Outcome, RefreshError> {
        self.refresh_grant_with(grant, trigger, None).await
    }

    pub(super) async fn refresh_grant_with(
        &self,
        grant: GrantId,
        trigger: Trigger,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Result<Outcome, RefreshError> {
        let flight = {
            let mut inflight = self
                .inner
                .inflight
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            match inflight.get(&grant) {
                Some(f) => {
                    // Joining: the running attempt has its own permit.
                    drop(permit);
                    f.clone()
                }
                None => {
                    let this = self.clone();
                    // The attempt belongs to the caller that started it (its
                    // request span, if any); callers that join share it.
                    let task = tokio::spawn(
                        async move {
                            let flight = this.flight(grant, trigger, permit);
                            // Scheduled refreshes yield to every other call in
                            // the provider's limiter.
                            let result = if trigger == Trigger::Scheduled {
                                crate::provider::in_background(flight).await
                            } else {
                                flight.await
                            };
                            this.inner
                                .inflight
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .remove(&grant);
                            result
                        }
                        .in_current_span(),
                    );
                    let f: Flight = async move {
                        task.await
                            .unwrap_or_else(|e| Err(RefreshError::Interrupted(Arc::new(e))))
                    }
                    .boxed()
                    .shared();
                    inflight.insert(grant, f.clone());
                    f
                }
            }
        };
        flight.await
    }

    /// Waits for the refresh of `grant` running in this process, if any, at
    /// most `limit` (a hand-out waiting for the token being issued).
    pub async fn wait_for(&self, grant: GrantId, limit: Duration) {
        let flight = self
            .inner
            .inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&grant)
            .cloned();
        if let Some(flight) = flight {
            let _ = tokio::time::timeout(limit, flight).await;
        }
    }

    /// Whether a refresh of this grant is running in this process now.
    pub fn is_refreshing(&self, grant: GrantId) -> bool {
        self.inner
            .inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&grant)
    }

    /// The end of the grant's forced-refresh window if it is still open at
    /// `now`; otherwise opens a new window (this caller may force a refresh).
    pub fn claim_forced_refresh(&self, grant: GrantId, now: UnixMillis) -> Result<(), UnixMillis> {
        let window = self.inner.config.force_refresh_min_interval_secs as i64 * 1000;
        let mut forced = self.inner.forced.lock().unwrap_or_else(|e| e.into_inner());
        match forced.get(&grant) {
            Some(&last) if now < last + window => Err(last + window),
            _ => {
                forced.insert(grant, now);
                Ok(())
            }
        }
    }

    /// Refreshes running now in this process.
    pub fn in_flight(&self) -> usize {
        self.inner
            .inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Waits until no refresh is in flight, at most `limit` (on shutdown:
    /// a token the provider already issued must reach the database), and
    /// for the budget's bookkeeping to finish its last write.
    pub async fn drain(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.in_flight() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if self.in_flight() > 0 {
            tracing::warn!(
                in_flight = self.in_flight(),
                "shutting down with refreshes still in flight"
            );
        }
        // The budget's last write of the hand-outs, before the store closes.
        let _ = tokio::time::timeout_at(deadline, self.inner.budgets.stopped()).await;
    }
}
