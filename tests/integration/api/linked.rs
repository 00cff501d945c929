//! A credential linked to an existing grant (same refresh token) shows the
//! grant's current extras at once, without waiting for its next refresh.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{REDIRECT_URI, send, spawn_app};

#[tokio::test]
async fn an_import_linked_to_a_grant_shows_its_extras_at_once() {
    let app = spawn_app().await;
    app.fake.add_code(
        "code-a",
        "rt-linked",
        json!({"account_id": "acc_1", "sub": "acc_1", "linking_profile": {"profile_id": "pro_1"}}),
    );
    let (status, view) = send(
        app.post("/v1/credentials/alice/authorization-code")
            .json(&json!({"provider": "cronofy", "code": "code-a", "redirect_uri": REDIRECT_URI})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{view}");

    let (status, view) = send(app.put("/v1/credentials/bob").json(&json!({
        "provider": "cronofy", "refresh_token": "rt-linked",
    })))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
    assert_eq!(app.fake.refresh_calls(), 0, "linked: no call");
    let (_, token) = app.token("bob").await;
    let (_, listed) = send(app.get("/v1/credentials")).await;
    let listed = &listed["credentials"][1];
    for shown in [&view, &app.view("bob").await, &token, listed] {
        assert_eq!(shown["account_id"], "acc_1", "{shown}");
        assert_eq!(shown["sub"], "acc_1", "{shown}");
        assert_eq!(shown["linking_profile"]["profile_id"], "pro_1", "{shown}");
    }
    assert_eq!(listed["id"], "bob");
}
