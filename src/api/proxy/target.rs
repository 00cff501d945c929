//! Where a proxied request goes: the provider's API base and the caller's
//! path joined by one `/`, plus the query string, and nothing that could
//! leave that base.
//!
//! The path is checked as it arrived (percent-encoded), one segment at a
//! time, before anything is called: a URL parser (the one building the
//! target, or a server behind it) resolves `..` and `%2e%2e` alike, and
//! some servers decode `%2f` into a separator.

use axum::http::Uri;
use url::Url;

/// The route's prefix; the credential id and the API path follow it.
pub(crate) const PREFIX: &str = "/v1/proxy/";

/// `(credential id, path under the API base)` of a raw request path, or
/// `None` when it is not a proxy path with both parts.
pub(super) fn split(path: &str) -> Option<(&str, &str)> {
    path.strip_prefix(PREFIX)?.split_once('/')
}

/// The credential id as sent (a caller may percent-encode `:` or `@`),
/// decoded; `None` when it is not UTF-8 (never a valid id).
pub(super) fn decode_id(raw: &str) -> Option<String> {
    String::from_utf8(percent_decode(raw)).ok()
}

/// Why a path cannot be proxied: the 400's message. It never repeats the
/// path, which may hold personal data.
pub(super) fn check_path(path: &str) -> Result<(), &'static str> {
    if path.starts_with('/') {
        return Err(
            "the API path must not start with '/': give it relative to the provider's API base",
        );
    }
    if has_scheme(path) {
        return Err(
            "an absolute URL cannot be proxied: give the path under the provider's API base",
        );
    }
    if path.contains('\\') {
        return Err("backslashes are not allowed in a proxied path");
    }
    for segment in path.split('/') {
        let decoded = percent_decode(segment);
        if is_dot_segment(segment) {
            return Err(
                "'.' and '..' segments (also percent-encoded) are not allowed in a proxied path",
            );
        }
        if decoded.contains(&b'/') || decoded.contains(&b'\\') {
            return Err("an encoded '/' or '\\' is not allowed in a proxied path");
        }
        let lower = decoded.to_ascii_lowercase();
        if ["%2e", "%2f", "%5c"]
            .iter()
            .any(|e| lower.windows(3).any(|w| w == e.as_bytes()))
        {
            return Err("a doubly encoded '.', '/' or '\\' is not allowed in a proxied path");
        }
    }
    Ok(())
}

/// `base` + `/` + `path` (+ `?query`), as the URI the client sends. The
/// result is checked to still be under `base` (same scheme, host, port,
/// path prefix, no dot segment) as a second line of defence behind
/// [`check_path`]. Parsed as a URI, not a URL: a URL parser would resolve
/// dot segments and process the host again (IDNA) on every request; the
/// base was normalised once, when the configuration was read.
pub(super) fn join(base: &Url, path: &str, query: Option<&str>) -> Option<Uri> {
    if path.contains('#') || query.is_some_and(|q| q.contains('#')) {
        return None;
    }
    let root = base.as_str().trim_end_matches('/');
    let mut text = String::with_capacity(root.len() + path.len() + 2 + query.map_or(0, str::len));
    text.push_str(root);
    text.push('/');
    text.push_str(path);
    if let Some(q) = query {
        text.push('?');
        text.push_str(q);
    }
    let uri = Uri::try_from(text).ok()?;
    let prefix = base.path().trim_end_matches('/');
    let under = uri
        .path()
        .strip_prefix(prefix)
        .is_some_and(|rest| rest.starts_with('/'));
    let no_dots = uri.path().split('/').all(|s| !is_dot_segment(s));
    let port = uri.port_u16().or(match uri.scheme_str() {
        Some("http") => Some(80),
        Some("https") => Some(443),
        _ => None,
    });
    let same_origin = uri.scheme_str() == Some(base.scheme())
        && uri.host() == base.host_str()
        && port == base.port_or_known_default();
    (under && no_dots && same_origin).then_some(uri)
}

