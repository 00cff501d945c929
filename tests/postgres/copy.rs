//! Moving a host to a cluster and back: `tokend copy-store` from SQLite into
//! an empty PostgreSQL database (and refusing a non-empty one), the cluster
//! serving exactly what the host served, and back into a SQLite file; the
//! CLI's other commands on PostgreSQL.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::fake_provider::FakeProvider;
use crate::helpers::{T0, send};
use crate::member::Member;
use crate::process::cli;
use tokend::clock::Clock;

/// What a member shows of every credential: tokens and views.
async fn everything(m: &Member) -> Vec<(Value, Value)> {
    let (status, list) = send(m.request(Method::GET, "/v1/credentials")).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let mut out = Vec::new();
    for c in list["credentials"].as_array().unwrap() {
        let id = c["id"].as_str().unwrap();
        let (status, token) = m.token(id).await;
        assert_eq!(status, StatusCode::OK, "{token}");
        out.push((c.clone(), token));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_store_moves_a_host_to_the_cluster_and_back() {
    let fake = FakeProvider::start().await;
    let Some(cluster) = Cluster::new(&fake, "") else {
        return;
    };
    let dir = cluster.dir.path();
    let sqlite_db = dir.join("host.db");
    let host = cluster.variant(
        "host.toml",
        &format!("database = \"{}\"", cluster.url),
        &format!("database = \"{}\"", sqlite_db.display()),
    );
    let clock = Clock::manual(T0);

    // One host on SQLite with a few credentials (two sharing a grant).
    let m = Member::start(&host, &clock).await;
    for (id, rt) in [
        ("alice", "copied-a"),
        ("bob", "copied-b"),
        ("bob-2", "copied-b"),
    ] {
        fake.add_refresh_token(rt, json!({"sub": id}));
        let (status, body) = send(
            m.request(Method::PUT, &format!("/v1/credentials/{id}"))
                .json(&json!({"provider": "cronofy", "refresh_token": rt})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let before = everything(&m).await;
    assert_eq!(before.len(), 3);
    // The daemon holds the SQLite file: copy-store waits for it to stop.
    let (status, _, err) = cli(
        &dir.join("host.toml"),
        &["copy-store", "--to", &cluster.url],
        "",
    );
    assert!(!status.success() && err.contains("stop"), "{err}");
    m.stop().await.unwrap();

    let calls = fake.refresh_calls();
    let (status, _, err) = cli(
        &dir.join("host.toml"),
        &["copy-store", "--to", &cluster.url],
        "",
    );
    assert!(status.success(), "{err}");
    assert!(err.contains("copied 2 grants and 3 credentials"), "{err}");
    // Only into an empty database.
    let (status, _, err) = cli(
        &dir.join("host.toml"),
        &["copy-store", "--to", &cluster.url],
        "",
    );
    assert!(
        !status.success() && err.contains("already holds grants"),
        "{err}"
    );

    // The cluster serves what the host served: the same sealed tokens.
    let a = Member::start(&cluster.config, &clock).await;
    assert_eq!(everything(&a).await, before);
    assert_eq!(fake.refresh_calls(), calls, "copied tokens need no refresh");
    // The CLI works on PostgreSQL; rotate-key refuses while members run.
    let (status, out, err) = cli(&cluster.path, &["credentials", "list"], "");
    assert!(status.success() && out.contains("bob-2"), "{out}{err}");
    let new_key = dir.join("new.key");
    tokend::store::key::write_new_key(&new_key, &tokend::store::crypto::MasterKey::generate())
        .unwrap();
    let (status, _, err) = cli(
        &cluster.path,
        &["rotate-key", &new_key.display().to_string()],
        "",
    );
    assert!(
        !status.success() && err.contains("member(s) of the cluster are connected"),
        "{err}"
    );
    a.stop().await.unwrap();

    // And back to one host.
    let back = dir.join("back.db");
    let (status, _, err) = cli(
        &cluster.path,
        &["copy-store", "--to", &back.display().to_string()],
        "",
    );
    assert!(status.success(), "{err}");
    let host_again = cluster.variant(
        "back.toml",
        &format!("database = \"{}\"", cluster.url),
        &format!("database = \"{}\"", back.display()),
    );
    let m = Member::start(&host_again, &clock).await;
    assert_eq!(everything(&m).await, before);
    m.stop().await.unwrap();
}
