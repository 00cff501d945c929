//! Limits that hold for the cluster together: three members share one
//! request bucket per provider (`max_requests_per_minute`, `burst`) and one
//! 429 pause, on the members' shared manual clock.

use std::time::Duration;

use futures::future::join_all;
use reqwest::{Method, StatusCode};

use crate::cluster::{Cluster, import};
use crate::fake_provider::{Canned, FakeProvider};
use crate::helpers::{T0, eventually, send};
use crate::member::Member;
use tokend::clock::Clock;
use tokend::config::Config;

/// `fake.refresh_calls()` reaches `n` and stays there while the clock stands.
async fn calls_settle_at(fake: &FakeProvider, n: usize) {
    let f = fake.clone();
    eventually(
        &format!("{n} refresh calls (have {})", fake.refresh_calls()),
        async || f.refresh_calls() >= n,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        fake.refresh_calls(),
        n,
        "no call beyond the cluster's bucket"
    );
}

/// Whether the cluster's bucket for the provider records a pause.
async fn paused_in_database(url: &str) -> bool {
    let Ok(pool) = sqlx::PgPool::connect(url).await else {
        return false;
    };
    let until: Option<i64> =
        sqlx::query_scalar("SELECT paused_until FROM rate_buckets WHERE key = 'provider:cronofy'")
            .fetch_optional(&pool)
            .await
            .unwrap_or(None);
    pool.close().await;
    until.is_some_and(|u| u > T0)
}

/// The fake provider on a manual clock, and a cluster whose providers have
/// `settings` instead of the test defaults (the configuration returned).
async fn limited_cluster(settings: &str) -> Option<(FakeProvider, Clock, Cluster, Config)> {
    let fake = FakeProvider::start().await;
    let clock = Clock::manual(T0);
    fake.use_clock(clock.clone());
    let cluster = Cluster::new(&fake, "")?;
    let config = cluster.variant(
        "limited.toml",
        "max_requests_per_minute = 60000\nburst = 1000",
        settings,
    );
    Some((fake, clock, cluster, config))
}

