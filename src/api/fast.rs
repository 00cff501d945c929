//! The service each connection gets: `GET /v1/tokens/{id}` answered
//! straight from the cache, everything else through the router.
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

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Request};
use axum::http::{Method, header};
use axum::response::Response;
use axum::routing::future::RouteFuture;
use axum::serve::{IncomingStream, Listener};
use futures::future::Either;
use tower::Service;

use super::guard::Peer;
use super::{AppState, add_common_headers, admit, tokens};
use crate::model::valid_credential_id;
use crate::telemetry::metrics::HAND_OUT_ROUTE;

const TOKENS: &str = "/v1/tokens/";

/// Makes one [`Connection`] per accepted connection (give it to `axum::serve`).
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
        ready(Ok(Connection {
            peer: Peer::connect_info(stream),
            state: self.state.clone(),
            router: self.router.clone(),
        }))
    }
}

/// One connection's service: who is on the other end, and the router.
#[derive(Clone, Debug)]
pub struct Connection {
    peer: Peer,
    state: AppState,
    router: Router,
}

impl Service<Request> for Connection {
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response, Infallible>>, RouteFuture<Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        if let Some(response) = hand_out(&self.state, &request, self.peer) {
            return Either::Left(ready(Ok(response)));
        }
        request.extensions_mut().insert(ConnectInfo(self.peer));
        Either::Right(self.router.call(request))
    }
}

/// The answer to `GET /v1/tokens/{id}` (no query) when the cache has it
/// and every check passes; `None` sends the request to the router.
fn hand_out(state: &AppState, request: &Request, peer: Peer) -> Option<Response> {
    if request.method() != Method::GET || request.uri().query().is_some() {
        return None;
    }
    // A GET with a body is odd input: the router reads it within the limit (413).
    let headers = request.headers();
    if headers.contains_key(header::CONTENT_LENGTH)
        || headers.contains_key(header::TRANSFER_ENCODING)
    {
        return None;
    }
    // Valid ids need no percent-decoding: `%` and `/` are not id characters.
    let id = request.uri().path().strip_prefix(TOKENS)?;
    if !valid_credential_id(id) {
        return None;
    }
    let client = admit(state, request, peer).ok()??;
    let services = state.services().ok()?;
    let (entry, refreshing) = tokens::readable(&services.cache, &client, id).ok()?;
    // A refresh of the grant is calling the provider: the router waits for it.
    if refreshing {
        return None;
    }
    let mut response = tokens::respond(&entry, state.handout_now(), 0)?;
    add_common_headers(&mut response);
    match response.status().as_u16() {
        200 => state.metrics().handed_out(),
        status => state.metrics().http_request(HAND_OUT_ROUTE, status),
    }
    Some(response)
}
