//! Requests a browser or a proxy would make are refused before anything
//! else (SPEC §5 Security): tokend is for services on this host, and a web
//! page must never be able to read a token through it, whether by CORS,
//! DNS rebinding or a server-side request forgery relayed by a proxy.

use axum::extract::connect_info::Connected;
use axum::http::{HeaderMap, Method, Request, Uri, header};
use axum::serve::IncomingStream;

use super::error::ApiError;

/// Who is on the other end of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// A TCP connection to the listener on `local_port`.
    Tcp { local_port: u16 },
    /// A unix-socket connection; `uid` from SO_PEERCRED.
    Unix { uid: Option<u32> },
}

impl Connected<IncomingStream<'_, tokio::net::TcpListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        let local_port = stream.io().local_addr().map_or(0, |a| a.port());
        Peer::Tcp { local_port }
    }
}

impl Connected<IncomingStream<'_, tokio::net::UnixListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, tokio::net::UnixListener>) -> Self {
        let uid = stream.io().peer_cred().ok().map(|c| c.uid());
        Peer::Unix { uid }
    }
}

/// Headers that only browsers send (CORS and Fetch Metadata) or that mark a
/// request relayed by a proxy.
const PROXY_HEADERS: &[&str] = &["x-forwarded-for", "forwarded", "via"];

/// Refuses browser and proxy requests and foreign `Host`s (in the header
/// or in an absolute-form target).
pub fn check<B>(
    request: &Request<B>,
    peer: Peer,
    allowed_hosts: &[String],
) -> Result<(), ApiError> {
    let (method, target, headers) = (request.method(), request.uri(), request.headers());
    if method == Method::OPTIONS {
        return Err(refuse(
            "OPTIONS is not served: tokend answers no CORS preflight",
        ));
    }
    // One pass over the header names; Origin still answers first when a
    // request carries it and another refused header.
    let mut origin = false;
    let mut refused = None;
    for name in headers.keys() {
        if name == header::ORIGIN {
            origin = true;
            continue;
        }
        let name = name.as_str();
        if refused.is_none() {
            if name.starts_with("sec-fetch-") {
                refused = Some("requests with Sec-Fetch-* headers (browsers) are refused");
            } else if PROXY_HEADERS.contains(&name) {
                refused = Some("requests relayed by a proxy are refused");
            }
        }
    }
    if origin {
        return Err(refuse(
            "requests with an Origin header (browsers) are refused",
        ));
    }
    if let Some(message) = refused {
        return Err(refuse(message));
    }
    if let Peer::Tcp { local_port } = peer {
        check_host(target, headers, local_port, allowed_hosts)?;
    }
    Ok(())
}

fn refuse(message: &str) -> ApiError {
    ApiError::Forbidden(message.to_owned())
}

/// DNS rebinding: a page on evil.example that resolves to 127.0.0.1 still
/// sends `Host: evil.example`. Unix sockets are out of a browser's reach.
///
/// Exactly one Host header, and an absolute-form target (`GET http://h/...`)
/// must name this server too: RFC 9112 §3.2.2 lets the target's authority
/// override Host, so whichever a component behind us believes is ours.
fn check_host(
    target: &Uri,
    headers: &HeaderMap,
    local_port: u16,
    allowed_hosts: &[String],
) -> Result<(), ApiError> {
    let mut values = headers.get_all(header::HOST).iter();
    let (Some(host), None) = (values.next(), values.next()) else {
        return Err(refuse("exactly one Host header is required"));
    };
    let host = host.to_str().map_err(|_| refuse("malformed Host header"))?;
    check_authority(host, local_port, allowed_hosts)?;
    if let Some(authority) = target.authority() {
        check_authority(authority.as_str(), local_port, allowed_hosts)?;
    }
    Ok(())
}

/// One `name[:port]`: a name tokend serves and, if given, the listening port.
fn check_authority(host: &str, local_port: u16, allowed_hosts: &[String]) -> Result<(), ApiError> {
    let (name, port) = split_host(host).ok_or_else(|| {
        refuse("malformed Host: use localhost, 127.0.0.1 or [::1] (or a server.allowed_hosts name), optionally with :port")
    })?;
    // Compared in place: no lower-cased copy of the name per request.
    let known = ["localhost", "127.0.0.1", "[::1]"]
        .iter()
        .any(|h| h.eq_ignore_ascii_case(name))
        || allowed_hosts.iter().any(|h| h.eq_ignore_ascii_case(name));
    if !known {
        return Err(ApiError::Forbidden(format!(
            "Host {name:?} is not served; add it to server.allowed_hosts if it is yours"
        )));
    }
    if let Some(port) = port
        && port != local_port
    {
        return Err(refuse("the Host header names another port"));
    }
    Ok(())
}

