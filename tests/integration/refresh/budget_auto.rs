//! `refresh_mode = "auto"` past the budget: the most recently handed-out
//! grants are kept warm, as many as the budget covers; the others lapse and
//! are refreshed on their next request. Two-minute tokens refreshed a
//! minute ahead without jitter: one call a minute per grant.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::StatusCode;

use super::budget::{gauge, import_warm};
use crate::helpers::{AppOptions, T0, TestApp, eventually, spawn_app_with};

/// 60 calls a minute, burst 10, half for background refreshes: 30 a minute,
/// which keeps 30 two-minute grants warm (no jitter: exactly one call a minute each).
pub(super) async fn app(more_env: Vec<(String, String)>) -> TestApp {
    let mut env = vec![
        (
            "TOKEND__PROVIDERS__CRONOFY__MAX_REQUESTS_PER_MINUTE".into(),
            "60".into(),
        ),
        ("TOKEND__PROVIDERS__CRONOFY__BURST".into(), "10".into()),
        (
            "TOKEND__PROVIDERS__CRONOFY__REFRESH_SHARE".into(),
            "0.5".into(),
        ),
        ("TOKEND__REFRESH__JITTER_FRACTION".into(), "0".into()),
    ];
    env.extend(more_env);
    let app = spawn_app_with(AppOptions {
        env,
        ..AppOptions::default()
    })
    .await;
    two_minute_tokens(&app);
    app
}

fn two_minute_tokens(app: &TestApp) {
    app.fake.use_clock(app.clock.clone());
    app.fake.set_expires_in(Some(120));
    app.fake.limit_rate(60, 10);
}

/// Moves the clock by `secs` (a multiple of 5) and waits until the daemon
/// has acted on it: the budget's round for the new time ran, every refresh
/// call the fake answered is committed, and no new one came for a while. (The clock stands still meanwhile: a test that ran ahead of
/// a loaded machine would see tokens expire that a real clock would not.)
async fn step(app: &TestApp, secs: u64) {
    app.clock.advance(Duration::from_secs(secs));
    let now_secs = (app.clock.now() / 1000) as f64;
    let mut quiet = 0;
    let mut last = (0, 0, 0.0);
    for _ in 0..500 {
        let before = app.fake.refresh_calls();
        tokio::time::sleep(Duration::from_millis(10)).await;
        let (committed, round_at) = refreshes_and_round(app).await;
        let after = app.fake.refresh_calls();
        last = (after, committed, round_at);
        quiet = if before == after && committed == after && round_at == now_secs {
            quiet + 1
        } else {
            0
        };
        if quiet == 3 {
            return;
        }
    }
    panic!("the daemon did not settle at {now_secs}: (calls, committed, round at) = {last:?}");
}

/// `tokend_refreshes_total` over every outcome, and when the budget's
/// bookkeeping last ran.
async fn refreshes_and_round(app: &TestApp) -> (usize, f64) {
    let (_, body) = crate::helpers::send(app.get("/metrics")).await;
    let text = body.as_str().unwrap();
    let value = |l: &str| l.rsplit(' ').next()?.parse::<f64>().ok();
    let refreshes = text
        .lines()
        .filter(|l| l.starts_with("tokend_refreshes_total{"))
        .filter_map(value)
        .sum::<f64>();
    let round_at = text
        .lines()
        .find(|l| l.starts_with("tokend_refresh_budget_round_timestamp_seconds "))
        .and_then(value)
        .unwrap_or(0.0);
    (refreshes as usize, round_at)
}

/// Refresh calls by refresh token: the fake clock times of each.
fn calls_by_token(app: &TestApp) -> HashMap<String, Vec<i64>> {
    let mut by = HashMap::<String, Vec<i64>>::new();
    for (at, rt) in app.fake.refreshes_at() {
        by.entry(rt).or_default().push(at);
    }
    by
}

