//! The database refusing writes under a running daemon (issue 11.1): a file
//! made read-only or deleted, and SQLite's own "disk full" (a page limit
//! set through a test hook), after which the daemon's pooled connections
//! used to stay broken. tokend says so (`tokend_store_up` 0, a WARN,
//! `/readyz` 200 with `"store": "down"`), keeps serving the tokens that are
//! still valid, makes no refresh call and answers 503 `store_unavailable`
//! where a refresh or a write is needed; it recovers by itself once the
//! file takes writes again.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{AppOptions, TestApp, eventually, send, spawn_app, spawn_app_with};
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

#[tokio::test]
async fn a_stop_that_cannot_store_a_refreshed_result_fails_naming_the_grant() {
    let (logs, _guard) = Logs::capture();
    let app = spawn_app_with(AppOptions {
        drain_timeout: Some(Duration::from_secs(1)),
        ..AppOptions::default()
    })
    .await;
    assert_eq!(app.import("alice", "rt-alice").await.0, StatusCode::CREATED);
    let (_, old) = app.token("alice").await;
    // The provider answers once the database has turned read-only.
    app.fake.set_delay(Duration::from_millis(500));
    let calls = app.fake.refresh_calls();
    let forced = app.post("/v1/tokens/alice/refresh").send();
    let forced = tokio::spawn(forced);
    let fake = app.fake.clone();
    eventually("the provider call", async || fake.refresh_calls() > calls).await;
    let path = app.database();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
    eventually("the result held", async || {
        readyz(&app).await.1["unstored_refreshes"] == 1
    })
    .await;
    let (_, token) = app.token("alice").await;
    assert_eq!(token["access_token"], old["access_token"], "not handed out");

    let error = app.shutdown_result().await.unwrap_err().to_string();
    assert!(
        error.contains("never took") && error.contains("credentials alice"),
        "{error}"
    );
    let _ = forced.await;
    let text = logs.text();
    let line = text
        .lines()
        .find(|l| l.contains("ERROR") && l.contains("never took"))
        .unwrap_or_else(|| panic!("no ERROR line: {text}"));
    assert!(line.contains("alice"), "{line}");
    for token in ["rt-alice", old["access_token"].as_str().unwrap()] {
        assert!(!line.contains(token) && !error.contains(token), "{line}");
    }
}

#[tokio::test]
async fn due_refreshes_wait_while_the_store_refuses_writes_and_resume_by_themselves() {
    let app = spawn_app().await;
    assert_eq!(app.import("alice", "rt-alice").await.0, StatusCode::CREATED);
    let (_, before) = app.token("alice").await;
    let calls = app.fake.refresh_calls();
    let due = app.next_refresh_at("alice").await;
    let path = app.database();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
    app.clock.advance(Duration::from_secs(60));
    let (status, body, _) = fresh_token(&app, "alice").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");

    // Due now: nothing is started while the store is down.
    app.advance_to(due + 1_000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.assert_no_more_calls(calls).await;

    // Writable again: the refresh happens by itself, the clock standing still.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    app.wait_refresh_calls(calls + 1).await;
    app.wait_token("alice", |t| t["access_token"] != before["access_token"])
        .await;
}

/// Imports `id` with an access token (no provider call) and a long refresh
/// token, so that each import takes room in the database.
async fn import_given(app: &TestApp, id: &str) -> (StatusCode, Value) {
    let rt = format!("rt-{id}-{}", "x".repeat(1_000));
    let body = serde_json::json!({
        "provider": "cronofy",
        "refresh_token": rt,
        "access_token": format!("at-{id}"),
        "expires_in": 3600,
    });
    send(app.put(&format!("/v1/credentials/{id}")).json(&body)).await
}

#[tokio::test]
async fn a_full_database_refuses_imports_and_takes_them_again_when_space_returns() {
    let app = spawn_app().await;
    assert_eq!(import_given(&app, "alice").await.0, StatusCode::CREATED);
    let path = app.database();
    // SQLite's own "disk full": not one page more than the file has.
    tokend::store::sqlite::limit_pages_for_tests(&path, Some(1));
    let mut refused = None;
    for i in 0..400 {
        let (status, body) = import_given(&app, &format!("fill-{i}")).await;
        if status != StatusCode::CREATED {
            refused = Some((i, status, body));
            break;
        }
    }
    let (filled, status, body) = refused.expect("the full database refused an import");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "store_unavailable");
    assert_eq!(metric(&app, "tokend_store_up").await.as_deref(), Some("0"));
    assert_eq!(app.token("alice").await.0, StatusCode::OK, "still served");

    // Space returns: writes work again within seconds, on the same daemon.
    tokend::store::sqlite::limit_pages_for_tests(&path, None);
    eventually("the store is up", async || {
        metric(&app, "tokend_store_up").await.as_deref() == Some("1")
    })
    .await;
    for i in 0..12 {
        let (status, body) = import_given(&app, &format!("after-{i}")).await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "import {i} after space returned: {body}"
        );
    }
    for i in 0..filled.min(12) {
        let (status, body) = send(app.delete(&format!("/v1/credentials/fill-{i}"))).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "delete {i}: {body}");
    }
}
