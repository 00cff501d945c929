//! Two daemons on one database file: the one that loses a refresh race ends
//! on the winner's token, and nobody is marked needs_reauth.

use std::time::Duration;

use reqwest::StatusCode;

use crate::fake_provider::Rotation;
use crate::helpers::{AppOptions, T0, eventually, send, spawn_app, spawn_app_with};
use tokend::clock::Clock;

#[tokio::test]
async fn a_lost_race_adopts_the_winners_token() {
    let a = spawn_app().await;
    a.fake.set_rotation(Rotation::Strict);
    a.import("alice", "rt-1").await;
    let b = spawn_app_with(AppOptions {
        fake: Some(a.fake.clone()),
        share_dir_of: Some(a.dir.path().to_path_buf()),
        clock: Some(Clock::manual(T0)),
        ..AppOptions::default()
    })
    .await;
    let (status, before) = b.token("alice").await;
    assert_eq!(status, StatusCode::OK, "b loaded the grant a imported");

    // A refreshes slowly; B, whose clock says A's lease has run out, refreshes
    // with the refresh token A is replacing (strict rotation: now dead).
    // B starts only once A's call is at the provider (a fixed sleep raced
    // with A taking the lease on a loaded machine), and a while before A's
    // answer, so A has committed by the time B hears its token is dead.
    a.fake.set_delay(Duration::from_millis(800));
    a.clock.advance(Duration::from_secs(11));
    b.clock.advance(Duration::from_secs(120));
    let a_call = tokio::spawn(send(a.post("/v1/tokens/alice/refresh")));
    let fake = a.fake.clone();
    eventually("A's call at the provider", async || {
        fake.refresh_calls() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (b_status, b_token) = send(b.post("/v1/tokens/alice/refresh")).await;
    let (a_status, a_token) = a_call.await.unwrap();

    assert_eq!(a_status, StatusCode::OK, "{a_token}");
    assert_eq!(b_status, StatusCode::OK, "{b_token}");
    assert_eq!(
        a.fake.refresh_calls(),
        3,
        "import, A's refresh, B's losing attempt"
    );
    assert_ne!(b_token["access_token"], before["access_token"]);
    assert_eq!(
        a_token["access_token"], b_token["access_token"],
        "B adopted A's token"
    );
    for app in [&a, &b] {
        let view = app.view("alice").await;
        assert_eq!(view["status"], "active", "{view}");
    }
    // And the grant still refreshes: the stored refresh token is the live one.
    a.fake.set_delay(Duration::ZERO);
    a.clock.advance(Duration::from_secs(60));
    let (status, _) = send(a.post("/v1/tokens/alice/refresh")).await;
    assert_eq!(status, StatusCode::OK);
}