#[tokio::test]
async fn hot_grants_stay_warm_within_the_budget_and_lapsed_ones_refresh_on_request() {
    let app = app(Vec::new()).await;
    let start = app.clock.now();
    // Ten times the grants the budget keeps warm; 27 of them in constant use.
    for i in 0..300 {
        import_warm(&app, &format!("c{i}"), 120).await;
    }
    let hot: Vec<String> = (0..27).map(|i| format!("c{i}")).collect();
    for id in &hot {
        assert_eq!(app.token(id).await.0, StatusCode::OK);
    }
    step(&app, 5).await;
    eventually("the budget's round", async || {
        gauge(&app, "tokend_grants_lapsed").await == 270.0
    })
    .await;
    assert_eq!(gauge(&app, "tokend_grants_warm").await, 30.0);
    assert_eq!(gauge(&app, "tokend_refresh_budget_per_minute").await, 30.0);
    assert!((gauge(&app, "tokend_refresh_need_per_minute").await - 300.0).abs() < 1e-6);

    // Five minutes (two and a half lifetimes), hot grants handed out every 5 s.
    let mut lapsed_requests = 0;
    for round in 1..=60 {
        step(&app, 5).await;
        for id in &hot {
            let (status, token) = app.token(id).await;
            assert_eq!(status, StatusCode::OK, "{id} in round {round}: {token}");
        }
        // Now and then a lapsed grant is asked for: its token expired long
        // ago, so the request refreshes it, with one call.
        if round % 15 == 0 && round >= 30 {
            // The three never handed-out grants that fill the budget were
            // refreshed at 60 s and every minute since: one never refreshed
            // so far lapsed.
            let calls = calls_by_token(&app);
            let id = (100 + round..300)
                .map(|i| format!("c{i}"))
                .find(|id| !calls.contains_key(&format!("rt-{id}")))
                .unwrap();
            // The provider's next cell may be a second away (background
            // refreshes may have just taken the burst): the clock moves on.
            let path = format!("/v1/tokens/{id}");
            let ((status, token), ()) = tokio::join!(crate::helpers::send(app.get(&path)), async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                step(&app, 5).await;
            });
            assert_eq!(status, StatusCode::OK, "{token}");
            assert!(token["expires_in"].as_i64().unwrap() > 100, "{token}");
            assert_eq!(calls_by_token(&app)[&format!("rt-{id}")].len(), 1);
            lapsed_requests += 1;
        }
    }
    let end = app.clock.now();
    let calls = calls_by_token(&app);
    // Every hot token was refreshed before it expired, so every hand-out
    // above came from memory (a hand-out of an expired token would have
    // waited for a refresh).
    for id in &hot {
        let times = &calls[&format!("rt-{id}")];
        let mut valid_until = start + 120_000;
        for &at in times {
            assert!(
                at < valid_until,
                "{id} expired before its refresh at {at}: {times:?}"
            );
            valid_until = at + 120_000;
        }
        assert!(valid_until > end, "{id} expired at the end");
    }
    // No 429, and background calls within the share: 30 a minute, 10 at once.
    assert_eq!(app.fake.rate_limited(), 0);
    let background: usize = calls.values().map(Vec::len).sum::<usize>() - lapsed_requests;
    let minutes = (end - start) as f64 / 60_000.0;
    assert!(
        background as f64 <= 30.0 * minutes + 10.0,
        "{background} background calls in {minutes} minutes"
    );
    let times: Vec<i64> = {
        let mut t: Vec<i64> = app.fake.refreshes_at().iter().map(|(at, _)| *at).collect();
        t.sort();
        t
    };
    for (i, &at) in times.iter().enumerate() {
        let in_minute = times[i..].iter().take_while(|&&t| t < at + 60_000).count();
        assert!(
            in_minute <= 30 + 10 + lapsed_requests,
            "{in_minute} calls in the minute from {at}"
        );
    }
}

