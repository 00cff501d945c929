//! The daemon end to end: import a grant, hand out its token.

use reqwest::StatusCode;

use crate::helpers::spawn_app;

#[tokio::test]
async fn import_then_hand_out_a_token() {
    let app = spawn_app().await;
    let (status, view) = app.import("alice", "rt-alice").await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
    assert_eq!(view["id"], "alice");
    assert_eq!(view["status"], "active");
    assert!(
        view.get("access_token").is_none(),
        "views never carry tokens"
    );
    assert_eq!(
        app.fake.refresh_calls(),
        1,
        "imported without access token: refreshed at once"
    );

    let (status, token) = app.token("alice").await;
    assert_eq!(status, StatusCode::OK, "{token}");
    assert!(token["access_token"].as_str().unwrap().starts_with("at-"));
    assert_eq!(token["token_type"], "bearer");
    assert_eq!(token["expires_in"], 3599, "to the hand-out margin");
    assert_eq!(token["credential_id"], "alice");
    app.shutdown().await;
}
