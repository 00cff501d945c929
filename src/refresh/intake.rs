//! Grants arriving (import, authorization code, application calendar) and
//! leaving (delete, revoke). The API reaches providers only through here.

use secrecy::SecretString;
use url::Url;

use super::flight::store_err;
use super::schedule::{backoff, due_at};
use super::{RefreshError, Refresher, Trigger};
use crate::clock::{UnixMillis, millis};
use crate::provider::{AuthorizationRequest, Provider, ProviderError, TokenResponse};
use crate::store::{AccessToken, Extras, GrantId, NewCredential, Status};

/// A refresh token arriving, with what came with it.
struct Arrival<'a> {
    id: &'a str,
    provider: &'a str,
    refresh_token: &'a SecretString,
    /// The provider's answer (or the caller's access token) to store.
    response: Option<&'a TokenResponse>,
    application_calendar_id: Option<&'a str>,
    /// The provider issued the access token just now (it starts the
    /// forced-refresh window); not for a caller-supplied token.
    issued: bool,
    /// Without an access token: when to try the first refresh (a first
    /// refresh that failed); else now.
    retry_at: Option<UnixMillis>,
}

/// `PUT /v1/credentials/{id}`: an existing grant brought in from elsewhere.
#[derive(Debug)]
pub struct Import {
    pub id: String,
    pub provider: String,
    pub refresh_token: SecretString,
    pub access_token: Option<SecretString>,
    pub expires_in: Option<u64>,
    pub scope: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntakeOutcome {
    /// No credential had this id before.
    pub created: bool,
    pub grant_id: GrantId,
}

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("unknown provider {0:?}")]
    UnknownProvider(String),
    /// The provider refused the code or refresh token; nothing was stored.
    #[error("{0}")]
    InvalidGrant(String),
    /// Refused locally (e.g. a `redirect_uri` not registered); nothing was sent.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Provider(ProviderError),
    #[error("storage error: {0}")]
    Store(String),
}

impl From<ProviderError> for IntakeError {
    fn from(e: ProviderError) -> Self {
        match e {
            ProviderError::InvalidGrant { description } => IntakeError::InvalidGrant(description),
            ProviderError::Refused(m) => IntakeError::Refused(m),
            other => IntakeError::Provider(other),
        }
    }
}

impl Refresher {
    fn provider_named(&self, name: &str) -> Result<std::sync::Arc<dyn Provider>, IntakeError> {
        self.provider(name)
            .ok_or_else(|| IntakeError::UnknownProvider(name.to_owned()))
    }

