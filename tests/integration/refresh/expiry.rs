//! What tokend believes about a token's life: only a lifetime the provider
//! issued bounds `min_ttl`.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{send, spawn_app};

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
