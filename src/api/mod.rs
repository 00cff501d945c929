//! The local HTTP API (SPEC §4).
//!
//! - `guard`: browser, proxy and DNS-rebinding defences (checked first).
//! - `auth`: clients, their keys, patterns and rights.
//! - `tokens`: handing out access tokens, forced refresh.
//! - `credentials`: import, code exchange, application calendars, views, delete.
//! - `checks`: a credential request's checks: the client's rights, the
//!   provider, the redirect URI.
//! - `authorize`: authorization URLs with a signed `state`, and the callback.
//! - `error`: the SPEC's error bodies and statuses.
//! - `extract`: the caller, ids, bodies and queries, refused in SPEC terms.
//! - `observe`: health probes, `/metrics`, request counts.
//! - `fast`: the per-connection service: `GET /v1/tokens/{id}` answered
//!   from the cache without the router, everything else through it.
//! - `proxy`: `/v1/proxy/{id}/{path}`, the provider's API called with the
//!   credential's token (SPEC §10).
//!
//! Handlers read the cache (tokens) and the store (views), and ask the
//! refresher for anything that needs a provider; they never call one.
//! Every response carries `Cache-Control: no-store` and
//! `X-Content-Type-Options: nosniff`.

mod audit;
pub mod auth;
mod authorize;
mod checks;
mod credentials;
pub mod error;
mod extract;
mod fast;
pub mod guard;
mod observe;
mod proxy;
mod state;
mod tokens;

pub use extract::{Caller, CredentialId, Json, OptionalJson, Query, check_id};
pub use fast::MakeConnection;
pub use state::{AppState, Readiness, Services};

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::handler::Handler;
use axum::http::{HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, any, on};
use http_body_util::BodyExt;

use error::ApiError;
use guard::Peer;

/// One route: a method on a path, and its handler.
struct Endpoint {
    method: Method,
    path: &'static str,
    handler: MethodRouter<AppState>,
}

fn endpoint<H, T>(method: Method, path: &'static str, handler: H) -> Endpoint
where
    H: Handler<T, AppState>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).expect("a method axum can route");
    Endpoint {
        method,
        path,
        handler: on(filter, handler),
    }
}

/// Every route of the API. [`router`] is built from this list and
/// [`routes`] reads it, so the list `docs/openapi.yaml` is checked against
/// (by a test) is the one that serves.
fn endpoints() -> Vec<Endpoint> {
    use Method as M;
    vec![
        endpoint(M::GET, "/healthz", observe::healthz),
        endpoint(M::GET, "/readyz", observe::readyz),
        endpoint(M::GET, "/metrics", observe::metrics),
        endpoint(M::GET, "/v1/tokens/{id}", tokens::get_token),
        endpoint(M::POST, "/v1/tokens/{id}/refresh", tokens::force_refresh),
        endpoint(M::GET, "/v1/credentials", credentials::list),
        endpoint(M::GET, "/v1/credentials/{id}", credentials::show),
        endpoint(M::PUT, "/v1/credentials/{id}", credentials::import),
        endpoint(M::DELETE, "/v1/credentials/{id}", credentials::delete),
        endpoint(
            M::POST,
            "/v1/credentials/{id}/authorization-code",
            credentials::authorization_code,
        ),
        endpoint(
            M::POST,
            "/v1/credentials/{id}/application-calendar",
            credentials::application_calendar,
        ),
        endpoint(M::GET, "/v1/authorize-url", authorize::url),
        endpoint(M::POST, "/v1/callback", authorize::callback),
    ]
}

/// What `axum::serve` runs: per connection, the hand-out fast path in
/// front of [`router`].
pub fn service(state: AppState) -> fast::MakeConnection {
    let router = router(state.clone());
    fast::MakeConnection::new(state, router)
}

/// The `(method, path)` of every route the router serves, in axum's path
/// syntax (`{id}`), which is OpenAPI's too.
pub fn routes() -> Vec<(Method, &'static str)> {
    let proxy = proxy::METHODS.map(|m| (m, proxy::DOC_ROUTE));
    endpoints()
        .into_iter()
        .map(|e| (e.method, e.path))
        .chain(proxy)
        .collect()
}

