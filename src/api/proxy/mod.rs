//! `/v1/proxy/{credential_id}/{path}` (any method): the request forwarded
//! to the provider's API with the credential's current access token, so a
//! back end never holds a token.
//!
//! - `entry`: how a request comes in (the router's handler, or the
//!   connection's service once the gate let it through).
//! - `target`: the path rules and the target URL (nothing leaves the base);
//!   `apis`: each provider's API base, prepared when the configuration is set.
//! - `headers`: which headers cross, each way.
//! - `upstream`: the call (no redirects followed, a deadline on the head)
//!   and the answer streamed back; `pool`: the connections it goes over.
//! - `token`: the token to send, refreshed single-flight when needed.
//! - `observe`: metrics by provider and status, one DEBUG line a request.
//!
//! The checks before any call come in the API's usual order (the router's
//! gate: browser/proxy/Host, client key, body size; then the path, the
//! client's patterns, the credential). Tokens come from the cache; any
//! refresh (an expired token, an API's 401) goes through the same
//! single-flight entry points as `GET /v1/tokens/{id}` and
//! `POST /v1/tokens/{id}/refresh`.

pub(crate) mod apis;
mod entry;
mod headers;
mod observe;
mod pool;
mod target;
mod token;
mod upstream;

use axum::body::{Body, Bytes};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::auth::Client;
use super::error::ApiError;
use super::state::Services;
use super::{AppState, check_id, tokens};
use crate::provider::http::retry_after;
pub(super) use entry::{Served, forward, serve};
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

/// A proxied request, answered, with its metrics and log line; `true` when
/// the answer is the API's.
async fn answer(state: &AppState, client: &Client, parts: Parts, body: Bytes) -> (Response, bool) {
    let Parts {
        method,
        uri,
        headers,
        ..
    } = parts;
    let mut seen = observe::Seen::start(&method);
    let (response, from_api) = match proxy(
        state,
        client,
        &uri,
        method.clone(),
        headers,
        body,
        &mut seen,
    )
    .await
    {
        Ok(response) => (response, true),
        Err(own) => (*own, false),
    };
    seen.record(state.metrics(), response.status().as_u16());
    (response, from_api)
}

/// Marks an answer of this route as tokend's own unless it came from the
/// API; fills in the common headers (`Cache-Control: no-store`,
/// `X-Content-Type-Options: nosniff`) only where the answer lacks them, so
/// an API's answer keeps its own.
pub(crate) fn finish(response: &mut Response) {
    let from_api = response.extensions().get::<Upstream>().is_some();
    finish_as(response, from_api);
}

/// [`finish`], told where the answer came from.
fn finish_as(response: &mut Response, from_api: bool) {
    let headers = response.headers_mut();
    if !from_api {
        headers.insert(OWN_ERROR_HEADER, HeaderValue::from_static("1"));
    }
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ] {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
}

/// The checks, in order, then the call (and its one resend after a 401).
async fn proxy<'a>(
    state: &AppState,
    client: &Client,
    uri: &'a Uri,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
    seen: &mut observe::Seen<'a>,
) -> Result<Response, Refusal> {
    if matches!(method, Method::TRACE | Method::CONNECT) {
        return Err(own(ApiError::MethodNotAllowed));
    }
    let malformed = || {
        own(ApiError::InvalidRequest(
            "malformed path: use /v1/proxy/{credential_id}/{path}".into(),
        ))
    };
    let (raw_id, path) = target::split(uri.path()).ok_or_else(malformed)?;
    let id = target::decode_id(raw_id).ok_or_else(malformed)?;
    check_id(&id).map_err(own)?;
    seen.credential = Some(id.clone());
    let id = &*id;
    target::check_path(path).map_err(|m| own(ApiError::InvalidRequest(m.into())))?;
    let services = state.services().map_err(own)?;
    let entry = tokens::visible_entry(&services.cache, client, id).map_err(own)?;
    let provider = services.cache.provider_of(&entry);
    seen.provider = Some(provider.clone());
    let api = state.proxy_apis().get(&provider).map_err(|missing| {
        own(match missing {
            apis::Missing::Provider => ApiError::ProviderError(format!(
                "provider {provider} is no longer configured"
            )),
            apis::Missing::BaseUrl => ApiError::InvalidRequest(format!(
                "provider {provider} has no api_base_url: set providers.{provider}.api_base_url to proxy its API"
            )),
            apis::Missing::Usable => leaves_base(),
        })
    })?;
    let target = api
        .base
        .target(path, uri.query())
        .ok_or_else(|| own(leaves_base()))?;
    // Even an empty body is sent on when the caller announced one.
    let has_body = headers.contains_key(header::CONTENT_LENGTH)
        || headers.contains_key(header::TRANSFER_ENCODING);
    let outgoing = Outgoing {
        api,
        headers,
        method,
        target,
        body,
        has_body,
    };

    let token = token::current(state, services, entry, id).await?;
    let answer = upstream::send(&outgoing, &token).await.map_err(own)?;
    if answer.status() != StatusCode::UNAUTHORIZED {
        return Ok(pass_back(state, services, &provider, answer));
    }
    // The API refused the token: one forced refresh naming it, one resend.
    drop(answer);
    let token = Box::pin(token::after_rejection(state, services, id, &token)).await?;
    let answer = upstream::send(&outgoing, &token).await.map_err(own)?;
    Ok(pass_back(state, services, &provider, answer))
}

fn leaves_base() -> ApiError {
    ApiError::InvalidRequest("this path would leave the provider's API base".into())
}

/// The API's answer, passed back; a 429 also pauses the provider's
/// refreshes for its `Retry-After` (Cronofy counts API and token calls
/// against one limit).
fn pass_back(
    state: &AppState,
    services: &Services,
    provider: &str,
    answer: axum::http::Response<Body>,
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

/// tokend's own answer (boxed: a response is large, and the happy path
/// should not carry its size around).
type Refusal = Box<Response>;

fn own(e: ApiError) -> Refusal {
    Box::new(e.into_response())
}
