//! Which headers cross the proxy.
//!
//! Towards the API: the caller's headers except hop-by-hop ones, `Host`,
//! `Authorization` (the caller's tokend key), `Cookie` and `Proxy-*`; then
//! `Authorization: Bearer <access token>` (added by each send). Back to the caller: the API's
//! headers except hop-by-hop ones and `Set-Cookie` (and `X-Tokend-Error`,
//! which only tokend's own answers may carry).

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use secrecy::{ExposeSecret, SecretString};

/// RFC 9110 §7.6.1's connection-specific fields, plus the older ones
/// proxies still see (`Keep-Alive`, `Proxy-Connection`). As header names:
/// comparing known names is comparing two small numbers, not two strings.
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
];

/// The headers to send upstream, less the access token (added per send,
/// with `Host` and `Content-Length`: room is made for them).
pub(super) fn upstream(incoming: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(incoming.len() + 3);
    let named = connection_named(incoming);
    for (name, value) in incoming {
        let drop = is_hop_by_hop(name, &named)
            || name == header::HOST
            || name == header::AUTHORIZATION
            || name == header::COOKIE
            || name.as_str().starts_with("proxy-")
            // The body is sent from memory; the client frames it anew.
            || name == header::CONTENT_LENGTH;
        if !drop {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// The API's headers as they may be passed back: hop-by-hop ones,
/// `Set-Cookie` and `X-Tokend-Error` removed (in place: most answers
/// carry none of them, and then nothing is copied).
pub(super) fn downstream(answer: &mut HeaderMap) {
    let named = connection_named(answer);
    let refused = |name: &HeaderName| {
        is_hop_by_hop(name, &named)
            || name == header::SET_COOKIE
            || name.as_str() == super::OWN_ERROR_HEADER
    };
    if !answer.keys().any(refused) {
        return;
    }
    // Rebuilt rather than removed from, which would reorder the rest.
    let mut kept = HeaderMap::with_capacity(answer.len());
    for (name, value) in answer.iter() {
        if !refused(name) {
            kept.append(name.clone(), value.clone());
        }
    }
    *answer = kept;
}

/// `Authorization: Bearer <token>`, marked sensitive (never logged by
/// hyper or HPACK-indexed). Written once, into the bytes the header value
/// keeps: no other copy of the token is made (or left behind).
pub(super) fn bearer(token: &SecretString) -> HeaderValue {
    let token = token.expose_secret();
    // Checked first, so that a refused value leaves no copy unzeroed.
    if !token
        .bytes()
        .all(|b| (b >= 0x20 && b != 0x7f) || b == b'\t')
    {
        return HeaderValue::from_static("Bearer invalid-token");
    }
    let mut text = Vec::with_capacity(BEARER.len() + token.len());
    text.extend_from_slice(BEARER.as_bytes());
    text.extend_from_slice(token.as_bytes());
    let mut value = HeaderValue::from_maybe_shared(Bytes::from(text))
        .unwrap_or_else(|_| HeaderValue::from_static("Bearer invalid-token"));
    value.set_sensitive(true);
    value
}

const BEARER: &str = "Bearer ";

fn is_hop_by_hop(name: &HeaderName, named: &[HeaderName]) -> bool {
    HOP_BY_HOP.contains(name) || named.contains(name)
}

/// The extra hop-by-hop fields a `Connection` header names.
fn connection_named(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn upstream_drops_what_is_ours_or_the_hops_and_the_token_is_sensitive() {
        let incoming = map(&[
            ("host", "127.0.0.1:7780"),
            ("authorization", "Bearer tkd_client-key"),
            ("cookie", "session=1"),
            ("proxy-authorization", "Basic x"),
            ("proxy-anything", "1"),
            ("connection", "keep-alive, x-hop"),
            ("keep-alive", "timeout=5"),
            ("x-hop", "1"),
            ("te", "trailers"),
            ("upgrade", "websocket"),
            ("transfer-encoding", "chunked"),
            ("content-length", "5"),
            ("content-type", "application/json"),
            ("accept", "application/json"),
            ("x-custom", "a"),
            ("x-custom", "b"),
        ]);
        let out = upstream(&incoming);
        let names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["content-type", "accept", "x-custom"], "{out:?}");
        assert_eq!(out.get_all("x-custom").iter().count(), 2);
        let bearer = bearer(&SecretString::from("at-9"));
        assert_eq!(bearer, "Bearer at-9");
        assert!(bearer.is_sensitive());
    }

    #[test]
    fn downstream_drops_hops_and_cookies_only() {
        let answer = map(&[
            ("set-cookie", "a=1"),
            ("connection", "close"),
            ("transfer-encoding", "chunked"),
            ("proxy-authenticate", "Basic"),
            ("content-type", "text/plain"),
            ("content-length", "3"),
            ("location", "https://elsewhere.example/"),
            ("retry-after", "30"),
            ("cache-control", "max-age=60"),
            ("x-tokend-error", "1"),
        ]);
        let mut out = answer;
        downstream(&mut out);
        let names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        assert_eq!(
            names,
            [
                "content-type",
                "content-length",
                "location",
                "retry-after",
                "cache-control"
            ]
        );
        let mut plain = map(&[("content-type", "text/plain"), ("date", "x")]);
        downstream(&mut plain);
        assert_eq!(plain.len(), 2, "nothing to drop, nothing dropped");
    }
}
