//! Credentials arriving: `PUT /v1/credentials/{id}` (201 new, 200 replaced,
//! with or without an access token, a transient first failure stored and
//! retried), authorization-code exchange, Cronofy application calendars
//! (provisioned again when refused), and linked accounts (one refresh token,
//! one grant, one refresh for both, each credential keeping its own extras).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use super::{assert_error, import_with_token};
use crate::fake_provider::Canned;
use crate::helpers::{AppOptions, REDIRECT_URI, eventually, send, spawn_app, spawn_app_with};

#[tokio::test]
async fn import_creates_then_replaces() {
    let app = spawn_app().await;
    let (status, view) = import_with_token(&app, "alice", "google", "rt-a").await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
    assert_eq!(view["id"], "alice");
    assert_eq!(view["provider"], "google");
    assert_eq!(view["expires_at"], "2026-01-01T01:00:00Z");
    assert!(
        app.fake.requests().is_empty(),
        "an access token was given: no call"
    );
    let (status, token) = app.token("alice").await;
    assert_eq!(
        (status, &token["access_token"]),
        (StatusCode::OK, &json!("at-imported-alice"))
    );

    // The same id again: replaced, 200; without an access token: refreshed.
    app.fake.add_refresh_token("rt-a2", json!({}));
    let (status, view) = send(app.put("/v1/credentials/alice").json(&json!({
        "provider": "google", "refresh_token": "rt-a2", "scope": "calendar",
    })))
    .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(app.fake.refresh_calls(), 1);
    assert_eq!(app.token("alice").await.1["access_token"], "at-1");

    let half = send(app.put("/v1/credentials/bob").json(&json!({
        "provider": "google", "refresh_token": "rt-b", "access_token": "at-b",
    })))
    .await;
    assert_error(&half, StatusCode::BAD_REQUEST, "invalid_request");
}

#[tokio::test]
async fn import_with_a_transient_failure_is_stored_and_retried() {
    // A long first backoff, so "not before the backoff" is a real wait.
    let app = spawn_app_with(AppOptions {
        extra_toml: "[refresh]\nretry_initial_secs = 60\n".into(),
        ..AppOptions::default()
    })
    .await;
    app.fake.add_refresh_token("rt-a", json!({}));
    app.fake.push(Canned::error(503, "temporarily_unavailable"));
    let (status, view) = send(app.put("/v1/credentials/alice").json(&json!({
        "provider": "cronofy", "refresh_token": "rt-a",
    })))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
    assert_eq!(view["status"], "active");
    assert_eq!(view["consecutive_failures"], 1);
    // Nothing is retried before the backoff (the manual clock stands still).
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(app.fake.refresh_calls(), 1, "no retry before the backoff");
    let (_, view) = send(app.get("/v1/credentials/alice")).await;
    assert_eq!(view["consecutive_failures"], 1);
    // The retry comes in the background once its backoff passes.
    app.clock.advance(Duration::from_secs(61));
    eventually("the background retry", async || {
        app.fake.refresh_calls() == 2
    })
    .await;
    eventually("the token", async || {
        app.token("alice").await.0 == StatusCode::OK
    })
    .await;
    assert_eq!(app.token("alice").await.1["access_token"], "at-1");
}

