//! The SPEC §4 error table, one status at a time: 400 `invalid_request`
//! (malformed JSON, bad id, missing and unknown fields, unknown provider,
//! unregistered `redirect_uri` with no provider call), 400 `invalid_grant`,
//! 401, 404, 413 and 502. Each answer has the SPEC's error body.

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::{anonymous, as_client, assert_error, raw, raw_body};
use crate::fake_provider::Canned;
use crate::helpers::{AppOptions, REDIRECT_URI, eventually, send, spawn_app, spawn_app_with};

#[tokio::test]
async fn invalid_request_for_bad_bodies_ids_and_providers() {
    let app = spawn_app().await;
    let bad = StatusCode::BAD_REQUEST;
    let put = |id: &str| app.put(&format!("/v1/credentials/{id}"));

    let malformed = send(
        put("alice")
            .header("content-type", "application/json")
            .body("{\"provider\":"),
    )
    .await;
    assert_error(&malformed, bad, "invalid_request");
    let not_an_object = send(put("alice").json(&json!(["cronofy"]))).await;
    assert_error(&not_an_object, bad, "invalid_request");
    let missing = send(put("alice").json(&json!({"provider": "cronofy"}))).await;
    assert_error(&missing, bad, "invalid_request");
    assert!(
        missing.1["message"]
            .as_str()
            .unwrap()
            .contains("refresh_token")
    );
    let unknown_field = send(
        put("alice").json(&json!({"provider": "cronofy", "refresh_token": "rt", "colour": "blue"})),
    )
    .await;
    assert_error(&unknown_field, bad, "invalid_request");
    assert!(
        unknown_field.1["message"]
            .as_str()
            .unwrap()
            .contains("colour")
    );
    let wrong_type = send(put("alice").json(&json!({"provider": 7, "refresh_token": "rt"}))).await;
    assert_error(&wrong_type, bad, "invalid_request");
    let unknown_provider =
        send(put("alice").json(&json!({"provider": "nope", "refresh_token": "rt"}))).await;
    assert_error(&unknown_provider, bad, "invalid_request");

    // Ids: 1 to 128 of [A-Za-z0-9._:@-].
    for id in ["a%20b", "a!b", "%C3%A9", &"x".repeat(129)] {
        assert_error(&app.token(id).await, bad, "invalid_request");
        let body = json!({"provider": "cronofy", "refresh_token": "rt"});
        assert_error(&send(put(id).json(&body)).await, bad, "invalid_request");
    }
    assert_eq!(app.token(&"x".repeat(128)).await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.token("a.b_c:d@e-f").await.0, StatusCode::NOT_FOUND);

    // Query parameters: unknown ones and wrong types.
    let q = send(app.get("/v1/tokens/alice?min_ttl=soon")).await;
    assert_error(&q, bad, "invalid_request");
    let q = send(app.get("/v1/tokens/alice?ttl=5")).await;
    assert_error(&q, bad, "invalid_request");
    let q = send(app.delete("/v1/credentials/alice?revoke=perhaps")).await;
    assert_error(&q, bad, "invalid_request");

    assert!(
        app.fake.requests().is_empty(),
        "nothing reached the provider"
    );
    assert_eq!(
        send(app.get("/v1/credentials")).await.1["credentials"],
        json!([]),
        "bad input changed nothing"
    );
}

