//! What real authorization servers do that the plain fake does not, each
//! off until a test turns it on (issue 12, found against
//! django-oauth-toolkit and node's oidc-provider):
//!
//! - [`FakeProvider::require_pkce`]: an authorization request without an
//!   `S256` code challenge is refused ("Code challenge required."), and so is
//!   an exchange without the matching verifier. A challenge that was sent is
//!   always checked, as every PKCE server does.
//! - [`FakeProvider::send_iss`]: RFC 9207 `iss` on authorization responses.
//! - [`FakeProvider::use_clock`] and [`FakeProvider::round_issue_time_down`]:
//!   an access token's expiry counts from when the request *arrived* (before
//!   any [`FakeProvider::set_delay`]), optionally with the issue time
//!   rounded down to the second (oidc-provider's `iat`);
//!   [`FakeProvider::answer_takes_on_clock`]: each token the fake issues
//!   reaches the client that long later on that (manual) clock, a slow
//!   answer in the clock's terms.
//! - [`FakeProvider::revoke_access_on_refresh`]: a refresh revokes the
//!   grant's previous access token the moment it issues the new one.
//!
//! - [`FakeProvider::max_token_calls_in_flight`]: the most token-endpoint
//!   calls the fake was answering at once (a client's concurrency bound).
//!
//! Every access token the fake issues is remembered, so
//! [`FakeProvider::access_token_valid`] (and the bearer route
//! [`FakeProvider::bearer_url`]) tell whether the server would accept it.
//! The authorization endpoint (`authorize.rs`) stands in for the browser
//! step of a sign-in: [`FakeProvider::authorize`].

use std::collections::HashMap;

use axum::response::Response;
use serde_json::{Value, json};
use tokend::clock::Clock;

use super::{FakeProvider, Inner, Recorded, client_ok, oauth_error, reply};

mod authorize;
pub use authorize::AuthorizationRedirect;
use authorize::{authorization_endpoint, s256};

const AUTHORIZE_PATHS: [&str; 2] = ["/oauth/authorize", "/oauth2/auth"];
const TOKEN_PATHS: [&str; 2] = ["/oauth/token", "/oauth2/token"];
const BEARER_PATH: &str = "/interop/bearer";

/// The fake's memory of one access token it issued (Unix ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLife {
    /// When the server considers it issued (rounded down when asked).
    pub issued_at: i64,
    /// `None` when the fake sent no `expires_in`.
    pub expires_at: Option<i64>,
    /// When a refresh replaced it (with `revoke_access_on_refresh`).
    pub revoked_at: Option<i64>,
}

impl AccessLife {
    pub fn valid_at(&self, at: i64) -> bool {
        at >= self.issued_at
            && self.expires_at.is_none_or(|e| at < e)
            && self.revoked_at.is_none_or(|r| at < r)
    }
}

#[derive(Debug, Default)]
pub(super) struct Interop {
    require_pkce: bool,
    issuer: Option<String>,
    clock: Option<Clock>,
    round_down: bool,
    answer_takes: Option<std::time::Duration>,
    revoke_on_refresh: bool,
    /// Extras the codes of the authorization endpoint exchange into.
    authorize_extras: Option<Value>,
    /// code → the S256 challenge its authorization request carried.
    challenges: HashMap<String, String>,
    access: HashMap<String, AccessLife>,
    /// Refresh token → its grant; grant → its current access token.
    grant_of: HashMap<String, u64>,
    current: HashMap<u64, String>,
    grants: u64,
    /// Token-endpoint calls being answered now, and the most at once.
    in_flight: usize,
    max_in_flight: usize,
    /// The token request `serve` is answering: set in [`intercept`] and
    /// taken in [`issued`] under the same lock hold, so never another's.
    serving: Option<Serving>,
}

#[derive(Debug)]
struct Serving {
    received_at: i64,
    /// The refresh token a refresh presented.
    presented: Option<String>,
}

impl Interop {
    pub(super) fn now(&self) -> i64 {
        match &self.clock {
            Some(c) => c.now(),
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64,
        }
    }
}

impl FakeProvider {
    pub fn require_pkce(&self, on: bool) {
        self.lock().interop.require_pkce = on;
    }

    /// Authorization responses carry `iss` = `issuer` (RFC 9207); `None`: no `iss`.
    pub fn send_iss(&self, issuer: Option<&str>) {
        self.lock().interop.issuer = issuer.map(str::to_owned);
    }

    /// Issue times (and the bearer route's "now") come from `clock`, e.g.
    /// the manual clock the daemon runs on; the system clock otherwise.
    pub fn use_clock(&self, clock: Clock) {
        self.lock().interop.clock = Some(clock);
    }

    /// Issue times are rounded down to the second, so a token expires up to
    /// a second before `arrival + expires_in`.
    pub fn round_issue_time_down(&self, on: bool) {
        self.lock().interop.round_down = on;
    }

    /// Each issued token's answer moves the manual clock on by `d` before
    /// it is sent: the token is dated `d` before the client receives it.
    pub fn answer_takes_on_clock(&self, d: std::time::Duration) {
        self.lock().interop.answer_takes = Some(d);
    }

    pub fn revoke_access_on_refresh(&self, on: bool) {
        self.lock().interop.revoke_on_refresh = on;
    }

    /// Extras (e.g. `account_id`) of the grants the authorization endpoint makes.
    pub fn set_authorize_extras(&self, extras: Value) {
        self.lock().interop.authorize_extras = Some(extras);
    }

    /// Whether the server would accept `access_token` at `at` (Unix ms):
    /// issued by the fake, not expired, not revoked by a refresh.
    pub fn access_token_valid(&self, access_token: &str, at: i64) -> bool {
        self.access_token_life(access_token)
            .is_some_and(|l| l.valid_at(at))
    }

