//! `/v1/proxy/{credential_id}/{path}` (any method): the request forwarded
//! to the provider's API with the credential's current access token, so a
//! back end never holds a token.
//!
//! - `target`: the path rules and the target URL (nothing leaves the base).
//! - `headers`: which headers cross, each way.
//! - `upstream`: the call (no redirects followed, a deadline on the head)
//!   and the answer streamed back.
//!
//! The checks before any call come in the API's usual order (the router's
//! gate: browser/proxy/Host, client key, body size; then the path, the
//! client's patterns, the credential). Tokens come from the cache; any
//! refresh (an expired token, an API's 401) goes through the same
//! single-flight entry points as `GET /v1/tokens/{id}` and
//! `POST /v1/tokens/{id}/refresh`.

mod headers;
mod target;
mod upstream;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;

use super::error::ApiError;
use super::state::Services;
use super::{AppState, Caller, check_id, tokens};
use crate::cache::TokenEntry;
use crate::model::Status;
use crate::provider::http::retry_after;
pub(crate) use target::PREFIX;
use upstream::Outgoing;
pub(crate) use upstream::Upstream;

/// The route in axum's syntax.
pub(super) const ROUTE: &str = "/v1/proxy/{id}/{*path}";
/// The route as OpenAPI (and the route list) writes it.
pub(super) const DOC_ROUTE: &str = "/v1/proxy/{id}/{path}";
/// The route as a metric label (no braces, no values).
pub(super) const ROUTE_LABEL: &str = "/v1/proxy/:id/*path";
/// The methods documented (and counted as routes). Any other is forwarded
/// too, except OPTIONS (refused with every CORS preflight), TRACE and
/// CONNECT: a TRACE would echo the access token back to the caller.
pub(super) const METHODS: [Method; 6] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

/// Marks every answer on this route that tokend made itself.
pub(crate) const OWN_ERROR_HEADER: &str = "x-tokend-error";

/// The handler: any method under [`ROUTE`].
pub(super) async fn forward(
    State(state): State<AppState>,
    Caller(client): Caller,
    request: Request,
) -> Response {
    match proxy(&state, &client, request).await {
        Ok(response) => response,
        Err(own) => *own,
    }
}

/// Marks an answer of this route as tokend's own unless it came from the
/// API; fills in the common headers only where the API's answer lacks them.
pub(crate) fn finish(response: &mut Response) -> bool {
    if response.extensions().get::<Upstream>().is_some() {
        return true;
    }
    response
        .headers_mut()
        .insert(OWN_ERROR_HEADER, HeaderValue::from_static("1"));
    false
}

async fn proxy(
    state: &AppState,
    client: &super::auth::Client,
    request: Request,
) -> Result<Response, Refusal> {
    let (parts, body) = request.into_parts();
    if matches!(parts.method, Method::TRACE | Method::CONNECT) {
        return Err(own(ApiError::MethodNotAllowed));
    }
    let (id, path) = target::split(parts.uri.path()).ok_or_else(|| {
        own(ApiError::InvalidRequest(
            "malformed path: use /v1/proxy/{credential_id}/{path}".into(),
        ))
    })?;
    check_id(id).map_err(own)?;
    target::check_path(path).map_err(|m| own(ApiError::InvalidRequest(m.into())))?;
    let services = state.services().map_err(own)?;
    let entry = tokens::visible_entry(&services.cache, client, id).map_err(own)?;
    let provider = services.cache.provider_of(&entry);
    let (base, timeout) = {
        let config = state.config();
        let Some(p) = config.providers.get(&*provider) else {
            return Err(own(ApiError::ProviderError(format!(
                "provider {provider} is no longer configured"
            ))));
        };
        let base = p.proxy_base_url().ok_or_else(|| {
            own(ApiError::InvalidRequest(format!(
                "provider {provider} has no api_base_url: set providers.{provider}.api_base_url to proxy its API"
            )))
        })?;
        (base, Duration::from_secs(p.request_timeout_secs))
    };
    let url = target::join(&base, path, parts.uri.query()).ok_or_else(|| {
        own(ApiError::InvalidRequest(
            "this path would leave the provider's API base".into(),
        ))
    })?;
    // The gate has read the body already, within server.max_body_bytes (413).
    let has_body = parts
        .headers
        .contains_key(axum::http::header::CONTENT_LENGTH)
        || parts
            .headers
            .contains_key(axum::http::header::TRANSFER_ENCODING);
    let body = axum::body::to_bytes(body, usize::MAX).await.map_err(|_| {
        own(ApiError::InvalidRequest(
            "could not read the request body".into(),
        ))
    })?;
    let outgoing = Outgoing {
        method: parts.method,
        url,
        headers: parts.headers,
        body,
        has_body,
        timeout,
    };

    let token = current(state, services, entry, id).await?;
    let answer = upstream::send(&outgoing, &token).await.map_err(own)?;
    if answer.status() != StatusCode::UNAUTHORIZED {
        return Ok(pass_back(state, services, &provider, answer));
    }
    // The API refused the token: one forced refresh naming it, one resend.
    drop(answer);
    let token = after_rejection(state, services, id, &token).await?;
    let answer = upstream::send(&outgoing, &token).await.map_err(own)?;
    Ok(pass_back(state, services, &provider, answer))
}

