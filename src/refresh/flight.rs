//! One refresh of one grant, start to end.
//!
//! 1. A concurrency permit, then the grant claimed in the store: its lease
//!    keeps every other process off it (e.g. the CLI, or another member of
//!    a cluster: wait for them), and it comes with the grant read afresh.
//! 2. If someone else refreshed it meanwhile, publish their result and stop.
//! 3. Call the provider. `invalid_grant` is only believed after checking
//!    that nobody rotated the token meanwhile, and after the previous
//!    refresh token and (application calendars) re-provisioning were tried
//!    (the `invalid_grant` file).
//! 4. Commit with compare-and-set; publish to the cache only after the
//!    commit (`outcome`).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::OwnedSemaphorePermit;

use super::invalid_grant::AfterInvalidGrant;
use super::{Outcome, RefreshError, Refresher, Trigger};
use crate::cache::Cache;
use crate::clock::UnixMillis;
use crate::config::Config;
use crate::model::{Grant, GrantId, GrantState, Status};
use crate::provider::ProviderError;
use crate::store::{Claim, Lease};

/// How often to look again while another process holds a grant's lease.
const LEASE_POLL: Duration = Duration::from_millis(100);
/// How soon a refresh the database kept from starting is tried again (plus jitter up to as much).
const DB_RETRY_MS: i64 = 5_000;

