//! SPEC §5 Security: requests a browser or a proxy would make are 403
//! `forbidden` before anything else, even with a valid key: `Origin`, any
//! `Sec-Fetch-*`, `OPTIONS`, `X-Forwarded-For`, `Forwarded`, `Via`, a foreign
//! `Host`, a `Host` naming another port, no `Host`. No CORS header is ever sent.

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::{assert_error, import_with_token, raw, raw_body, send_full};
use crate::helpers::{AppOptions, TestApp, spawn_app, spawn_app_with};

/// Browser and proxy headers, each refused on its own.
const REFUSED_HEADERS: &[(&str, &str)] = &[
    ("origin", "https://evil.example"),
    ("origin", "null"),
    ("sec-fetch-site", "cross-site"),
    ("sec-fetch-mode", "cors"),
    ("sec-fetch-dest", "empty"),
    ("sec-fetch-user", "?1"),
    ("x-forwarded-for", "203.0.113.7"),
    ("forwarded", "for=203.0.113.7;proto=https"),
    ("via", "1.1 proxy.example"),
];

#[track_caller]
fn assert_no_cors(headers: &reqwest::header::HeaderMap) {
    for name in headers.keys() {
        assert!(
            !name.as_str().starts_with("access-control-"),
            "no CORS headers, got {name}"
        );
    }
}

async fn with_token(app: &TestApp) {
    assert_eq!(
        import_with_token(app, "alice", "cronofy", "rt-a").await.0,
        201
    );
}

#[tokio::test]
async fn browser_and_proxy_headers_are_forbidden_even_with_a_key() {
    let app = spawn_app().await;
    with_token(&app).await;
    for (name, value) in REFUSED_HEADERS {
        for path in ["/v1/tokens/alice", "/v1/credentials", "/healthz"] {
            let (status, headers, body) = send_full(app.get(path).header(*name, *value)).await;
            assert_error(&(status, body), StatusCode::FORBIDDEN, "forbidden");
            assert_no_cors(&headers);
        }
    }
    // Without a key, still 403 (SPEC: browser/proxy first, then 401).
    let (status, _, body) = send_full(
        app.http
            .get(format!("{}/v1/tokens/alice", app.url))
            .header("origin", "https://evil.example"),
    )
    .await;
    assert_error(&(status, body), StatusCode::FORBIDDEN, "forbidden");
    // A plain request passes: the refusals above were the headers' doing.
    assert_eq!(app.token("alice").await.0, StatusCode::OK);
}

#[tokio::test]
async fn options_is_forbidden_and_no_preflight_is_answered() {
    let app = spawn_app().await;
    for path in ["/v1/tokens/alice", "/v1/credentials", "/nowhere"] {
        let preflight = app
            .request(Method::OPTIONS, path)
            .header("access-control-request-method", "GET");
        let (status, headers, body) = send_full(preflight).await;
        assert_error(&(status, body), StatusCode::FORBIDDEN, "forbidden");
        assert_no_cors(&headers);
    }
}

#[tokio::test]
async fn host_must_be_loopback_or_allowed_with_our_port() {
    let app = spawn_app_with(AppOptions {
        server_toml: "allowed_hosts = [\"tokend.internal\"]".into(),
        ..AppOptions::default()
    })
    .await;
    with_token(&app).await;
    let port = app.addr.port();
    let other = port.wrapping_add(1).max(1);
    let request = |host: Option<String>| {
        let host = host.map_or(String::new(), |h| format!("\r\nHost: {h}"));
        format!(
            "GET /v1/tokens/alice HTTP/1.1\r\nAuthorization: Bearer {}{host}",
            app.key
        )
    };
    for host in [
        "localhost".to_owned(),
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
        format!("LocalHost:{port}"),
        "tokend.internal".to_owned(),
        format!("tokend.internal:{port}"),
    ] {
        let (status, text) = raw(&app, &request(Some(host.clone())), b"").await;
        assert_eq!(status, 200, "Host {host} is ours: {text}");
    }
    for host in [
        "evil.example".to_owned(),
        format!("evil.example:{port}"),
        format!("127.0.0.2:{port}"),
        format!("localhost.evil.example:{port}"),
        format!("localhost:{other}"),
        format!("127.0.0.1:{other}"),
        format!("tokend.internal:{other}"),
        "localhost:notaport".to_owned(),
    ] {
        let (status, text) = raw(&app, &request(Some(host.clone())), b"").await;
        assert_eq!(status, 403, "Host {host} is refused: {text}");
        assert_eq!(raw_body(&text)["error"], "forbidden");
        assert!(!text.to_ascii_lowercase().contains("access-control-"));
    }
    // HTTP/1.0 allows leaving Host out; tokend does not.
    let head = format!(
        "GET /v1/tokens/alice HTTP/1.0\r\nAuthorization: Bearer {}",
        app.key
    );
    let (status, text) = raw(&app, &head, b"").await;
    assert_eq!(status, 403, "no Host: {text}");
}

#[tokio::test]
async fn defences_come_before_the_body_is_read_or_anything_changes() {
    let app = spawn_app().await;
    let body = json!({"provider": "cronofy", "refresh_token": "rt-x"});
    for (name, value) in REFUSED_HEADERS {
        let put = app
            .put("/v1/credentials/x")
            .header(*name, *value)
            .json(&body);
        let (status, _, got) = send_full(put).await;
        assert_error(&(status, got), StatusCode::FORBIDDEN, "forbidden");
    }
    assert!(app.fake.requests().is_empty());
    assert_eq!(app.token("x").await.0, StatusCode::NOT_FOUND);
}