    /// Imports a grant. With an access token (and its `expires_in`) it is
    /// stored as given; without one the refresh token is tried at once: a
    /// refusal (or an answer tokend cannot read) stores nothing, a transient
    /// failure stores the credential and retries in the background. A refresh
    /// token some grant already holds links the credential to that grant,
    /// unless the provider already refused it (then: refused again).
    pub async fn import(&self, req: Import) -> Result<IntakeOutcome, IntakeError> {
        let provider = self.provider_named(&req.provider)?;
        let arrival = Arrival {
            id: &req.id,
            provider: &req.provider,
            refresh_token: &req.refresh_token,
            response: None,
            application_calendar_id: None,
            issued: false,
            retry_at: None,
        };
        if let (Some(token), Some(expires_in)) = (req.access_token.clone(), req.expires_in) {
            let given = TokenResponse {
                access_token: token,
                token_type: "bearer".into(),
                expires_in: Some(expires_in),
                refresh_token: None,
                scope: req.scope.clone(),
                extras: Extras::new(),
            };
            return self
                .store_new(Arrival {
                    response: Some(&given),
                    ..arrival
                })
                .await;
        }
        let existing = self
            .store()
            .grant_by_refresh_token(&req.provider, &req.refresh_token)
            .await
            .map_err(|e| IntakeError::Store(e.to_string()))?;
        if let Some(grant) = existing {
            // A token the provider already refused for good is refused again.
            if let Some(dead) = self
                .store()
                .get_grant(grant)
                .await
                .map_err(|e| IntakeError::Store(e.to_string()))?
                && dead.state.status == Status::NeedsReauth
            {
                return Err(IntakeError::InvalidGrant(format!(
                    "the provider already refused this refresh token ({}); a person must re-authorize",
                    dead.state.last_error.unwrap_or_default()
                )));
            }
            let out = self.store_new(arrival).await?;
            let needs_token = self.cache().get(&req.id).is_none_or(|e| e.access.is_none());
            if needs_token {
                let this = self.clone();
                tokio::spawn(async move { this.refresh_grant(grant, Trigger::MinTtl(0)).await });
            }
            return Ok(out);
        }
        match provider.refresh(&req.refresh_token).await {
            Ok(response) => {
                let rt = response
                    .refresh_token
                    .clone()
                    .unwrap_or_else(|| req.refresh_token.clone());
                let response = TokenResponse {
                    scope: response.scope.clone().or(req.scope.clone()),
                    ..response
                };
                self.store_new(Arrival {
                    refresh_token: &rt,
                    response: Some(&response),
                    issued: true,
                    ..arrival
                })
                .await
            }
            // Trouble that says nothing against the refresh token (the provider
            // is down or busy, or our client secret is wrong): keep the grant
            // and retry. An answer we cannot read refuses the import (502).
            Err(
                e @ (ProviderError::Transient { .. }
                | ProviderError::RateLimited { .. }
                | ProviderError::InvalidClient { .. }),
            ) => {
                // Stored due at the retry time, not now: scheduled "now", the
                // background refresh would fire at once, before the failure
                // is recorded, ignoring the backoff (and a 429's Retry-After).
                let delay = match &e {
                    ProviderError::RateLimited { retry_after } => *retry_after,
                    _ => backoff(1, self.config(), rand::random()),
                };
                let retry_at = self.clock().now() + millis(delay);
                let out = self
                    .store_new(Arrival {
                        retry_at: Some(retry_at),
                        ..arrival
                    })
                    .await?;
                self.record_intake_failure(out.grant_id, &e, retry_at).await;
                Ok(out)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Exchanges an authorization code (with its PKCE verifier, if the
    /// authorization request carried a challenge) into credential `id`.
    pub async fn exchange_code(
        &self,
        id: &str,
        provider_name: &str,
        code: &SecretString,
        redirect_uri: &str,
        code_verifier: Option<&SecretString>,
    ) -> Result<IntakeOutcome, IntakeError> {
        let provider = self.provider_named(provider_name)?;
        let response = provider
            .exchange_code(code, redirect_uri, code_verifier)
            .await?;
        let rt = required_refresh_token(&response)?;
        self.store_new(Arrival {
            id,
            provider: provider_name,
            refresh_token: &rt,
            response: Some(&response),
            application_calendar_id: None,
            issued: true,
            retry_at: None,
        })
        .await
    }

    /// Provisions (or gets again) a Cronofy application calendar into credential `id`.
    pub async fn application_calendar(
        &self,
        id: &str,
        provider_name: &str,
        calendar_id: &str,
    ) -> Result<IntakeOutcome, IntakeError> {
        let provider = self.provider_named(provider_name)?;
        let response = provider.application_calendar(calendar_id).await?;
        let rt = required_refresh_token(&response)?;
        self.store_new(Arrival {
            id,
            provider: provider_name,
            refresh_token: &rt,
            response: Some(&response),
            application_calendar_id: Some(calendar_id),
            issued: true,
            retry_at: None,
        })
        .await
    }

    /// The provider's authorization URL (no network call).
    pub fn authorization_url(
        &self,
        provider_name: &str,
        req: &AuthorizationRequest<'_>,
    ) -> Result<Url, IntakeError> {
        Ok(self.provider_named(provider_name)?.authorization_url(req)?)
    }

    /// Stores a credential whose refresh token just arrived, with the access
    /// token of its response if there is one, and publishes it.
    async fn store_new(&self, a: Arrival<'_>) -> Result<IntakeOutcome, IntakeError> {
        let now = self.clock().now();
        let cfg = self.config();
        let access = a.response.map(|r| {
            let lifetime = r
                .expires_in
                .map_or(cfg.max_lifetime_secs, |e| e.min(cfg.max_lifetime_secs))
                .max(1) as i64;
            AccessToken {
                token: r.access_token.clone(),
                token_type: r.token_type.clone(),
                expires_at: now + lifetime * 1000,
                lifetime_secs: lifetime,
            }
        });
        let next = access.as_ref().map_or(a.retry_at.unwrap_or(now), |t| {
            due_at(t.expires_at, t.lifetime_secs, cfg, rand::random())
        });
        let no_extras = Extras::new();
        let out = self
            .store()
            .put_credential(&NewCredential {
                id: a.id,
                provider: a.provider,
                refresh_token: a.refresh_token,
                access: access.as_ref(),
                scope: a.response.and_then(|r| r.scope.as_deref()),
                extras: a.response.map_or(&no_extras, |r| &r.extras),
                application_calendar_id: a.application_calendar_id,
                next_refresh_at: Some(next),
                last_refresh_at: a.issued.then_some(now),
            })
            .await
            .map_err(|e| IntakeError::Store(e.to_string()))?;
        if let Some(orphan) = out.orphaned_grant {
            self.forget(orphan);
        }
        self.republish(out.grant_id)
            .await
            .map_err(|e| IntakeError::Store(e.to_string()))?;
        Ok(IntakeOutcome {
            created: out.created,
            grant_id: out.grant_id,
        })
    }

    /// Publishes a grant as the database holds it now.
    async fn republish(&self, grant_id: GrantId) -> Result<(), RefreshError> {
        if let Some(grant) = self.store().get_grant(grant_id).await.map_err(store_err)? {
            self.publish(&grant.state);
        }
        Ok(())
    }

    async fn record_intake_failure(
        &self,
        grant_id: GrantId,
        error: &ProviderError,
        next: UnixMillis,
    ) {
        tracing::info!(grant_id = %grant_id, error = %error, "first refresh of an import failed; stored it and will retry");
        if let Err(e) = self
            .store()
            .record_failure(grant_id, "", &error.to_string(), next)
            .await
        {
            tracing::error!(grant_id = %grant_id, error = %e, "cannot record a refresh failure");
        }
        let _ = self.republish(grant_id).await;
    }
}

fn required_refresh_token(response: &TokenResponse) -> Result<SecretString, IntakeError> {
    response.refresh_token.clone().ok_or_else(|| {
        IntakeError::Provider(ProviderError::Protocol {
            reason: "the provider issued no refresh_token (tokend needs offline access to keep the grant)".into(),
        })
    })
}
