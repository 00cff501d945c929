//! How one refresh ends: the answer made durable and published, or the
//! failure recorded (needs_reauth for good, else a retry on the backoff
//! schedule), with the metric, the log line and any status event.

use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};

use super::commit::CommitError;
use super::error::ProviderFailure;
use super::issue::{access_token, next_due};
use super::schedule::backoff;
use super::{EventKind, Outcome, RefreshError, Refresher};
use crate::clock::UnixMillis;
use crate::model::{Extras, Grant, GrantId, GrantState, Status, extras_change};
use crate::provider::{ProviderError, TokenResponse};
use crate::store::{CommitOutcome, Lease, TokenCommit};

/// Longest pause between retries of a durable write the database refused.
const MAX_WRITE_RETRY: Duration = Duration::from_secs(2);

impl Refresher {
    /// Makes the answer durable, then publishes it. A database that refuses
    /// the write does not lose the tokens: they are held here and the write
    /// retried (the daemon reports not-ready meanwhile).
    pub(super) async fn commit(
        &self,
        grant: &Grant,
        response: TokenResponse,
        used: &SecretString,
        sent: UnixMillis,
        started: Instant,
    ) -> Result<Outcome, RefreshError> {
        let access = access_token(&response, sent, &self.inner.config);
        let mut commit = TokenCommit {
            grant_id: grant.state.id,
            expected_generation: grant.state.generation,
            next_refresh_at: next_due(&access, &self.inner.config),
            refresh_token: Some(response.refresh_token.unwrap_or_else(|| used.clone())),
            access,
            scope: response.scope,
            // Extras the credentials hold already are not written again: the
            // commit then has nothing to merge and takes its short path.
            extras: if extras_change(&grant.state.credentials, &response.extras) {
                response.extras
            } else {
                Extras::new()
            },
        };
        let mut pending = false;
        let mut retry = Duration::from_millis(100);
        let state = loop {
            match self.committer().write(commit.clone()).await {
                Ok(CommitOutcome::Written(state)) => break state,
                Ok(CommitOutcome::Conflict) => {
                    let Some(current) = self.inner.store.get_grant(grant.state.id).await? else {
                        self.forget(grant.state.id);
                        return Err(RefreshError::Gone);
                    };
                    if current.refresh_token.expose_secret() == used.expose_secret() {
                        // Not a refresh (e.g. an import linked to this grant):
                        // our tokens are the newest; write over the new generation.
                        commit.expected_generation = current.state.generation;
                        continue;
                    }
                    tracing::warn!(grant_id = %grant.state.id, provider = %grant.state.provider,
                        "another process refreshed this grant first; keeping its tokens");
                    self.publish(&current.state);
                    return Ok(Outcome::Current);
                }
                Err(e) => {
                    if let CommitError::Store(e) = &e {
                        let store = &self.inner.store;
                        store.health().report(&store.location(), e);
                    }
                    if !pending {
                        pending = true;
                        self.hold(&grant.state);
                    }
                    tracing::error!(grant_id = %grant.state.id, error = %e,
                        "cannot store refreshed tokens; holding them in memory and retrying");
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(MAX_WRITE_RETRY);
                }
            }
        };
        self.inner.store.health().up();
        if pending {
            self.release_hold(grant.state.id);
            tracing::info!(grant_id = %grant.state.id, "refreshed tokens are stored now");
        }
        self.publish(&state);
        self.inner.metrics.refresh(
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
            expires_in = state.access.as_ref().map_or(0, |a| a.lifetime_secs),
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
    /// A grant that moved on meanwhile (another process refreshed it: the
    /// lease's generation fenced the write) is published as it now stands.
    pub(super) async fn fail(
        &self,
        lease: &Lease,
        grant: &Grant,
        error: ProviderError,
        started: Instant,
    ) -> Result<Outcome, RefreshError> {
        self.inner.metrics.refresh(
            &grant.state.provider,
            outcome_label(&error),
            started.elapsed().as_secs_f64(),
        );
        let mut state = grant.state.clone();
        state.consecutive_failures += 1;
        let message = error.to_string();
        state.last_error = Some(message.clone());
        // No batch of changes read before this status write is applied
        // after it: status writes leave the generation as it is, so a stale
        // batch could not be told from a current one.
        let _feed = self.inner.feed.lock().await;
        if let ProviderError::InvalidGrant { description } = &error {
            if !self.inner.store.mark_needs_reauth(lease, &message).await? {
                return self.adopt(state.id).await;
            }
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

        let now = self.inner.clock.now();
        let delay = match &error {
            ProviderError::RateLimited { retry_after } => {
                // Spread the provider's waiting grants over a tenth of the pause.
                *retry_after + retry_after.mul_f64(0.1 * rand::random::<f64>())
            }
            _ => backoff(
                state.consecutive_failures,
                &self.inner.config,
                rand::random(),
            ),
        };
        let next = now + crate::clock::millis(delay);
        match self.inner.store.record_failure(lease, &message, next).await {
            Ok(Some(failures)) => state.consecutive_failures = failures,
            Ok(None) => return self.adopt(state.id).await,
            Err(e) => {
                let e = self.report_store(e);
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
        // Another grant's 429 may pause the provider past our own retry.
        let paused = self
            .provider(&state.provider)
            .and_then(|p| p.paused_until());
        let retry_at = paused.map_or(next, |p| p.max(next));
        Err(RefreshError::Provider(ProviderFailure::scheduled(
            error, now, retry_at,
        )))
    }

    /// Publishes the grant as the store holds it now, in place of an
    /// attempt that turned out to be stale.
    async fn adopt(&self, grant_id: GrantId) -> Result<Outcome, RefreshError> {
        let Some(current) = self.inner.store.get_grant(grant_id).await? else {
            self.forget(grant_id);
            return Err(RefreshError::Gone);
        };
        tracing::info!(grant_id = %grant_id, provider = %current.state.provider,
            "the grant changed while this refresh ran; keeping what was stored");
        self.publish(&current.state);
        match current.state.status {
            Status::NeedsReauth => Err(RefreshError::NeedsReauth(
                current.state.last_error.unwrap_or_default(),
            )),
            Status::Active => Ok(Outcome::Current),
        }
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
