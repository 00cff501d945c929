//! Hand-outs while a refresh of the grant is calling the provider: some
//! servers (django-oauth-toolkit) revoke the old access token the moment
//! they issue the new one, so a hand-out waits for the new token, up to
//! `refresh.handout_wait_ms`, and only then gets the old one.

use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::{AppOptions, TestApp, eventually, send, spawn_app, spawn_app_with};

/// Imports alice, makes the provider slow, and starts her scheduled
/// refresh; returns her old access token once the provider has the request.
async fn refresh_under_way(app: &TestApp, answer_takes: Duration) -> String {
    app.fake.use_clock(app.clock.clone());
    app.fake.revoke_access_on_refresh(true);
    let (status, view) = app.import("alice", "rt-alice").await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
    let (_, first) = app.token("alice").await;
    let old = first["access_token"].as_str().unwrap().to_owned();
    app.fake.set_delay(answer_takes);
    let due = app.next_refresh_at("alice").await;
    app.advance_to(due + 1_000);
    let fake = app.fake.clone();
    eventually("the refresh reached the provider", async || {
        fake.refresh_calls() == 2
    })
    .await;
    old
}

#[tokio::test]
async fn hand_outs_during_a_refresh_wait_for_the_new_token() {
    let app = spawn_app().await;
    let old = refresh_under_way(&app, Duration::from_millis(800)).await;
    // The server counts the old token revoked from now on.
    let hand_outs = (0..12).map(|i| {
        let path = match i % 3 {
            0 => "/v1/tokens/alice",
            1 => "/v1/tokens/alice?min_ttl=60",
            _ => "/v1/tokens/alice/refresh",
        };
        let request = if i % 3 == 2 {
            app.post(path)
        } else {
            app.get(path)
        };
        send(request)
    });
    let answers = futures::future::join_all(hand_outs).await;
    let now = app.clock.now();
    for (status, body) in answers {
        assert_eq!(status, StatusCode::OK, "{body}");
        let token = body["access_token"].as_str().unwrap();
        assert_ne!(
            token, old,
            "the old token was handed out during the refresh"
        );
        assert!(app.fake.access_token_valid(token, now), "{body}");
    }
    assert_eq!(
        app.fake.refresh_calls(),
        2,
        "everyone waited for the one refresh"
    );
}

#[tokio::test]
async fn the_wait_is_bounded_then_the_old_token_is_handed_out() {
    let app = spawn_app_with(AppOptions {
        extra_toml: "[refresh]\nhandout_wait_ms = 50\n".into(),
        ..Default::default()
    })
    .await;
    let old = refresh_under_way(&app, Duration::from_millis(1500)).await;
    let started = std::time::Instant::now();
    let (status, body) = app.token("alice").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["access_token"],
        old.as_str(),
        "still valid by its expiry"
    );
    assert!(
        started.elapsed() < Duration::from_millis(1200),
        "no wait for the whole answer"
    );
    // The refresh goes on, and its token is handed out once it is in.
    app.wait_token("alice", |t| t["access_token"] != old.as_str())
        .await;
}