pub fn router(state: AppState) -> Router {
    let config = state.config();
    let body_limit = config.server.max_body_bytes;
    let timeout = Duration::from_secs(config.server.request_timeout_secs);
    drop(config);
    // Routes on one path merge; the same method twice on a path panics here.
    let routes = endpoints()
        .into_iter()
        .fold(Router::new(), |r, e| r.route(e.path, e.handler))
        .route(proxy::ROUTE, any(proxy::forward));
    routes
        .fallback(|| async { ApiError::NotFoundPath })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), gate))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            observe::count_request,
        ))
        .layer(middleware::from_fn_with_state(timeout, deadline))
        .layer(middleware::from_fn(common_headers))
        .layer(middleware::from_fn(observe::request_span))
        .with_state(state)
}

/// Runs before every handler, in SPEC §4's order: browser/proxy/Host (403),
/// then the client key (401), then the body size (413). Health probes need
/// no key.
async fn gate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<Peer>>()
        .map_or(Peer::Unix { uid: None }, |c| c.0);
    match admit(&state, &request, peer) {
        Ok(Some(client)) => {
            request.extensions_mut().insert(client);
        }
        Ok(None) => {}
        Err(e) => return e.into_response(),
    }
    // 413 outranks 400 and 403-for-rights, but axum runs the extractors that
    // check the path (a bad id: 400) before the one that reads the body. So
    // the body is read here, once the caller is known, within the limit.
    let limit = state.config().server.max_body_bytes;
    let (parts, body) = request.into_parts();
    let bytes = match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return ApiError::PayloadTooLarge.into_response();
        }
        Err(_) => {
            return ApiError::InvalidRequest("could not read the request body".into())
                .into_response();
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// `server.request_timeout_secs`, answered with the SPEC's error body (a
/// refresh the request started goes on: the refresher owns it).
async fn deadline(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    tokio::time::timeout(limit, next.run(request))
        .await
        .unwrap_or_else(|_| ApiError::Timeout.into_response())
}

/// The checks of [`gate`]: the client making the request (`None` for the
/// paths that need no key), or the error to answer with. The hand-out fast
/// path makes the same call.
fn admit<B>(
    state: &AppState,
    request: &axum::http::Request<B>,
    peer: Peer,
) -> Result<Option<Arc<auth::Client>>, ApiError> {
    admit_remembered(state, request, peer, None)
}

/// [`admit`], with the connection's last verified key when the caller has
/// it: the same checks in the same order, the key compared instead of
/// hashed when it is the one the connection presented before.
fn admit_remembered<B>(
    state: &AppState,
    request: &axum::http::Request<B>,
    peer: Peer,
    memo: Option<&auth::KeyMemo>,
) -> Result<Option<Arc<auth::Client>>, ApiError> {
    let config = state.config();
    guard::check(request, peer, &config.server.allowed_hosts)?;
    let path = request.uri().path();
    let open = matches!(path, "/healthz" | "/readyz")
        || (path == "/metrics" && config.server.metrics_public);
    drop(config);
    if open {
        return Ok(None);
    }
    let clients = state.clients();
    let client = match memo {
        Some(memo) => clients.identify_remembered(request.headers(), peer, memo),
        None => clients.identify(request.headers(), peer),
    };
    match client {
        Some(client) => Ok(Some(client)),
        None => Err(ApiError::Unauthorized),
    }
}

/// Tokens must never sit in a cache, and nothing here is meant to be
/// sniffed into something a browser would run. On the proxy route, tokend's
/// own answers are marked as such, and an API's answer keeps its own
/// caching and sniffing headers (the common ones fill in what it lacks).
async fn common_headers(request: Request, next: Next) -> Response {
    let proxied = request.uri().path().starts_with(proxy::PREFIX);
    let mut response = next.run(request).await;
    match proxied {
        true => proxy::finish(&mut response),
        false => add_common_headers(&mut response),
    }
    response
}

/// `Cache-Control` and `X-Content-Type-Options` for every answer, and the
/// JSON content type, ready to clone: the hand-out copies this map instead
/// of inserting (hashing) each header again.
fn json_headers() -> axum::http::HeaderMap {
    static HEADERS: std::sync::LazyLock<axum::http::HeaderMap> = std::sync::LazyLock::new(|| {
        let mut headers = axum::http::HeaderMap::with_capacity(3);
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let mut response = Response::new(Body::empty());
        add_common_headers(&mut response);
        headers.extend(response.headers().clone());
        headers
    });
    HEADERS.clone()
}

fn add_common_headers(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}
