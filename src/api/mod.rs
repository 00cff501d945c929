//! The local HTTP API (SPEC §4).
//!
//! - `guard`: browser, proxy and DNS-rebinding defences (checked first).
//! - `auth`: clients, their keys, patterns and rights.
//! - `tokens`: handing out access tokens, forced refresh.
//! - `credentials`: import, code exchange, application calendars, views, delete.
//! - `authorize`: authorization URLs with a signed `state`, and the callback.
//! - `error`: the SPEC's error bodies and statuses.
//! - `extract`: the caller, credential ids, JSON bodies and queries.
//! - `fast`: the per-connection service: `GET /v1/tokens/{id}` answered
//!   from the cache without the router, everything else through it.
//!
//! Handlers read the cache and ask the refresher; they never call a provider.
//! Every response carries `Cache-Control: no-store` and
//! `X-Content-Type-Options: nosniff`.

pub mod auth;
mod authorize;
mod credentials;
pub mod error;
mod extract;
mod fast;
pub mod guard;
mod tokens;
pub mod views;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::config::Config;
use crate::refresh::Refresher;
use auth::Clients;
use error::ApiError;
use guard::Peer;

pub use extract::{Caller, CredentialId, Json, OptionalJson, Query, check_id};
pub use fast::MakeConnection;

/// Whether the daemon can serve tokens: the database is open and the cache
/// loaded, and no durable write is pending.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// What every handler can reach. The refresher arrives once the store is
/// open and the cache loaded; until then `/v1` answers 503 `not_ready`.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<StateInner>,
}

#[derive(Debug)]
struct StateInner {
    readiness: Readiness,
    refresher: OnceLock<Refresher>,
    clients: ArcSwap<Clients>,
    config: ArcSwap<Config>,
}

impl AppState {
    pub fn new(config: Config, clients: Clients, readiness: Readiness) -> Self {
        AppState {
            inner: Arc::new(StateInner {
                readiness,
                refresher: OnceLock::new(),
                clients: ArcSwap::from_pointee(clients),
                config: ArcSwap::from_pointee(config),
            }),
        }
    }

    /// Hands the loaded refresher to the handlers.
    pub fn set_refresher(&self, refresher: Refresher) {
        let _ = self.inner.refresher.set(refresher);
    }

    /// SIGHUP: new clients and configuration for the checks made here.
    pub fn reload(&self, config: Config, clients: Clients) {
        self.inner.clients.store(Arc::new(clients));
        self.inner.config.store(Arc::new(config));
    }

    pub fn readiness(&self) -> &Readiness {
        &self.inner.readiness
    }

    fn refresher(&self) -> Result<&Refresher, ApiError> {
        self.inner.refresher.get().ok_or(ApiError::NotReady)
    }

    fn config(&self) -> arc_swap::Guard<Arc<Config>> {
        self.inner.config.load()
    }
}

/// What `axum::serve` runs: per connection, the hand-out fast path in
/// front of [`router`].
pub fn service(state: AppState) -> fast::MakeConnection {
    let router = router(state.clone());
    fast::MakeConnection::new(state, router)
}

pub fn router(state: AppState) -> Router {
    let config = state.config();
    let body_limit = config.server.max_body_bytes;
    let timeout = Duration::from_secs(config.server.request_timeout_secs);
    drop(config);
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v1/tokens/{id}", get(tokens::get_token))
        .route("/v1/tokens/{id}/refresh", post(tokens::force_refresh))
        .route("/v1/credentials", get(credentials::list))
        .route(
            "/v1/credentials/{id}",
            get(credentials::show)
                .put(credentials::import)
                .delete(credentials::delete),
        )
        .route(
            "/v1/credentials/{id}/authorization-code",
            post(credentials::authorization_code),
        )
        .route(
            "/v1/credentials/{id}/application-calendar",
            post(credentials::application_calendar),
        )
        .route("/v1/authorize-url", get(authorize::url))
        .route("/v1/callback", post(authorize::callback))
        .fallback(|| async { ApiError::NotFoundPath })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), gate))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(middleware::from_fn(common_headers))
        .with_state(state)
}

async fn healthz() -> StatusCode {
    StatusCode::OK
}

async fn readyz(State(state): State<AppState>) -> StatusCode {
    let durable = state
        .inner
        .refresher
        .get()
        .is_some_and(Refresher::is_durable);
    if state.readiness().is_ready() && durable {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// Runs before every handler, in SPEC §4's order: browser/proxy/Host (403),
/// then the client key (401). Health probes need no key.
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
    next.run(request).await
}

/// The checks of [`gate`]: the client making the request (`None` for the
/// paths that need no key), or the error to answer with.
fn admit<B>(
    state: &AppState,
    request: &axum::http::Request<B>,
    peer: Peer,
) -> Result<Option<Arc<auth::Client>>, ApiError> {
    let config = state.config();
    guard::check(
        request.method(),
        request.headers(),
        peer,
        &config.server.allowed_hosts,
    )?;
    let path = request.uri().path();
    let open = matches!(path, "/healthz" | "/readyz")
        || (path == "/metrics" && config.server.metrics_public);
    drop(config);
    if open {
        return Ok(None);
    }
    match state.inner.clients.load().identify(request.headers(), peer) {
        Some(client) => Ok(Some(client)),
        None => Err(ApiError::Unauthorized),
    }
}

/// Tokens must never sit in a cache, and nothing here is meant to be
/// sniffed into something a browser would run.
async fn common_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    add_common_headers(&mut response);
    response
}

fn add_common_headers(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}
