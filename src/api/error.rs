//! Every error the API sends: SPEC §4's `{"error": CODE, "message": TEXT}`
//! with its status. Internal detail is logged, never sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::refresh::{DeleteError, IntakeError, ProviderFailure, RefreshError};
use crate::store::StoreError;

#[derive(Debug)]
pub enum ApiError {
    /// A browser, a proxy or a foreign Host (checked before anything else),
    /// or a client without the right for this credential.
    Forbidden(String),
    Unauthorized,
    PayloadTooLarge,
    InvalidRequest(String),
    InvalidGrant(String),
    NotFound,
    /// No route at this path.
    NotFoundPath,
    NeedsReauth(String),
    /// `named`: the sharing credentials the caller may see; `hidden`: how
    /// many more it may not.
    GrantShared {
        named: Vec<String>,
        hidden: usize,
    },
    RateLimited {
        retry_after: u64,
    },
    ProviderError(String),
    ProviderUnavailable {
        retry_after: u64,
        message: String,
    },
    /// The store refuses writes (or cannot be reached) and the request
    /// needs it: a token that needs a refresh, an import, a deletion.
    StoreUnavailable {
        retry_after: u64,
    },
    /// Not in SPEC's table: the daemon is still loading its cache.
    NotReady,
    /// Not in SPEC's table: the database failed us (or the refresh task
    /// did); the cause goes to the log, never to the caller.
    Internal(Box<dyn std::error::Error + Send + Sync>),
    MethodNotAllowed,
    /// Not in SPEC's table: the request took longer than
    /// `server.request_timeout_secs` (a refresh it started goes on).
    Timeout,
    /// Proxy only: the provider's API cannot be reached.
    UpstreamUnreachable,
    /// Proxy only: the provider's API did not answer within the
    /// provider's `request_timeout_secs`.
    UpstreamTimeout,
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, String) {
        use ApiError::*;
        match self {
            Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", m.clone()),
            Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or unknown client key: send Authorization: Bearer <key>".into(),
            ),
            PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is larger than server.max_body_bytes".into(),
            ),
            InvalidRequest(m) => (StatusCode::BAD_REQUEST, "invalid_request", m.clone()),
            InvalidGrant(m) => (StatusCode::BAD_REQUEST, "invalid_grant", m.clone()),
            NotFound => (
                StatusCode::NOT_FOUND,
                "not_found",
                "no such credential".into(),
            ),
            NotFoundPath => (StatusCode::NOT_FOUND, "not_found", "no such path".into()),
            NeedsReauth(m) => (
                StatusCode::CONFLICT,
                "needs_reauth",
                format!("the grant is dead at the provider; a person must re-authorize ({m})"),
            ),
            GrantShared { named, hidden } => (
                StatusCode::CONFLICT,
                "grant_shared",
                grant_shared_message(named, *hidden),
            ),
            RateLimited { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "this token was refreshed moments ago; wait before forcing another refresh".into(),
            ),
            ProviderError(m) => (StatusCode::BAD_GATEWAY, "provider_error", m.clone()),
            ProviderUnavailable { message, .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "provider_unavailable",
                message.clone(),
            ),
            StoreUnavailable { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the database refuses writes or cannot be reached, and this needs it \
                 (a token that must be refreshed, a change to a credential); try again later"
                    .into(),
            ),
            NotReady => (
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "tokend is starting (loading its token cache)".into(),
            ),
            Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "internal error; see tokend's log".into(),
            ),
            MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this path does not take that method".into(),
            ),
            Timeout => (
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "the request took longer than server.request_timeout_secs".into(),
            ),
            UpstreamUnreachable => (
                StatusCode::BAD_GATEWAY,
                "upstream_unreachable",
                "the provider's API cannot be reached".into(),
            ),
            UpstreamTimeout => (
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                "the provider's API did not answer within the provider's request_timeout_secs"
                    .into(),
            ),
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::RateLimited { retry_after }
            | ApiError::ProviderUnavailable { retry_after, .. }
            | ApiError::StoreUnavailable { retry_after } => Some((*retry_after).max(1)),
            ApiError::NotReady => Some(1),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            tracing::error!(error = %cause, "request failed");
        }
        let (status, code, message) = self.parts();
        let mut response = (
            status,
            axum::Json(json!({"error": code, "message": message})),
        )
            .into_response();
        if let Some(secs) = self.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Seconds until `at` (Unix ms), at least 1: a Retry-After value.
