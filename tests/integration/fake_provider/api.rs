//! The provider's API, for the client examples (examples/): `GET /v1/calendars`
//! as Cronofy answers it, checking the bearer token. It accepts the access
//! tokens the fake issued ("at-N") except those a test has rejected, which
//! get 401 as a provider answers a revoked or expired token.

use axum::response::Response;
use serde_json::json;

use super::{FakeProvider, Inner, Recorded, reply};

/// The API path the fake serves.
pub const API_CALENDARS_PATH: &str = "/v1/calendars";

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

pub(super) fn api_calendars(g: &Inner, req: &Recorded) -> Response {
    let token = req
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let issued = token
        .and_then(|t| t.strip_prefix("at-"))
        .and_then(|n| n.parse::<u64>().ok())
        .filter(|n| *n <= g.counter && *n >= g.api.first_accepted);
    if issued.is_none() {
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
