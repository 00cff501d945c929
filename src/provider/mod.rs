//! OAuth 2.0 providers: the only code that talks to an authorization server.
//!
//! The [`Provider`] trait is what the refresher and the API see. Its two
//! implementations are `cronofy` (JSON bodies, data centres, application
//! calendars) and `oauth2` (RFC 6749 form bodies, RFC 7009 revocation).
//! Every failure comes back as a [`ProviderError`] *classification*; callers
//! decide from the variant alone and never parse provider text.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretString;
use url::Url;

use crate::clock::UnixMillis;
use crate::config::ProviderKind;
use crate::store::Extras;

/// What a token endpoint (or Cronofy's application-calendar endpoint) returned.
#[derive(Debug, Clone)]
pub struct TokenResponse {
    pub access_token: SecretString,
    /// Lower-cased: `bearer` whatever case the provider used.
    pub token_type: String,
    /// Absent for providers that send none; the refresher then assumes
    /// `refresh.max_lifetime_secs`.
    pub expires_in: Option<u64>,
    /// Absent when the provider keeps the refresh token it had (no rotation).
    pub refresh_token: Option<SecretString>,
    pub scope: Option<String>,
    /// Every other top-level field, unchanged (Cronofy: `account_id`, `sub`,
    /// `linking_profile`, `application_calendar_id`). Never a token: `id_token`
    /// is dropped rather than shown in credential views.
    pub extras: Extras,
}

/// Why a provider call failed, as the refresher and the API need to know it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    /// The grant (or authorization code) is dead: unknown, used, revoked,
    /// expired, or the `redirect_uri` does not match. Carries the provider's
    /// `error_description` (never a token).
    #[error("invalid_grant: {description}")]
    InvalidGrant { description: String },
    /// Our client credentials were refused (after trying every previous secret).
    #[error("invalid_client: {description}")]
    InvalidClient { description: String },
    /// 429; the whole provider pauses until `retry_after` has passed.
    #[error("rate limited by the provider, retry after {}s", retry_after.as_secs())]
    RateLimited { retry_after: Duration },
    /// 5xx, timeout, connection error, truncated body: try again later.
    #[error("provider unavailable: {reason}")]
    Transient { reason: String },
    /// An answer we cannot use: 2xx without `access_token`, unparsable JSON, unknown 4xx.
    #[error("unexpected answer from provider: {reason}")]
    Protocol { reason: String },
    /// Refused locally before any call (e.g. a `redirect_uri` not in the
    /// provider's `redirect_uris`, or an operation this kind does not offer).
    #[error("{0}")]
    Refused(String),
}

impl ProviderError {
    /// Worth retrying later without a person doing anything.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ProviderError::Transient { .. }
                | ProviderError::Protocol { .. }
                | ProviderError::RateLimited { .. }
                | ProviderError::InvalidClient { .. }
        )
    }
}

/// The parameters of an authorization URL.
#[derive(Debug, Clone, Default)]
pub struct AuthorizationRequest<'a> {
    pub redirect_uri: &'a str,
    pub scope: Option<&'a str>,
    /// Opaque to the provider; tokend signs it and binds the credential id.
    pub state: &'a str,
    /// Cronofy: ask it not to link this account with others from the same browser.
    pub avoid_linking: Option<bool>,
    /// Cronofy: preselect a calendar provider (`google`, `apple`, ...).
    pub provider_name: Option<&'a str>,
}

#[async_trait]
pub trait Provider: Send + Sync + Debug {
    /// The provider's name: its `[providers.NAME]` table.
    fn name(&self) -> &str;

    fn kind(&self) -> ProviderKind;

    /// Exchanges an authorization code. A `redirect_uri` not in the
    /// provider's `redirect_uris` is refused locally, before any call.
    async fn exchange_code(
        &self,
        code: &SecretString,
        redirect_uri: &str,
    ) -> Result<TokenResponse, ProviderError>;

    async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenResponse, ProviderError>;

    /// Revokes the grant a refresh token belongs to. An unknown token is not
    /// an error (RFC 7009 §2.2). Without a revocation endpoint: `Refused`.
    async fn revoke(&self, refresh_token: &SecretString) -> Result<(), ProviderError>;

    /// Where to send a person to authorize. Refuses a `redirect_uri` not in `redirect_uris`.
    fn authorization_url(&self, req: &AuthorizationRequest<'_>) -> Result<Url, ProviderError>;

    /// Cronofy only: creates (or gets again: idempotent) an application
    /// calendar and returns its tokens. Other kinds: `Refused`.
    async fn application_calendar(
        &self,
        application_calendar_id: &str,
    ) -> Result<TokenResponse, ProviderError>;

    /// While a 429's `Retry-After` runs: until when. Calls made before then
    /// fail at once with `RateLimited` instead of reaching the provider.
    fn paused_until(&self) -> Option<UnixMillis>;
}

/// The configured providers by name.
pub type Providers = HashMap<String, Arc<dyn Provider>>;
