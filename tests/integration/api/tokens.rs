//! `GET /v1/tokens/{id}`: the token response with provider extras, `min_ttl`
//! forcing a refresh, never an expired token, 503 `provider_unavailable`
//! with `Retry-After` when the provider is down (or rate limits us) and the
//! token has run out, `warnings` on a degraded grant, and 409 `needs_reauth`
//! for a dead grant even while its last token is unexpired.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use super::{assert_error, import_with_token, retry_after, send_full};
use crate::fake_provider::Canned;
use crate::helpers::{send, spawn_app};

#[tokio::test]
async fn hands_out_the_token_with_extras() {
    let app = spawn_app().await;
    app.fake.add_refresh_token(
        "rt-a",
        json!({"account_id": "acc_1", "sub": "sub_1", "linking_profile": {"profile_id": "p1"}}),
    );
    let (status, _) = send(app.put("/v1/credentials/alice").json(&json!({
        "provider": "cronofy", "refresh_token": "rt-a",
    })))
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, headers, token) = send_full(app.get("/v1/tokens/alice")).await;
    assert_eq!(status, StatusCode::OK, "{token}");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(token["credential_id"], "alice");
    assert_eq!(token["access_token"], "at-1");
    assert_eq!(token["token_type"], "bearer");
    assert_eq!(token["scope"], "read_write");
    // Up to the hand-out margin (1 s) before the expiry.
    assert_eq!(token["expires_in"], 3599);
    assert_eq!(token["expires_at"], "2026-01-01T01:00:00Z");
    assert_eq!(token["account_id"], "acc_1");
    assert_eq!(token["sub"], "sub_1");
    assert_eq!(token["linking_profile"]["profile_id"], "p1");
    assert!(
        token.get("warnings").is_none(),
        "a healthy grant has no warnings"
    );
    assert!(
        token.get("refresh_token").is_none(),
        "never the refresh token"
    );

    app.clock.advance(Duration::from_secs(600));
    let (_, later) = app.token("alice").await;
    assert_eq!(later["expires_in"], 2999, "expires_in follows the clock");
    assert_eq!(later["access_token"], "at-1", "served from memory");
    assert_eq!(app.fake.refresh_calls(), 1);
}

#[tokio::test]
async fn min_ttl_forces_a_refresh_only_when_needed() {
    let app = spawn_app().await;
    assert_eq!(app.import("alice", "rt-a").await.0, StatusCode::CREATED);
    // 3600 s left, of which the last (the hand-out margin) is never handed out.
    let (status, token) = send(app.get("/v1/tokens/alice?min_ttl=3598")).await;
    assert_eq!(
        (status, &token["access_token"]),
        (StatusCode::OK, &json!("at-1"))
    );
    assert_eq!(app.fake.refresh_calls(), 1, "enough left: no call");

    app.clock.advance(Duration::from_secs(1000));
    let (status, token) = send(app.get("/v1/tokens/alice?min_ttl=2700")).await;
    assert_eq!(status, StatusCode::OK, "{token}");
    assert_eq!(token["access_token"], "at-2", "refreshed first");
    assert!(token["expires_in"].as_u64().unwrap() > 2700);
    assert_eq!(app.fake.refresh_calls(), 2);
    // The refreshed token is what everyone gets now.
    assert_eq!(app.token("alice").await.1["access_token"], "at-2");

    // No token can ever satisfy a min_ttl at or past the lifetime less the margin.
    let got = send(app.get("/v1/tokens/alice?min_ttl=3599")).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(app.fake.refresh_calls(), 2);
}

