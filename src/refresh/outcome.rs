//! How one refresh ends: the answer made durable and published, or the
//! failure recorded (needs_reauth for good, else a retry on the backoff
//! schedule), with the metric, the log line and any status event.

use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};

use super::commit::Pending;
use super::flight::store_err;
use super::schedule::{backoff, due_at};
use super::{EventKind, Outcome, RefreshError, Refresher};
use crate::provider::{ProviderError, TokenResponse};
use crate::store::{AccessToken, CasOutcome, Grant, GrantState, Status};

/// Longest pause between retries of a durable write the database refused.
const MAX_WRITE_RETRY: Duration = Duration::from_secs(5);

impl Refresher {
    /// Makes the answer durable, then publishes it. A database that refuses
    /// the write does not lose the tokens: they are held here and the write
    /// retried (the daemon reports not-ready meanwhile).
    pub(super) async fn commit(
        &self,
        grant: &Grant,
        response: TokenResponse,
        used: &SecretString,
        started: Instant,
    ) -> Result<Outcome, RefreshError> {
        let cfg = self.config();
        let now = self.clock().now();
        // A provider's lifetime counts as max_lifetime_secs at most: a
        // bogus one must neither overflow nor put the refresh off for ever.
        let lifetime = response
            .expires_in
            .map_or(cfg.max_lifetime_secs, |e| e.min(cfg.max_lifetime_secs))
            .max(1) as i64;
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
    pub(super) async fn fail(
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
            self.inner.cache.set_health(&state);
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
        self.inner.cache.set_health(&state);
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