/// `.` or `..`, also percent-encoded.
fn is_dot_segment(segment: &str) -> bool {
    segment.len() <= 6 && matches!(&percent_decode(segment)[..], b"." | b"..")
}

/// Does the path begin like an absolute URL (`scheme:`)?
fn has_scheme(path: &str) -> bool {
    let first = path.split('/').next().unwrap_or_default();
    let Some((scheme, _)) = first.split_once(':') else {
        return false;
    };
    let mut bytes = scheme.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// One round of percent-decoding; a `%` without two hex digits stays as is.
fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|&b| hex(b)),
                bytes.get(i + 2).and_then(|&b| hex(b)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_id_and_path() {
        assert_eq!(split("/v1/proxy/alice/v1/x"), Some(("alice", "v1/x")));
        assert_eq!(split("/v1/proxy/alice/"), Some(("alice", "")));
        assert_eq!(split("/v1/proxy/alice"), None);
        assert_eq!(split("/v1/tokens/alice/x"), None);
    }

    #[test]
    fn ids_are_percent_decoded() {
        assert_eq!(decode_id("user%3A42%40x").as_deref(), Some("user:42@x"));
        assert_eq!(decode_id("plain").as_deref(), Some("plain"));
        assert_eq!(decode_id("%FF"), None);
    }

    #[test]
    fn paths_that_stay_under_the_base_pass() {
        for ok in [
            "v1/calendars",
            "v1/events/abc:def",
            "v1/files/report.2026.pdf",
            "v1/a%20b/c%3Fd",
            "v1/..x/x..",
            "v1/%2e%2ex",
            "v1//double",
            "",
        ] {
            assert_eq!(check_path(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn paths_that_could_leave_the_base_are_refused() {
        for bad in [
            "..",
            "v1/../admin",
            "v1/./x",
            "v1/%2e%2e/admin",
            "v1/%2E%2e/admin",
            "v1/.%2E/admin",
            "v1/%2e/x",
            "v1%2fadmin",
            "v1%2Fadmin",
            "v1/%5c..%5cadmin",
            "v1\\..\\admin",
            "/evil.example/x",
            "https://evil.example/x",
            "HTTP:evil",
            "javascript:alert(1)",
            "v1/%252e%252e/admin",
            "v1/%252F",
        ] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn refusals_never_repeat_the_path() {
        let path = "v1/../secret-name@example.com";
        let message = check_path(path).unwrap_err();
        assert!(!message.contains("secret-name"));
    }

    #[test]
    fn joins_with_one_slash_and_keeps_the_query() {
        let base = Url::parse("https://h.example/api").unwrap();
        assert_eq!(
            join(&base, "v1/x", Some("a=1&b=%20")).unwrap(),
            "https://h.example/api/v1/x?a=1&b=%20"
        );
        let base = Url::parse("https://h.example/api/").unwrap();
        assert_eq!(
            join(&base, "v1/x", None).unwrap(),
            "https://h.example/api/v1/x"
        );
        let base = Url::parse("http://127.0.0.1:9000").unwrap();
        assert_eq!(
            join(&base, "v1/x", None).unwrap(),
            "http://127.0.0.1:9000/v1/x"
        );
        let base = Url::parse("http://[::1]:9000/").unwrap();
        assert_eq!(join(&base, "v1/x", None).unwrap(), "http://[::1]:9000/v1/x");
        let base = Url::parse("https://h.example:443/").unwrap();
        assert_eq!(join(&base, "v1", None).unwrap(), "https://h.example/v1");
    }

    #[test]
    fn join_refuses_what_would_leave_the_base() {
        let base = Url::parse("https://h.example/api").unwrap();
        assert_eq!(join(&base, "../other", None), None);
        assert_eq!(join(&base, "%2e%2e/other", None), None);
        assert_eq!(join(&base, "x#fragment", None), None);
        assert_eq!(join(&base, "x", Some("a#b")), None);
        assert_eq!(join(&base, "v1/%2E%2E/x", None), None);
        assert_eq!(join(&base, "x y", None), None, "not a URI");
    }
}
