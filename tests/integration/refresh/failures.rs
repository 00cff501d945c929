//! Provider trouble: backoff with full jitter, Retry-After, invalid_grant,
//! and application calendars that are provisioned again.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::fake_provider::Canned;
use crate::helpers::{send, spawn_app};

/// The cap of the n-th retry with the default settings (1 s doubling to 300 s).
fn cap_ms(n: u32) -> i64 {
    (1_000i64 << (n - 1).min(20)).min(300_000)
}

#[tokio::test]
async fn transient_failures_back_off_within_growing_bounds() {
    let app = spawn_app().await;
    app.import("alice", "rt-alice").await;
    let due = app.next_refresh_at("alice").await;
    for _ in 0..12 {
        app.fake.push(Canned::error(503, "temporarily_unavailable"));
    }
    app.advance_to(due + 1_000);
    let mut calls = 2;
    app.wait_refresh_calls(calls).await;
    for n in 1..=10u32 {
        crate::helpers::eventually("failure recorded", async || {
            app.view("alice").await["consecutive_failures"] == i64::from(n)
        })
        .await;
        let view = app.view("alice").await;
        assert_eq!(view["status"], "active", "5xx never kills a grant");
        assert_eq!(view["consecutive_failures"], i64::from(n), "{view}");
        let next = app.next_refresh_at("alice").await;
        let wait = next - app.clock.now();
        assert!(
            (0..=cap_ms(n) + 1_000).contains(&wait),
            "retry {n}: waits {wait} ms, cap {}",
            cap_ms(n)
        );
        if wait > 1_500 {
            app.advance_to(next - 1_000);
            app.assert_no_more_calls(calls).await;
        }
        app.advance_to(next + 1_000);
        calls += 1;
        app.wait_refresh_calls(calls).await;
    }
    // The still-valid token was served all along, with a warning.
    let (status, token) = app.token("alice").await;
    assert_eq!(status, StatusCode::OK);
    assert!(token["warnings"].is_array(), "{token}");
}

#[tokio::test]
async fn no_call_before_retry_after() {
    let app = spawn_app().await;
    app.import("alice", "rt-alice").await;
    let due = app.next_refresh_at("alice").await;
    app.fake
        .push(Canned::error(429, "rate_limited").header("retry-after", "120"));
    app.advance_to(due + 1_000);
    app.wait_refresh_calls(2).await;
    crate::helpers::eventually("the 429 recorded", async || {
        app.view("alice").await["consecutive_failures"] == 1
    })
    .await;
    let paused_at = app.clock.now();
    let next = app.next_refresh_at("alice").await;
    assert!(
        next >= paused_at + 120_000 && next <= paused_at + 133_000,
        "{}",
        next - paused_at
    );
    app.advance_to(paused_at + 119_000);
    app.assert_no_more_calls(2).await;
    app.advance_to(next + 1_000);
    app.wait_refresh_calls(3).await;
    crate::helpers::eventually("recovered", async || {
        app.view("alice").await["consecutive_failures"] == 0
    })
    .await;
}

#[tokio::test]
async fn invalid_grant_means_needs_reauth_and_silence() {
    let app = spawn_app().await;
    app.import("alice", "rt-alice").await;
    app.fake.revoke_refresh_token("rt-alice");
    let due = app.next_refresh_at("alice").await;
    app.advance_to(due + 1_000);
    app.wait_refresh_calls(2).await;
    crate::helpers::eventually("needs_reauth", async || {
        app.view("alice").await["status"] == "needs_reauth"
    })
    .await;
    // The last access token has not expired, but the grant is dead: 409.
    let (status, body) = app.token("alice").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "needs_reauth");
    for _ in 0..5 {
        app.clock.advance(Duration::from_secs(3600));
        let (status, _) = send(app.post("/v1/tokens/alice/refresh")).await;
        assert_eq!(status, StatusCode::CONFLICT);
    }
    // Importing the dead refresh token again is refused, without a call.
    let (status, body) = send(app.put("/v1/credentials/alice-again").json(&json!({
        "provider": "cronofy", "refresh_token": "rt-alice",
    })))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(
        send(app.get("/v1/credentials/alice-again")).await.0,
        StatusCode::NOT_FOUND
    );
    app.assert_no_more_calls(2).await;
}

#[tokio::test]
async fn application_calendar_is_provisioned_again_when_refused() {
    let app = spawn_app().await;
    let (status, view) = send(app.post("/v1/credentials/cal-1/application-calendar").json(
        &json!({
            "provider": "cronofy",
            "application_calendar_id": "team-calendar",
        }),
    ))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
    assert_eq!(view["application_calendar_id"], "team-calendar");
    let (_, first) = app.token("cal-1").await;
    // Someone revoked it: no person can re-authorize an application calendar.
    for rt in app.fake.valid_refresh_tokens() {
        app.fake.revoke_refresh_token(&rt);
    }
    let due = app.next_refresh_at("cal-1").await;
    app.advance_to(due + 1_000);
    let fake = app.fake.clone();
    crate::helpers::eventually("provisioned again", async || {
        fake.requests()
            .iter()
            .filter(|r| r.path == "/v1/application_calendars")
            .count()
            == 2
    })
    .await;
    crate::helpers::eventually("new token", async || {
        app.token("cal-1").await.1["access_token"] != first["access_token"]
    })
    .await;
    let view = app.view("cal-1").await;
    assert_eq!(view["status"], "active");
    assert_eq!(view["consecutive_failures"], 0);
}

#[tokio::test]
async fn a_database_error_before_the_call_keeps_the_grant_scheduled() {
    use tokend::store::Store;
    use tokend::store::crypto::MasterKey;
    use tokend::store::key::read_key;

    let app = spawn_app().await;
    app.import("alice", "rt-alice").await;
    let due = app.next_refresh_at("alice").await;
    // Another process re-keys the database: this daemon can no longer read grants.
    let original = read_key(&app.dir.path().join("tokend.key")).unwrap();
    let other = MasterKey::generate();
    let db = app.database();
    let store = Store::open(&db, &original, app.clock.clone())
        .await
        .unwrap();
    store.rotate_key(&other).await.unwrap();
    store.close().await;

    app.advance_to(due + 1_000);
    app.assert_no_more_calls(1).await;
    // The key comes back; the grant was not forgotten.
    let store = Store::open(&db, &other, app.clock.clone()).await.unwrap();
    store.rotate_key(&original).await.unwrap();
    store.close().await;
    app.clock.advance(Duration::from_secs(11));
    app.wait_refresh_calls(2).await;
}
