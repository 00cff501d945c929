//! Three members on one PostgreSQL database with the fake provider: each
//! change served by every member within a second, the provider called as
//! often by three members as by one, a member killed mid-refresh, a member
//! cut off from the database and back, a member with another key.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::api::assert_error;
use crate::fake_provider::{FakeProvider, Rotation};
use crate::helpers::{T0, eventually, send, test_config_toml};
use crate::member::{Member, config};
use crate::relay::Relay;
use tokend::clock::Clock;
use tokend::config::Config;

const HOUR: Duration = Duration::from_secs(3600);

/// One database, one configuration file (as every host would have it).
pub struct Cluster {
    pub dir: TempDir,
    pub path: PathBuf,
    pub config: Config,
    pub url: String,
}

/// The cluster's database goes with it (a member still running is
/// disconnected: the test is over).
impl Drop for Cluster {
    fn drop(&mut self) {
        crate::pg::release(self.dir.path());
    }
}

impl Cluster {
    /// `None` (the test passes, having said why) without a PostgreSQL server.
    pub fn new(fake: &FakeProvider, extra: &str) -> Option<Cluster> {
        let dir = tempfile::tempdir().unwrap();
        let url = crate::pg::database_for(dir.path())?.url();
        let path = dir.path().join("tokend.toml");
        std::fs::write(&path, test_config_toml(dir.path(), fake, extra)).unwrap();
        Some(Cluster {
            config: config(&path),
            dir,
            path,
            url,
        })
    }

    /// The configuration with `from` replaced by `to` (another key file,
    /// another address of the database), written beside the original.
    pub fn variant(&self, name: &str, from: &str, to: &str) -> Config {
        let text = std::fs::read_to_string(&self.path).unwrap();
        assert!(text.contains(from), "{from} in the configuration");
        let path = self.dir.path().join(name);
        std::fs::write(&path, text.replace(from, to)).unwrap();
        config(&path)
    }
}

