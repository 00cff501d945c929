//! A fake OAuth 2.0 provider: a real HTTP server on loopback, in the test
//! process. By default it behaves like a token server (Cronofy's JSON paths
//! and RFC 6749 form paths); a test can also script exact answers (4xx, 5xx,
//! 429 with `Retry-After`, garbage, slow) that are served first, in order.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

// --- interop switches (issue 12): PKCE, `iss`, issue-time expiry, access
// tokens revoked on refresh; see `fake_provider/interop.rs`.
mod interop;
#[allow(unused_imports)]
pub use interop::{AccessLife, AuthorizationRedirect};
// --- end interop
// --- the provider's calendar API for the client examples (examples/); see `fake_provider/api.rs`.
mod api;
use api::{API_CALENDARS_PATH, API_PREFIX, ApiState, api_calendars};
// --- end api
// --- a provider's rate limit (429s) and call times; see `fake_provider/limit.rs`.
mod limit;
// --- end limit

/// How the fake treats a refresh token once it has issued a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// Refresh tokens never change (Cronofy, Google).
    None,
    /// A new refresh token each time; the old one stays valid until the new
    /// one is first used (a reuse grace, as Auth0, Okta and Xero offer).
    Grace,
    /// A new refresh token each time; the old one dies at once.
    Strict,
}

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: String,
}

impl Recorded {
    /// The body's fields, whether JSON or a form.
    pub fn fields(&self) -> HashMap<String, String> {
        parse_fields(&self.headers, &self.body)
    }

