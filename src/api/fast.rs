//! The service each connection gets: `GET /v1/tokens/{id}` answered
//! straight from the cache, `/v1/proxy/...` forwarded once the gate's
//! checks pass (`proxy::serve`), everything else through the router.
//!
//! Handing out a token is the request a sidecar serves all day, and the
//! router's layers (boxed services, middleware futures, a timer per request
//! for the timeout, extensions, path and query extraction) cost several
//! times what the answer itself does. So the success path skips them: the
//! same checks in the same order (`admit`: browser/proxy/Host, then the
//! client key; then the client's patterns), the same response (`respond`
//! plus the common headers). Whenever that path would not answer 200 from
//! the cache (any error, a `min_ttl` or other query, a refresh to wait for),
//! the request goes to the router untouched, which answers exactly as before.
//! So does a hand-out while a refresh of the grant calls the provider: the
//! router waits for the new token.
//!
//! What else the success path saves, each without dropping a check:
//! - the client key: a connection remembers the last key that identified
//!   a client (`auth::KeyMemo`), so its next requests compare the key in
//!   constant time instead of hashing it again; a different key, or a
//!   SIGHUP that replaced the clients, gets the full check.
//! - the request body: hyper's body is boxed into axum's only when the
//!   request goes to the router; the fast path asks hyper whether there is
//!   a body at all (none: no `Content-Length`/`Transfer-Encoding`, or a
//!   length of 0, which the router would have read as empty too).
//! - the response: see `tokens::respond` (headers cloned from one prepared
//!   map, the body written once at its exact size).

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::{Body, HttpBody};
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Request};
use axum::http::Method;
use axum::response::Response;
use axum::routing::future::RouteFuture;
use axum::serve::{IncomingStream, Listener};
use futures::future::Either;
use hyper::body::Incoming;
use tower::Service;

use super::auth::KeyMemo;
use super::guard::Peer;
use super::proxy::{self, Served};
use super::{AppState, add_common_headers, admit_remembered, checks, tokens};
use crate::model::valid_credential_id;
use crate::telemetry::metrics::HAND_OUT_ROUTE;

const TOKENS: &str = "/v1/tokens/";

/// Makes one `Connection` per accepted connection (give it to `axum::serve`).
#[derive(Clone, Debug)]
pub struct MakeConnection {
    state: AppState,
    router: Router,
}

impl MakeConnection {
    pub fn new(state: AppState, router: Router) -> Self {
        MakeConnection { state, router }
    }

    /// The service for one connection from `peer`, for a serve loop of our
    /// own (axum's `IncomingStream` cannot be made outside axum).
    pub fn connection(&self, peer: Peer) -> Connection {
        Connection {
            peer,
            state: self.state.clone(),
            router: self.router.clone(),
            memo: Arc::default(),
        }
    }
}

impl<'a, L> Service<IncomingStream<'a, L>> for MakeConnection
where
    L: Listener,
    Peer: Connected<IncomingStream<'a, L>>,
{
    type Response = Connection;
    type Error = Infallible;
    type Future = Ready<Result<Connection, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, stream: IncomingStream<'a, L>) -> Self::Future {
        ready(Ok(self.connection(Peer::connect_info(stream))))
    }
}

/// One connection's service: who is on the other end, the router, and the
/// last client key that identified a client on this connection (shared by
/// the clones hyper makes per request).
#[derive(Clone, Debug)]
pub struct Connection {
    peer: Peer,
    state: AppState,
    router: Router,
    memo: Arc<KeyMemo>,
}

type Answer = Either<Ready<Result<Response, Infallible>>, Either<RouteFuture<Infallible>, Served>>;

impl Connection {
    fn answer<B>(&mut self, request: axum::http::Request<B>) -> Answer
    where
        B: HttpBody<Data = axum::body::Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        if request.uri().path().starts_with(proxy::PREFIX) {
            // A caller the gate lets through is proxied without the router;
            // any other gets the router's refusal.
            if let Ok(Some(client)) =
                admit_remembered(&self.state, &request, self.peer, Some(&self.memo))
            {
                let state = self.state.clone();
                return Either::Right(Either::Right(proxy::serve(state, client, request)));
            }
        } else if let Some(response) = hand_out(&self.state, &request, self.peer, &self.memo) {
            return Either::Left(ready(Ok(response)));
        }
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(ConnectInfo(self.peer));
        Either::Right(Either::Left(self.router.call(request)))
    }
}

impl Service<Request> for Connection {
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        self.answer(request)
    }
}

/// What our own serve loop (`daemon::connections`) calls: hyper's request
/// as it is, its body boxed only on the way to the router.
impl Service<hyper::Request<Incoming>> for Connection {
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: hyper::Request<Incoming>) -> Self::Future {
        self.answer(request)
    }
}

/// The answer to `GET /v1/tokens/{id}` (no query) when the cache has it
/// and every check passes; `None` sends the request to the router.
fn hand_out<B: HttpBody>(
    state: &AppState,
    request: &axum::http::Request<B>,
    peer: Peer,
    memo: &KeyMemo,
) -> Option<Response> {
    if request.method() != Method::GET || request.uri().query().is_some() {
        return None;
    }
    // A GET with a body is odd input: the router reads it within the limit (413).
    if !request.body().is_end_stream() {
        return None;
    }
    // Valid ids need no percent-decoding: `%` and `/` are not id characters.
    let id = request.uri().path().strip_prefix(TOKENS)?;
    if !valid_credential_id(id) {
        return None;
    }
    let client = admit_remembered(state, request, peer, Some(memo)).ok()??;
    let services = state.services().ok()?;
    let (entry, refreshing) = checks::readable(&services.cache, &client, id).ok()?;
    // A refresh of the grant is calling the provider: the router waits for it.
    if refreshing {
        return None;
    }
    let mut response = tokens::respond(&entry, state.handout_now(), 0)?;
    match response.status().as_u16() {
        // `respond`'s 200 carries the common headers already.
        200 => state.metrics().handed_out(),
        status => {
            add_common_headers(&mut response);
            state.metrics().http_request(HAND_OUT_ROUTE, status);
        }
    }
    Some(response)
}
