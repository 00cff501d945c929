//! `refresh.max_concurrency` bounds every token-endpoint call in flight at
//! once, whatever started it: imports without an access token, `min_ttl`
//! and forced refreshes, and the schedule share one set of permits.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{AppOptions, send, spawn_app_with};

#[tokio::test]
async fn imports_and_refreshes_share_the_concurrency_bound() {
    let app = spawn_app_with(AppOptions {
        extra_toml: "[refresh]\nmax_concurrency = 2\n".into(),
        ..Default::default()
    })
    .await;
    for i in 0..3 {
        let (status, _) = app
            .import(&format!("old-{i}"), &format!("rt-old-{i}"))
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    app.fake.set_delay(Duration::from_millis(150));
    for i in 0..8 {
        app.fake
            .add_refresh_token(&format!("rt-new-{i}"), json!({}));
    }
    // Eight imports without an access token, three min_ttl refreshes and a
    // forced one, all at once: each wants a token call.
    let imports = (0..8).map(|i| {
        send(app.put(&format!("/v1/credentials/new-{i}")).json(&json!({
            "provider": "cronofy",
            "refresh_token": format!("rt-new-{i}"),
        })))
    });
    let min_ttl = (0..3).map(|i| send(app.get(&format!("/v1/tokens/old-{i}?min_ttl=3598"))));
    app.clock.advance(Duration::from_secs(2));
    let (imports, refreshes, forced) = tokio::join!(
        futures::future::join_all(imports),
        futures::future::join_all(min_ttl),
        send(app.post("/v1/tokens/old-0/refresh")),
    );
    for (status, body) in imports {
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    for (status, body) in refreshes.into_iter().chain([forced]) {
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert!(
        app.fake.refresh_calls() >= 3 + 8 + 3,
        "every trigger called"
    );
    assert_eq!(
        app.fake.max_token_calls_in_flight(),
        2,
        "never more than max_concurrency token calls at once (and the bound is used)"
    );
}