#[tokio::test]
async fn provider_down_and_token_expired_is_503_with_retry_after() {
    let app = spawn_app().await;
    assert_eq!(app.import("alice", "rt-a").await.0, StatusCode::CREATED);
    // Two failures: the scheduler's attempt and maybe the request's own.
    app.fake.push(Canned::error(503, "temporarily_unavailable"));
    app.fake.push(Canned::error(503, "temporarily_unavailable"));
    app.clock.advance(Duration::from_secs(3601));
    let (status, headers, body) = send_full(app.get("/v1/tokens/alice")).await;
    let got = (status, body);
    assert_error(
        &got,
        StatusCode::SERVICE_UNAVAILABLE,
        "provider_unavailable",
    );
    assert!(retry_after(&headers) >= 1);
    assert!(
        !got.1.to_string().contains("at-1"),
        "never the expired token"
    );
    assert!(
        app.fake.refresh_calls() >= 2,
        "the import and a failed attempt"
    );

    // The provider is back: once the backoff has passed, a new token is served.
    let mut served = None;
    for _ in 0..5 {
        app.clock.advance(Duration::from_secs(10));
        let (status, token) = app.token("alice").await;
        if status == StatusCode::OK {
            served = Some(token);
            break;
        }
    }
    let token = served.expect("a token once the provider answers again");
    assert_ne!(token["access_token"], "at-1");
    assert!(token["expires_in"].as_u64().unwrap() > 3000);
}

#[tokio::test]
async fn a_degraded_grant_still_serves_its_valid_token_with_warnings() {
    let app = spawn_app().await;
    assert_eq!(app.import("alice", "rt-a").await.0, StatusCode::CREATED);
    app.clock.advance(Duration::from_secs(2000));
    app.fake.push(Canned::error(500, "server_error"));
    // 1600 s left, 2000 asked: a refresh is tried and fails.
    let (status, headers, body) = send_full(app.get("/v1/tokens/alice?min_ttl=2000")).await;
    assert_error(
        &(status, body),
        StatusCode::SERVICE_UNAVAILABLE,
        "provider_unavailable",
    );
    assert!(retry_after(&headers) >= 1);
    // Without min_ttl the still-valid token is served, with a warning.
    let (status, token) = app.token("alice").await;
    assert_eq!(status, StatusCode::OK, "{token}");
    assert_eq!(token["access_token"], "at-1");
    assert_eq!(token["expires_in"], 1599, "to the hand-out margin");
    let warnings = token["warnings"].as_array().expect("a warnings array");
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].as_str().unwrap().contains("1 time"), "{token}");
    let (_, view) = send(app.get("/v1/credentials/alice")).await;
    assert_eq!(
        view["status"], "active",
        "transient trouble is no status change"
    );
    assert_eq!(view["consecutive_failures"], 1);
    assert!(view["last_error"].as_str().is_some());
}

#[tokio::test]
async fn a_dead_grant_is_409_even_with_an_unexpired_token() {
    let app = spawn_app().await;
    assert_eq!(
        import_with_token(&app, "alice", "cronofy", "rt-a").await.0,
        201
    );
    app.fake.revoke_refresh_token("rt-a");
    let got = send(app.post("/v1/tokens/alice/refresh")).await;
    assert_error(&got, StatusCode::CONFLICT, "needs_reauth");
    let got = app.token("alice").await;
    assert_error(&got, StatusCode::CONFLICT, "needs_reauth");
    assert!(!got.1.to_string().contains("at-imported"));
    let got = send(app.get("/v1/tokens/alice?min_ttl=10")).await;
    assert_error(&got, StatusCode::CONFLICT, "needs_reauth");
    let got = send(app.post("/v1/tokens/alice/refresh")).await;
    assert_error(&got, StatusCode::CONFLICT, "needs_reauth");
    assert_eq!(
        app.fake.refresh_calls(),
        1,
        "no more calls for a dead grant"
    );
    let (_, view) = send(app.get("/v1/credentials/alice")).await;
    assert_eq!(view["status"], "needs_reauth");
}

#[tokio::test]
async fn a_rate_limited_provider_gives_its_retry_after() {
    let app = spawn_app().await;
    assert_eq!(app.import("alice", "rt-a").await.0, StatusCode::CREATED);
    app.fake
        .push(Canned::error(429, "too_many_requests").header("retry-after", "120"));
    app.clock.advance(Duration::from_secs(3601));
    let (status, headers, body) = send_full(app.get("/v1/tokens/alice")).await;
    assert_error(
        &(status, body),
        StatusCode::SERVICE_UNAVAILABLE,
        "provider_unavailable",
    );
    let wait = retry_after(&headers);
    assert!(
        (120..=135).contains(&wait),
        "the provider's pause, got {wait}"
    );
    let (_, view) = send(app.get("/v1/credentials/alice")).await;
    assert_eq!(view["status"], "active", "a 429 is never needs_reauth");
}