pub fn retry_after_secs(at: i64, now: i64) -> u64 {
    ((at - now).max(0) as u64).div_ceil(1000).max(1)
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_outage() {
            tracing::warn!(error = %e, "request refused: the database is unavailable");
            return store_unavailable();
        }
        ApiError::Internal(Box::new(e))
    }
}

/// 503 `store_unavailable`, to come back after a few of the store's probes.
fn store_unavailable() -> ApiError {
    ApiError::StoreUnavailable {
        retry_after: crate::store::health::RETRY_AFTER.as_secs(),
    }
}

/// A provider failure: 503 with `Retry-After` (the failure's, else 5 s)
/// while waiting may help, else 502.
fn provider_failure(f: &ProviderFailure, message: String) -> ApiError {
    if f.is_transient() {
        ApiError::ProviderUnavailable {
            retry_after: f.retry_after().map_or(5, |wait| wait.as_secs()),
            message,
        }
    } else {
        ApiError::ProviderError(message)
    }
}

impl From<IntakeError> for ApiError {
    fn from(e: IntakeError) -> Self {
        match e {
            IntakeError::UnknownProvider(_) => ApiError::InvalidRequest(
                "unknown provider: use one of those in tokend's configuration".into(),
            ),
            IntakeError::InvalidGrant(m) => ApiError::InvalidGrant(m),
            IntakeError::Refused(m) => ApiError::InvalidRequest(m),
            IntakeError::Provider(f) => provider_failure(&f, f.to_string()),
            IntakeError::Store(e) => e.into(),
            IntakeError::StoreUnavailable => store_unavailable(),
        }
    }
}

impl From<DeleteError> for ApiError {
    fn from(e: DeleteError) -> Self {
        match e {
            DeleteError::NotFound => ApiError::NotFound,
            // The handler names only what the caller may read (see
            // `credentials::delete`); this default names nobody.
            DeleteError::GrantShared { others } => ApiError::GrantShared {
                named: Vec::new(),
                hidden: others.len(),
            },
            DeleteError::Refused(m) => ApiError::InvalidRequest(m),
            DeleteError::Provider(f) => provider_failure(
                &f,
                format!("could not revoke at the provider; the credential is kept: {f}"),
            ),
            DeleteError::Store(e) => e.into(),
            DeleteError::StoreUnavailable => store_unavailable(),
        }
    }
}

impl From<RefreshError> for ApiError {
    fn from(e: RefreshError) -> Self {
        match e {
            RefreshError::Gone => ApiError::NotFound,
            RefreshError::NeedsReauth(m) => ApiError::NeedsReauth(m),
            RefreshError::Provider(f) => provider_failure(&f, f.to_string()),
            RefreshError::UnknownProvider(p) => {
                ApiError::ProviderError(format!("provider {p} is not configured"))
            }
            RefreshError::StoreUnavailable => store_unavailable(),
            RefreshError::Store(e) if e.is_outage() => {
                tracing::warn!(error = %e, "refresh refused: the database is unavailable");
                store_unavailable()
            }
            e @ (RefreshError::Store(_) | RefreshError::Interrupted(_)) => {
                ApiError::Internal(Box::new(e))
            }
        }
    }
}

/// "Credentials a, b (and 2 you may not see) share this grant ..."
fn grant_shared_message(named: &[String], hidden: usize) -> String {
    let mut who: Vec<String> = named.iter().map(|n| format!("{n:?}")).collect();
    if hidden > 0 {
        let more = if named.is_empty() { "" } else { "more " };
        let s = if hidden == 1 { "" } else { "s" };
        who.push(format!(
            "{hidden} {more}credential{s} this client may not read"
        ));
    }
    format!(
        "other credentials share this grant ({}); revoking it would cut them off: \
         delete them first, or delete this one without revoke=true",
        who.join(", ")
    )
}
