//! One refresh of one grant, start to end.
//!
//! 1. A concurrency permit, then the grant's lease in SQLite (another
//!    process, e.g. the CLI, may be refreshing it: wait for it).
//! 2. Re-read the grant under the lease: if someone else refreshed it
//!    meanwhile, publish their result and stop there.
//! 3. Call the provider. `invalid_grant` is only believed after checking
//!    that nobody rotated the token meanwhile, and after the previous
//!    refresh token and (application calendars) re-provisioning were tried.
//! 4. Write with compare-and-set; publish to the cache only after the commit.

use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::OwnedSemaphorePermit;

use super::commit::Pending;
use super::schedule::{backoff, due_at};
use super::{EventKind, Outcome, RefreshError, Refresher, Trigger};
use crate::provider::{Provider, ProviderError, TokenResponse};
use crate::store::{
    AccessToken, CasOutcome, Grant, GrantId, GrantState, LeaseOutcome, Status, StoreError,
};

/// How often to look again while another process holds a grant's lease.
const LEASE_POLL: Duration = Duration::from_millis(100);
/// How soon a refresh the database kept from starting is tried again (plus jitter up to as much).
const DB_RETRY_MS: i64 = 5_000;
/// Longest pause between retries of a durable write the database refused.
const MAX_WRITE_RETRY: Duration = Duration::from_secs(5);

/// What is left after the provider refused the current refresh token.
enum AfterInvalidGrant {
    /// Another refresh replaced the token meanwhile; its result is published.
    Adopted,
    /// Another way in worked: store this answer. `used` is the refresh token
    /// that got it, kept when the answer carries none.
    Recovered {
        response: TokenResponse,
        used: SecretString,
    },
}

pub(super) fn store_err(e: StoreError) -> RefreshError {
    RefreshError::Store(e.to_string())
}

