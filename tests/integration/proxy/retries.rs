//! The API's answers: a 401 causes one forced refresh naming the refused
//! token and one resend (a POST body resent byte for byte); a second 401,
//! a 403, a 429 and redirects are passed back; a 429 pauses the provider.

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::{app_with_alice, assert_own, assert_passed_back, bearers, call, proxy};
use crate::api::retry_after;
use crate::fake_provider::Canned;
use crate::helpers::AppOptions;

#[tokio::test]
async fn a_401_refreshes_once_and_resends_the_same_post() {
    let app = app_with_alice(AppOptions::default()).await;
    app.fake.api_reject_issued_tokens();
    let body = r#"{"event": {"summary": "Stand-up", "ünïcode": true}}"#;
    let (status, headers, echo) = call(
        proxy(&app, Method::POST, "alice/api/echo/events?notify=1")
            .header("content-type", "application/json")
            .header("x-request-id", "r-1")
            .body(body),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{echo}");
    assert_passed_back(&headers);
    assert_eq!(bearers(&app), ["Bearer at-1", "Bearer at-2"]);
    let sent = app.fake.api_requests();
    for r in &sent {
        assert_eq!(r.method, "POST");
        assert_eq!(r.query, "notify=1");
        assert_eq!(r.body, body, "the body, byte for byte");
        assert_eq!(r.headers["content-type"], "application/json");
        assert_eq!(r.headers["x-request-id"], "r-1");
        assert_eq!(r.headers["content-length"], body.len().to_string());
    }
    assert_eq!(app.fake.refresh_calls(), 2, "the import's and one forced");
    // Everyone now gets the new token.
    assert_eq!(app.token("alice").await.1["access_token"], "at-2");
}

#[tokio::test]
async fn a_second_401_is_passed_back() {
    let app = app_with_alice(AppOptions::default()).await;
    app.fake.api_reject_all();
    let (status, headers, body) = call(proxy(&app, Method::GET, "alice/api/echo/x")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_passed_back(&headers);
    assert_eq!(body, json!({"error": "invalid_token"}), "the API's body");
    assert_eq!(
        bearers(&app),
        ["Bearer at-1", "Bearer at-2"],
        "one resend only"
    );
    assert_eq!(app.fake.refresh_calls(), 2);
}

#[tokio::test]
async fn a_403_is_passed_back_without_a_refresh() {
    let app = app_with_alice(AppOptions::default()).await;
    app.fake.push(Canned::json(
        403,
        json!({"error": "insufficient_scope", "scope": "write_events"}),
    ));
    let (status, headers, body) = call(proxy(&app, Method::GET, "alice/api/echo/x")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_passed_back(&headers);
    assert_eq!(body["error"], "insufficient_scope");
    assert_eq!(app.fake.api_requests().len(), 1);
    assert_eq!(app.fake.refresh_calls(), 1, "no refresh: it cannot help");
}

#[tokio::test]
async fn a_429_is_passed_back_and_pauses_the_providers_refreshes() {
    let app = app_with_alice(AppOptions::default()).await;
    app.fake
        .push(Canned::json(429, json!({"error": "slow down"})).header("retry-after", "120"));
    let (status, headers, body) = call(proxy(&app, Method::GET, "alice/api/echo/x")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_passed_back(&headers);
    assert_eq!(retry_after(&headers), 120);
    assert_eq!(body["error"], "slow down");

    // A refresh now stays away from the provider until the pause ends.
    let got = call(app.post("/v1/tokens/alice/refresh")).await;
    assert_eq!(got.0, StatusCode::SERVICE_UNAVAILABLE, "{}", got.2);
    assert!(retry_after(&got.1) > 100, "{:?}", got.1);
    assert_eq!(
        app.fake.refresh_calls(),
        1,
        "no refresh call during the pause"
    );
    let metrics = app
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("tokend_provider_rate_limit_pauses_total{provider=\"cronofy\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn redirects_are_passed_back_never_followed() {
    let app = app_with_alice(AppOptions::default()).await;
    let elsewhere = format!("{}/api/echo/elsewhere", app.fake.url);
    app.fake
        .push(Canned::new(302, "").header("location", &elsewhere));
    let no_redirects = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let request = no_redirects
        .get(format!("{}/v1/proxy/alice/api/echo/x", app.url))
        .bearer_auth(&app.key);
    let (status, headers, _) = call(request).await;
    assert_eq!(status, StatusCode::FOUND);
    assert_passed_back(&headers);
    assert_eq!(headers["location"], elsewhere.as_str());
    assert_eq!(app.fake.api_requests().len(), 1, "not followed");
}

#[tokio::test]
async fn a_dead_grant_found_by_the_401_is_409() {
    let app = app_with_alice(AppOptions::default()).await;
    app.fake.api_reject_issued_tokens();
    app.fake.revoke_refresh_token("rt-alice");
    let got = call(proxy(&app, Method::GET, "alice/api/echo/x")).await;
    assert_own(&got, StatusCode::CONFLICT, "needs_reauth");
    assert_eq!(
        bearers(&app),
        ["Bearer at-1"],
        "no resend without a new token"
    );
}