    pub fn access_token_life(&self, access_token: &str) -> Option<AccessLife> {
        self.lock().interop.access.get(access_token).cloned()
    }

    /// The most token-endpoint calls (any grant type, application
    /// calendars too) the fake was answering at the same time.
    pub fn max_token_calls_in_flight(&self) -> usize {
        self.lock().interop.max_in_flight
    }

    /// An API route that answers 200 to a valid `Authorization: Bearer`
    /// token (as of the fake's clock) and 401 `invalid_token` otherwise.
    pub fn bearer_url(&self) -> String {
        format!("{}{BEARER_PATH}", self.url)
    }
}

/// Counts a token-endpoint call as in flight until dropped (also when the
/// client goes away mid-answer and the handler is dropped with it).
pub(super) struct TokenCall(std::sync::Arc<std::sync::Mutex<Inner>>);

impl TokenCall {
    pub(super) fn start(
        inner: &std::sync::Arc<std::sync::Mutex<Inner>>,
        path: &str,
    ) -> Option<Self> {
        let token_call = TOKEN_PATHS.contains(&path) || path == "/v1/application_calendars";
        if !token_call {
            return None;
        }
        let mut g = inner.lock().unwrap_or_else(|e| e.into_inner());
        g.interop.in_flight += 1;
        g.interop.max_in_flight = g.interop.max_in_flight.max(g.interop.in_flight);
        Some(TokenCall(inner.clone()))
    }
}

impl Drop for TokenCall {
    fn drop(&mut self) {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        g.interop.in_flight -= 1;
    }
}

/// The clock reading for a request arriving now.
pub(super) fn now(inner: &std::sync::Mutex<Inner>) -> i64 {
    inner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .interop
        .now()
}

/// Runs before the plain fake's `serve`, under the same lock: answers the
/// routes only this section has, refuses what PKCE refuses, and notes the
/// token request being served for [`issued`].
pub(super) fn intercept(g: &mut Inner, req: &Recorded, received_at: i64) -> Option<Response> {
    let path = req.path.as_str();
    if AUTHORIZE_PATHS.contains(&path) {
        return Some(authorization_endpoint(g, req));
    }
    if path == BEARER_PATH {
        return Some(bearer(g, req));
    }
    let fields = req.fields();
    let token_path = TOKEN_PATHS.contains(&path);
    let presented = (token_path
        && fields.get("grant_type").map(String::as_str) == Some("refresh_token"))
    .then(|| fields.get("refresh_token").cloned())
    .flatten();
    g.interop.serving = Some(Serving {
        received_at,
        presented,
    });
    if !token_path {
        return None;
    }
    let exchange = fields.get("grant_type").map(String::as_str) == Some("authorization_code");
    let code = fields.get("code").cloned().unwrap_or_default();
    if !exchange || !g.codes.contains_key(&code) || !client_ok(g, req, &fields) {
        return None;
    }
    let challenge = g.interop.challenges.get(&code);
    let verifier = fields.get("code_verifier");
    match (challenge, verifier) {
        (Some(c), Some(v)) if *c == s256(v) => None,
        (Some(_), Some(_)) => Some(oauth_error(
            400,
            "invalid_grant",
            "PKCE verification failed",
        )),
        (Some(_), None) => Some(oauth_error(
            400,
            "invalid_request",
            "Code verifier required.",
        )),
        (None, _) if g.interop.require_pkce => Some(oauth_error(
            400,
            "invalid_request",
            "Code verifier required.",
        )),
        (None, _) => None,
    }
}

/// Called by `issue` with the token response it is about to send.
pub(super) fn issued(g: &mut Inner, body: &Value) {
    let Some(at) = body["access_token"].as_str() else {
        return;
    };
    let it = &mut g.interop;
    let serving = it.serving.take();
    let received_at = serving.as_ref().map_or_else(|| it.now(), |s| s.received_at);
    let issued_at = if it.round_down {
        received_at.div_euclid(1000) * 1000
    } else {
        received_at
    };
    let presented = serving.and_then(|s| s.presented);
    let grant = match presented.as_ref().and_then(|rt| it.grant_of.get(rt)) {
        Some(grant) => *grant,
        None => {
            it.grants += 1;
            it.grants
        }
    };
    if let Some(rt) = &presented {
        it.grant_of.insert(rt.clone(), grant);
    }
    if let Some(rt) = body["refresh_token"].as_str() {
        it.grant_of.insert(rt.to_owned(), grant);
    }
    if presented.is_some()
        && it.revoke_on_refresh
        && let Some(old) = it.current.get(&grant)
        && let Some(life) = it.access.get_mut(old)
    {
        life.revoked_at.get_or_insert(received_at);
    }
    it.current.insert(grant, at.to_owned());
    it.access.insert(
        at.to_owned(),
        AccessLife {
            issued_at,
            expires_at: body["expires_in"]
                .as_i64()
                .map(|secs| issued_at + secs * 1000),
            revoked_at: None,
        },
    );
    if let (Some(d), Some(clock)) = (it.answer_takes, &it.clock) {
        clock.advance(d);
    }
}

/// A protected resource: is the bearer token valid now, on the fake's clock?
fn bearer(g: &Inner, req: &Recorded) -> Response {
    let token = req
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let now = g.interop.now();
    match g.interop.access.get(token) {
        Some(life) if life.valid_at(now) => reply(
            200,
            json!({"active": true, "issued_at": life.issued_at, "expires_at": life.expires_at}),
        ),
        _ => {
            let mut resp = oauth_error(
                401,
                "invalid_token",
                "the access token is unknown, expired or revoked",
            );
            resp.headers_mut().insert(
                "www-authenticate",
                "Bearer error=\"invalid_token\"".parse().unwrap(),
            );
            resp
        }
    }
}
