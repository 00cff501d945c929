//! The database refusing writes under a running daemon (issue 11.1): a file
//! made read-only or deleted. tokend says so (`tokend_store_up` 0, a WARN,
//! `/readyz` 200 with `"store": "down"`), keeps serving the tokens that are
//! still valid, makes no refresh call and answers 503 `store_unavailable`
//! where a refresh or a write is needed; it recovers by itself once the
//! file takes writes again.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{TestApp, eventually, send, spawn_app};
use crate::logs::Logs;

async fn metric(app: &TestApp, name: &str) -> Option<String> {
    let text = app
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")).map(str::to_owned))
}

async fn readyz(app: &TestApp) -> (StatusCode, Value) {
    send(app.http.get(format!("{}/readyz", app.url))).await
}

/// A token request that needs a refresh (less than `min_ttl` left).
async fn fresh_token(app: &TestApp, id: &str) -> (StatusCode, Value, Option<String>) {
    let r = app
        .get(&format!("/v1/tokens/{id}?min_ttl=3590"))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, r.json().await.unwrap(), retry)
}

#[tokio::test]
async fn a_read_only_database_stops_refreshes_serves_valid_tokens_and_recovers() {
    let (logs, _guard) = Logs::capture();
    let app = spawn_app().await;
    assert_eq!(app.import("alice", "rt-alice").await.0, StatusCode::CREATED);
    let (_, before) = app.token("alice").await;
    assert_eq!(metric(&app, "tokend_store_up").await.as_deref(), Some("1"));
    assert_eq!(readyz(&app).await.1["store"], "up");
    let calls = app.fake.refresh_calls();
    app.clock.advance(Duration::from_secs(60));

    let path = app.database();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
    // Needs a refresh: refused before any provider call.
    for _ in 0..2 {
        let (status, body, retry) = fresh_token(&app, "alice").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["error"], "store_unavailable", "{body}");
        assert!(retry.is_some());
    }
    assert_eq!(app.fake.refresh_calls(), calls, "no refresh call");
    // Still valid: served.
    let (status, token) = app.token("alice").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(token["access_token"], before["access_token"]);
    // Imports need the database too.
    let (status, body) = app.import("bob", "rt-bob").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "store_unavailable");
    assert_eq!(app.fake.refresh_calls(), calls, "no refresh call");
    // Said in /metrics, /readyz (still 200: valid tokens are served) and the log.
    assert_eq!(metric(&app, "tokend_store_up").await.as_deref(), Some("0"));
    let (status, ready) = readyz(&app).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ready["store"], "down", "{ready}");
    let text = logs.text();
    assert!(
        text.contains("WARN") && text.contains("the database refuses writes"),
        "{text}"
    );
    assert!(text.contains("read-only"), "{text}");

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    eventually("the store is up again", async || {
        metric(&app, "tokend_store_up").await.as_deref() == Some("1")
    })
    .await;
    let (status, body, _) = fresh_token(&app, "alice").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_ne!(body["access_token"], before["access_token"]);
    assert_eq!(app.import("bob", "rt-bob").await.0, StatusCode::CREATED);
}

#[tokio::test]
async fn a_deleted_database_file_refuses_writes_with_a_clear_error() {
    let (logs, _guard) = Logs::capture();
    let app = spawn_app().await;
    assert_eq!(app.import("alice", "rt-alice").await.0, StatusCode::CREATED);
    let calls = app.fake.refresh_calls();
    app.clock.advance(Duration::from_secs(60));
    let path = app.database();
    std::fs::remove_file(&path).unwrap();

    let (status, body, _) = fresh_token(&app, "alice").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "store_unavailable");
    let r = send(app.delete("/v1/credentials/alice")).await;
    assert_eq!(r.0, StatusCode::SERVICE_UNAVAILABLE, "{}", r.1);
    assert_eq!(app.fake.refresh_calls(), calls, "no refresh call");
    assert_eq!(app.token("alice").await.0, StatusCode::OK, "still served");
    assert_eq!(metric(&app, "tokend_store_up").await.as_deref(), Some("0"));
    let text = logs.text();
    assert!(
        text.contains("deleted while tokend had it open") && text.contains("tokend.db"),
        "{text}"
    );
    // Nothing comes back by itself: the file is gone.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(metric(&app, "tokend_store_up").await.as_deref(), Some("0"));
}