/// 40 grants, a budget for 10, the first `hot` of them handed out.
async fn forty_with_hot(app: &TestApp, hot: usize) {
    for i in 0..40 {
        import_warm(app, &format!("g{i}"), 120).await;
    }
    for i in 0..hot {
        assert_eq!(app.token(&format!("g{i}")).await.0, StatusCode::OK);
    }
}

/// 20 calls a minute, half for background refreshes: ten two-minute grants.
pub(super) fn budget_for_ten() -> Vec<(String, String)> {
    vec![(
        "TOKEND__PROVIDERS__CRONOFY__MAX_REQUESTS_PER_MINUTE".into(),
        "20".into(),
    )]
}

/// Which of `g0..g39` the fake refreshed (in the background: nothing asks).
pub(super) fn refreshed(app: &TestApp) -> Vec<usize> {
    let calls = calls_by_token(app);
    (0..40)
        .filter(|i| calls.contains_key(&format!("rt-g{i}")))
        .collect()
}

/// Moves the clock to `secs` after the start and waits until the budget's
/// round for that time ran: the warm set is decided for it, grants moved
/// in or out of the schedule (a condition, not a wait of so many ms).
pub(super) async fn round_at(app: &TestApp, secs: i64) {
    app.advance_to(T0 + secs * 1000);
    let want = ((T0 + secs * 1000) / 1000) as f64;
    wait_until(&format!("the budget's round at {secs} s"), async || {
        refreshes_and_round(app).await.1 == want
    })
    .await;
}

/// Polls `f` until it is true, for up to 30 s of real time (a loaded
/// machine can be slow; a correct daemon gets there).
pub(super) async fn wait_until(what: &str, mut f: impl AsyncFnMut() -> bool) {
    for _ in 0..3000 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// Waits until the fake has answered `n` refresh calls and tokend has
/// committed as many (`earlier` of them by a daemon before a restart).
pub(super) async fn wait_refreshed(app: &TestApp, n: usize, earlier: usize) {
    wait_until(
        &format!("{n} refreshes answered and committed"),
        async || app.fake.refresh_calls() == n && refreshes_and_round(app).await.0 + earlier == n,
    )
    .await;
}

#[tokio::test]
async fn a_lapsed_grant_handed_out_again_is_warm_within_ten_seconds() {
    let app = app(budget_for_ten()).await;
    app.fake.limit_rate(20, 10);
    forty_with_hot(&app, 5).await;
    round_at(&app, 5).await;
    assert_eq!(gauge(&app, "tokend_grants_lapsed").await, 30.0);
    // Which five of the never handed-out grants fill the budget is up to
    // the table; the 35th of them lapsed unless it is one of those five.
    round_at(&app, 25).await;
    let (status, _) = app.token("g35").await;
    assert_eq!(status, StatusCode::OK, "still valid: from memory");
    assert_eq!(app.fake.refresh_calls(), 0);
    // The next round (five seconds on) puts it back into the schedule, in
    // place of one of the never handed-out five.
    round_at(&app, 30).await;
    assert_eq!(gauge(&app, "tokend_grants_warm").await, 10.0);
    // At 60 s the ten kept warm are due: refreshed ahead of expiry.
    round_at(&app, 60).await;
    wait_refreshed(&app, 10, 0).await;
    let done = refreshed(&app);
    assert!(done.contains(&35), "{done:?}");
    for i in 0..5 {
        assert!(done.contains(&i), "hot g{i} refreshed: {done:?}");
    }
    // The same ten stay warm round after round (none due again before
    // 120 s): no other grant is refreshed, none twice.
    for secs in (65..=95).step_by(5) {
        round_at(&app, secs).await;
    }
    app.assert_no_more_calls(10).await;
    let at: Vec<i64> = app.fake.refreshes_at().iter().map(|(t, _)| *t).collect();
    assert!(at.iter().all(|&t| t == T0 + 60_000), "{at:?}");
    assert_eq!(refreshed(&app), done);
    assert_eq!(app.fake.rate_limited(), 0);
}
