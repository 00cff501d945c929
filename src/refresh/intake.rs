//! Grants arriving: import, authorization code, application calendar; and
//! the authorization URL a person is sent to first. The API reaches
//! providers only through here and `retire`. What arrived is stored by
//! `arrival`.

use secrecy::SecretString;
use url::Url;

use super::arrival::Arrival;
use super::error::IntakeError;
use super::schedule::backoff;
use super::{Refresher, Trigger};
use crate::clock::millis;
use crate::model::{Extras, GrantId, Status};
use crate::provider::{AuthorizationRequest, Provider, ProviderError, TokenResponse};

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

impl Refresher {
    fn provider_named(&self, name: &str) -> Result<std::sync::Arc<dyn Provider>, IntakeError> {
        self.provider(name)
            .ok_or_else(|| IntakeError::UnknownProvider(name.to_owned()))
    }

    fn refused(&self, e: ProviderError) -> IntakeError {
        IntakeError::from_provider(e, self.inner.clock.now())
    }

    /// Imports a grant. With an access token (and its `expires_in`) it is
    /// stored as given; without one the refresh token is tried at once: a
    /// refusal (or an answer tokend cannot read) stores nothing, a transient
    /// failure stores the credential and retries in the background. A refresh
    /// token some grant already holds links the credential to that grant,
    /// unless the provider already refused it (then: refused again).
    #[tracing::instrument(skip_all, fields(credential_id = %req.id, provider = %req.provider))]
    pub async fn import(&self, req: Import) -> Result<IntakeOutcome, IntakeError> {
        let provider = self.provider_named(&req.provider)?;
        let arrival = Arrival {
            id: &req.id,
            provider: &req.provider,
            refresh_token: &req.refresh_token,
            response: None,
            application_calendar_id: None,
            issued: false,
            sent: None,
            failed: None,
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
        if !self.store_takes_writes() {
            // Refreshing now could spend the caller's refresh token for a
            // result that could not be kept.
            return Err(IntakeError::StoreUnavailable);
        }
        let store = &self.inner.store;
        if let Some(grant) = store
            .grant_by_refresh_token(&req.provider, &req.refresh_token)
            .await?
        {
            // A token the provider already refused for good is refused again.
            if let Some(dead) = store.get_grant(grant).await?
                && dead.state.status == Status::NeedsReauth
            {
                return Err(IntakeError::InvalidGrant(format!(
                    "the provider already refused this refresh token ({}); a person must re-authorize",
                    dead.state.last_error.unwrap_or_default()
                )));
            }
            let out = self.store_new(arrival).await?;
            let needs_token = self
                .inner
                .cache
                .get(&req.id)
                .is_none_or(|e| e.access.is_none());
            if needs_token {
                let this = self.clone();
                tokio::spawn(async move { this.refresh_grant(grant, Trigger::MinTtl(0)).await });
            }
            return Ok(out);
        }
        let permit = self.permit().await;
        let sent = self.inner.clock.now();
        let answer = provider.refresh(&req.refresh_token).await;
        drop(permit);
        match answer {
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
                    sent: Some(sent),
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
                // background refresh would fire at once, ignoring the backoff
                // (and a 429's Retry-After).
                let delay = match &e {
                    ProviderError::RateLimited { retry_after } => *retry_after,
                    _ => backoff(1, &self.inner.config, rand::random()),
                };
                let retry_at = self.inner.clock.now() + millis(delay);
                tracing::info!(error = %e, "first refresh of an import failed; storing it and retrying later");
                self.store_new(Arrival {
                    failed: Some((retry_at, e.to_string())),
                    ..arrival
                })
                .await
            }
            Err(e) => Err(self.refused(e)),
        }
    }

    /// Exchanges an authorization code (with its PKCE verifier, if the
    /// authorization request carried a challenge) into credential `id`.
    #[tracing::instrument(skip_all, fields(credential_id = %id, provider = %provider_name))]
    pub async fn exchange_code(
        &self,
        id: &str,
        provider_name: &str,
        code: &SecretString,
        redirect_uri: &str,
        code_verifier: Option<&SecretString>,
    ) -> Result<IntakeOutcome, IntakeError> {
        let provider = self.provider_named(provider_name)?;
        if !self.store_takes_writes() {
            return Err(IntakeError::StoreUnavailable);
        }
        let permit = self.permit().await;
        let sent = self.inner.clock.now();
        let response = provider
            .exchange_code(code, redirect_uri, code_verifier)
            .await
            .map_err(|e| self.refused(e));
        drop(permit);
        let response = response?;
        let rt = self.required_refresh_token(&response)?;
        self.store_new(Arrival {
            id,
            provider: provider_name,
            refresh_token: &rt,
            response: Some(&response),
            application_calendar_id: None,
            issued: true,
            sent: Some(sent),
            failed: None,
        })
        .await
    }

    /// Provisions (or gets again) a Cronofy application calendar into credential `id`.
    #[tracing::instrument(skip_all, fields(credential_id = %id, provider = %provider_name))]
    pub async fn application_calendar(
        &self,
        id: &str,
        provider_name: &str,
        calendar_id: &str,
    ) -> Result<IntakeOutcome, IntakeError> {
        let provider = self.provider_named(provider_name)?;
        if !self.store_takes_writes() {
            return Err(IntakeError::StoreUnavailable);
        }
        let permit = self.permit().await;
        let sent = self.inner.clock.now();
        let response = provider
            .application_calendar(calendar_id)
            .await
            .map_err(|e| self.refused(e));
        drop(permit);
        let response = response?;
        let rt = self.required_refresh_token(&response)?;
        self.store_new(Arrival {
            id,
            provider: provider_name,
            refresh_token: &rt,
            response: Some(&response),
            application_calendar_id: Some(calendar_id),
            issued: true,
            sent: Some(sent),
            failed: None,
        })
        .await
    }

    /// The provider's authorization URL (no network call).
    pub fn authorization_url(
        &self,
        provider_name: &str,
        req: &AuthorizationRequest<'_>,
    ) -> Result<Url, IntakeError> {
        self.provider_named(provider_name)?
            .authorization_url(req)
            .map_err(|e| self.refused(e))
    }

    fn required_refresh_token(
        &self,
        response: &TokenResponse,
    ) -> Result<SecretString, IntakeError> {
        response.refresh_token.clone().ok_or_else(|| {
            self.refused(ProviderError::Protocol {
                reason: "the provider issued no refresh_token (tokend needs offline access to keep the grant)".into(),
            })
        })
    }
}
