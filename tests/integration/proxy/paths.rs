//! No way out of the API base: dot segments, encoded ones, encoded
//! slashes and backslashes, absolute forms are 400 before any call. Sent
//! raw: an HTTP client would resolve `..` itself.

use reqwest::StatusCode;

use super::app_with_alice;
use crate::api::{raw, raw_body};
use crate::helpers::AppOptions;

#[tokio::test]
async fn paths_that_could_leave_the_base_are_refused_before_any_call() {
    let app = app_with_alice(AppOptions::default()).await;
    for path in [
        "api/../oauth/token",
        "api/echo/../../x",
        "..",
        "api/./echo",
        "api/%2e%2e/oauth/token",
        "api/%2E%2e/oauth/token",
        "api/.%2E/x",
        "api%2Fecho",
        "api%2fecho",
        "api/%5C..%5Cx",
        "api\\..\\x",
        "/127.0.0.1:1/x",
        "http://127.0.0.1:1/x",
        "api/%252e%252e/x",
    ] {
        let head = format!(
            "GET /v1/proxy/alice/{path}?who=secret-name HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}",
            app.key
        );
        let (status, text) = raw(&app, &head, b"").await;
        assert_eq!(status, 400, "{path}: {text}");
        let body = raw_body(&text);
        assert_eq!(body["error"], "invalid_request", "{path}: {text}");
        assert!(
            text.to_ascii_lowercase().contains("x-tokend-error: 1"),
            "{path}: {text}"
        );
        assert!(
            !text.contains("secret-name"),
            "never echoes the request: {text}"
        );
    }
    assert!(app.fake.api_requests().is_empty(), "no call was made");
    assert_eq!(app.fake.requests().len(), 1, "only the import's refresh");
}

#[tokio::test]
async fn dots_inside_names_are_fine() {
    let app = app_with_alice(AppOptions::default()).await;
    let head = format!(
        "GET /v1/proxy/alice/api/echo/..x/report.v2..pdf HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}",
        app.key
    );
    let (status, text) = raw(&app, &head, b"").await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(raw_body(&text)["path"], "/api/echo/..x/report.v2..pdf");
}

#[tokio::test]
async fn a_bad_credential_id_is_400() {
    let app = app_with_alice(AppOptions::default()).await;
    let got = super::call(super::proxy(
        &app,
        reqwest::Method::GET,
        "al%20ice/api/echo/x",
    ))
    .await;
    super::assert_own(&got, StatusCode::BAD_REQUEST, "invalid_request");
}

#[tokio::test]
async fn an_encoded_id_is_decoded_as_on_the_other_routes() {
    let app = app_with_alice(AppOptions::default()).await;
    app.fake.add_refresh_token("rt-u", serde_json::json!({}));
    let (status, _) = crate::helpers::send(
        app.put("/v1/credentials/user:42@example")
            .json(&serde_json::json!({"provider": "cronofy", "refresh_token": "rt-u"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let got = super::call(super::proxy(
        &app,
        reqwest::Method::GET,
        "user%3A42%40example/api/echo/x",
    ))
    .await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.2);
    assert_eq!(got.2["headers"]["authorization"][0], "Bearer at-2");
}