pub(crate) async fn import(m: &Member, fake: &FakeProvider, id: &str, rt: &str) {
    fake.add_refresh_token(rt, json!({}));
    let (status, body) = send(
        m.request(Method::PUT, &format!("/v1/credentials/{id}"))
            .json(&json!({"provider": "cronofy", "refresh_token": rt})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// Waits (up to `within`) until `f` holds for what `member` serves for `id`;
/// returns how long it took.
async fn served(
    m: &Member,
    id: &str,
    within: Duration,
    f: impl Fn(StatusCode, &Value) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        let (status, body) = m.token(id).await;
        if f(status, &body) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{} did not serve what was expected of {id} within {within:?}: {status} {body}",
            m.url
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Advances the shared clock by an hour (every grant comes due once) and
/// waits until every member serves every grant's new token: the refreshes
/// are committed and no member is still in the middle of one (a member
/// stalled past the next hour's jump would find its lease expired, as a
/// member stalled for real past its lease would).
async fn one_lifetime(clock: &Clock, members: &[&Member], grants: usize) {
    clock.advance(HOUR);
    for m in members {
        for i in 0..grants {
            served(m, &format!("user-{i}"), Duration::from_secs(3), |s, t| {
                s == StatusCode::OK && t["expires_in"].as_i64().is_some_and(|e| e > 3500)
            })
            .await;
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn three_members_call_the_provider_as_one_does_and_share_every_change() {
    let fake = FakeProvider::start().await;
    fake.set_rotation(Rotation::Strict);
    let Some(cluster) = Cluster::new(&fake, "") else {
        return;
    };
    let clock = Clock::manual(T0);
    let a = Member::start(&cluster.config, &clock).await;
    const GRANTS: usize = 4;
    for i in 0..GRANTS {
        // (Not `rt-N`: the fake's rotated tokens are named so.)
        import(&a, &fake, &format!("user-{i}"), &format!("imported-{i}")).await;
    }
    let f = fake.clone();
    eventually("each import's first refresh", async || {
        f.refresh_calls() >= GRANTS
    })
    .await;
    assert_eq!(fake.refresh_calls(), GRANTS);

    // One member, two lifetimes.
    for _ in 0..2 {
        one_lifetime(&clock, &[&a], GRANTS).await;
    }
    let alone = fake.refresh_calls() - GRANTS;
    assert_eq!(alone, 2 * GRANTS);

    // Three members, two lifetimes: the same calls.
    let b = Member::start(&cluster.config, &clock).await;
    let c = Member::start(&cluster.config, &clock).await;
    for _ in 0..2 {
        one_lifetime(&clock, &[&a, &b, &c], GRANTS).await;
    }
    assert_eq!(
        fake.refresh_calls() - GRANTS - alone,
        alone,
        "three members made the calls one made: {:?}",
        fake.requests()
            .iter()
            .map(|r| r.field("refresh_token"))
            .collect::<Vec<_>>()
    );
    // Strict rotation: a second refresh of a grant by another member would
    // have spent a dead token. Every member serves every grant's one token.
    for i in 0..GRANTS {
        let id = format!("user-{i}");
        let (status, want) = a.token(&id).await;
        assert_eq!(status, StatusCode::OK, "{want}");
        for m in [&b, &c] {
            served(m, &id, Duration::from_secs(1), |s, t| {
                s == StatusCode::OK && t["access_token"] == want["access_token"]
            })
            .await;
        }
    }

    // A new credential, a refresh and a deletion, each made through one
    // member, are served by the others within a second.
    import(&a, &fake, "newcomer", "imported-new").await;
    for m in [&b, &c] {
        served(m, "newcomer", Duration::from_secs(1), |s, _| {
            s == StatusCode::OK
        })
        .await;
    }
    let (status, fresh) = send(b.request(Method::POST, "/v1/tokens/user-0/refresh")).await;
    assert_eq!(status, StatusCode::OK, "{fresh}");
    for m in [&a, &c] {
        served(m, "user-0", Duration::from_secs(1), |s, t| {
            s == StatusCode::OK && t["access_token"] == fresh["access_token"]
        })
        .await;
    }
    let (status, _) = send(c.request(Method::DELETE, "/v1/credentials/newcomer")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for m in [&a, &b] {
        served(m, "newcomer", Duration::from_secs(1), |s, _| {
            s == StatusCode::NOT_FOUND
        })
        .await;
    }
    for m in [a, b, c] {
        m.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_killed_mid_refresh_loses_no_grant_and_its_lease_is_taken_over() {
    let fake = FakeProvider::start().await;
    fake.set_rotation(Rotation::Grace);
    let Some(cluster) = Cluster::new(&fake, "") else {
        return;
    };
    let clock = Clock::manual(T0);
    let a = Member::start(&cluster.config, &clock).await;
    let b = Member::start(&cluster.config, &clock).await;
    import(&a, &fake, "alice", "imported-alice").await;
    served(&b, "alice", Duration::from_secs(1), |s, _| {
        s == StatusCode::OK
    })
    .await;

    // A is at the provider, holding the grant's lease, when it dies.
    fake.set_delay(Duration::from_millis(1500));
    let calls = fake.refresh_calls();
    let doomed = tokio::spawn(send(a.request(Method::POST, "/v1/tokens/alice/refresh")));
    let f = fake.clone();
    eventually("A's call at the provider", async || {
        f.refresh_calls() > calls
    })
    .await;
    a.kill9();
    let _ = doomed.await;
    fake.set_delay(Duration::ZERO);

    // B is asked for a fresh token (forced): it waits for the dead member's lease, which
    // expires (the shared clock moves past it), then refreshes itself.
    let wanting = tokio::spawn(send(b.request(Method::POST, "/v1/tokens/alice/refresh")));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!wanting.is_finished(), "B waits while the lease is A's");
    clock.advance(Duration::from_secs(120));
    let (status, token) = tokio::time::timeout(Duration::from_secs(5), wanting)
        .await
        .expect("B took the lease over once it expired")
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{token}");
    assert!(token["expires_in"].as_i64().unwrap() > 3500, "{token}");
    let (status, view) = send(b.request(Method::GET, "/v1/credentials/alice")).await;
    assert_eq!(
        (status, &view["status"]),
        (StatusCode::OK, &json!("active")),
        "{view}"
    );
    b.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_cut_off_from_the_database_serves_from_memory_and_catches_up() {
    let fake = FakeProvider::start().await;
    let Some(cluster) = Cluster::new(&fake, "") else {
        return;
    };
    let url = url::Url::parse(&cluster.url).unwrap();
    let upstream = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
    let relay = Relay::start(upstream.clone()).await;
    let through_relay = cluster.variant(
        "relayed.toml",
        &format!("@{upstream}/"),
        &format!("@127.0.0.1:{}/", relay.port),
    );
    let clock = Clock::manual(T0);
    let a = Member::start(&through_relay, &clock).await;
    let b = Member::start(&cluster.config, &clock).await;
    import(&b, &fake, "alice", "imported-alice").await;
    let (_, before) = b.token("alice").await;
    served(&a, "alice", Duration::from_secs(1), |s, _| {
        s == StatusCode::OK
    })
    .await;

    relay.cut();
    let calls = fake.refresh_calls();
    // A valid token is served from memory; readiness stays.
    let (status, token) = a.token("alice").await;
    assert_eq!(status, StatusCode::OK, "{token}");
    assert_eq!(token["access_token"], before["access_token"]);
    let ready = send(a.request(Method::GET, "/readyz")).await.0;
    assert_eq!(ready, StatusCode::OK);
    // What needs a refresh (200 s on, 3400 s left is not enough) is
    // refused, and the provider is not called.
    clock.advance(Duration::from_secs(200));
    let got = send(a.request(Method::GET, "/v1/tokens/alice?min_ttl=3500")).await;
    assert_error(&got, StatusCode::SERVICE_UNAVAILABLE, "store_unavailable");
    assert_eq!(
        fake.refresh_calls(),
        calls,
        "no refresh it could not commit"
    );
    let (_, metrics) = send(a.request(Method::GET, "/metrics")).await;
    let metrics = metrics.as_str().unwrap_or_default().to_owned();
    assert!(metrics.contains("tokend_store_up 0"), "{metrics}");

    // Meanwhile another member refreshes; A, back, serves that token.
    let (status, fresh) = send(b.request(Method::POST, "/v1/tokens/alice/refresh")).await;
    assert_eq!(status, StatusCode::OK, "{fresh}");
    relay.restore();
    served(&a, "alice", Duration::from_secs(5), |s, t| {
        s == StatusCode::OK && t["access_token"] == fresh["access_token"]
    })
    .await;
    let got = served(&a, "alice", Duration::from_secs(5), |s, _| {
        s == StatusCode::OK
    })
    .await;
    let _ = got;
    let (_, metrics) = send(a.request(Method::GET, "/metrics")).await;
    assert!(
        metrics
            .as_str()
            .unwrap_or_default()
            .contains("tokend_store_up 1")
    );
    for m in [a, b] {
        m.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_with_another_key_refuses_to_start_naming_the_key_ids() {
    let fake = FakeProvider::start().await;
    let Some(cluster) = Cluster::new(&fake, "") else {
        return;
    };
    let clock = Clock::manual(T0);
    let a = Member::start(&cluster.config, &clock).await;
    import(&a, &fake, "alice", "imported-alice").await;
    let other_key = cluster.dir.path().join("other.key");
    tokend::store::key::write_new_key(&other_key, &tokend::store::crypto::MasterKey::generate())
        .unwrap();
    let key_file = cluster.dir.path().join("tokend.key");
    let wrong = cluster.variant(
        "wrong-key.toml",
        &key_file.display().to_string(),
        &other_key.display().to_string(),
    );
    let listeners = tokend::daemon::Listeners::bind(&wrong.server).unwrap();
    let options = tokend::daemon::ServeOptions {
        clock,
        ..tokend::daemon::ServeOptions::default()
    };
    let err = tokend::daemon::serve(wrong, listeners, options, std::future::pending())
        .await
        .unwrap_err();
    let msg = format!("{err:#}");
    let stored =
        tokend::store::crypto::Cipher::new(&tokend::store::key::read_key(&key_file).unwrap())
            .key_id();
    assert!(msg.contains(&stored), "{msg}");
    assert!(msg.contains("encryption_key_file"), "{msg}");
    assert!(
        !msg.contains(&cluster.url),
        "no password-bearing URL: {msg}"
    );
    // The running member is untouched.
    assert_eq!(a.token("alice").await.0, StatusCode::OK);
    a.stop().await.unwrap();
}