#[tokio::test(flavor = "multi_thread")]
async fn three_members_keep_one_request_limit_and_one_pause_for_the_cluster() {
    let Some((fake, clock, cluster, limited)) =
        limited_cluster("max_requests_per_minute = 60\nburst = 3").await
    else {
        return;
    };
    // The provider's own limit is the one configured: a member that kept a
    // bucket of its own would run into it.
    fake.limit_rate(60, 3);
    let members = [
        Member::start(&limited, &clock).await,
        Member::start(&limited, &clock).await,
        Member::start(&limited, &clock).await,
    ];

    // Nine new grants, three through each member at once, each needing a
    // call: the burst of three is the cluster's, the others wait for cells.
    let imports = join_all((0..9).map(|i| {
        let (m, fake) = (&members[i % 3], &fake);
        async move { import(m, fake, &format!("user-{i}"), &format!("imported-{i}")).await }
    }));
    let drive = async {
        calls_settle_at(&fake, 3).await;
        clock.advance(Duration::from_secs(1));
        calls_settle_at(&fake, 4).await;
        clock.advance(Duration::from_secs(2));
        calls_settle_at(&fake, 6).await;
        clock.advance(Duration::from_secs(3));
    };
    tokio::join!(imports, drive);
    assert_eq!(fake.refresh_calls(), 9);
    assert_eq!(fake.rate_limited(), 0, "the provider never had to refuse");

    // A 429 answered to one member pauses the provider for all of them.
    clock.advance(Duration::from_secs(60));
    fake.push(Canned::error(429, "too_many_requests").header("retry-after", "30"));
    let (status, body) = send(members[0].request(Method::POST, "/v1/tokens/user-0/refresh")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    eventually("the pause written for the cluster", async || {
        paused_in_database(&cluster.url).await
    })
    .await;
    let before = fake.requests().len();
    for (m, id) in [(&members[1], "user-1"), (&members[2], "user-2")] {
        let (status, body) =
            send(m.request(Method::POST, &format!("/v1/tokens/{id}/refresh"))).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["error"], "provider_unavailable", "{body}");
    }
    assert_eq!(
        fake.requests().len(),
        before,
        "no call while the cluster is paused"
    );
    // After the pause, every member calls again.
    clock.advance(Duration::from_secs(31));
    let (status, body) = send(members[2].request(Method::POST, "/v1/tokens/user-2/refresh")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for m in members {
        m.stop().await.unwrap();
    }
}

/// Imports `n` grants through `m`, moving the clock a tenth of a second at
/// a time while the cluster's bucket makes them wait.
async fn import_all(m: &Member, fake: &FakeProvider, clock: &Clock, n: usize) {
    let imports = join_all((0..n).map(|i| {
        let id = format!("user-{i}");
        async move { import(m, fake, &id, &format!("imported-{i}")).await }
    }));
    let drive = async {
        while fake.refresh_calls() < n {
            tokio::time::sleep(Duration::from_millis(20)).await;
            clock.advance(Duration::from_millis(100));
        }
    };
    tokio::join!(imports, drive);
}

#[tokio::test(flavor = "multi_thread")]
async fn background_refreshes_of_three_members_keep_within_one_budget() {
    // A budget of 1% of 6,000 a minute: one background refresh a second,
    // at most three at once, for the whole cluster.
    let Some((fake, clock, _cluster, budgeted)) =
        limited_cluster("max_requests_per_minute = 6000\nburst = 3\nrefresh_share = 0.01").await
    else {
        return;
    };
    let members = [
        Member::start(&budgeted, &clock).await,
        Member::start(&budgeted, &clock).await,
        Member::start(&budgeted, &clock).await,
    ];
    const GRANTS: usize = 12;
    import_all(&members[0], &fake, &clock, GRANTS).await;
    calls_settle_at(&fake, GRANTS).await;

    // An hour on, every grant is due at once: three members, one budget.
    clock.advance(Duration::from_secs(3600));
    calls_settle_at(&fake, GRANTS + 3).await;
    for second in 1..=4 {
        clock.advance(Duration::from_secs(1));
        calls_settle_at(&fake, GRANTS + 3 + second).await;
    }
    // Ten seconds idle refill the burst only: three at once again.
    clock.advance(Duration::from_secs(10));
    calls_settle_at(&fake, GRANTS + 10).await;
    for m in members {
        m.stop().await.unwrap();
    }
}

/// Whether a member wrote when `credential` was last handed out.
async fn handed_out_in_database(url: &str, credential: &str) -> bool {
    let Ok(pool) = sqlx::PgPool::connect(url).await else {
        return false;
    };
    let at: Option<Option<i64>> =
        sqlx::query_scalar("SELECT last_handed_out_at FROM credentials WHERE id = $1")
            .bind(credential)
            .fetch_optional(&pool)
            .await
            .unwrap_or(None);
    pool.close().await;
    at.flatten().is_some()
}

/// Moves the shared clock by five seconds and waits until every member's
/// budget bookkeeping ran for the new time.
async fn round(clock: &Clock, members: &[&Member]) {
    clock.advance(Duration::from_secs(5));
    let now_secs = (clock.now() / 1000) as f64;
    for m in members {
        eventually("the member's budget round", async || {
            let (_, body) = send(m.request(Method::GET, "/metrics")).await;
            body.as_str().unwrap_or_default().lines().any(|l| {
                l.strip_prefix("tokend_refresh_budget_round_timestamp_seconds ")
                    .and_then(|v| v.parse::<f64>().ok())
                    == Some(now_secs)
            })
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_members_keep_warm_the_grants_handed_out_last_anywhere_in_the_cluster() {
    // A budget of 0.03 calls a minute: one one-hour grant kept warm, not two.
    let Some((fake, clock, cluster, budgeted)) =
        limited_cluster("max_requests_per_minute = 2\nburst = 2\nrefresh_share = 0.015").await
    else {
        return;
    };
    let a = Member::start(&budgeted, &clock).await;
    let b = Member::start(&budgeted, &clock).await;
    import(&a, &fake, "user-x", "imported-x").await;
    import(&a, &fake, "user-y", "imported-y").await;
    calls_settle_at(&fake, 2).await;

    // Y is handed out through B, then X, 65 s later, through A only (the
    // budget orders hand-outs of an hour ago by the minute).
    assert_eq!(b.token("user-y").await.0, StatusCode::OK);
    for _ in 0..13 {
        round(&clock, &[&a, &b]).await;
    }
    assert_eq!(a.token("user-x").await.0, StatusCode::OK);
    // Rounds: every 12th, both members write their hand-outs and read each
    // other's. Until A has written X's; then two more of B's reads, and
    // rounds for its warm set to follow what it read.
    let mut rounds = 13;
    while !handed_out_in_database(&cluster.url, "user-x").await {
        assert!(rounds < 40, "A wrote its hand-out of X by its 24th round");
        round(&clock, &[&a, &b]).await;
        rounds += 1;
    }
    for _ in 0..30 {
        round(&clock, &[&a, &b]).await;
    }
    // B alone from here: it must keep X warm (handed out last, on A), not
    // Y (the only one it handed out itself).
    a.stop().await.unwrap();
    fake.clear_requests();
    clock.advance(Duration::from_secs(3600));
    let f = fake.clone();
    eventually("B's background refresh", async || {
        !f.refreshes_at()
            .iter()
            .skip(2)
            .collect::<Vec<_>>()
            .is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after: Vec<String> = fake
        .refreshes_at()
        .into_iter()
        .skip(2)
        .map(|(_, rt)| rt)
        .collect();
    assert_eq!(
        after,
        ["imported-x"],
        "the cluster's most recent hand-out is kept warm"
    );
    b.stop().await.unwrap();
}
