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
#[path = "target_tests.rs"]
mod tests;
