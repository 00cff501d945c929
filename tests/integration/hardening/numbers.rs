//! Absurd lifetimes are refused (import) or clamped (provider), and no
//! date tokend shows is impossible or wrapped to 1970.

use reqwest::StatusCode;
use serde_json::json;

use crate::api::assert_error;
use crate::helpers::{T0, parse_time, send, spawn_app};

/// `refresh.max_lifetime_secs` at its default.
const MAX_LIFETIME: u64 = 86_400;

#[tokio::test]
async fn an_import_with_an_unreasonable_lifetime_is_refused_naming_the_limit() {
    let app = spawn_app().await;
    app.fake.add_refresh_token("rt-a", json!({}));
    for expires_in in [u64::MAX, 1 << 63, 1_000_000_000_000, MAX_LIFETIME + 1] {
        let got = send(app.put("/v1/credentials/alice").json(&json!({
            "provider": "cronofy", "refresh_token": "rt-a",
            "access_token": "at-a", "expires_in": expires_in,
        })))
        .await;
        assert_error(&got, StatusCode::BAD_REQUEST, "invalid_request");
        let message = got.1["message"].as_str().unwrap();
        assert!(
            message.contains("expires_in") && message.contains("86400"),
            "says the limit: {message}"
        );
    }
    assert_eq!(
        send(app.get("/v1/credentials/alice")).await.0,
        StatusCode::NOT_FOUND,
        "bad input changed nothing"
    );
    assert!(app.fake.requests().is_empty());

    // The limit itself is fine.
    let (status, view) = send(app.put("/v1/credentials/alice").json(&json!({
        "provider": "cronofy", "refresh_token": "rt-a",
        "access_token": "at-a", "expires_in": MAX_LIFETIME,
    })))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
    assert_eq!(view["expires_at"], "2026-01-02T00:00:00Z");
}

#[tokio::test]
async fn a_provider_lifetime_past_the_limit_counts_as_max_lifetime_secs() {
    let app = spawn_app().await;
    for (id, expires_in) in [
        ("far", 1_000_000_000_000u64),
        ("huge", u64::MAX),
        ("long", MAX_LIFETIME * 3),
    ] {
        app.fake.set_expires_in(Some(expires_in));
        let (status, view) = app.import(id, &format!("rt-{id}")).await;
        assert_eq!(status, StatusCode::CREATED, "{id}: {view}");
        let expires_at = view["expires_at"].as_str().unwrap();
        assert_eq!(
            parse_time(expires_at),
            T0 + MAX_LIFETIME as i64 * 1000,
            "{id}: clamped to max_lifetime_secs, got {expires_at}"
        );
        let (status, token) = app.token(id).await;
        assert_eq!(status, StatusCode::OK, "{id}: {token}");
        assert_eq!(
            token["expires_in"],
            MAX_LIFETIME - 1,
            "{id}: to the 1 s margin"
        );
        assert_eq!(token["expires_at"], expires_at, "{id}");
    }
}