impl Refresher {
    pub(super) async fn flight(
        &self,
        grant_id: GrantId,
        trigger: Trigger,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Result<Outcome, RefreshError> {
        let _permit = match permit {
            Some(p) => p,
            None => self
                .permits()
                .acquire_owned()
                .await
                .map_err(|_| RefreshError::Store("shutting down".into()))?,
        };
        let provider = self
            .inner
            .cache
            .members(grant_id)
            .first()
            .and_then(|id| self.inner.cache.get(id));
        let lease_ms = provider.map_or(120_000, |e| self.lease_ms(&e.provider));
        let result = match self.take_lease(grant_id, lease_ms).await {
            Ok(()) => {
                let result = self.attempt(grant_id, trigger).await;
                // A written refresh released the lease in the same transaction;
                // this covers every other exit.
                if result != Ok(Outcome::Refreshed)
                    && let Err(e) = self
                        .store()
                        .release_lease(grant_id, &self.inner.owner)
                        .await
                {
                    tracing::warn!(grant_id = %grant_id, error = %e, "could not release a refresh lease; it expires by itself");
                }
                result
            }
            Err(e) => Err(e),
        };
        if let Err(RefreshError::Store(message)) = &result {
            // The database failed before any provider call (busy, re-keyed,
            // unreadable): look again soon, or the grant drops out of the schedule.
            tracing::warn!(grant_id = %grant_id, error = %message, "refresh skipped: database error; retrying in a few seconds");
            self.retry_soon(grant_id);
        }
        result
    }

    fn retry_soon(&self, grant_id: GrantId) {
        let expires_at = self
            .inner
            .cache
            .members(grant_id)
            .first()
            .and_then(|id| self.inner.cache.get(id))
            .and_then(|e| e.access.as_ref().map(|a| a.expires_at))
            .unwrap_or(0);
        let due =
            self.clock().now() + DB_RETRY_MS + (rand::random::<u64>() % DB_RETRY_MS as u64) as i64;
        let _ = self.inner.schedule_tx.send(super::schedule::Msg::Schedule {
            grant: grant_id,
            due,
            expires_at,
        });
    }

    async fn take_lease(&self, grant_id: GrantId, lease_ms: i64) -> Result<(), RefreshError> {
        loop {
            let until = self.clock().now() + lease_ms;
            match self
                .store()
                .try_lease(grant_id, &self.inner.owner, until)
                .await
                .map_err(store_err)?
            {
                LeaseOutcome::Acquired => return Ok(()),
                LeaseOutcome::Gone => {
                    self.forget(grant_id);
                    return Err(RefreshError::Gone);
                }
                LeaseOutcome::HeldUntil(_) => tokio::time::sleep(LEASE_POLL).await,
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

    async fn read_grant(&self, grant_id: GrantId) -> Result<Grant, RefreshError> {
        match self.store().get_grant(grant_id).await.map_err(store_err)? {
            Some(g) => Ok(g),
            None => {
                self.forget(grant_id);
                Err(RefreshError::Gone)
            }
        }
    }

    async fn attempt(&self, grant_id: GrantId, trigger: Trigger) -> Result<Outcome, RefreshError> {
        let grant = self.read_grant(grant_id).await?;
        let now = self.clock().now();
        if grant.state.status == Status::NeedsReauth {
            self.publish(&grant.state);
            return Err(RefreshError::NeedsReauth(
                grant.state.last_error.clone().unwrap_or_default(),
            ));
        }
        if !trigger.needs_call(&grant.state, now) {
            // Someone (maybe another process) refreshed it: show their result.
            self.publish(&grant.state);
            return Ok(Outcome::Current);
        }
        let Some(provider) = self.provider(&grant.state.provider) else {
            let e = RefreshError::UnknownProvider(grant.state.provider.clone());
            tracing::error!(grant_id = %grant_id, provider = %grant.state.provider, "a grant's provider is not configured; it cannot be refreshed");
            let failure = ProviderError::Refused(e.to_string());
            let _ = self.fail(&grant, failure, Instant::now()).await;
            return Err(e);
        };
        let started = Instant::now();
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
            Ok((response, used)) => self.commit(&grant, response, &used, started).await,
            Err(e) => self.fail(&grant, e, started).await,
        }
    }

    /// The provider refused the current refresh token. Before the verdict:
    /// did another refresh replace it (a lost race)? Does the previous token
    /// still work (a crash between the provider's answer and our commit)?
    /// Can an application calendar be provisioned again?
    async fn after_invalid_grant(
        &self,
        grant: &Grant,
        provider: &dyn Provider,
        description: String,
    ) -> Result<AfterInvalidGrant, ProviderError> {
        if let Ok(Some(now)) = self.store().get_grant(grant.state.id).await
            && now.state.generation != grant.state.generation
        {
            tracing::info!(grant_id = %grant.state.id, provider = %grant.state.provider,
                "lost a refresh race to another process; using the winner's token");
            self.publish(&now.state);
            return Ok(AfterInvalidGrant::Adopted);
        }
        if let Some(previous) = &grant.previous_refresh_token
            && previous.expose_secret() != grant.refresh_token.expose_secret()
        {
            match provider.refresh(previous).await {
                Ok(response) => {
                    tracing::warn!(grant_id = %grant.state.id, provider = %grant.state.provider,
                        "the current refresh token was refused but the previous one worked");
                    return Ok(AfterInvalidGrant::Recovered {
                        response,
                        used: previous.clone(),
                    });
                }
                Err(ProviderError::InvalidGrant { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        if let Some(calendar) = &grant.state.application_calendar_id {
            tracing::info!(grant_id = %grant.state.id, provider = %grant.state.provider,
                "application calendar token refused; provisioning it again");
            let response = provider.application_calendar(calendar).await?;
            return Ok(AfterInvalidGrant::Recovered {
                response,
                used: grant.refresh_token.clone(),
            });
        }
        Err(ProviderError::InvalidGrant { description })
    }

    /// Makes the answer durable, then publishes it. A database that refuses
    /// the write does not lose the tokens: they are held here and the write
    /// retried (the daemon reports not-ready meanwhile).
    async fn commit(
        &self,
        grant: &Grant,
        response: TokenResponse,
        used: &SecretString,
        started: Instant,
    ) -> Result<Outcome, RefreshError> {
        let cfg = self.config();
        let now = self.clock().now();
        let lifetime = response
            .expires_in
            .unwrap_or(cfg.max_lifetime_secs)
            .clamp(1, i64::MAX as u64 / 1000) as i64;
        let access = AccessToken {
            token: response.access_token.clone(),
            token_type: response.token_type.clone(),
            expires_at: now + lifetime * 1000,
            lifetime_secs: lifetime,
        };
        let next = due_at(access.expires_at, lifetime, cfg, rand::random());
        let refresh_token = response.refresh_token.as_ref().unwrap_or(used);
        let mut expected = grant.state.generation;
        let mut pending = false;
        let mut retry = Duration::from_millis(100);
        let written = loop {
            let result = Pending {
                grant_id: grant.state.id,
                expected_generation: expected,
                refresh_token: Some(refresh_token.clone()),
                access: access.clone(),
                scope: response.scope.clone(),
                extras: response.extras.clone(),
                next_refresh_at: next,
            };
            match self.committer().write(result).await {
                Ok(CasOutcome::Written {
                    generation,
                    credentials,
                }) => break (generation, credentials),
                Ok(CasOutcome::Conflict) => {
                    let Some(current) = self
                        .store()
                        .get_grant(grant.state.id)
                        .await
                        .map_err(store_err)?
                    else {
                        self.forget(grant.state.id);
                        return Err(RefreshError::Gone);
                    };
                    if current.refresh_token.expose_secret() == used.expose_secret() {
                        // Not a refresh (e.g. an import linked to this grant):
                        // our tokens are the newest; write over the new generation.
                        expected = current.state.generation;
                        continue;
                    }
                    tracing::warn!(grant_id = %grant.state.id, provider = %grant.state.provider,
                        "another process refreshed this grant first; keeping its tokens");
                    self.publish(&current.state);
                    return Ok(Outcome::Current);
                }
                Err(e) => {
                    if !pending {
                        pending = true;
                        let now_pending = self
                            .inner
                            .pending_writes
                            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                        self.metrics().set_pending_writes(now_pending + 1);
                    }
                    tracing::error!(grant_id = %grant.state.id, error = %e,
                        "cannot store refreshed tokens; holding them in memory and retrying");
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(MAX_WRITE_RETRY);
                }
            }
        };
        if pending {
            let left = self
                .inner
                .pending_writes
                .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
            self.metrics().set_pending_writes(left - 1);
            tracing::info!(grant_id = %grant.state.id, "refreshed tokens are stored now");
        }
        let (generation, credentials) = written;
        let state = GrantState {
            id: grant.state.id,
            provider: grant.state.provider.clone(),
            status: Status::Active,
            access: Some(access),
            scope: response.scope.clone().or_else(|| grant.state.scope.clone()),
            application_calendar_id: grant.state.application_calendar_id.clone(),
            generation,
            last_refresh_at: Some(self.clock().now()),
            next_refresh_at: Some(next),
            consecutive_failures: 0,
            last_error: None,
            credentials,
        };
        self.publish(&state);
        self.metrics().refresh(
            &state.provider,
            "refreshed",
            started.elapsed().as_secs_f64(),
        );
        tracing::info!(
            grant_id = %state.id,
            credentials = %credential_list(&state),
            provider = %state.provider,
            attempt = grant.state.consecutive_failures + 1,
            duration_ms = started.elapsed().as_millis() as u64,
            expires_in = lifetime,
            "refreshed"
        );
        if grant.state.consecutive_failures >= self.inner.failing_after {
            tracing::info!(grant_id = %state.id, credentials = %credential_list(&state), provider = %state.provider, "recovered after repeated failures");
            self.emit(EventKind::Recovered, &state, None);
        }
        Ok(Outcome::Refreshed)
    }

    /// Records a failed attempt: `invalid_grant` ends the grant's refreshes
    /// until a person re-authorizes; anything else is retried with backoff
    /// (or after `Retry-After`) while still-valid tokens keep being served.
    async fn fail(
        &self,
        grant: &Grant,
        error: ProviderError,
        started: Instant,
    ) -> Result<Outcome, RefreshError> {
        self.metrics().refresh(
            &grant.state.provider,
            outcome_label(&error),
            started.elapsed().as_secs_f64(),
        );
        let mut state = grant.state.clone();
        state.consecutive_failures += 1;
        let message = error.to_string();
        state.last_error = Some(message.clone());
        if let ProviderError::InvalidGrant { description } = &error {
            self.store()
                .mark_needs_reauth(state.id, &self.inner.owner, &message)
                .await
                .map_err(store_err)?;
            state.status = Status::NeedsReauth;
            state.next_refresh_at = None;
            tracing::warn!(
                grant_id = %state.id,
                credentials = %credential_list(&state),
                provider = %state.provider,
                description = %description,
                "refresh token refused (invalid_grant): the credential needs re-authorization"
            );
            self.inner.cache.set_health(
                state.id,
                state.status,
                state.consecutive_failures,
                state.last_error.as_deref(),
                None,
            );
            self.unschedule(state.id);
            self.emit(EventKind::NeedsReauth, &state, Some(description));
            return Err(RefreshError::NeedsReauth(description.clone()));
        }

        let now = self.clock().now();
        let delay = match &error {
            ProviderError::RateLimited { retry_after } => {
                // Spread the provider's waiting grants over a tenth of the pause.
                *retry_after + retry_after.mul_f64(0.1 * rand::random::<f64>())
            }
            _ => backoff(state.consecutive_failures, self.config(), rand::random()),
        };
        let next = now + crate::clock::millis(delay);
        match self
            .store()
            .record_failure(state.id, &self.inner.owner, &message, next)
            .await
        {
            Ok(failures) if failures > 0 => state.consecutive_failures = failures,
            Ok(_) => {}
            Err(e) => {
                tracing::error!(grant_id = %state.id, error = %e, "cannot record a refresh failure")
            }
        }
        state.next_refresh_at = Some(next);
        if matches!(error, ProviderError::InvalidClient { .. }) {
            tracing::error!(provider = %state.provider,
                "the provider refused our client credentials (invalid_client); check providers.{}.client_secret. Grants stay active and are retried",
                state.provider);
        }
        let failing = state.consecutive_failures >= self.inner.failing_after;
        if failing {
            tracing::warn!(grant_id = %state.id, credentials = %credential_list(&state), provider = %state.provider,
                attempt = state.consecutive_failures, duration_ms = started.elapsed().as_millis() as u64,
                retry_in_ms = crate::clock::millis(delay), error = %message, "refresh failed again");
        } else {
            tracing::info!(grant_id = %state.id, credentials = %credential_list(&state), provider = %state.provider,
                attempt = state.consecutive_failures, duration_ms = started.elapsed().as_millis() as u64,
                retry_in_ms = crate::clock::millis(delay), error = %message, "refresh failed; will retry");
        }
        self.inner.cache.set_health(
            state.id,
            state.status,
            state.consecutive_failures,
            state.last_error.as_deref(),
            Some(next),
        );
        self.schedule(&state);
        if state.consecutive_failures == self.inner.failing_after {
            self.emit(EventKind::Failing, &state, Some(&message));
        }
        Err(RefreshError::Provider(error))
    }
}

/// The `outcome` label of a failed refresh.
fn outcome_label(error: &ProviderError) -> &'static str {
    match error {
        ProviderError::InvalidGrant { .. } => "invalid_grant",
        ProviderError::InvalidClient { .. } => "invalid_client",
        ProviderError::RateLimited { .. } => "rate_limited",
        ProviderError::Transient { .. } => "transient",
        ProviderError::Protocol { .. } => "protocol",
        ProviderError::Refused(_) => "refused",
    }
}

/// The credential ids of a grant, for log lines.
pub(super) fn credential_list(state: &GrantState) -> String {
    let ids: Vec<&str> = state.credentials.iter().map(|c| c.id.as_str()).collect();
    ids.join(",")
}