/// The API's answer, passed back; a 429 also pauses the provider's
/// refreshes for its `Retry-After` (Cronofy counts API and token calls
/// against one limit).
fn pass_back(
    state: &AppState,
    services: &Services,
    provider: &str,
    answer: reqwest::Response,
) -> Response {
    if answer.status() == StatusCode::TOO_MANY_REQUESTS {
        let wait = retry_after(answer.headers(), state.now());
        tracing::warn!(
            provider,
            retry_after_secs = wait.as_secs(),
            "the provider's API answered 429 to a proxied request; pausing calls to it"
        );
        services.refresher.pause_provider(provider, wait);
    }
    upstream::pass_back(answer)
}

/// A still-valid access token of the credential, refreshed first
/// (single-flight) when it has expired: an expired token is never sent.
async fn current(
    state: &AppState,
    services: &Services,
    entry: Arc<TokenEntry>,
    id: &str,
) -> Result<SecretString, Refusal> {
    // As a hand-out: not while a refresh of the grant calls the provider
    // (its old token may be revoked), nor inside the hand-out margin.
    if let Some((settled, false)) = services.cache.get_settled(id)
        && let Some(token) = usable(&settled, state.handout_now())
    {
        return Ok(token);
    }
    let answer = tokens::current_token(state, services, entry, id, 0).await;
    token_after(state, services, id, answer)
}

/// The token to resend with after the API refused `rejected`: the answer
/// of `POST /v1/tokens/{id}/refresh` with `rejected_token`.
async fn after_rejection(
    state: &AppState,
    services: &Services,
    id: &str,
    rejected: &SecretString,
) -> Result<SecretString, Refusal> {
    let entry = services
        .cache
        .get(id)
        .ok_or_else(|| own(ApiError::NotFound))?;
    let answer = tokens::refresh_rejected(state, services, entry, id, Some(rejected)).await;
    token_after(state, services, id, answer)
}

/// The token the cache holds once a token answer was 200; that answer's
/// error (tokend's own) otherwise.
fn token_after(
    state: &AppState,
    services: &Services,
    id: &str,
    answer: Result<Response, ApiError>,
) -> Result<SecretString, Refusal> {
    let answer = answer.map_err(own)?;
    if answer.status() != StatusCode::OK {
        return Err(Box::new(answer));
    }
    let entry = services
        .cache
        .get(id)
        .ok_or_else(|| own(ApiError::NotFound))?;
    usable(&entry, state.now()).ok_or_else(|| {
        own(ApiError::ProviderUnavailable {
            retry_after: 1,
            message: "no valid token can be handed out yet; try again".into(),
        })
    })
}

/// The entry's token if it may be sent: an active grant, not expired.
fn usable(entry: &TokenEntry, now: crate::clock::UnixMillis) -> Option<SecretString> {
    let access = entry.access.as_ref()?;
    (entry.status == Status::Active && access.remaining_ms(now) > 0)
        .then(|| entry.access_token())
        .flatten()
}

/// tokend's own answer (boxed: a response is large, and the happy path
/// should not carry its size around).
type Refusal = Box<Response>;

fn own(e: ApiError) -> Refusal {
    Box::new(e.into_response())
}