impl Refresher {
    /// Runs one attempt: `permit` is the scheduler's, or one is waited for.
    #[tracing::instrument(name = "refresh", skip_all, fields(
        grant_id = %grant_id,
        trigger = ?trigger,
        provider = tracing::field::Empty,
        attempt = tracing::field::Empty,
    ))]
    pub(super) async fn flight(
        &self,
        grant_id: GrantId,
        trigger: Trigger,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Result<Outcome, RefreshError> {
        let _permit = match permit {
            Some(p) => Some(p),
            None => self.permit().await,
        };
        if !self.store_takes_writes() {
            // No provider call: a rotated refresh token could not be kept.
            self.retry_soon(grant_id);
            return Err(RefreshError::StoreUnavailable);
        }
        let result = match self.claim(grant_id, trigger).await {
            // Another process (a cluster member) is refreshing it: its result
            // arrives through the change feed.
            Ok(None) => Ok(Outcome::Current),
            Ok(Some((lease, grant))) => {
                let result = self.attempt(&lease, grant, trigger).await;
                // A commit released the lease with its write; this covers
                // every other exit (a failure write releases it too, unless
                // that write failed).
                if !matches!(result, Ok(Outcome::Refreshed))
                    && let Err(e) = self.inner.store.release(&lease).await
                {
                    tracing::warn!(grant_id = %grant_id, error = %e, "could not release a refresh lease; it expires by itself");
                }
                result
            }
            Err(e) => Err(e),
        };
        if let Err(RefreshError::Store(e)) = &result {
            // The database failed before any provider call (busy, re-keyed,
            // unreadable): look again soon, or the grant drops out of the schedule.
            self.inner
                .store
                .health()
                .report(&self.inner.store.location(), e);
            tracing::warn!(grant_id = %grant_id, error = %e, "refresh skipped: database error; retrying in a few seconds");
            self.retry_soon(grant_id);
        }
        result
    }

    /// One of the `refresh.max_concurrency` permits every token-endpoint
    /// call holds (refreshes of any trigger, an import's first refresh, code
    /// exchanges): the bound is on calls in flight, whatever started them.
    /// The semaphore is never closed; were it, a call without a permit
    /// beats none.
    pub(super) async fn permit(&self) -> Option<OwnedSemaphorePermit> {
        self.inner.permits.clone().acquire_owned().await.ok()
    }

    /// Whether the store takes writes: a refresh (or any provider call
    /// whose result must be stored) is made only then.
    pub(super) fn store_takes_writes(&self) -> bool {
        self.inner.store.health().is_up()
    }

    /// Reports a store error to the store's health; returns it.
    pub(super) fn report_store(&self, e: crate::store::StoreError) -> crate::store::StoreError {
        self.inner.store.report(e)
    }

    fn retry_soon(&self, grant_id: GrantId) {
        self.look_again_at(grant_id, self.inner.clock.now());
    }

    /// Puts the grant back in the schedule a few seconds after `at`.
    fn look_again_at(&self, grant_id: GrantId, at: UnixMillis) {
        // Expiry only orders grants due at the same instant; unknown here.
        let expires_at = 0;
        let due = at + DB_RETRY_MS + (rand::random::<u64>() % DB_RETRY_MS as u64) as i64;
        let _ = self.inner.schedule_tx.send(super::schedule::Msg::Schedule {
            grant: grant_id,
            // Not known before the claim; this retry does not wait for the budget.
            provider: super::queue::UNKNOWN_PROVIDER,
            due,
            expires_at,
        });
    }

    /// Takes the grant's lease, waiting while another owner holds it; a
    /// scheduled refresh does not wait (`None`): it looks again when the
    /// lease ends, in case its holder never finishes, and meanwhile goes on
    /// with other grants (in a cluster, members due together spread out).
    async fn claim(
        &self,
        grant_id: GrantId,
        trigger: Trigger,
    ) -> Result<Option<(Lease, Grant)>, RefreshError> {
        loop {
            let lease_ms = self.inner.lease_ms.load(Ordering::Relaxed);
            match self.inner.store.claim(grant_id, lease_ms).await? {
                Claim::Acquired { lease, grant } => return Ok(Some((lease, grant))),
                Claim::Gone => {
                    self.forget(grant_id);
                    return Err(RefreshError::Gone);
                }
                Claim::Held { until } if trigger == Trigger::Scheduled => {
                    self.look_again_at(grant_id, until);
                    return Ok(None);
                }
                Claim::Held { .. } => tokio::time::sleep(LEASE_POLL).await,
            }
        }
    }

    /// Drops a grant that no longer exists from the cache and the schedule.
    pub(super) fn forget(&self, grant_id: GrantId) {
        self.inner.cache.remove_grant(grant_id);
        self.unschedule(grant_id);
        self.inner
            .forced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&grant_id);
    }

    async fn attempt(
        &self,
        lease: &Lease,
        grant: Grant,
        trigger: Trigger,
    ) -> Result<Outcome, RefreshError> {
        let now = self.inner.clock.now();
        let span = tracing::Span::current();
        span.record("provider", grant.state.provider.as_str());
        span.record("attempt", grant.state.consecutive_failures + 1);
        if grant.state.status == Status::NeedsReauth {
            self.publish(&grant.state);
            return Err(RefreshError::NeedsReauth(
                grant.state.last_error.clone().unwrap_or_default(),
            ));
        }
        if !trigger.needs_call(
            &grant.state,
            now,
            self.inner.config.handout_margin_ms as i64,
        ) {
            // Someone (maybe another process) refreshed it: show their result.
            self.publish(&grant.state);
            return Ok(Outcome::Current);
        }
        let Some(provider) = self.provider(&grant.state.provider) else {
            tracing::error!(grant_id = %grant.state.id, provider = %grant.state.provider, "a grant's provider is not configured; it cannot be refreshed");
            let e = RefreshError::UnknownProvider(grant.state.provider.clone());
            let failure = ProviderError::Refused(e.to_string());
            return match self.fail(lease, &grant, failure, Instant::now()).await {
                Err(RefreshError::Provider(_)) => Err(e),
                other => other,
            };
        };
        let started = Instant::now();
        // Expiry counts from here: the server dates it from when it issued
        // the token, which is after we sent the request, never after the
        // answer arrived.
        let sent = self.inner.clock.now();
        // Hand-outs of the grant wait from here until the result is
        // published (which clears the mark), or the attempt ends otherwise.
        let _marked = Marked::set(&self.inner.cache, &grant.state);
        let answer = match provider.refresh(&grant.refresh_token).await {
            Ok(response) => Ok((response, grant.refresh_token.clone())),
            Err(ProviderError::InvalidGrant { description }) => {
                match self
                    .after_invalid_grant(&grant, provider.as_ref(), description)
                    .await
                {
                    Ok(AfterInvalidGrant::Adopted) => return Ok(Outcome::Current),
                    Ok(AfterInvalidGrant::Recovered { response, used }) => Ok((response, used)),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        match answer {
            Ok((response, used)) => self.commit(&grant, response, &used, sent, started).await,
            Err(e) => self.fail(lease, &grant, e, started).await,
        }
    }
}

/// The grant's cache entries marked as being refreshed while it lives
/// ([`Cache::set_refreshing`]).
struct Marked<'a> {
    cache: &'a Cache,
    grant: &'a GrantState,
}

impl<'a> Marked<'a> {
    fn set(cache: &'a Cache, grant: &'a GrantState) -> Self {
        cache.set_refreshing(grant, true);
        Marked { cache, grant }
    }
}

impl Drop for Marked<'_> {
    fn drop(&mut self) {
        self.cache.set_refreshing(self.grant, false);
    }
}

/// A lease outlives every call one refresh can make: each previous client
/// secret, the previous refresh token and an application-calendar
/// re-provisioning are further calls, each bounded by the provider timeout.
/// One lifetime for all grants, that of the slowest provider: a lease only
/// lasts longer than its refresh when a process dies holding it.
pub(super) fn lease_lifetime(config: &Config) -> i64 {
    config
        .providers
        .values()
        .map(|p| {
            let calls = 3 + p.previous_client_secrets.len() as i64;
            (p.request_timeout_secs as i64 * calls + 10) * 1000
        })
        .max()
        .unwrap_or(120_000)
}
