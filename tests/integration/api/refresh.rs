//! `POST /v1/tokens/{id}/refresh`: a forced refresh, the per-grant minimum
//! interval, `rejected_token` (an older token gets the newer one without a
//! call; the current one inside the window is 429 with `Retry-After`;
//! outside it, a refresh), and 20 concurrent calls making one provider call.

use std::time::Duration;

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{assert_error, retry_after, send_full};
use crate::helpers::{TestApp, send, spawn_app};

async fn force(
    app: &TestApp,
    body: Option<Value>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let request = app.post("/v1/tokens/alice/refresh");
    let request = match body {
        Some(b) => request.json(&b),
        None => request,
    };
    send_full(request).await
}

#[tokio::test]
async fn a_forced_refresh_replaces_the_token_once_per_window() {
    let app = spawn_app().await;
    assert_eq!(app.import("alice", "rt-a").await.0, StatusCode::CREATED);
    let (status, _, token) = force(&app, None).await;
    assert_eq!(status, StatusCode::OK, "{token}");
    assert_eq!(token["access_token"], "at-2");
    assert_eq!(token["expires_in"], 3599, "to the hand-out margin (1 s)");
    assert_eq!(app.fake.refresh_calls(), 2);
    // Inside force_refresh_min_interval_secs (10): the current token, no call.
    app.clock.advance(Duration::from_secs(5));
    for body in [None, Some(json!({}))] {
        let (status, _, token) = force(&app, body).await;
        assert_eq!(
            (status, &token["access_token"]),
            (StatusCode::OK, &json!("at-2"))
        );
    }
    assert_eq!(app.fake.refresh_calls(), 2);
    // Past the window, a forced refresh calls again.
    app.clock.advance(Duration::from_secs(6));
    let (_, _, token) = force(&app, None).await;
    assert_eq!(token["access_token"], "at-3");
    assert_eq!(app.fake.refresh_calls(), 3);
    assert_eq!(app.token("alice").await.1["access_token"], "at-3");
}

#[tokio::test]
async fn rejected_token_semantics() {
    let app = spawn_app().await;
    assert_eq!(app.import("alice", "rt-a").await.0, StatusCode::CREATED);
    let (_, _, first) = force(&app, Some(json!({"rejected_token": "at-1"}))).await;
    assert_eq!(
        first["access_token"], "at-2",
        "the current token was rejected: refreshed"
    );
    assert_eq!(app.fake.refresh_calls(), 2);

    // An older token: the newer one, no call, whatever the window.
    let (status, _, token) = force(&app, Some(json!({"rejected_token": "at-1"}))).await;
    assert_eq!(
        (status, &token["access_token"]),
        (StatusCode::OK, &json!("at-2"))
    );
    let (status, _, token) = force(&app, Some(json!({"rejected_token": "never-issued"}))).await;
    assert_eq!(
        (status, &token["access_token"]),
        (StatusCode::OK, &json!("at-2"))
    );
    assert_eq!(app.fake.refresh_calls(), 2);

    // The current token inside the window: 429 with the seconds left.
    app.clock.advance(Duration::from_secs(3));
    let (status, headers, body) = force(&app, Some(json!({"rejected_token": "at-2"}))).await;
    assert_error(
        &(status, body),
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
    );
    assert_eq!(retry_after(&headers), 7);
    assert_eq!(app.fake.refresh_calls(), 2);

    // Outside the window: refreshed.
    app.clock.advance(Duration::from_secs(7));
    let (status, _, token) = force(&app, Some(json!({"rejected_token": "at-2"}))).await;
    assert_eq!(
        (status, &token["access_token"]),
        (StatusCode::OK, &json!("at-3"))
    );
    assert_eq!(app.fake.refresh_calls(), 3);

    let bad = send(
        app.post("/v1/tokens/alice/refresh")
            .json(&json!({"token": "at-3"})),
    )
    .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "invalid_request");
}

#[tokio::test]
async fn twenty_concurrent_forced_refreshes_make_one_provider_call() {
    let app = spawn_app().await;
    assert_eq!(app.import("alice", "rt-a").await.0, StatusCode::CREATED);
    app.clock.advance(Duration::from_secs(60));
    // Slow enough that all twenty arrive while the first call is out.
    app.fake.set_delay(Duration::from_millis(300));
    let calls = (0..20).map(|i| {
        let body = if i % 2 == 0 {
            json!({})
        } else {
            json!({"rejected_token": "at-1"})
        };
        send(app.post("/v1/tokens/alice/refresh").json(&body))
    });
    let answers = join_all(calls).await;
    for (status, token) in &answers {
        assert_eq!(*status, StatusCode::OK, "{token}");
        assert_eq!(
            token["access_token"], "at-2",
            "everyone gets the one new token"
        );
    }
    assert_eq!(
        app.fake.refresh_calls(),
        2,
        "the import's call and exactly one more"
    );
}

#[tokio::test]
async fn concurrent_min_ttl_requests_share_one_refresh() {
    let app = spawn_app().await;
    assert_eq!(app.import("alice", "rt-a").await.0, StatusCode::CREATED);
    app.clock.advance(Duration::from_secs(3000));
    app.fake.set_delay(Duration::from_millis(300));
    // The scheduler's own refresh is due too: all of them share one call.
    let answers = join_all((0..20).map(|_| send(app.get("/v1/tokens/alice?min_ttl=1000")))).await;
    for (status, token) in &answers {
        assert_eq!(*status, StatusCode::OK, "{token}");
        assert_eq!(token["access_token"], "at-2");
    }
    assert_eq!(app.fake.refresh_calls(), 2);
}
