//! Outbound HTTP: the one shared `reqwest` client, sending a request and
//! reading its answer into memory, and `Retry-After`.
//!
//! This layer turns transport failures (timeout, refused connection,
//! truncated body) into [`ProviderError::Transient`] and leaves every answer
//! the provider did give to `super::classify`.

use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Client, RequestBuilder, StatusCode};
use url::Url;

use super::ProviderError;
use crate::clock::UnixMillis;

/// `Retry-After` absent or unreadable: a minute, the window most providers
/// (Cronofy included) count their per-minute limits over.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);
/// A longer `Retry-After` is cut to this: a buggy or hostile header must not
/// silence a provider for days; the next 429 pauses again anyway.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// Token answers are a few hundred bytes; anything past this is not one.
const MAX_BODY_BYTES: usize = 256 * 1024;

/// What the provider answered, read completely.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// The process-wide client: one connection pool (and TLS session cache) for
/// every provider. Timeouts are set per request, from each provider's config.
pub(crate) fn shared_client() -> Result<Client, reqwest::Error> {
    static CLIENT: OnceLock<Client> = OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client.clone());
    }
    let client = Client::builder()
        .user_agent(concat!("tokend/", env!("CARGO_PKG_VERSION")))
        // A redirected POST would carry the client secret and tokens to
        // wherever the provider (or someone in between) points: never follow.
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_keepalive(Duration::from_secs(60))
        .build()?;
    // Two racing first callers each build one; the loser's is dropped.
    Ok(CLIENT.get_or_init(|| client).clone())
}

/// Sends `request` and reads the whole answer, within `timeout` overall.
pub(crate) async fn send(
    request: RequestBuilder,
    timeout: Duration,
) -> Result<Answer, ProviderError> {
    let mut response = request
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| transport_error(&e, timeout))?;
    let status = response.status();
    let headers = response.headers().clone();
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(ProviderError::Protocol {
                        reason: format!(
                            "HTTP {} answer larger than {MAX_BODY_BYTES} bytes",
                            status.as_u16()
                        ),
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => return Err(transport_error(&e, timeout)),
        }
    }
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// A reason that names the failure without the URL (config may put
/// credentials in it) and without anything the request carried.
///
/// An answer that is not readable HTTP (a head past hyper's limits, a
/// malformed status line or header) did come from the provider: like an
/// unreadable body, it is a protocol error, not a network hiccup to retry.
fn transport_error(e: &reqwest::Error, timeout: Duration) -> ProviderError {
    if let Some(parse) = unreadable_http(e) {
        return ProviderError::Protocol {
            reason: format!("the answer is not readable HTTP: {parse}"),
        };
    }
    let reason = if e.is_timeout() {
        format!("no answer within {}s", timeout.as_secs())
    } else if e.is_connect() {
        format!("connection failed: {}", root_cause(e))
    } else if e.is_body() || e.is_decode() {
        format!("answer body truncated or unreadable: {}", root_cause(e))
    } else {
        format!("request failed: {}", root_cause(e))
    };
    ProviderError::Transient { reason }
}

/// hyper's parse error somewhere in `e`'s causes, if the answer's head
/// could not be read (e.g. `message head is too large`).
fn unreadable_http<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a hyper::Error> {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(h) = c.downcast_ref::<hyper::Error>()
            && h.is_parse()
        {
            return Some(h);
        }
        cause = c.source();
    }
    None
}

/// The innermost error message (e.g. `Connection refused (os error 111)`).
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// How long a 429 asks us to wait, from its `Retry-After` header: either
/// delta-seconds or an HTTP-date (RFC 9110 §10.2.3), the latter measured
/// against `now` (our clock, not the system's, so tests control it).
pub fn retry_after(headers: &HeaderMap, now: UnixMillis) -> Duration {
    let value = headers.get(RETRY_AFTER).and_then(|v| v.to_str().ok());
    parse_retry_after(value, now)
}

pub fn parse_retry_after(value: Option<&str>, now: UnixMillis) -> Duration {
    let Some(value) = value.map(str::trim) else {
        return DEFAULT_RETRY_AFTER;
    };
    let wait = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for a u64 is "very long": the cap applies.
        Duration::from_secs(value.parse().unwrap_or(u64::MAX))
    } else if let Ok(at) = httpdate::parse_http_date(value) {
        let at = at.duration_since(UNIX_EPOCH).unwrap_or_default();
        let at = UnixMillis::try_from(at.as_millis()).unwrap_or(UnixMillis::MAX);
        // A date already past means "now".
        Duration::from_millis(at.saturating_sub(now).max(0) as u64)
    } else {
        return DEFAULT_RETRY_AFTER;
    };
    wait.min(MAX_RETRY_AFTER)
}

/// `base` + `path`, keeping any path prefix of `base` (a proxy may mount the
/// provider under one), which `Url::join` would drop without a trailing slash.
pub(crate) fn endpoint(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let prefix = base.path().trim_end_matches('/');
    url.set_path(&format!("{prefix}{path}"));
    url.set_query(None);
    url.set_fragment(None);
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixMillis = 1_445_412_480_000; // Wed, 21 Oct 2015 07:28:00 GMT

    #[test]
    fn retry_after_in_seconds() {
        assert_eq!(
            parse_retry_after(Some("120"), NOW),
            Duration::from_secs(120)
        );
        assert_eq!(parse_retry_after(Some(" 0 "), NOW), Duration::ZERO);
        assert_eq!(
            parse_retry_after(Some("99999999999999999999999"), NOW),
            MAX_RETRY_AFTER
        );
        assert_eq!(parse_retry_after(Some("86400"), NOW), MAX_RETRY_AFTER);
    }

    #[test]
    fn retry_after_as_http_date() {
        let later = "Wed, 21 Oct 2015 07:29:30 GMT";
        assert_eq!(parse_retry_after(Some(later), NOW), Duration::from_secs(90));
        let past = "Wed, 21 Oct 2015 07:00:00 GMT";
        assert_eq!(parse_retry_after(Some(past), NOW), Duration::ZERO);
        // The obsolete forms RFC 9110 still asks recipients to accept.
        let rfc850 = "Wednesday, 21-Oct-15 07:28:10 GMT";
        assert_eq!(
            parse_retry_after(Some(rfc850), NOW),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn retry_after_absent_or_garbage_uses_default() {
        assert_eq!(parse_retry_after(None, NOW), DEFAULT_RETRY_AFTER);
        assert_eq!(parse_retry_after(Some(""), NOW), DEFAULT_RETRY_AFTER);
        assert_eq!(parse_retry_after(Some("-5"), NOW), DEFAULT_RETRY_AFTER);
        assert_eq!(parse_retry_after(Some("1.5"), NOW), DEFAULT_RETRY_AFTER);
        assert_eq!(parse_retry_after(Some("soon"), NOW), DEFAULT_RETRY_AFTER);
    }

    #[test]
    fn endpoint_keeps_base_path() {
        let base = Url::parse("https://api-de.cronofy.com").unwrap();
        assert_eq!(
            endpoint(&base, "/oauth/token").as_str(),
            "https://api-de.cronofy.com/oauth/token"
        );
        let base = Url::parse("http://127.0.0.1:9000/proxy/cronofy/").unwrap();
        assert_eq!(
            endpoint(&base, "/oauth/token/revoke").as_str(),
            "http://127.0.0.1:9000/proxy/cronofy/oauth/token/revoke"
        );
    }
}
