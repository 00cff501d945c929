//! Where a proxied request goes: the provider's API base and the caller's
//! path joined by one `/`, plus the query string, and nothing that could
//! leave that base.
//!
//! The path is checked as it arrived (percent-encoded), one segment at a
//! time, before anything is called: a URL parser (the one building the
//! target, or a server behind it) resolves `..` and `%2e%2e` alike, and
//! some servers decode `%2f` into a separator.
//!
//! What every request to one API shares (its origin, `Host` value and base
//! path) is prepared once per configuration ([`Base`]); a request then only
//! writes its path after the base's and has it checked as a path: no URL
//! or absolute URI is parsed per request, and a path with nothing encoded
//! is checked without being copied.

use std::borrow::Cow;
use std::sync::Arc;

use axum::http::uri::{Authority, PathAndQuery, Scheme};
use axum::http::{HeaderValue, Uri};
use url::Url;

/// The route's prefix; the credential id and the API path follow it.
pub(crate) const PREFIX: &str = "/v1/proxy/";

/// `(credential id, path under the API base)` of a raw request path, or
/// `None` when it is not a proxy path with both parts.
pub(super) fn split(path: &str) -> Option<(&str, &str)> {
    path.strip_prefix(PREFIX)?.split_once('/')
}

/// The credential id as sent (a caller may percent-encode `:` or `@`),
/// decoded; `None` when it is not UTF-8 (never a valid id). Borrowed when
/// nothing is encoded.
pub(super) fn decode_id(raw: &str) -> Option<Cow<'_, str>> {
    if !raw.contains('%') {
        return Some(Cow::Borrowed(raw));
    }
    String::from_utf8(decoded(raw).collect())
        .ok()
        .map(Cow::Owned)
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
        if is_dot_segment(segment) {
            return Err(
                "'.' and '..' segments (also percent-encoded) are not allowed in a proxied path",
            );
        }
        // Nothing encoded: nothing more to find (the checks above saw it all).
        if !segment.contains('%') {
            continue;
        }
        if decoded(segment).any(|b| b == b'/' || b == b'\\') {
            return Err("an encoded '/' or '\\' is not allowed in a proxied path");
        }
        if doubly_encoded(segment) {
            return Err("a doubly encoded '.', '/' or '\\' is not allowed in a proxied path");
        }
    }
    Ok(())
}

/// Does the segment, decoded once, still hold `%2e`, `%2f` or `%5c` (in
/// any case)?
fn doubly_encoded(segment: &str) -> bool {
    let mut window = [0u8; 3];
    decoded(segment).any(|b| {
        window = [window[1], window[2], b.to_ascii_lowercase()];
        matches!(&window, b"%2e" | b"%2f" | b"%5c")
    })
}

/// A provider's API base as every request to it uses it: prepared from the
/// configured (normalised) URL once per configuration.
#[derive(Debug)]
pub(super) struct Base {
    /// Where to connect: the base's scheme and authority.
    pub scheme: Scheme,
    pub authority: Authority,
    /// `scheme://authority` as one string: the pool's key for this origin.
    pub origin: Arc<str>,
    /// The `Host` header: the authority without user info.
    pub host: HeaderValue,
    /// The base's path without its trailing `/` (empty for the root).
    prefix: Box<str>,
}

impl Base {
    /// `None` when the URL cannot be an API base (no host, not http(s), a
    /// query or fragment no path could be put under, or not a valid URI):
    /// nothing is proxied then.
    pub fn new(url: &Url) -> Option<Base> {
        if !matches!(url.scheme(), "http" | "https")
            || url.cannot_be_a_base()
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return None;
        }
        let scheme = Scheme::try_from(url.scheme()).ok()?;
        let host = url.host_str()?;
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let host = HeaderValue::from_str(&authority).ok()?;
        let authority = Authority::try_from(authority).ok()?;
        let prefix = url.path().trim_end_matches('/');
        PathAndQuery::try_from(format!("{prefix}/")).ok()?;
        Some(Base {
            origin: Arc::from(format!("{scheme}://{authority}")),
            scheme,
            authority,
            host,
            prefix: prefix.into(),
        })
    }

    /// The base's path + `/` + `path` (+ `?query`), in origin form (what an
    /// HTTP/1.1 request line carries; the origin is the base's). `None` when
    /// it is not a valid request target, or would not stay under the base:
    /// a fragment, or a dot segment ([`check_path`] refuses those first;
    /// this is the second line of defence).
    pub fn target(&self, path: &str, query: Option<&str>) -> Option<Uri> {
        if path.contains('#') || query.is_some_and(|q| q.contains('#')) {
            return None;
        }
        if path.split('/').any(is_dot_segment) {
            return None;
        }
        let length = self.prefix.len() + 2 + path.len() + query.map_or(0, str::len);
        let mut text = String::with_capacity(length);
        text.push_str(&self.prefix);
        text.push('/');
        text.push_str(path);
        if let Some(q) = query {
            text.push('?');
            text.push_str(q);
        }
        // A path alone: checked for URI characters, never resolved.
        let target = Uri::try_from(text).ok()?;
        let under = target
            .path()
            .strip_prefix(&*self.prefix)
            .is_some_and(|rest| rest.starts_with('/'));
        under.then_some(target)
    }

    /// The absolute URI of `target` (an origin-form URI of this base).
    pub fn absolute(&self, target: &Uri) -> Option<Uri> {
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(target.path_and_query()?.clone())
            .build()
            .ok()
    }
}

