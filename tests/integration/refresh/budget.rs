//! The refresh budget (`refresh_share`, `refresh_mode`): background
//! refreshes within their share of the provider's rate, token requests
//! before them, none at all `on_demand`.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{AppOptions, TestApp, send, spawn_app_with};

/// A daemon whose Cronofy provider allows `per_minute` calls (burst
/// `burst`), with `settings` as further `providers.cronofy` keys.
pub(super) async fn app_with_limit(
    per_minute: u32,
    burst: u32,
    settings: &[(&str, &str)],
) -> TestApp {
    let mut env = vec![
        (
            "TOKEND__PROVIDERS__CRONOFY__MAX_REQUESTS_PER_MINUTE".to_owned(),
            per_minute.to_string(),
        ),
        (
            "TOKEND__PROVIDERS__CRONOFY__BURST".to_owned(),
            burst.to_string(),
        ),
    ];
    for (key, value) in settings {
        env.push((
            format!("TOKEND__PROVIDERS__CRONOFY__{}", key.to_uppercase()),
            (*value).to_owned(),
        ));
    }
    spawn_app_with(AppOptions {
        env,
        ..AppOptions::default()
    })
    .await
}

/// The value of gauge `name` for provider `cronofy` at `GET /metrics`.
pub(super) async fn gauge(app: &TestApp, name: &str) -> f64 {
    let (status, body) = send(app.get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    let prefix = format!("{name}{{provider=\"cronofy\"}} ");
    let text = body.as_str().unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
        .parse()
        .unwrap()
}

/// Imports `id` with an access token valid `expires_in` seconds: no call.
pub(super) async fn import_warm(app: &TestApp, id: &str, expires_in: u64) {
    let rt = format!("rt-{id}");
    app.fake.add_refresh_token(&rt, json!({}));
    let (status, body) = send(app.put(&format!("/v1/credentials/{id}")).json(&json!({
        "provider": "cronofy",
        "refresh_token": rt,
        "access_token": format!("at-{id}"),
        "expires_in": expires_in,
    })))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn background_refreshes_keep_to_their_share_and_token_requests_go_first() {
    // 60 calls a minute, half for background refreshes: 30 a minute, a
    // permit every 2 s, at most 2 at once.
    let app = app_with_limit(60, 2, &[("refresh_share", "0.5")]).await;
    for i in 0..10 {
        import_warm(&app, &format!("c{i}"), 3600).await;
    }
    assert_eq!(app.fake.refresh_calls(), 0);
    // Every grant is due (12 to 15 minutes before expiry).
    app.clock.advance(Duration::from_secs(50 * 60));
    app.wait_refresh_calls(2).await;
    app.assert_no_more_calls(2).await;

    // A token request that needs a refresh does not queue behind the eight
    // grants waiting for the budget: it takes the provider's next cell (1 s).
    let mut waiting = Vec::new();
    for i in 0..10 {
        let id = format!("c{i}");
        if app.token(&id).await.1["access_token"] == format!("at-{id}") {
            waiting.push(id);
        }
    }
    assert_eq!(waiting.len(), 8, "{waiting:?}");
    let last = waiting.pop().unwrap();
    let app = std::sync::Arc::new(app);
    let a = app.clone();
    let path = format!("/v1/tokens/{last}?min_ttl=3000");
    let request = tokio::spawn(async move { send(a.get(&path)).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    app.clock.advance(Duration::from_secs(1));
    let (status, token) = tokio::time::timeout(Duration::from_secs(5), request)
        .await
        .expect("the request got the provider's next cell")
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{token}");
    assert!(token["expires_in"].as_i64().unwrap() > 3000, "{token}");
    app.wait_refresh_calls(3).await;
    app.assert_no_more_calls(3).await;

    // Then the budget's rate: one background refresh every 2 s.
    for step in 1..=7 {
        app.clock.advance(Duration::from_secs(2));
        app.wait_refresh_calls(3 + step).await;
        app.assert_no_more_calls(3 + step).await;
    }
    // The last one was refreshed by the request: nothing is left.
    app.clock.advance(Duration::from_secs(10));
    app.assert_no_more_calls(10).await;
    for i in 0..10 {
        let (status, token) = app.token(&format!("c{i}")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(token["expires_in"].as_i64().unwrap() > 3000, "{token}");
    }
}

#[tokio::test]
async fn on_demand_refreshes_only_when_a_request_needs_it() {
    let app = app_with_limit(600, 10, &[("refresh_mode", "on_demand")]).await;
    import_warm(&app, "alice", 3600).await;
    // Due, then expired: no background refresh.
    app.clock.advance(Duration::from_secs(50 * 60));
    app.assert_no_more_calls(0).await;
    let (status, token) = app.token("alice").await;
    assert_eq!(status, StatusCode::OK, "still valid: handed out as it is");
    assert_eq!(token["access_token"], "at-alice");
    app.clock.advance(Duration::from_secs(11 * 60));
    app.assert_no_more_calls(0).await;
    // Expired: the request refreshes first, once.
    let (status, token) = app.token("alice").await;
    assert_eq!(status, StatusCode::OK, "{token}");
    assert_ne!(token["access_token"], "at-alice");
    assert_eq!(app.fake.refresh_calls(), 1);
    // And the new token is not refreshed in the background either.
    app.clock.advance(Duration::from_secs(59 * 60));
    app.assert_no_more_calls(1).await;
}
