//! The call to the provider's API: one `reqwest` client that never follows
//! a redirect, a deadline on the answer's head (the body then streams for
//! as long as it takes), and the answer turned into ours without reading
//! its body.

use std::sync::OnceLock;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use url::Url;

use super::headers;
use crate::api::error::ApiError;

/// Marks an answer that came from the API (passed back as it came), as
/// opposed to one tokend made itself (`X-Tokend-Error: 1`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Upstream;

/// One request to send, and to send again after a 401.
#[derive(Debug)]
pub(super) struct Outgoing {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    /// Read in full (at most `server.max_body_bytes`) so a resend is
    /// byte-for-byte the same request.
    pub body: Bytes,
    /// Whether the caller sent a body at all (even an empty one): a GET
    /// without one must not grow a `Content-Length: 0`.
    pub has_body: bool,
    pub timeout: Duration,
}

/// The proxy's client: its own connection pool, separate from the token
/// endpoint's, and no redirect ever followed (a 3xx is passed back).
fn client() -> Result<reqwest::Client, reqwest::Error> {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client.clone());
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_keepalive(Duration::from_secs(60))
        .build()?;
    // Two racing first callers each build one; the loser's is dropped.
    Ok(CLIENT.get_or_init(|| client).clone())
}

/// Sends `outgoing` with `token`; the API's answer once its head arrived.
pub(super) async fn send(
    outgoing: &Outgoing,
    token: &secrecy::SecretString,
) -> Result<reqwest::Response, ApiError> {
    let client = client().map_err(|e| ApiError::Internal(Box::new(e)))?;
    let mut request = client
        .request(outgoing.method.clone(), outgoing.url.clone())
        .headers(headers::upstream(&outgoing.headers, token));
    if outgoing.has_body {
        request = request.body(outgoing.body.clone());
    }
    match tokio::time::timeout(outgoing.timeout, request.send()).await {
        Err(_) => Err(ApiError::UpstreamTimeout),
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(e)) if e.is_timeout() => Err(ApiError::UpstreamTimeout),
        Ok(Err(e)) => {
            // Without the URL: its query may hold personal data.
            tracing::debug!(error = %e.without_url(), "proxy: the API cannot be reached");
            Err(ApiError::UpstreamUnreachable)
        }
    }
}

/// The API's answer as ours: its status, its headers less hop-by-hop ones
/// and `Set-Cookie`, its body streamed through.
pub(super) fn pass_back(answer: reqwest::Response) -> Response {
    let status = answer.status();
    let headers = headers::downstream(answer.headers());
    let answer: axum::http::Response<reqwest::Body> = answer.into();
    let mut response = Response::new(Body::new(answer.into_body()));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response.extensions_mut().insert(Upstream);
    response
}
