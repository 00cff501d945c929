//! What tokend believes about a token's life: its expiry counts from when
//! the request was sent, a hand-out margin keeps the last second of it
//! back, and only a lifetime the provider issued bounds `min_ttl`.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{T0, send, spawn_app};

#[tokio::test]
async fn an_imported_tokens_remaining_time_does_not_bound_min_ttl() {
    let app = spawn_app().await;
    app.fake.set_expires_in(Some(60));
    app.fake.add_refresh_token("rt-imp", json!({}));
    // Imported with 20 s left: the provider issues 60 s tokens.
    let (status, view) = send(app.put("/v1/credentials/imp").json(&json!({
        "provider": "cronofy", "refresh_token": "rt-imp",
        "access_token": "at-imported", "expires_in": 20,
    })))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{view}");

    let (status, token) = send(app.get("/v1/tokens/imp?min_ttl=30")).await;
    assert_eq!(status, StatusCode::OK, "refresh and see: {token}");
    assert_ne!(token["access_token"], "at-imported");
    assert!(token["expires_in"].as_i64().unwrap() > 30, "{token}");
    assert_eq!(app.fake.refresh_calls(), 1);

    // Now the provider's lifetime is known: what it cannot meet is 400, no call.
    let (status, body) = send(app.get("/v1/tokens/imp?min_ttl=60")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_request");
    assert!(
        body["message"].as_str().unwrap().contains("(60 s)"),
        "{body}"
    );
    assert_eq!(app.fake.refresh_calls(), 1);
    // The configured maximum bounds every lifetime, known or not.
    let (status, body) = send(app.get("/v1/tokens/imp?min_ttl=86400")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(app.fake.refresh_calls(), 1);
}

#[tokio::test]
async fn a_min_ttl_the_fresh_token_cannot_meet_is_400_after_the_refresh() {
    let app = spawn_app().await;
    app.fake.set_expires_in(Some(60));
    app.fake.add_refresh_token("rt-imp", json!({}));
    send(app.put("/v1/credentials/imp").json(&json!({
        "provider": "cronofy", "refresh_token": "rt-imp",
        "access_token": "at-imported", "expires_in": 20,
    })))
    .await;
    // Unknown lifetime: one refresh shows 60 s cannot meet 100 s.
    let (status, body) = send(app.get("/v1/tokens/imp?min_ttl=100")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("(60 s)"),
        "{body}"
    );
    assert_eq!(app.fake.refresh_calls(), 1);
    let (status, _) = send(app.get("/v1/tokens/imp?min_ttl=100")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(app.fake.refresh_calls(), 1, "known now: no second call");
}

#[tokio::test]
async fn no_token_is_handed_out_that_the_server_already_considers_expired() {
    let app = spawn_app().await;
    // The server dates expiry from when it issued the token, rounded down
    // to the second, and its answer takes 0.8 s to arrive.
    app.fake.use_clock(app.clock.clone());
    app.fake.round_issue_time_down(true);
    app.fake.answer_takes_on_clock(Duration::from_millis(800));
    app.fake.set_expires_in(Some(60));
    app.clock.advance(Duration::from_millis(700));
    let (status, view) = app.import("alice", "rt-alice").await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
    let (_, first) = app.token("alice").await;
    let token = first["access_token"].as_str().unwrap().to_owned();
    let server_expiry = app.fake.access_token_life(&token).unwrap().expires_at;
    assert_eq!(server_expiry, Some(T0 + 60_000));
    // Refreshes fail from now on (our client secret is refused), so the
    // token is handed out until tokend counts it as expired.
    app.fake.set_client_secrets(&["another-secret"]);

    let mut last_handed_out = None;
    let mut at = T0 + 50_000;
    while at < T0 + 62_000 {
        app.advance_to(at);
        let (status, body) = app.token("alice").await;
        if status == StatusCode::OK {
            assert_eq!(body["access_token"], token.as_str());
            assert!(
                app.fake.access_token_valid(&token, app.clock.now()),
                "handed out at T0 + {} ms, after the server's expiry: {body}",
                at - T0
            );
            let expires_in = body["expires_in"].as_i64().unwrap();
            assert!(
                app.clock.now() + expires_in * 1000 < T0 + 60_000,
                "expires_in {expires_in} at T0 + {} ms outlives the token",
                at - T0
            );
            last_handed_out = Some(at);
        }
        at += 100;
    }
    // Handed out up to the margin (1 s) before the expiry dated from the
    // request's sending (T0 + 60.7 s), not from the answer (T0 + 61.5 s).
    assert_eq!(last_handed_out, Some(T0 + 59_600));
}
