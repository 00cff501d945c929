//! The call to the provider's API: one pooled keep-alive client that never
//! follows a redirect, a deadline on the answer's head (the body then
//! streams for as long as it takes), and the answer turned into ours
//! without reading its body.
//!
//! The client is our own small pool of hyper connections (`pool`, over
//! hyper-rustls with the same platform certificate verifier and crypto
//! provider reqwest uses for the token endpoint): reqwest's per-request
//! layers (URL to URI conversion, redirect and retry services, its own
//! futures) and a connection task per connection cost more than the
//! proxy's own work.
//! reqwest stays for one case: when the environment names a forward proxy
//! (`HTTPS_PROXY` and friends), which reqwest honours and hyper-util does
//! not, the API calls go through reqwest like the token endpoint's.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, Uri, header};
use axum::response::Response;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;

use super::apis::Api;
use super::headers;
use super::pool::{self, Pool};
use crate::api::error::ApiError;

/// Marks an answer that came from the API (passed back as it came), as
/// opposed to one tokend made itself (`X-Tokend-Error: 1`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Upstream;

/// One request to send, and to send again after a 401.
#[derive(Debug)]
pub(super) struct Outgoing {
    /// Where it goes, and the deadline on the answer's head.
    pub api: Arc<Api>,
    pub method: Method,
    /// The target in origin form (under the API's base).
    pub target: Uri,
    /// The caller's headers as they came; each send takes those that may
    /// cross ([`headers::upstream`]) and adds the token.
    pub headers: HeaderMap,
    /// Read in full (at most `server.max_body_bytes`) so a resend is
    /// byte-for-byte the same request.
    pub body: Bytes,
    /// Whether the caller sent a body at all (even an empty one): a GET
    /// without one must not grow a `Content-Length: 0`.
    pub has_body: bool,
}

/// The proxy's client: its own connection pool, separate from the token
/// endpoint's, and no redirect ever followed (a 3xx is passed back).
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant, reason = "one, process-wide")]
enum Client {
    Direct(&'static Pool),
    /// The environment names a forward proxy.
    ViaEnvProxy(reqwest::Client),
}

fn client() -> Result<&'static Client, ApiError> {
    static CLIENT: OnceLock<Client> = OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client);
    }
    let client =
        build(env_names_a_proxy(|name| std::env::var_os(name))).map_err(ApiError::Internal)?;
    // Two racing first callers each build one; the loser's is dropped.
    Ok(CLIENT.get_or_init(|| client))
}

/// Does the environment name a forward proxy reqwest would use?
fn env_names_a_proxy(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> bool {
    [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ]
    .iter()
    .any(|name| var(name).is_some_and(|v| !v.is_empty()))
}

fn build(via_env_proxy: bool) -> Result<Client, Box<dyn std::error::Error + Send + Sync>> {
    if via_env_proxy {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_keepalive(Duration::from_secs(60))
            .build()?;
        return Ok(Client::ViaEnvProxy(client));
    }
    // Built once per process (a second one only by a racing first call).
    Ok(Client::Direct(Box::leak(Box::new(Pool::new(connector()?)))))
}

/// TCP (no delay, keep-alive probes), then TLS for `https`.
pub(super) fn connector() -> Result<HttpsConnector<HttpConnector>, rustls::Error> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_platform_verifier()?
        .with_no_client_auth();
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_keepalive(Some(Duration::from_secs(60)));
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(tcp))
}

/// Sends `outgoing` with `token`; the API's answer once its head arrived.
pub(super) async fn send(
    outgoing: &Outgoing,
    token: &secrecy::SecretString,
) -> Result<axum::http::Response<Body>, ApiError> {
    let client = client()?;
    let base = &outgoing.api.base;
    let mut headers = headers::upstream(&outgoing.headers);
    headers.insert(header::AUTHORIZATION, headers::bearer(token));
    let timeout = outgoing.api.timeout;
    let sent = match client {
        Client::Direct(pool) => {
            headers.insert(header::HOST, base.host.clone());
            if outgoing.has_body {
                // Even an empty body is announced, as the caller did.
                headers.insert(
                    header::CONTENT_LENGTH,
                    HeaderValue::from(outgoing.body.len()),
                );
            }
            let mut request = axum::http::Request::new(Full::new(outgoing.body.clone()));
            *request.method_mut() = outgoing.method.clone();
            *request.uri_mut() = outgoing.target.clone();
            *request.headers_mut() = headers;
            let answer = tokio::time::timeout(timeout, pool.send(base, request)).await;
            answer.map(|r| r.map_err(Failure::Direct))
        }
        Client::ViaEnvProxy(client) => {
            let uri = base
                .absolute(&outgoing.target)
                .ok_or(ApiError::UpstreamUnreachable)?;
            let mut request = client
                .request(outgoing.method.clone(), uri.to_string())
                .headers(headers);
            if outgoing.has_body {
                request = request.body(outgoing.body.clone());
            }
            let answer = tokio::time::timeout(timeout, request.send()).await;
            answer.map(|r| {
                r.map(|a| axum::http::Response::from(a).map(Body::new))
                    .map_err(|e| Failure::Reqwest(e.without_url()))
            })
        }
    };
    match sent {
        Err(_) => Err(ApiError::UpstreamTimeout),
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "proxy: the API cannot be reached");
            Err(ApiError::UpstreamUnreachable)
        }
    }
}

/// Why a request got no answer (without its URL: its query may hold
/// personal data).
#[derive(Debug)]
enum Failure {
    Direct(pool::Error),
    Reqwest(reqwest::Error),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // The pool's errors never carry the URI.
            Failure::Direct(e) => match e.source() {
                Some(cause) => write!(f, "{e}: {cause}"),
                None => write!(f, "{e}"),
            },
            Failure::Reqwest(e) => write!(f, "{e}"),
        }
    }
}

/// The API's answer as ours: its status, its headers less hop-by-hop ones
/// and `Set-Cookie`, its body streamed through. Nothing of the client's
/// extensions goes on (hyper's server would write a reason phrase the API
/// sent, for one); whoever needs [`Upstream`] on it adds it.
pub(super) fn pass_back(answer: axum::http::Response<Body>) -> Response {
    let (mut parts, body) = answer.into_parts();
    headers::downstream(&mut parts.headers);
    parts.extensions.clear();
    Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forward_proxy_in_the_environment_is_noticed() {
        let env = |set: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                set.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| std::ffi::OsString::from(v))
            }
        };
        assert!(!env_names_a_proxy(env(&[])));
        assert!(!env_names_a_proxy(env(&[
            ("HTTPS_PROXY", ""),
            ("NO_PROXY", "*")
        ])));
        assert!(env_names_a_proxy(env(&[("https_proxy", "http://p:3128")])));
        assert!(env_names_a_proxy(env(&[("ALL_PROXY", "socks5://p")])));
    }

    #[test]
    fn both_clients_build() {
        assert!(matches!(build(false), Ok(Client::Direct(_))));
        assert!(matches!(build(true), Ok(Client::ViaEnvProxy(_))));
    }
}
