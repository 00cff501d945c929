//! `DELETE /v1/credentials/{id}`: 204 and gone; the grant stays while another
//! credential uses it; `revoke=true` revokes at the provider first, is 409
//! `grant_shared` on a shared grant (nothing changes) and 503 with the
//! credential kept when the provider cannot be reached.

use reqwest::StatusCode;
use serde_json::json;

use super::{assert_error, retry_after, send_full};
use crate::fake_provider::Canned;
use crate::helpers::{TestApp, send, spawn_app};

async fn import_shared(app: &TestApp, ids: &[&str], refresh_token: &str) {
    app.fake.add_refresh_token(refresh_token, json!({}));
    for id in ids {
        let (status, view) = send(app.put(&format!("/v1/credentials/{id}")).json(&json!({
            "provider": "cronofy", "refresh_token": refresh_token,
        })))
        .await;
        assert_eq!(status, StatusCode::CREATED, "{view}");
    }
}

#[tokio::test]
async fn delete_removes_the_credential_and_the_grant_when_unused() {
    let app = spawn_app().await;
    import_shared(&app, &["alice", "bob"], "rt-shared").await;
    let (status, body) = send(app.delete("/v1/credentials/alice")).await;
    assert_eq!(
        (status, body),
        (StatusCode::NO_CONTENT, serde_json::Value::Null)
    );
    assert_error(
        &app.token("alice").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let got = send(app.get("/v1/credentials/alice")).await;
    assert_error(&got, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        app.token("bob").await.0,
        StatusCode::OK,
        "bob keeps the grant"
    );
    assert!(
        app.fake.revoked().is_empty(),
        "no revoke without revoke=true"
    );

    assert_eq!(
        send(app.delete("/v1/credentials/bob")).await.0,
        StatusCode::NO_CONTENT
    );
    let got = send(app.delete("/v1/credentials/bob")).await;
    assert_error(&got, StatusCode::NOT_FOUND, "not_found");
    // The grant went with its last credential: importing the token again
    // makes a new one (a refresh call), it does not link to a ghost.
    let calls = app.fake.refresh_calls();
    import_shared(&app, &["carol"], "rt-shared").await;
    assert_eq!(app.fake.refresh_calls(), calls + 1);
    assert!(app.fake.revoked().is_empty());
}

#[tokio::test]
async fn revoke_true_revokes_at_the_provider() {
    let app = spawn_app().await;
    import_shared(&app, &["alice"], "rt-a").await;
    let (status, _) = send(app.delete("/v1/credentials/alice?revoke=true")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(app.fake.revoked(), vec!["rt-a".to_owned()]);
    assert!(!app.fake.is_valid("rt-a"));
    assert_eq!(app.token("alice").await.0, StatusCode::NOT_FOUND);
    let revoke = app
        .fake
        .requests()
        .into_iter()
        .find(|r| r.path.contains("revoke"));
    assert_eq!(revoke.expect("a revoke call").path, "/oauth/token/revoke");
}

#[tokio::test]
async fn revoke_on_a_shared_grant_is_409_and_changes_nothing() {
    let app = spawn_app().await;
    import_shared(&app, &["alice", "bob"], "rt-shared").await;
    let got = send(app.delete("/v1/credentials/alice?revoke=true")).await;
    assert_error(&got, StatusCode::CONFLICT, "grant_shared");
    let message = got.1["message"].as_str().unwrap();
    assert!(message.contains("\"bob\""), "names the sharer: {message}");
    assert!(!message.contains("alice"), "not the one deleted: {message}");
    assert!(app.fake.revoked().is_empty());
    assert!(app.fake.is_valid("rt-shared"));
    assert_eq!(app.token("alice").await.0, StatusCode::OK);
    assert_eq!(app.token("bob").await.0, StatusCode::OK);
    // revoke=false is the way out for one of them.
    let (status, _) = send(app.delete("/v1/credentials/alice?revoke=false")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = send(app.delete("/v1/credentials/bob?revoke=true")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(app.fake.revoked(), vec!["rt-shared".to_owned()]);
}

#[tokio::test]
async fn revoke_with_the_provider_down_is_503_and_keeps_the_credential() {
    let app = spawn_app().await;
    import_shared(&app, &["alice"], "rt-a").await;
    app.fake.push(Canned::error(503, "temporarily_unavailable"));
    let (status, headers, body) = send_full(app.delete("/v1/credentials/alice?revoke=true")).await;
    assert_error(
        &(status, body),
        StatusCode::SERVICE_UNAVAILABLE,
        "provider_unavailable",
    );
    assert!(retry_after(&headers) >= 1);
    assert_eq!(app.token("alice").await.0, StatusCode::OK, "kept");
    assert_eq!(
        send(app.get("/v1/credentials/alice")).await.0,
        StatusCode::OK
    );
    assert!(app.fake.is_valid("rt-a"));
    // Later it goes through.
    let (status, _) = send(app.delete("/v1/credentials/alice?revoke=true")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(app.fake.revoked(), vec!["rt-a".to_owned()]);
}

#[tokio::test]
async fn revoke_answered_with_something_unexpected_is_502_and_keeps_the_credential() {
    // SPEC: an answer tokend cannot use (an unknown 4xx) is 502 provider_error,
    // as for a refresh or a code exchange; waiting (503) would not help.
    let app = spawn_app().await;
    import_shared(&app, &["alice"], "rt-a").await;
    app.fake.push(Canned::error(418, "teapot"));
    let (status, headers, body) = send_full(app.delete("/v1/credentials/alice?revoke=true")).await;
    assert_error(&(status, body), StatusCode::BAD_GATEWAY, "provider_error");
    assert!(headers.get("retry-after").is_none());
    assert_eq!(app.token("alice").await.0, StatusCode::OK, "kept");
    assert!(app.fake.revoked().is_empty());
}
