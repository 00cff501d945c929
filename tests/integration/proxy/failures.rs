//! tokend's own answers on the proxy route, each marked `X-Tokend-Error: 1`:
//! an API that is slow (504) or unreachable (502), a body over the limit
//! (413), no such credential (404), a dead grant (409), a method never
//! forwarded (405), and an expired token that cannot be refreshed (503):
//! an expired token is never sent.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::{app_with_alice, assert_own, bearers, call, proxy};
use crate::fake_provider::Canned;
use crate::helpers::{AppOptions, send};

#[tokio::test]
async fn a_slow_api_is_504_after_the_providers_timeout() {
    let app = app_with_alice(AppOptions {
        env: vec![(
            "TOKEND__PROVIDERS__CRONOFY__REQUEST_TIMEOUT_SECS".into(),
            "1".into(),
        )],
        ..AppOptions::default()
    })
    .await;
    app.fake
        .push(Canned::json(200, json!({})).delay(Duration::from_secs(3)));
    let started = Instant::now();
    let got = call(proxy(&app, Method::GET, "alice/api/echo/x")).await;
    assert_own(&got, StatusCode::GATEWAY_TIMEOUT, "upstream_timeout");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_millis(2900),
        "{waited:?}"
    );
}

#[tokio::test]
async fn an_unreachable_api_is_502() {
    // A port nothing listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = app_with_alice(AppOptions {
        env: vec![(
            "TOKEND__PROVIDERS__GOOGLE__API_BASE_URL".into(),
            format!("http://127.0.0.1:{port}"),
        )],
        ..AppOptions::default()
    })
    .await;
    app.fake.add_refresh_token("rt-g", json!({}));
    let (status, _) = send(app.put("/v1/credentials/g").json(&json!({
        "provider": "google", "refresh_token": "rt-g",
    })))
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let got = call(proxy(&app, Method::GET, "g/x")).await;
    assert_own(&got, StatusCode::BAD_GATEWAY, "upstream_unreachable");
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_before_any_call() {
    let app = app_with_alice(AppOptions {
        server_toml: "max_body_bytes = 1024".into(),
        ..AppOptions::default()
    })
    .await;
    let got = call(proxy(&app, Method::POST, "alice/api/echo/x").body(vec![b'a'; 2000])).await;
    assert_own(&got, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let got = call(proxy(&app, Method::POST, "alice/api/echo/x").body(vec![b'a'; 1024])).await;
    assert_eq!(got.0, StatusCode::OK, "at the limit is fine");
    assert_eq!(
        app.fake.api_requests().len(),
        1,
        "only the one within the limit"
    );
}

#[tokio::test]
async fn no_such_credential_is_404_and_a_dead_grant_409() {
    let app = app_with_alice(AppOptions::default()).await;
    let got = call(proxy(&app, Method::GET, "nobody/api/echo/x")).await;
    assert_own(&got, StatusCode::NOT_FOUND, "not_found");

    // The grant dies at the next refresh; its unexpired token is not used.
    app.fake.revoke_refresh_token("rt-alice");
    let (status, _) = send(app.post("/v1/tokens/alice/refresh")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let got = call(proxy(&app, Method::GET, "alice/api/echo/x")).await;
    assert_own(&got, StatusCode::CONFLICT, "needs_reauth");
    assert!(app.fake.api_requests().is_empty());
}

#[tokio::test]
async fn trace_is_never_forwarded() {
    let app = app_with_alice(AppOptions::default()).await;
    let got = call(proxy(&app, Method::TRACE, "alice/api/echo/x")).await;
    assert_own(&got, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    assert!(app.fake.api_requests().is_empty());
}

#[tokio::test]
async fn an_expired_token_is_never_forwarded() {
    let app = app_with_alice(AppOptions::default()).await;
    // Two failures: the scheduler's attempt and maybe the request's own.
    app.fake.push(Canned::error(503, "temporarily_unavailable"));
    app.fake.push(Canned::error(503, "temporarily_unavailable"));
    app.clock.advance(Duration::from_secs(3601));
    let got = call(proxy(&app, Method::GET, "alice/api/echo/x")).await;
    assert_own(
        &got,
        StatusCode::SERVICE_UNAVAILABLE,
        "provider_unavailable",
    );
    assert!(
        app.fake.api_requests().is_empty(),
        "at-1 has expired: not sent"
    );

    // The provider is back: once the backoff has passed, the new token goes.
    let mut status = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..5 {
        app.clock.advance(Duration::from_secs(10));
        status = call(proxy(&app, Method::GET, "alice/api/echo/x")).await.0;
        if status == StatusCode::OK {
            break;
        }
    }
    assert_eq!(status, StatusCode::OK);
    let sent = bearers(&app);
    assert!(
        !sent.is_empty() && !sent.contains(&"Bearer at-1".to_owned()),
        "{sent:?}"
    );
}
