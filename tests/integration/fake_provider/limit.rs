//! A rate limit like a real provider's (Cronofy: 500 calls a minute for an
//! application): token calls past it are answered 429 with `Retry-After`.
//! Measured on the fake's clock ([`FakeProvider::use_clock`]), a token
//! bucket of `burst` refilled at `per_minute`. Off until a test sets it.
//! Every token call's time is kept, for tests that count calls a minute.

use axum::response::{IntoResponse, Response};

use super::{FakeProvider, Inner, Recorded};

#[derive(Debug, Default)]
pub struct Limit {
    /// (per minute, burst)
    rate: Option<(f64, f64)>,
    /// Cells left, and when they were counted (ms).
    tokens: f64,
    at: i64,
    /// How many calls were refused with 429.
    refused: usize,
    /// (time, refresh token) of every refresh call served.
    refreshes: Vec<(i64, String)>,
}

impl FakeProvider {
    /// Token calls past `per_minute` (at most `burst` at once) get 429.
    pub fn limit_rate(&self, per_minute: u32, burst: u32) {
        let mut g = self.lock();
        let now = g.interop.now();
        g.limit.rate = Some((f64::from(per_minute), f64::from(burst)));
        g.limit.tokens = f64::from(burst);
        g.limit.at = now;
    }

    /// Token calls refused with 429 by [`FakeProvider::limit_rate`].
    pub fn rate_limited(&self) -> usize {
        self.lock().limit.refused
    }

    /// `(fake clock ms, refresh token)` of every refresh call answered.
    pub fn refreshes_at(&self) -> Vec<(i64, String)> {
        self.lock().limit.refreshes.clone()
    }
}

/// Runs first for every request: a 429 when the bucket is empty.
pub(super) fn check(g: &mut Inner, req: &Recorded, now: i64) -> Option<Response> {
    let is_token = matches!(req.path.as_str(), "/oauth/token" | "/oauth2/token");
    if !is_token {
        return None;
    }
    let limit = &mut g.limit;
    if let Some((per_minute, burst)) = limit.rate {
        limit.tokens = (limit.tokens + (now - limit.at) as f64 * per_minute / 60_000.0).min(burst);
        limit.at = now;
        if limit.tokens < 1.0 - 1e-9 {
            limit.refused += 1;
            let body = r#"{"error":"too_many_requests"}"#;
            return Some(
                (
                    axum::http::StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", "60")],
                    body,
                )
                    .into_response(),
            );
        }
        limit.tokens -= 1.0;
    }
    let fields = req.fields();
    if fields.get("grant_type").map(String::as_str) == Some("refresh_token") {
        let rt = fields.get("refresh_token").cloned().unwrap_or_default();
        limit.refreshes.push((now, rt));
    }
    None
}