#[tokio::test]
async fn authorization_code_exchange() {
    let app = spawn_app().await;
    app.fake.add_code(
        "code-1",
        "rt-bob",
        json!({"account_id": "acc_9", "sub": "sub_bob", "linking_profile": {"profile_id": "pro_1"}}),
    );
    let (status, view) = send(
        app.post("/v1/credentials/bob/authorization-code")
            .json(&json!({
                "provider": "cronofy", "code": "code-1", "redirect_uri": REDIRECT_URI,
            })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
    assert_eq!(view["account_id"], "acc_9");
    assert_eq!(view["sub"], "sub_bob");
    assert_eq!(view["linking_profile"]["profile_id"], "pro_1");
    let call = &app.fake.requests()[0];
    assert_eq!(call.field("redirect_uri").as_deref(), Some(REDIRECT_URI));
    assert_eq!(call.field("code").as_deref(), Some("code-1"));
    let (status, token) = app.token("bob").await;
    assert_eq!((status, &token["sub"]), (StatusCode::OK, &json!("sub_bob")));

    // A used code is refused by the provider: 400 invalid_grant, bob kept.
    let used = send(
        app.post("/v1/credentials/bob/authorization-code")
            .json(&json!({
                "provider": "cronofy", "code": "code-1", "redirect_uri": REDIRECT_URI,
            })),
    )
    .await;
    assert_error(&used, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(app.token("bob").await.0, StatusCode::OK);
}

#[tokio::test]
async fn application_calendars_are_cronofy_only() {
    let app = spawn_app().await;
    let path = "/v1/credentials/apc-1/application-calendar";
    let (status, view) = send(app.post(path).json(&json!({
        "provider": "cronofy", "application_calendar_id": "cal-1",
    })))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
    assert_eq!(view["application_calendar_id"], "cal-1");
    assert_eq!(view["sub"], "apc_cal-1");
    assert_eq!(app.fake.requests()[0].path, "/v1/application_calendars");
    let (status, token) = app.token("apc-1").await;
    assert_eq!(status, StatusCode::OK, "{token}");
    assert_eq!(token["application_calendar_id"], "cal-1");

    let oauth2 = send(app.post(path).json(&json!({
        "provider": "google", "application_calendar_id": "cal-1",
    })))
    .await;
    assert_error(&oauth2, StatusCode::BAD_REQUEST, "invalid_request");
    let empty = send(app.post(path).json(&json!({
        "provider": "cronofy", "application_calendar_id": "",
    })))
    .await;
    assert_error(&empty, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(app.fake.requests().len(), 1);
}

#[tokio::test]
async fn linked_accounts_share_one_grant_and_one_refresh() {
    let app = spawn_app().await;
    app.fake
        .add_refresh_token("rt-shared", json!({"account_id": "acc_1"}));
    for id in ["alice", "bob"] {
        let (status, view) = send(app.put(&format!("/v1/credentials/{id}")).json(&json!({
            "provider": "cronofy", "refresh_token": "rt-shared",
        })))
        .await;
        assert_eq!(status, StatusCode::CREATED, "{view}");
    }
    assert_eq!(
        app.fake.refresh_calls(),
        1,
        "the second import linked, no call"
    );
    let (_, a) = app.token("alice").await;
    let (_, b) = app.token("bob").await;
    assert_eq!(a["access_token"], b["access_token"]);

    app.clock.advance(Duration::from_secs(3000));
    let (status, a) = send(app.get("/v1/tokens/alice?min_ttl=1000")).await;
    assert_eq!(status, StatusCode::OK, "{a}");
    let (_, b) = send(app.get("/v1/tokens/bob?min_ttl=1000")).await;
    assert_eq!(a["access_token"], "at-2");
    assert_eq!(b["access_token"], "at-2", "bob got alice's refresh");
    assert_eq!(
        (a["credential_id"].clone(), b["credential_id"].clone()),
        (json!("alice"), json!("bob"))
    );
    assert_eq!(app.fake.refresh_calls(), 2, "one refresh for both");
}

#[tokio::test]
async fn linked_code_exchanges_keep_their_own_extras_and_merge_the_refreshs() {
    let app = spawn_app().await;
    // Cronofy links accounts authorized from one browser: two users, one
    // refresh token, each with its own sub.
    app.fake.add_code(
        "code-a",
        "rt-linked",
        json!({"account_id": "acc_1", "sub": "sub_a"}),
    );
    app.fake.add_code(
        "code-b",
        "rt-linked",
        json!({"account_id": "acc_1", "sub": "sub_b"}),
    );
    for (id, code) in [("alice", "code-a"), ("bob", "code-b")] {
        let (status, view) = send(
            app.post(&format!("/v1/credentials/{id}/authorization-code"))
                .json(&json!({
                    "provider": "cronofy", "code": code, "redirect_uri": REDIRECT_URI,
                })),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{view}");
    }
    // A refresh answer carries fewer fields, and a changed one.
    app.fake
        .add_refresh_token("rt-linked", json!({"account_id": "acc_2"}));
    let (status, a) = send(app.post("/v1/tokens/alice/refresh")).await;
    assert_eq!(status, StatusCode::OK, "{a}");
    let (_, b) = app.token("bob").await;
    assert_eq!(
        a["access_token"], b["access_token"],
        "one grant, one refresh"
    );
    assert_eq!(app.fake.refresh_calls(), 1);
    assert_eq!(
        (&a["sub"], &b["sub"]),
        (&json!("sub_a"), &json!("sub_b")),
        "own extras kept"
    );
    assert_eq!(
        (&a["account_id"], &b["account_id"]),
        (&json!("acc_2"), &json!("acc_2")),
        "merged"
    );
    let (_, view) = send(app.get("/v1/credentials/bob")).await;
    assert_eq!(
        (&view["sub"], &view["account_id"]),
        (&json!("sub_b"), &json!("acc_2"))
    );
}

#[tokio::test]
async fn a_refused_application_calendar_is_provisioned_again() {
    let app = spawn_app().await;
    let path = "/v1/credentials/apc-1/application-calendar";
    let body = json!({"provider": "cronofy", "application_calendar_id": "cal-1"});
    assert_eq!(
        send(app.post(path).json(&body)).await.0,
        StatusCode::CREATED
    );
    let (_, first) = app.token("apc-1").await;
    // The refresh token dies; no person is needed to get a new one.
    for rt in app.fake.valid_refresh_tokens() {
        app.fake.revoke_refresh_token(&rt);
    }
    let (status, token) = send(app.post("/v1/tokens/apc-1/refresh")).await;
    assert_eq!(status, StatusCode::OK, "{token}");
    assert_ne!(token["access_token"], first["access_token"]);
    let provisioning = app
        .fake
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/application_calendars")
        .count();
    assert_eq!(provisioning, 2, "provisioned again with the same id");
    let (_, view) = send(app.get("/v1/credentials/apc-1")).await;
    assert_eq!(view["status"], "active");
}
