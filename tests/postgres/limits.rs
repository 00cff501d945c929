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

/// `fake.refresh_calls()` reaches `n` and stays there while the clock stands.
async fn calls_settle_at(fake: &FakeProvider, n: usize) {
    let f = fake.clone();
    eventually(&format!("{n} refresh calls"), async || {
        f.refresh_calls() >= n
    })
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

#[tokio::test(flavor = "multi_thread")]
async fn three_members_keep_one_request_limit_and_one_pause_for_the_cluster() {
    let fake = FakeProvider::start().await;
    let clock = Clock::manual(T0);
    fake.use_clock(clock.clone());
    let Some(cluster) = Cluster::new(&fake, "") else {
        return;
    };
    // The provider's own limit is the one configured: a member that kept a
    // bucket of its own would run into it.
    fake.limit_rate(60, 3);
    let limited = cluster.variant(
        "limited.toml",
        "max_requests_per_minute = 60000\nburst = 1000",
        "max_requests_per_minute = 60\nburst = 3",
    );
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