    pub fn field(&self, name: &str) -> Option<String> {
        self.fields().remove(name)
    }
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Canned {
    pub fn new(status: u16, body: impl Into<String>) -> Self {
        Canned {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    pub fn json(status: u16, body: Value) -> Self {
        Canned::new(status, body.to_string())
    }

    pub fn error(status: u16, error: &str) -> Self {
        Canned::json(
            status,
            json!({"error": error, "error_description": format!("fake says {error}")}),
        )
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }

    /// Sends the status, headers and `body`, then drops the connection
    /// mid-answer, as a crashing server or a cut network would.
    pub fn truncated(self) -> Self {
        self.header(TRUNCATE_MARKER, "1")
    }
}

/// Not sent: tells `handle` to cut the body short (see [`Canned::truncated`]).
const TRUNCATE_MARKER: &str = "x-fake-truncate";

#[derive(Debug)]
struct RefreshTokenState {
    /// Extras returned with every refresh of this token.
    extras: Value,
    /// Grace rotation: the token that replaced this one; using that one kills this one.
    superseded_by: Option<String>,
}

#[derive(Debug)]
struct Inner {
    requests: Vec<Recorded>,
    script: VecDeque<Canned>,
    counter: u64,
    rotation: Rotation,
    expires_in: Option<u64>,
    delay: Duration,
    client_id: String,
    client_secrets: Vec<String>,
    refresh_tokens: HashMap<String, RefreshTokenState>,
    /// code → (refresh token to issue, extras to return)
    codes: HashMap<String, (String, Value)>,
    /// application calendar id → its current refresh token
    app_calendars: HashMap<String, String>,
    revoked: Vec<String>,
    /// The interop switches and what they remember (`interop.rs`).
    interop: interop::Interop,
    /// The fake calendar API (see the section at the end of this file).
    api: ApiState,
    limit: limit::Limit,
}

#[derive(Clone, Debug)]
pub struct FakeProvider {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

pub const CLIENT_ID: &str = "fake-client-id";
pub const CLIENT_SECRET: &str = "fake-client-secret-s3cr3t";

impl FakeProvider {
    pub async fn start() -> FakeProvider {
        let inner = Arc::new(Mutex::new(Inner {
            requests: Vec::new(),
            script: VecDeque::new(),
            counter: 0,
            rotation: Rotation::None,
            expires_in: Some(3600),
            delay: Duration::ZERO,
            client_id: CLIENT_ID.into(),
            client_secrets: vec![CLIENT_SECRET.into()],
            refresh_tokens: HashMap::new(),
            codes: HashMap::new(),
            app_calendars: HashMap::new(),
            revoked: Vec::new(),
            interop: Default::default(),
            api: ApiState::default(),
            limit: Default::default(),
        }));
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeProvider { url, inner }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serves `canned` for the next request (after those already scripted).
    pub fn push(&self, canned: Canned) {
        self.lock().script.push_back(canned);
    }

    pub fn set_rotation(&self, rotation: Rotation) {
        self.lock().rotation = rotation;
    }

    pub fn set_expires_in(&self, expires_in: Option<u64>) {
        self.lock().expires_in = expires_in;
    }

    /// Every answer of the token server waits this long first.
    pub fn set_delay(&self, delay: Duration) {
        self.lock().delay = delay;
    }

    /// The secrets the fake accepts (the first is the current one).
    pub fn set_client_secrets(&self, secrets: &[&str]) {
        self.lock().client_secrets = secrets.iter().map(|s| s.to_string()).collect();
    }

    /// Makes `refresh_token` valid; refreshes of it return `extras` too.
    pub fn add_refresh_token(&self, refresh_token: &str, extras: Value) {
        self.lock().refresh_tokens.insert(
            refresh_token.into(),
            RefreshTokenState {
                extras,
                superseded_by: None,
            },
        );
    }

    /// Kills a refresh token (as a user revoking access would).
    pub fn revoke_refresh_token(&self, refresh_token: &str) {
        self.lock().refresh_tokens.remove(refresh_token);
    }

    pub fn is_valid(&self, refresh_token: &str) -> bool {
        self.lock().refresh_tokens.contains_key(refresh_token)
    }

    pub fn valid_refresh_tokens(&self) -> Vec<String> {
        let mut v: Vec<_> = self.lock().refresh_tokens.keys().cloned().collect();
        v.sort();
        v
    }

    /// Registers an authorization code that exchanges into `refresh_token`
    /// (made valid on exchange) with `extras` (e.g. Cronofy's `account_id`, `sub`).
    pub fn add_code(&self, code: &str, refresh_token: &str, extras: Value) {
        self.lock()
            .codes
            .insert(code.into(), (refresh_token.into(), extras));
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }

    /// Requests with this grant type that reached the token endpoint.
    pub fn grant_calls(&self, grant_type: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.field("grant_type").as_deref() == Some(grant_type))
            .count()
    }

    pub fn refresh_calls(&self) -> usize {
        self.grant_calls("refresh_token")
    }

    pub fn revoked(&self) -> Vec<String> {
        self.lock().revoked.clone()
    }
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received_at = interop::now(&inner);
    let _call = interop::TokenCall::start(&inner, uri.path());
    let recorded = Recorded {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or_default().to_owned(),
        headers: headers.clone(),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let (canned, delay) = {
        let mut g = inner.lock().unwrap_or_else(|e| e.into_inner());
        g.requests.push(recorded.clone());
        (g.script.pop_front(), g.delay)
    };
    if let Some(c) = canned {
        tokio::time::sleep(c.delay).await;
        if c.headers.iter().any(|(k, _)| k == TRUNCATE_MARKER) {
            return truncated(c);
        }
        let mut resp = (StatusCode::from_u16(c.status).unwrap(), c.body).into_response();
        for (k, v) in c.headers {
            resp.headers_mut().insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        return resp;
    }
    tokio::time::sleep(delay).await;
    let mut g = inner.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(answer) = limit::check(&mut g, &recorded, received_at) {
        return answer;
    }
    if let Some(answer) = interop::intercept(&mut g, &recorded, received_at) {
        return answer;
    }
    serve(&mut g, &recorded)
}

/// A streamed body that fails after its first chunk: hyper then aborts the
/// connection, so the client sees the headers and part of a body. The pause
/// lets hyper flush what it has before the error drops the connection.
fn truncated(c: Canned) -> Response {
    use futures::StreamExt;
    let body = Bytes::from(c.body.clone());
    let first = futures::stream::once(async move { Ok::<_, std::io::Error>(body) });
    let cut = futures::stream::once(async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Err(std::io::Error::other("the fake cuts the answer short"))
    });
    let mut resp = Response::new(axum::body::Body::from_stream(first.chain(cut)));
    *resp.status_mut() = StatusCode::from_u16(c.status).unwrap();
    for (k, v) in c.headers.iter().filter(|(k, _)| k != TRUNCATE_MARKER) {
        resp.headers_mut().insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    resp
}

fn reply(status: u16, body: Value) -> Response {
    (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
}

fn oauth_error(status: u16, error: &str, description: &str) -> Response {
    reply(
        status,
        json!({"error": error, "error_description": description}),
    )
}

/// The default behaviour: a consistent token server.
fn serve(g: &mut Inner, req: &Recorded) -> Response {
    let fields = req.fields();
    let path = req.path.as_str();
    let is_token = matches!(path, "/oauth/token" | "/oauth2/token");
    let is_revoke = matches!(path, "/oauth/token/revoke" | "/oauth2/revoke");
    let is_app_cal = path == "/v1/application_calendars";
    if path == API_CALENDARS_PATH {
        return api_calendars(g, req);
    }
    if path.starts_with(API_PREFIX) {
        return api::api(g, req);
    }
    if !(is_token || is_revoke || is_app_cal) {
        return oauth_error(404, "not_found", "no such path");
    }
    if !client_ok(g, req, &fields) {
        return oauth_error(401, "invalid_client", "unknown client or bad secret");
    }
    if is_revoke {
        if let Some(t) = fields.get("token") {
            g.refresh_tokens.remove(t);
            g.revoked.push(t.clone());
        }
        return (StatusCode::OK, "").into_response();
    }
    if is_app_cal {
        let Some(id) = fields.get("application_calendar_id").cloned() else {
            return oauth_error(422, "invalid_request", "application_calendar_id missing");
        };
        // Idempotent: the same calendar, with a fresh token set.
        if let Some(old) = g.app_calendars.get(&id).cloned() {
            g.refresh_tokens.remove(&old);
        }
        let rt = next_token(g, "rt-apc");
        let extras = json!({"application_calendar_id": id, "sub": format!("apc_{id}"),
            "linking_profile": {"provider_name": "cronofy", "profile_id": format!("pro_{id}"), "profile_name": id}});
        g.app_calendars.insert(id, rt.clone());
        g.refresh_tokens.insert(
            rt.clone(),
            RefreshTokenState {
                extras: json!({}),
                superseded_by: None,
            },
        );
        return issue(g, Some(rt), &extras);
    }
    match fields.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let code = fields.get("code").cloned().unwrap_or_default();
            let Some((rt, extras)) = g.codes.remove(&code) else {
                return oauth_error(
                    400,
                    "invalid_grant",
                    "errors.unknown_or_used: the code is unknown or was used",
                );
            };
            g.refresh_tokens.insert(
                rt.clone(),
                RefreshTokenState {
                    extras: json!({}),
                    superseded_by: None,
                },
            );
            issue(g, Some(rt), &extras)
        }
        Some("refresh_token") => {
            let rt = fields.get("refresh_token").cloned().unwrap_or_default();
            let Some(state) = g.refresh_tokens.get(&rt) else {
                return oauth_error(
                    400,
                    "invalid_grant",
                    "the refresh token is unknown or revoked",
                );
            };
            let extras = state.extras.clone();
            // Grace rotation: first use of a successor kills its predecessor.
            let predecessors: Vec<String> = g
                .refresh_tokens
                .iter()
                .filter(|(_, s)| s.superseded_by.as_deref() == Some(rt.as_str()))
                .map(|(k, _)| k.clone())
                .collect();
            for p in predecessors {
                g.refresh_tokens.remove(&p);
            }
            match g.rotation {
                Rotation::None => issue(g, None, &extras),
                Rotation::Grace | Rotation::Strict => {
                    let new_rt = next_token(g, "rt");
                    if g.rotation == Rotation::Strict {
                        g.refresh_tokens.remove(&rt);
                    } else if let Some(s) = g.refresh_tokens.get_mut(&rt) {
                        s.superseded_by = Some(new_rt.clone());
                    }
                    g.refresh_tokens.insert(
                        new_rt.clone(),
                        RefreshTokenState {
                            extras: extras.clone(),
                            superseded_by: None,
                        },
                    );
                    issue(g, Some(new_rt), &extras)
                }
            }
        }
        _ => oauth_error(
            400,
            "unsupported_grant_type",
            "grant_type missing or unknown",
        ),
    }
}

fn next_token(g: &mut Inner, prefix: &str) -> String {
    g.counter += 1;
    format!("{prefix}-{}", g.counter)
}

fn issue(g: &mut Inner, refresh_token: Option<String>, extras: &Value) -> Response {
    let at = next_token(g, "at");
    let mut body = json!({"token_type": "bearer", "access_token": at, "scope": "read_write"});
    if let Some(e) = g.expires_in {
        body["expires_in"] = json!(e);
    }
    if let Some(rt) = refresh_token {
        body["refresh_token"] = json!(rt);
    }
    if let Some(map) = extras.as_object() {
        for (k, v) in map {
            body[k] = v.clone();
        }
    }
    interop::issued(g, &body);
    reply(200, body)
}

fn client_ok(g: &Inner, req: &Recorded, fields: &HashMap<String, String>) -> bool {
    let (id, secret) = match basic_auth(&req.headers) {
        Some(pair) => pair,
        None => (
            fields.get("client_id").cloned().unwrap_or_default(),
            fields.get("client_secret").cloned().unwrap_or_default(),
        ),
    };
    id == g.client_id && g.client_secrets.first() == Some(&secret)
}

fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((unescape(id), unescape(secret)))
}

pub fn parse_fields(headers: &HeaderMap, body: &str) -> HashMap<String, String> {
    let is_json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        let value: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        value
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        let s = v
                            .as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| v.to_string());
                        (k.clone(), s)
                    })
                    .collect()
            })
            .unwrap_or_default()
    } else {
        url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect()
    }
}