#[tokio::test]
async fn unregistered_redirect_uri_is_refused_before_any_call() {
    let app = spawn_app().await;
    app.fake.add_code("code-1", "rt-1", json!({}));
    let got = send(
        app.post("/v1/credentials/bob/authorization-code")
            .json(&json!({
                "provider": "cronofy", "code": "code-1", "redirect_uri": "https://evil.example/cb",
            })),
    )
    .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "invalid_request");
    let url = send(app.get(
        "/v1/authorize-url?provider=cronofy&credential_id=bob&scope=read_write&redirect_uri=https%3A%2F%2Fevil.example%2Fcb",
    ))
    .await;
    assert_error(&url, StatusCode::BAD_REQUEST, "invalid_request");
    assert!(
        app.fake.requests().is_empty(),
        "zero calls reach the provider"
    );
    assert_eq!(app.token("bob").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn invalid_grant_for_refused_code_and_refused_import() {
    let app = spawn_app().await;
    let code = send(
        app.post("/v1/credentials/bob/authorization-code")
            .json(&json!({
                "provider": "cronofy", "code": "never-issued", "redirect_uri": REDIRECT_URI,
            })),
    )
    .await;
    assert_error(&code, StatusCode::BAD_REQUEST, "invalid_grant");
    assert!(
        code.1["message"]
            .as_str()
            .unwrap()
            .contains("unknown_or_used"),
        "the provider's reason is passed on: {}",
        code.1
    );
    assert_eq!(app.fake.grant_calls("authorization_code"), 1);

    // An import whose first refresh is refused stores nothing.
    let import = send(app.put("/v1/credentials/carol").json(&json!({
        "provider": "cronofy", "refresh_token": "rt-dead",
    })))
    .await;
    assert_error(&import, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(app.fake.refresh_calls(), 1);
    for id in ["bob", "carol"] {
        let show = send(app.get(&format!("/v1/credentials/{id}"))).await;
        assert_error(&show, StatusCode::NOT_FOUND, "not_found");
    }
    assert_eq!(
        send(app.get("/v1/credentials")).await.1["credentials"],
        json!([])
    );
}

#[tokio::test]
async fn unauthorized_without_or_with_an_unknown_key() {
    let app = spawn_app().await;
    let none = send(anonymous(&app, Method::GET, "/v1/credentials")).await;
    assert_error(&none, StatusCode::UNAUTHORIZED, "unauthorized");
    let wrong = send(as_client(&app, "tkd_wrong", Method::GET, "/v1/credentials")).await;
    assert_error(&wrong, StatusCode::UNAUTHORIZED, "unauthorized");
    let basic =
        send(anonymous(&app, Method::GET, "/v1/credentials").basic_auth("x", Some(&app.key))).await;
    assert_error(&basic, StatusCode::UNAUTHORIZED, "unauthorized");
    // Probes need no key.
    for probe in ["/healthz", "/readyz"] {
        let (status, _) = send(anonymous(&app, Method::GET, probe)).await;
        assert_eq!(status, StatusCode::OK, "{probe}");
    }
}

#[tokio::test]
async fn not_found_for_unknown_credentials_and_paths() {
    let app = spawn_app().await;
    assert_error(
        &app.token("ghost").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    for (method, path) in [
        (Method::GET, "/v1/credentials/ghost"),
        (Method::DELETE, "/v1/credentials/ghost"),
        (Method::POST, "/v1/tokens/ghost/refresh"),
        (Method::GET, "/v1/nothing-here"),
        (Method::GET, "/"),
    ] {
        let got = send(app.request(method.clone(), path)).await;
        assert_error(&got, StatusCode::NOT_FOUND, "not_found");
    }
}

#[tokio::test]
async fn payload_too_large_past_max_body_bytes() {
    let app = spawn_app().await;
    let big = json!({"provider": "cronofy", "refresh_token": "x".repeat(70_000)});
    let got = send(app.put("/v1/credentials/alice").json(&big)).await;
    assert_error(&got, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    // The same without Content-Length (chunked).
    let chunk = vec![b' '; 70_000];
    let mut body = format!("{:x}\r\n", chunk.len()).into_bytes();
    body.extend_from_slice(&chunk);
    body.extend_from_slice(b"\r\n0\r\n\r\n");
    let head = format!(
        "PUT /v1/credentials/alice HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked",
        app.key
    );
    let (status, text) = raw(&app, &head, &body).await;
    assert_eq!(status, 413, "{text}");
    assert_eq!(raw_body(&text)["error"], "payload_too_large");
    assert!(app.fake.requests().is_empty());
}

#[tokio::test]
async fn provider_error_for_an_unexpected_answer() {
    let app = spawn_app().await;
    app.fake.push(Canned::new(200, "<html>not json</html>"));
    let got = send(
        app.post("/v1/credentials/bob/authorization-code")
            .json(&json!({
                "provider": "cronofy", "code": "c", "redirect_uri": REDIRECT_URI,
            })),
    )
    .await;
    assert_error(&got, StatusCode::BAD_GATEWAY, "provider_error");
    assert!(
        !got.1["message"]
            .as_str()
            .unwrap()
            .contains("fake-client-secret")
    );
    app.fake.push(Canned::error(418, "teapot"));
    let got = send(
        app.post("/v1/credentials/cal/application-calendar")
            .json(&json!({
                "provider": "cronofy", "application_calendar_id": "cal-1",
            })),
    )
    .await;
    assert_error(&got, StatusCode::BAD_GATEWAY, "provider_error");
    assert_eq!(app.token("bob").await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.token("cal").await.0, StatusCode::NOT_FOUND);

    // An import whose first refresh gets an answer tokend cannot read is
    // refused too: bad input changes nothing.
    app.fake.push(Canned::error(418, "teapot"));
    let got = send(app.put("/v1/credentials/carol").json(&json!({
        "provider": "cronofy", "refresh_token": "rt",
    })))
    .await;
    assert_error(&got, StatusCode::BAD_GATEWAY, "provider_error");
    assert!(
        got.1["message"].as_str().unwrap().contains("418"),
        "{}",
        got.1
    );
    assert_eq!(
        send(app.get("/v1/credentials/carol")).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_request_past_request_timeout_secs_gets_an_error_body() {
    let app = spawn_app_with(AppOptions {
        server_toml: "request_timeout_secs = 1".into(),
        ..AppOptions::default()
    })
    .await;
    assert_eq!(app.import("alice", "rt-a").await.0, StatusCode::CREATED);
    app.clock.advance(std::time::Duration::from_secs(3000));
    app.fake.set_delay(std::time::Duration::from_millis(1300));
    let got = send(app.get("/v1/tokens/alice?min_ttl=1000")).await;
    assert_error(&got, StatusCode::REQUEST_TIMEOUT, "request_timeout");
    // The refresh itself went on and its token is served.
    app.fake.set_delay(std::time::Duration::ZERO);
    eventually("the refreshed token", async || {
        app.token("alice").await.1["access_token"] == "at-2"
    })
    .await;
}
