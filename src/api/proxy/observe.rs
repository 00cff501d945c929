//! What the proxy tells about a request: `tokend_proxy_requests_total` and
//! `tokend_proxy_duration_seconds` by provider, and one DEBUG line (method,
//! credential, provider, status, duration). Never the path under the
//! credential or the query string: they can hold personal data.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use axum::http::Method;

use crate::telemetry::metrics::Metrics;

/// What a request revealed on its way through, for the record (borrowed
/// from the request where it can be: nothing is copied for the record).
#[derive(Debug)]
pub(super) struct Seen<'a> {
    started: Instant,
    method: &'a Method,
    /// A valid credential id (an invalid one is never logged).
    pub credential: Option<Cow<'a, str>>,
    /// Known once the credential was found.
    pub provider: Option<Arc<str>>,
}

impl<'a> Seen<'a> {
    pub fn start(method: &'a Method) -> Seen<'a> {
        Seen {
            started: Instant::now(),
            method,
            credential: None,
            provider: None,
        }
    }

    /// The request was answered `status` (its answer begins now). Requests
    /// refused before their credential's provider is known are not counted
    /// by provider (`tokend_http_requests_total` has them).
    pub fn record(self, metrics: &Metrics, status: u16) {
        let seconds = self.started.elapsed().as_secs_f64();
        if let Some(provider) = &self.provider {
            metrics.proxy_request(provider, status, seconds);
        }
        tracing::debug!(
            method = %self.method,
            credential = %self.credential.as_deref().unwrap_or("-"),
            provider = %self.provider.as_deref().unwrap_or("-"),
            status,
            duration_ms = (seconds * 1e6).round() / 1e3,
            "proxied request"
        );
    }
}