/// `.` or `..`, also percent-encoded.
fn is_dot_segment(segment: &str) -> bool {
    if segment.len() > 6 || segment.is_empty() {
        return false;
    }
    let mut dots = 0;
    for b in decoded(segment) {
        if b != b'.' {
            return false;
        }
        dots += 1;
    }
    dots <= 2
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

/// One round of percent-decoding, byte by byte, without a copy; a `%`
/// without two hex digits stays as is.
fn decoded(s: &str) -> impl Iterator<Item = u8> + '_ {
    let bytes = s.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        let b = *bytes.get(i)?;
        let hex = |b: u8| (b as char).to_digit(16);
        if b == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|&b| hex(b)),
                bytes.get(i + 2).and_then(|&b| hex(b)),
            )
        {
            i += 3;
            return Some((h * 16 + l) as u8);
        }
        i += 1;
        Some(b)
    })
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

    /// `base` + `path` (+ `?query`) as the absolute URI the API is sent.
    fn join(base: &str, path: &str, query: Option<&str>) -> Option<Uri> {
        let base = Base::new(&Url::parse(base).unwrap())?;
        base.absolute(&base.target(path, query)?)
    }

    #[test]
    fn joins_with_one_slash_and_keeps_the_query() {
        assert_eq!(
            join("https://h.example/api", "v1/x", Some("a=1&b=%20")).unwrap(),
            "https://h.example/api/v1/x?a=1&b=%20"
        );
        assert_eq!(
            join("https://h.example/api/", "v1/x", None).unwrap(),
            "https://h.example/api/v1/x"
        );
        assert_eq!(
            join("http://127.0.0.1:9000", "v1/x", None).unwrap(),
            "http://127.0.0.1:9000/v1/x"
        );
        assert_eq!(
            join("http://[::1]:9000/", "v1/x", None).unwrap(),
            "http://[::1]:9000/v1/x"
        );
        assert_eq!(
            join("https://h.example:443/", "v1", None).unwrap(),
            "https://h.example/v1"
        );
    }

    #[test]
    fn a_base_knows_its_origin_host_and_path() {
        let base = Base::new(&Url::parse("http://u:p@127.0.0.1:9/a/").unwrap()).unwrap();
        assert_eq!(&*base.origin, "http://127.0.0.1:9");
        assert_eq!(base.host, "127.0.0.1:9", "no user info in Host");
        assert_eq!(base.target("b", Some("c=%20")).unwrap(), "/a/b?c=%20");
        let root = Base::new(&Url::parse("https://H.Example").unwrap()).unwrap();
        assert_eq!(&*root.origin, "https://h.example");
        assert_eq!(root.target("v1", None).unwrap(), "/v1");
        assert!(Base::new(&Url::parse("ftp://h.example/").unwrap()).is_none());
        assert!(Base::new(&Url::parse("mailto:a@h.example").unwrap()).is_none());
        assert!(Base::new(&Url::parse("https://h.example/a?k=1").unwrap()).is_none());
        assert!(Base::new(&Url::parse("https://h.example/a#f").unwrap()).is_none());
    }

    #[test]
    fn join_refuses_what_would_leave_the_base() {
        let base = "https://h.example/api";
        assert_eq!(join(base, "../other", None), None);
        assert_eq!(join(base, "%2e%2e/other", None), None);
        assert_eq!(join(base, "x#fragment", None), None);
        assert_eq!(join(base, "x", Some("a#b")), None);
        assert_eq!(join(base, "v1/%2E%2E/x", None), None);
        assert_eq!(join(base, "v1/./x", None), None);
        assert_eq!(join(base, "x y", None), None, "not a URI");
    }

    #[test]
    fn decoding_finds_what_the_checks_look_for() {
        assert_eq!(decoded("a%2Fb%zz%4").collect::<Vec<u8>>(), b"a/b%zz%4");
        assert!(doubly_encoded("%252e"));
        assert!(doubly_encoded("x%25%32F"));
        assert!(!doubly_encoded("%2e"));
        assert!(is_dot_segment("%2E.") && is_dot_segment(".") && is_dot_segment("%2e%2e"));
        assert!(!is_dot_segment("...") && !is_dot_segment("") && !is_dot_segment("%2e%2e%2e"));
        assert!(matches!(decode_id("plain"), Some(Cow::Borrowed("plain"))));
    }
}