/// `name[:port]`, with `[v6]` literals kept bracketed; the port is 1 to 5
/// digits. Anything else after `]` makes it malformed, not ignored.
fn split_host(host: &str) -> Option<(&str, Option<u16>)> {
    let (name, port) = if host.starts_with('[') {
        let end = host.find(']')?;
        let (name, rest) = host.split_at(end + 1);
        let port = match rest {
            "" => None,
            rest => Some(rest.strip_prefix(':')?),
        };
        (name, port)
    } else {
        // A byte scan from the end: Host values are a few bytes, too short
        // for `rsplit_once`'s memrchr to pay off (this runs per request).
        match host.bytes().rposition(|b| b == b':') {
            Some(i) => (&host[..i], Some(&host[i + 1..])),
            None => (host, None),
        }
    };
    if name.is_empty() {
        return None;
    }
    let port = match port {
        Some(p) if (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse().ok()?)
        }
        Some(_) => return None,
        None => None,
    };
    Some((name, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    const TCP: Peer = Peer::Tcp { local_port: 7780 };

    /// [`super::check`] on a request made of these parts.
    fn check(
        method: &Method,
        target: &Uri,
        headers: &HeaderMap,
        peer: Peer,
        allowed_hosts: &[String],
    ) -> Result<(), ApiError> {
        let mut request = Request::builder()
            .method(method.clone())
            .uri(target.clone())
            .body(())
            .unwrap();
        *request.headers_mut() = headers.clone();
        super::check(&request, peer, allowed_hosts)
    }

    #[test]
    fn host_rules() {
        let ok = |host: &str| {
            check(
                &Method::GET,
                &Uri::from_static("/v1/credentials"),
                &headers(&[("host", host)]),
                TCP,
                &["tokend.internal".into()],
            )
            .is_ok()
        };
        assert!(ok("localhost"));
        assert!(ok("127.0.0.1:7780"));
        assert!(ok("[::1]:7780"));
        assert!(ok("LOCALHOST:7780"));
        assert!(ok("tokend.internal"));
        assert!(!ok("evil.example"));
        assert!(!ok("evil.example:7780"));
        assert!(!ok("127.0.0.1:8080"));
        assert!(!ok("[::1]:x"));
        assert!(!ok(":7780"));
        assert!(!ok("[::1]evil.example"));
        assert!(!ok("[::1]x:7780"));
        assert!(!ok("[::1]:7780x"));
        assert!(!ok("localhost:+7780"));
        assert!(!ok("localhost:"));
        assert!(!ok("localhost:007780"));
        let target = Uri::from_static("/");
        assert!(check(&Method::GET, &target, &HeaderMap::new(), TCP, &[]).is_err());
        let mut two = headers(&[("host", "localhost")]);
        two.append("host", HeaderValue::from_static("localhost"));
        assert!(check(&Method::GET, &target, &two, TCP, &[]).is_err());
        // Unix sockets: no Host check.
        assert!(
            check(
                &Method::GET,
                &target,
                &HeaderMap::new(),
                Peer::Unix { uid: Some(0) },
                &[]
            )
            .is_ok()
        );
    }

    #[test]
    fn browsers_and_proxies_refused() {
        for (k, v) in [
            ("origin", "null"),
            ("sec-fetch-mode", "cors"),
            ("sec-fetch-site", "same-origin"),
            ("x-forwarded-for", "10.0.0.1"),
            ("forwarded", "for=10.0.0.1"),
            ("via", "1.1 proxy"),
        ] {
            let h = headers(&[("host", "localhost"), (k, v)]);
            let target = Uri::from_static("/");
            assert!(check(&Method::GET, &target, &h, TCP, &[]).is_err(), "{k}");
        }
        // Origin is named first, whatever else the request carries.
        let h = headers(&[
            ("via", "1.1 proxy"),
            ("origin", "null"),
            ("host", "localhost"),
        ]);
        let refused = check(&Method::GET, &Uri::from_static("/"), &h, TCP, &[]).unwrap_err();
        assert!(format!("{refused:?}").contains("Origin"), "{refused:?}");
        let h = headers(&[("host", "localhost")]);
        assert!(check(&Method::OPTIONS, &Uri::from_static("/"), &h, TCP, &[]).is_err());
    }

    #[test]
    fn an_absolute_form_target_must_name_this_server() {
        let h = headers(&[("host", "localhost:7780")]);
        let at = |uri: &'static str| check(&Method::GET, &Uri::from_static(uri), &h, TCP, &[]);
        assert!(at("http://localhost:7780/v1/credentials").is_ok());
        assert!(at("http://127.0.0.1/v1/credentials").is_ok());
        assert!(at("http://evil.example/v1/credentials").is_err());
        assert!(at("http://localhost:8080/v1/credentials").is_err());
        assert!(at("http://user@localhost/v1/credentials").is_err());
    }
}
