//! Refreshing ahead of expiry, once per lifetime, never earlier; one call
//! for many triggers and for credentials sharing a grant.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{T0, send, spawn_app};

#[tokio::test]
async fn one_call_per_lifetime_never_earlier() {
    let app = spawn_app().await;
    let (status, _) = app.import("alice", "rt-alice").await;
    assert_eq!(status, StatusCode::CREATED);
    app.wait_refresh_calls(1).await;

    for lifetime in 1..=8 {
        let due = app.next_refresh_at("alice").await;
        // 1 h tokens: due 12 to 15 minutes before expiry (lead 720 s + jitter up to 180 s).
        let expires_at = app.clock.now() + 3_600_000;
        assert!(
            due <= expires_at - 720_000 && due >= expires_at - 901_000,
            "lifetime {lifetime}: due {due}"
        );
        app.advance_to(due - 1_000);
        app.assert_no_more_calls(lifetime).await;
        app.advance_to(due + 1_000);
        app.wait_refresh_calls(lifetime + 1).await;
        app.wait_token("alice", |t| t["expires_in"].as_i64().unwrap() > 3_500)
            .await;
    }
}

#[tokio::test]
async fn a_hundred_concurrent_triggers_make_one_call() {
    let app = spawn_app().await;
    app.import("alice", "rt-alice").await;
    app.wait_refresh_calls(1).await;
    app.fake.set_delay(Duration::from_millis(300));
    // 3598 s left (less the 1 s hand-out margin) is not enough for
    // min_ttl=3598: every request wants a refresh.
    app.clock.advance(Duration::from_secs(1));
    let requests = (0..100).map(|_| send(app.get("/v1/tokens/alice?min_ttl=3598")));
    let results = futures::future::join_all(requests).await;
    let tokens: std::collections::HashSet<String> = results
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, StatusCode::OK, "{body}");
            body["access_token"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        app.fake.refresh_calls(),
        2,
        "one call for a hundred triggers"
    );
    assert_eq!(tokens.len(), 1, "everyone got the same fresh token");
}

#[tokio::test]
async fn credentials_sharing_a_refresh_token_are_refreshed_once() {
    let app = spawn_app().await;
    app.fake
        .add_refresh_token("rt-linked", json!({"account_id": "acc_shared"}));
    app.import("alice", "rt-linked").await;
    let (status, view) = app.import("bob", "rt-linked").await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
    assert_eq!(app.fake.refresh_calls(), 1, "linking needs no call");

    for lifetime in 1..=4 {
        let due = app.next_refresh_at("alice").await;
        assert_eq!(due, app.next_refresh_at("bob").await);
        app.advance_to(due + 1_000);
        app.wait_refresh_calls(lifetime + 1).await;
        app.assert_no_more_calls(lifetime + 1).await;
        app.wait_token("alice", |t| t["expires_in"].as_i64().unwrap() > 3_500)
            .await;
        let (_, a) = app.token("alice").await;
        let (_, b) = app.token("bob").await;
        assert_eq!(a["access_token"], b["access_token"]);
        assert_eq!(
            a["account_id"], "acc_shared",
            "refresh extras reach every credential"
        );
        assert_eq!(b["account_id"], "acc_shared");
    }
    assert!(app.clock.now() > T0 + 3 * 2_700_000);
}

/// A refresh answer repeating the extras the credential holds (Cronofy
/// sends `account_id` and `sub` in every answer) writes no credential row;
/// one bringing another value is merged in and handed out.
#[tokio::test]
async fn refresh_extras_are_written_only_when_they_change() {
    let app = spawn_app().await;
    app.fake
        .add_refresh_token("rt-x", json!({"account_id": "acc_1", "sub": "s"}));
    app.import("alice", "rt-x").await;
    let url = format!("sqlite://{}", app.database().display());
    let db = sqlx::SqlitePool::connect(&url).await.unwrap();
    let seqs = async || -> (i64, i64) {
        sqlx::query_as(
            "SELECT g.change_seq, c.change_seq FROM credentials c
             JOIN grants g ON g.id = c.grant_id WHERE c.id = 'alice'",
        )
        .fetch_one(&db)
        .await
        .unwrap()
    };
    let refresh = async |calls: usize| {
        let due = app.next_refresh_at("alice").await;
        app.advance_to(due + 1_000);
        app.wait_refresh_calls(calls).await;
        app.wait_view("alice", |v| {
            crate::helpers::parse_time(v["next_refresh_at"].as_str().unwrap()) > due
        })
        .await;
    };
    let (grant_before, cred_before) = seqs().await;

    refresh(2).await;
    let (grant_after, cred_after) = seqs().await;
    assert!(grant_after > grant_before, "the refresh was committed");
    assert_eq!(
        cred_after, cred_before,
        "the same extras are not written again"
    );
    let (_, token) = app.token("alice").await;
    assert_eq!(token["account_id"], "acc_1");

    app.fake
        .add_refresh_token("rt-x", json!({"account_id": "acc_2"}));
    refresh(3).await;
    let (_, cred_changed) = seqs().await;
    assert!(cred_changed > cred_after, "a changed value is written");
    let (_, token) = app.token("alice").await;
    assert_eq!(token["account_id"], "acc_2");
    assert_eq!(token["sub"], "s", "a field the answer left out is kept");
    db.close().await;
}
