//! The local HTTP API (SPEC §4, §5) over real loopback HTTP and the unix
//! socket, against the real daemon, a SQLite file in a temp dir and the fake
//! provider. Shared helpers live here: clients with keys of our choosing,
//! requests as a given client, raw HTTP for headers reqwest will not send,
//! and assertions on the SPEC's error body and common headers.

mod audit;
mod authorize;
mod clients;
mod credentials;
mod defences;
mod delete;
mod errors;
mod headers;
mod linked;
mod listing;
mod openapi;
mod precedence;
mod refresh;
mod tokens;
mod unix;

use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{AppOptions, TestApp, send, spawn_app_with};

/// Hex SHA-256 of a bearer key: what `[clients.NAME] key_sha256` holds.
pub fn sha256_hex(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A `[clients.NAME]` table for `key`, reading `patterns`, with `manage`.
pub fn client_toml(name: &str, key: &str, patterns: &[&str], manage: bool) -> String {
    format!(
        "[clients.{name}]\nkey_sha256 = \"{}\"\ncredentials = {}\nmanage = {manage}\n",
        sha256_hex(key),
        json!(patterns),
    )
}

/// Keys of the clients [`spawn_with_clients`] configures.
pub const ADMIN_KEY: &str = "tkd_admin-key-for-tests";
pub const READER_KEY: &str = "tkd_reader-key-for-tests";
pub const TEAM_KEY: &str = "tkd_team-key-for-tests";

/// An app with three clients: `admin` (all, manage), `reader` (all, no
/// manage) and `team` (`team-*` only, manage). `app.key` is the admin's.
pub async fn spawn_with_clients() -> TestApp {
    let extra_toml = [
        client_toml("admin", ADMIN_KEY, &["*"], true),
        client_toml("reader", READER_KEY, &["*"], false),
        client_toml("team", TEAM_KEY, &["team-*"], true),
    ]
    .concat();
    let mut app = spawn_app_with(AppOptions {
        extra_toml,
        ..AppOptions::default()
    })
    .await;
    app.key = ADMIN_KEY.to_owned();
    app
}

/// A request as the client holding `key`.
pub fn as_client(app: &TestApp, key: &str, method: Method, path: &str) -> RequestBuilder {
    app.http
        .request(method, format!("{}{path}", app.url))
        .bearer_auth(key)
}

/// A request without any key.
pub fn anonymous(app: &TestApp, method: Method, path: &str) -> RequestBuilder {
    app.http.request(method, format!("{}{path}", app.url))
}

/// Like [`send`], with the response headers too.
pub async fn send_full(request: RequestBuilder) -> (StatusCode, HeaderMap, Value) {
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, headers, body)
}

/// Asserts the SPEC's error shape: `{"error": code, "message": text}`.
#[track_caller]
pub fn assert_error(got: &(StatusCode, Value), status: StatusCode, code: &str) {
    let (s, body) = got;
    assert_eq!(*s, status, "status for {body}");
    assert_eq!(body["error"], code, "error code in {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "a message in {body}"
    );
    assert_eq!(
        body.as_object().map(|o| o.len()),
        Some(2),
        "only error and message: {body}"
    );
}

/// The header value as a whole number of seconds, e.g. `Retry-After`.
#[track_caller]
pub fn retry_after(headers: &HeaderMap) -> u64 {
    headers
        .get("retry-after")
        .expect("a Retry-After header")
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds")
}

/// Imports `id` with an access token given, so no provider call is made.
/// The refresh token is known to the fake (refreshes of it work).
pub async fn import_with_token(
    app: &TestApp,
    id: &str,
    provider: &str,
    refresh_token: &str,
) -> (StatusCode, Value) {
    app.fake.add_refresh_token(refresh_token, json!({}));
    send(app.put(&format!("/v1/credentials/{id}")).json(&json!({
        "provider": provider,
        "refresh_token": refresh_token,
        "access_token": format!("at-imported-{id}"),
        "expires_in": 3600,
    })))
    .await
}

/// A raw HTTP/1.1 exchange with the app: `head` is the request line and
/// headers without the final blank line; `Connection: close` is added.
/// Returns the status and the whole response text (headers and body).
pub async fn raw(app: &TestApp, head: &str, body: &[u8]) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let mut request = format!("{head}\r\nConnection: close\r\n\r\n").into_bytes();
    request.extend_from_slice(body);
    stream.write_all(&request).await.unwrap();
    let mut out = Vec::new();
    // The server may close before reading all of a refused body: keep what came.
    let _ = stream.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
    (status, text)
}

/// The JSON body of a raw response.
pub fn raw_body(text: &str) -> Value {
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or(Value::Null)
}
