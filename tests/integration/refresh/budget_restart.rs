//! The order of last hand-outs across a restart: written at the stop, read
//! back before the first round, and no background refresh before that
//! round (the grants that lapse are overdue at the start).

use reqwest::StatusCode;

use super::budget::{gauge, import_warm};
use super::budget_auto::{app, budget_for_ten, refreshed, round_at, wait_refreshed};
use crate::helpers::{AppOptions, spawn_app_with};

#[tokio::test]
async fn the_order_of_hand_outs_survives_a_restart() {
    let app = app(budget_for_ten()).await;
    // Every grant handed out, in three waves ten seconds apart: the budget
    // keeps the last ten handed out warm, g0 to g9, whatever the table.
    for i in 0..40 {
        import_warm(&app, &format!("g{i}"), 120).await;
    }
    let hand_out = async |ids: std::ops::Range<usize>| {
        for i in ids {
            assert_eq!(app.token(&format!("g{i}")).await.0, StatusCode::OK);
        }
    };
    hand_out(10..40).await;
    round_at(&app, 10).await;
    hand_out(5..10).await;
    round_at(&app, 20).await;
    hand_out(0..5).await;
    round_at(&app, 25).await;
    assert_eq!(gauge(&app, "tokend_grants_lapsed").await, 30.0);
    // The ten are refreshed at 60 s, then the daemon stops (and writes the
    // last hand-outs as it does).
    round_at(&app, 60).await;
    wait_refreshed(&app, 10, 0).await;
    assert_eq!(refreshed(&app), (0..10).collect::<Vec<_>>());
    let clock = app.clock.clone();
    let (fake, dir) = app.shutdown().await;
    // The fake's limit does not know that the next daemon's limiter starts
    // afresh (set before it starts: it would act on it at once).
    fake.limit_rate(600, 100);
    let mut env = vec![
        (
            "TOKEND__PROVIDERS__CRONOFY__MAX_REQUESTS_PER_MINUTE".to_owned(),
            "20".to_owned(),
        ),
        ("TOKEND__PROVIDERS__CRONOFY__BURST".into(), "10".into()),
        ("TOKEND__REFRESH__JITTER_FRACTION".into(), "0".into()),
    ];
    env.push((
        "TOKEND__PROVIDERS__CRONOFY__REFRESH_SHARE".into(),
        "0.5".into(),
    ));
    let app = spawn_app_with(AppOptions {
        env,
        fake: Some(fake),
        dir: Some(dir),
        clock: Some(clock),
        ..AppOptions::default()
    })
    .await;
    // The thirty that lapse are overdue (due at 60 s) and stay in the
    // schedule as loaded until the first round: none is refreshed.
    round_at(&app, 60).await;
    assert_eq!(gauge(&app, "tokend_grants_lapsed").await, 30.0);
    app.assert_no_more_calls(10).await;
    // Nothing is handed out after the restart: at 120 s the same ten are
    // refreshed again, and only they (with the order lost, ten of the forty
    // would be chosen at random).
    round_at(&app, 120).await;
    wait_refreshed(&app, 20, 10).await;
    app.assert_no_more_calls(20).await;
    let mut again: Vec<String> = app.fake.refreshes_at()[10..]
        .iter()
        .map(|(_, t)| t.clone())
        .collect();
    again.sort();
    let mut want: Vec<String> = (0..10).map(|i| format!("rt-g{i}")).collect();
    want.sort();
    assert_eq!(again, want);
    assert_eq!(app.fake.rate_limited(), 0);
}
