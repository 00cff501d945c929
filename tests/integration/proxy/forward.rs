//! What crosses the proxy: method, path, query, body and headers (less
//! tokend's own and the hops), the token; and what comes back: status,
//! headers (less hops and cookies), a body streamed through.

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::{app_with_alice, assert_own, assert_passed_back, bearers, call, proxy};
use crate::fake_provider::Canned;
use crate::helpers::{AppOptions, send};

#[tokio::test]
async fn forwards_the_request_with_the_token_and_passes_the_answer_back() {
    let app = app_with_alice(AppOptions::default()).await;
    let got = call(
        proxy(&app, Method::GET, "alice/api/echo/a%20b/c?x=%2F&y=1")
            .header("x-custom", "one")
            .header("accept", "application/json")
            .header("cookie", "session=secret")
            .header("proxy-authorization", "Basic eDp5")
            .header("connection", "keep-alive, x-hop")
            .header("x-hop", "1"),
    )
    .await;
    let (status, headers, echo) = &got;
    assert_eq!(*status, StatusCode::OK, "{echo}");
    assert_passed_back(headers);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(
        headers["cache-control"], "no-store",
        "filled in where the API sent none"
    );
    assert_eq!(echo["method"], "GET");
    assert_eq!(
        echo["path"], "/api/echo/a%20b/c",
        "the path as sent, still encoded"
    );
    assert_eq!(echo["query"], "x=%2F&y=1");
    let h = &echo["headers"];
    assert_eq!(
        h["authorization"],
        json!(["Bearer at-1"]),
        "the credential's token, not our key"
    );
    assert_eq!(h["x-custom"], json!(["one"]));
    assert_eq!(h["accept"], json!(["application/json"]));
    for gone in ["cookie", "proxy-authorization", "x-hop", "content-length"] {
        assert!(h.get(gone).is_none(), "{gone} is not forwarded: {h}");
    }
    let host = h["host"][0].as_str().unwrap();
    assert!(app.fake.url.ends_with(host), "Host is the API's: {host}");
    assert_eq!(app.fake.refresh_calls(), 1, "the cached token, no refresh");
}

#[tokio::test]
async fn the_answer_keeps_its_headers_less_cookies() {
    let app = app_with_alice(AppOptions::default()).await;
    app.fake.push(
        Canned::json(201, json!({"made": true}))
            .header("set-cookie", "tracking=1")
            .header("x-api-request-id", "req-7")
            .header("cache-control", "max-age=60"),
    );
    let (status, headers, body) =
        call(proxy(&app, Method::PUT, "alice/api/echo/things/1").json(&json!({"name": "n"}))).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_passed_back(&headers);
    assert_eq!(body, json!({"made": true}));
    assert!(headers.get("set-cookie").is_none());
    assert_eq!(headers["x-api-request-id"], "req-7");
    assert_eq!(
        headers["cache-control"], "max-age=60",
        "the API's own caching header"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
}

#[tokio::test]
async fn cronofy_calls_go_to_its_api_host() {
    let app = app_with_alice(AppOptions::default()).await;
    let (status, headers, body) = call(proxy(&app, Method::GET, "alice/v1/calendars")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_passed_back(&headers);
    assert_eq!(body["calendars"][0]["calendar_id"], "cal_fake_1");
    assert_eq!(app.fake.api_calls(), ["at-1"]);
}

/// Imports `g` at the oauth2 provider `google`.
async fn import_google(app: &crate::helpers::TestApp) {
    app.fake.add_refresh_token("rt-g", json!({}));
    let (status, body) = send(app.put("/v1/credentials/g").json(&json!({
        "provider": "google", "refresh_token": "rt-g",
    })))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn an_oauth2_provider_needs_its_api_base_url() {
    let app = app_with_alice(AppOptions::default()).await;
    import_google(&app).await;
    let got = call(proxy(&app, Method::GET, "g/api/echo/x")).await;
    assert_own(&got, StatusCode::BAD_REQUEST, "invalid_request");
    let message = got.2["message"].as_str().unwrap();
    assert!(
        message.contains("providers.google.api_base_url"),
        "{message}"
    );
    assert!(app.fake.api_requests().is_empty(), "no call");
}

#[tokio::test]
async fn an_oauth2_base_with_a_path_keeps_it() {
    let fake = crate::fake_provider::FakeProvider::start().await;
    let base = format!("{}/api", fake.url);
    let app = app_with_alice(AppOptions {
        env: vec![("TOKEND__PROVIDERS__GOOGLE__API_BASE_URL".into(), base)],
        fake: Some(fake),
        ..AppOptions::default()
    })
    .await;
    import_google(&app).await;
    let (status, headers, echo) =
        call(proxy(&app, Method::DELETE, "g/echo/items/9?hard=true")).await;
    assert_eq!(status, StatusCode::OK, "{echo}");
    assert_passed_back(&headers);
    assert_eq!(echo["method"], "DELETE");
    assert_eq!(echo["path"], "/api/echo/items/9");
    assert_eq!(echo["query"], "hard=true");
    assert_eq!(
        bearers(&app),
        ["Bearer at-2"],
        "google's token (alice has at-1)"
    );
}

#[tokio::test]
async fn a_large_answer_streams_through_whole() {
    let app = app_with_alice(AppOptions::default()).await;
    let size = 8 * 1024 * 1024 + 3;
    let response = proxy(&app, Method::GET, &format!("alice/api/stream/{size}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_passed_back(response.headers());
    assert_eq!(
        response.headers()["content-type"],
        "application/octet-stream"
    );
    let mut response = response;
    let mut total = 0;
    while let Some(chunk) = response.chunk().await.unwrap() {
        assert!(chunk.iter().all(|&b| b == b'x'));
        total += chunk.len();
    }
    assert_eq!(total, size);
}
