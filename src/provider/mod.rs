//! OAuth 2.0 providers: the only code that talks to an authorization server.
//!
//! The [`Provider`] trait is what the refresher and the API see. Its two
//! implementations are `cronofy` (JSON bodies, data centres, application
//! calendars) and `oauth2` (RFC 6749 form bodies, RFC 7009 revocation).
//! Every failure comes back as a [`ProviderError`] *classification*; callers
//! decide from the variant alone and never parse provider text.
//!
//! # Layout
//! - [`build`]/[`build_all`]: providers from their config tables.
//! - `cronofy`, `oauth2`: the two kinds.
//! - `shared`: what both share; every request leaves through `Core::call`
//!   (rate limit, 429 pause, client-secret fallback, logging).
//! - `classify`: answer → [`TokenResponse`] or [`ProviderError`] (pure).
//! - [`http`]: the shared `reqwest` client, transport errors, `Retry-After`.
//! - `limit`: the per-provider rate limiter on the injected clock.
//! - [`bucket`]: the buckets a cluster's members share (request limit,
//!   429 pause, refresh budget), and the stock a member takes ahead.
//! - [`pkce`]: RFC 7636 `S256` challenges and the code-verifier rules.

pub mod bucket;
mod classify;
mod cronofy;
pub mod explain;
pub mod http;
mod limit;
pub(crate) use limit::EpochClock;
pub use limit::in_background;
mod oauth2;
pub mod pkce;
mod shared;

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretString;
use url::Url;

use crate::clock::{Clock, UnixMillis};
use crate::config::{Config, ProviderConfig, ProviderKind};
use crate::model::Extras;

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
    /// PKCE: the `S256` challenge of the verifier the code exchange will
    /// send (see [`pkce`]); `None` leaves PKCE out (`pkce = false`).
    pub code_challenge: Option<&'a str>,
}

#[async_trait]
pub trait Provider: Send + Sync + Debug {
    /// The provider's name: its `[providers.NAME]` table.
    fn name(&self) -> &str;

    fn kind(&self) -> ProviderKind;

    /// Exchanges an authorization code. A `redirect_uri` not in the
    /// provider's `redirect_uris` is refused locally, before any call.
    /// `code_verifier` (PKCE) is sent when given: the authorization request
    /// carried its challenge.
    async fn exchange_code(
        &self,
        code: &SecretString,
        redirect_uri: &str,
        code_verifier: Option<&SecretString>,
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

    /// How many times a 429 paused this provider since start (a metric).
    fn rate_limit_pauses(&self) -> u64;

    /// Pauses calls to this provider for `retry_after` (never shortens a
    /// pause under way): its API answered 429 to a proxied request, and
    /// Cronofy counts API and token calls against one limit.
    fn pause(&self, retry_after: Duration);
}

/// The configured providers by name.
pub type Providers = HashMap<String, Arc<dyn Provider>>;

/// A provider table that cannot be turned into a working provider.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("providers.{name}: {problem}")]
    Invalid { name: String, problem: String },
    #[error("providers.{name}: cannot create the HTTP client: {source}")]
    Http {
        name: String,
        #[source]
        source: reqwest::Error,
    },
}

/// The provider `[providers.NAME]` describes. Every provider shares one
/// HTTP client (one connection pool); each has its own rate limiter, which
/// takes its cells from the cluster's bucket `provider:NAME` in `shared`
/// when there is a cluster.
pub fn build(
    name: &str,
    config: &ProviderConfig,
    clock: Clock,
    shared: Option<&Arc<dyn bucket::SharedBuckets>>,
) -> Result<Arc<dyn Provider>, BuildError> {
    let client = http::shared_client().map_err(|source| BuildError::Http {
        name: name.to_owned(),
        source,
    })?;
    let shared =
        shared.map(|b| bucket::SharedStock::new(Arc::clone(b), format!("provider:{name}")));
    Ok(match config.kind {
        ProviderKind::Cronofy => {
            Arc::new(cronofy::Cronofy::new(name, config, client, clock, shared)?)
        }
        ProviderKind::Oauth2 => Arc::new(oauth2::OAuth2::new(name, config, client, clock, shared)?),
    })
}

/// Every configured provider, by name (see [`build`]).
pub fn build_all(
    config: &Config,
    clock: Clock,
    shared: Option<&Arc<dyn bucket::SharedBuckets>>,
) -> Result<Providers, BuildError> {
    config
        .providers
        .iter()
        .map(|(name, c)| Ok((name.clone(), build(name, c, clock.clone(), shared)?)))
        .collect()
}
