//! `/v1/proxy/{credential_id}/{path}` (any method): the request forwarded
//! to the provider's API with the credential's current access token, so a
//! back end never holds a token.
//!
//! - `target`: the path rules and the target URL (nothing leaves the base).
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

mod headers;
mod observe;
mod pool;
mod target;
mod token;
mod upstream;

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

use super::auth::Client;
use super::error::ApiError;
use super::state::Services;
use super::{AppState, Caller, check_id, tokens};
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

/// The handler: any method under [`ROUTE`], behind the router's layers.
pub(super) async fn forward(
    State(state): State<AppState>,
    Caller(client): Caller,
    request: Request,
) -> Response {
    answer(&state, &client, request).await
}

/// What the connection's service runs for a proxied request whose caller
/// the gate's checks (`admit`: browser/proxy/Host, then the client key)
/// have let through: the router's other layers for this route, done here
/// without their boxed services, futures and extensions (see `api::fast`).
/// In their order: the deadline (`server.request_timeout_secs`), the count
/// by route and status, the body read within `server.max_body_bytes`
/// (413), the handler; then the headers of [`finish`]. Unlike the router,
/// it opens no `request` span: the proxy logs its own line per request.
pub(super) fn serve<B>(
    state: AppState,
    client: Arc<Client>,
    request: axum::http::Request<B>,
) -> Served
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    Box::pin(async move {
        let (limit, deadline) = {
            let config = state.config();
            let server = &config.server;
            (
                server.max_body_bytes,
                Duration::from_secs(server.request_timeout_secs),
            )
        };
        let counted = async {
            let response = match read_body(request, limit).await {
                Ok(request) => answer(&state, &client, request).await,
                Err(e) => e.into_response(),
            };
            let status = response.status().as_u16();
            state.metrics().http_request(ROUTE_LABEL, status);
            response
        };
        let mut response = tokio::time::timeout(deadline, counted)
            .await
            .unwrap_or_else(|_| ApiError::Timeout.into_response());
        finish(&mut response);
        Ok(response)
    })
}

/// The future of [`serve`].
pub(super) type Served = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

/// The request with its body read, at most `limit` bytes, as the router's
/// gate does (none sent: nothing to read).
async fn read_body<B>(request: axum::http::Request<B>, limit: usize) -> Result<Request, ApiError>
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let (parts, body) = request.into_parts();
    if body.is_end_stream() {
        return Ok(Request::from_parts(parts, Body::empty()));
    }
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(Request::from_parts(parts, Body::from(collected.to_bytes()))),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::PayloadTooLarge),
        Err(_) => Err(ApiError::InvalidRequest(
            "could not read the request body".into(),
        )),
    }
}

/// A proxied request, answered, with its metrics and log line.
async fn answer(state: &AppState, client: &Client, request: Request) -> Response {
    let mut seen = observe::Seen::start(request.method().clone());
    let response = match proxy(state, client, request, &mut seen).await {
        Ok(response) => response,
        Err(own) => *own,
    };
    seen.record(state.metrics(), response.status().as_u16());
    response
}

/// Marks an answer of this route as tokend's own unless it came from the
/// API; fills in the common headers (`Cache-Control: no-store`,
/// `X-Content-Type-Options: nosniff`) only where the answer lacks them, so
/// an API's answer keeps its own.
pub(crate) fn finish(response: &mut Response) {
    let from_api = response.extensions().get::<Upstream>().is_some();
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

async fn proxy(
    state: &AppState,
    client: &Client,
    request: Request,
    seen: &mut observe::Seen,
) -> Result<Response, Refusal> {
    let (parts, body) = request.into_parts();
    if matches!(parts.method, Method::TRACE | Method::CONNECT) {
        return Err(own(ApiError::MethodNotAllowed));
    }
    let malformed = || {
        own(ApiError::InvalidRequest(
            "malformed path: use /v1/proxy/{credential_id}/{path}".into(),
        ))
    };
    let (raw_id, path) = target::split(parts.uri.path()).ok_or_else(malformed)?;
    let id = target::decode_id(raw_id).ok_or_else(malformed)?;
    check_id(&id).map_err(own)?;
    let id = id.as_str();
    seen.credential = Some(id.to_owned());
    target::check_path(path).map_err(|m| own(ApiError::InvalidRequest(m.into())))?;
    let services = state.services().map_err(own)?;
    let entry = tokens::visible_entry(&services.cache, client, id).map_err(own)?;
    let provider = services.cache.provider_of(&entry);
    seen.provider = Some(provider.clone());
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
    let uri = target::join(&base, path, parts.uri.query()).ok_or_else(|| {
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
        headers: headers::upstream(&parts.headers),
        method: parts.method,
        uri,
        body,
        has_body,
        timeout,
    };

    let token = token::current(state, services, entry, id).await?;
    let answer = upstream::send(&outgoing, &token).await.map_err(own)?;
    if answer.status() != StatusCode::UNAUTHORIZED {
        return Ok(pass_back(state, services, &provider, answer));
    }
    // The API refused the token: one forced refresh naming it, one resend.
    drop(answer);
    let token = token::after_rejection(state, services, id, &token).await?;
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
