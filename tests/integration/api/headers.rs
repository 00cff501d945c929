//! `Cache-Control: no-store` and `X-Content-Type-Options: nosniff` on every
//! response (SPEC §4): successes, errors, 404s for paths and credentials,
//! the probes, refusals by the defences, 405 and 413.

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::json;

use super::{anonymous, import_with_token, raw, send_full};
use crate::helpers::spawn_app;

#[track_caller]
fn assert_common(headers: &reqwest::header::HeaderMap, what: &str) {
    assert_eq!(
        headers.get("cache-control").map(|v| v.to_str().unwrap()),
        Some("no-store"),
        "Cache-Control on {what}"
    );
    assert_eq!(
        headers
            .get("x-content-type-options")
            .map(|v| v.to_str().unwrap()),
        Some("nosniff"),
        "X-Content-Type-Options on {what}"
    );
}

#[tokio::test]
async fn every_response_carries_no_store_and_nosniff() {
    let app = spawn_app().await;
    assert_eq!(
        import_with_token(&app, "alice", "cronofy", "rt-a").await.0,
        201
    );
    let big = json!({"provider": "cronofy", "refresh_token": "x".repeat(70_000)});
    let cases: Vec<(StatusCode, &str, RequestBuilder)> = vec![
        (StatusCode::OK, "token", app.get("/v1/tokens/alice")),
        (StatusCode::OK, "view", app.get("/v1/credentials/alice")),
        (StatusCode::OK, "list", app.get("/v1/credentials")),
        (
            StatusCode::OK,
            "healthz",
            anonymous(&app, Method::GET, "/healthz"),
        ),
        (
            StatusCode::OK,
            "readyz",
            anonymous(&app, Method::GET, "/readyz"),
        ),
        (
            StatusCode::CREATED,
            "import",
            app.put("/v1/credentials/bob").json(&json!({
                "provider": "cronofy", "refresh_token": "rt-b",
                "access_token": "at-b", "expires_in": 60,
            })),
        ),
        (
            StatusCode::NO_CONTENT,
            "delete",
            app.delete("/v1/credentials/bob"),
        ),
        (StatusCode::BAD_REQUEST, "bad id", app.get("/v1/tokens/a!b")),
        (
            StatusCode::UNAUTHORIZED,
            "no key",
            anonymous(&app, Method::GET, "/v1/credentials"),
        ),
        (
            StatusCode::FORBIDDEN,
            "browser",
            app.get("/v1/tokens/alice").header("origin", "null"),
        ),
        (
            StatusCode::FORBIDDEN,
            "OPTIONS",
            app.request(Method::OPTIONS, "/v1/credentials"),
        ),
        (
            StatusCode::NOT_FOUND,
            "no credential",
            app.get("/v1/tokens/ghost"),
        ),
        (StatusCode::NOT_FOUND, "no path", app.get("/v2/whatever")),
        // A path that does not exist is still behind the key.
        (
            StatusCode::UNAUTHORIZED,
            "no path, no key",
            anonymous(&app, Method::GET, "/favicon.ico"),
        ),
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "wrong method",
            app.request(Method::PATCH, "/v1/credentials/alice"),
        ),
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "big body",
            app.put("/v1/credentials/x").json(&big),
        ),
    ];
    for (expected, what, request) in cases {
        let (status, headers, body) = send_full(request).await;
        assert_eq!(status, expected, "{what}: {body}");
        assert_common(&headers, what);
        if status.is_client_error() || status.is_server_error() {
            assert_eq!(
                headers.get("content-type").map(|v| v.to_str().unwrap()),
                Some("application/json"),
                "errors are JSON: {what}"
            );
        }
    }
}

#[tokio::test]
async fn refusals_without_a_host_carry_them_too() {
    let app = spawn_app().await;
    let (status, text) = raw(&app, "GET /v1/credentials HTTP/1.0", b"").await;
    assert_eq!(status, 403);
    let lower = text.to_ascii_lowercase();
    assert!(lower.contains("cache-control: no-store"), "{text}");
    assert!(lower.contains("x-content-type-options: nosniff"), "{text}");
}
