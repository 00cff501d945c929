//! The provider's API, for the client examples (examples/) and the proxy:
//! `GET /v1/calendars` as Cronofy answers it, `/api/echo/...` (any method)
//! answering with what it received, and `/api/stream/{bytes}` streaming a
//! large body, all checking the bearer token. It accepts the access tokens
//! the fake issued ("at-N") except those a test has rejected, which get 401
//! as a provider answers a revoked or expired token. 403, 429, redirects
//! and slow answers are scripted with `Canned` as for the token endpoint.

use axum::body::{Body, Bytes};
use axum::response::Response;
use serde_json::json;

use super::{FakeProvider, Inner, Recorded, reply};

/// The API path the fake serves.
pub const API_CALENDARS_PATH: &str = "/v1/calendars";
/// Where the echo and stream endpoints live.
pub const API_PREFIX: &str = "/api/";

#[derive(Debug, Default)]
pub(super) struct ApiState {
    /// Access tokens numbered below this are refused with 401.
    first_accepted: u64,
}

impl FakeProvider {
    /// From now on the API answers 401 to every access token issued so far.
    pub fn api_reject_issued_tokens(&self) {
        let mut g = self.lock();
        g.api.first_accepted = g.counter + 1;
    }

    /// From now on the API answers 401 to every token, refreshed ones too.
    pub fn api_reject_all(&self) {
        self.lock().api.first_accepted = u64::MAX;
    }

    /// The requests that reached `/api/...`, in order.
    pub fn api_requests(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.starts_with(API_PREFIX))
            .collect()
    }

    /// The bearer tokens of the API calls received so far, in order.
    pub fn api_calls(&self) -> Vec<String> {
        self.requests()
            .iter()
            .filter(|r| r.path == API_CALENDARS_PATH)
            .map(|r| {
                r.headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    }
}

/// Is the request's bearer token one the fake issued and still accepts?
fn bearer_ok(g: &Inner, req: &Recorded) -> bool {
    let token = req
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    token
        .and_then(|t| t.strip_prefix("at-"))
        .and_then(|n| n.parse::<u64>().ok())
        .is_some_and(|n| n <= g.counter && n >= g.api.first_accepted)
}

/// `/api/echo/...`: what arrived, as JSON (headers by name, in order);
/// `/api/stream/{bytes}`: that many bytes of `x`, in 64 KiB chunks made
/// as the client reads them.
pub(super) fn api(g: &Inner, req: &Recorded) -> Response {
    if !bearer_ok(g, req) {
        return reply(401, json!({"error": "invalid_token"}));
    }
    if let Some(n) = req.path.strip_prefix("/api/stream/") {
        let total: usize = n.parse().unwrap_or(0);
        const CHUNK: usize = 64 * 1024;
        let chunks = futures::stream::unfold(0usize, move |sent| async move {
            (sent < total).then(|| {
                let n = CHUNK.min(total - sent);
                (
                    Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; n])),
                    sent + n,
                )
            })
        });
        let mut response = Response::new(Body::from_stream(chunks));
        response
            .headers_mut()
            .insert("content-type", "application/octet-stream".parse().unwrap());
        return response;
    }
    let mut headers = serde_json::Map::new();
    for (name, value) in &req.headers {
        let list = headers.entry(name.as_str()).or_insert_with(|| json!([]));
        list.as_array_mut()
            .unwrap()
            .push(json!(String::from_utf8_lossy(value.as_bytes())));
    }
    reply(
        200,
        json!({"method": req.method, "path": req.path, "query": req.query,
            "headers": headers, "body": req.body}),
    )
}

pub(super) fn api_calendars(g: &Inner, req: &Recorded) -> Response {
    if !bearer_ok(g, req) {
        return reply(401, json!({"error": "invalid_token"}));
    }
    reply(
        200,
        json!({"calendars": [
            {"provider_name": "google", "calendar_id": "cal_fake_1", "calendar_name": "Team meetings"},
            {"provider_name": "google", "calendar_id": "cal_fake_2", "calendar_name": "On call"}
        ]}),
    )
}
