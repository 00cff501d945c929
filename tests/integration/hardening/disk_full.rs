//! A full disk under the real daemon (issue 11.1), with a provider that
//! rotates refresh tokens strictly (the old one dies at once). The disk is
//! "filled" by a file-size limit set on the running process (`prlimit`, as
//! `ulimit -f` would): every write past it fails, as writes to a full disk
//! do, and lifting it is space returning. A refresh answered by the
//! provider just as the disk fills is held, retried and stored once space
//! returns, also through a SIGTERM; nothing else calls the provider
//! meanwhile, and no grant is lost.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use rustix::process::{Pid, Resource, Rlimit, prlimit};
use serde_json::{Value, json};

use crate::fake_provider::{FakeProvider, Rotation};
use crate::helpers::eventually;
use crate::process::{Daemon, write_config};

const SETTINGS: &str = "[refresh]\nforce_refresh_min_interval_secs = 0\n";

/// The soft file-size limit of process `pid` (`None`: none).
fn limit_file_size(pid: u32, bytes: Option<u64>) {
    let pid = Pid::from_raw(pid as i32).unwrap();
    let limit = Rlimit {
        current: bytes,
        maximum: None,
    };
    prlimit(Some(pid), Resource::Fsize, limit).unwrap();
}

async fn import(daemon: &Daemon, fake: &FakeProvider, id: &str) {
    let rt = format!("rt-{id}");
    fake.add_refresh_token(&rt, json!({}));
    let r = daemon
        .request(Method::PUT, &format!("/v1/credentials/{id}"))
        .json(&json!({"provider": "cronofy", "refresh_token": rt}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
}

async fn call(daemon: &Daemon, method: Method, path: &str) -> (StatusCode, Value) {
    let r = daemon.request(method, path).send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn metric(daemon: &Daemon, name: &str) -> String {
    let (_, text) = call(daemon, Method::GET, "/metrics").await;
    let text = text.as_str().unwrap_or_default().to_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")).map(str::to_owned))
        .unwrap_or_default()
}

/// Starts a forced refresh of `id` whose provider answer (slowed down)
/// arrives after the disk filled up; returns the request.
async fn refresh_as_the_disk_fills(
    daemon: &Daemon,
    fake: &FakeProvider,
    id: &str,
) -> tokio::task::JoinHandle<(StatusCode, String)> {
    fake.set_delay(Duration::from_millis(700));
    let calls = fake.refresh_calls();
    let request = daemon.request(Method::POST, &format!("/v1/tokens/{id}/refresh"));
    let forced = tokio::spawn(async move {
        let r = request.send().await.unwrap();
        (r.status(), r.text().await.unwrap())
    });
    eventually("the provider call", async || fake.refresh_calls() > calls).await;
    limit_file_size(daemon.pid(), Some(1));
    fake.set_delay(Duration::ZERO);
    eventually("the result held", async || {
        metric(daemon, "tokend_durable_writes_pending").await == "1"
    })
    .await;
    forced
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_costs_no_grant_and_writes_resume_when_space_returns() {
    let fake = FakeProvider::start().await;
    fake.set_rotation(Rotation::Strict);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &fake, SETTINGS);
    let daemon = Daemon::start_ready(&config).await;
    import(&daemon, &fake, "alice").await;
    import(&daemon, &fake, "bob").await;
    let (_, old) = call(&daemon, Method::GET, "/v1/tokens/alice").await;

    let forced = refresh_as_the_disk_fills(&daemon, &fake, "alice").await;
    let calls = fake.refresh_calls();
    assert_eq!(metric(&daemon, "tokend_store_up").await, "0");
    let (status, ready) = call(&daemon, Method::GET, "/readyz").await;
    assert_eq!((status, &ready["store"]), (StatusCode::OK, &json!("down")));
    assert_eq!(ready["unstored_refreshes"], 1);
    // The new token is not handed out before it is stored; the old one is.
    let (status, token) = call(&daemon, Method::GET, "/v1/tokens/alice").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(token["access_token"], old["access_token"]);
    // Nothing else reaches the provider while the disk is full.
    let (status, body) = call(&daemon, Method::POST, "/v1/tokens/bob/refresh").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "store_unavailable");
    assert_eq!(fake.refresh_calls(), calls);
    let logs = daemon.logs();
    assert!(logs.contains("the database refuses writes"), "{logs}");

    // Space returns: the held result is stored and handed out, no restart.
    limit_file_size(daemon.pid(), None);
    let (status, body) = forced.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let fresh: Value = serde_json::from_str(&body).unwrap();
    assert_ne!(fresh["access_token"], old["access_token"]);
    eventually("the store is up", async || {
        metric(&daemon, "tokend_store_up").await == "1"
    })
    .await;
    import(&daemon, &fake, "carol").await;
    for id in ["alice", "bob", "carol"] {
        let path = format!("/v1/tokens/{id}/refresh");
        let (status, body) = call(&daemon, Method::POST, &path).await;
        assert_eq!(status, StatusCode::OK, "{id}: {body}");
    }

    // Again, and SIGTERM while the result is held: the stop keeps retrying
    // the write, which works once space returns.
    let pid = daemon.pid();
    let _forced = refresh_as_the_disk_fills(&daemon, &fake, "alice").await;
    let stopping = tokio::spawn(daemon.stop());
    tokio::time::sleep(Duration::from_millis(500)).await;
    limit_file_size(pid, None);
    let (exit, logs) = stopping.await.unwrap();
    assert!(exit.success(), "{logs}");
    assert!(!logs.contains("never took"), "{logs}");

    // The rotated refresh token was kept: the grant still refreshes.
    let daemon = Daemon::start_ready(&config).await;
    for id in ["alice", "bob", "carol"] {
        let path = format!("/v1/tokens/{id}/refresh");
        let (status, body) = call(&daemon, Method::POST, &path).await;
        assert_eq!(status, StatusCode::OK, "{id}: {body}\n{}", daemon.logs());
    }
    let (exit, logs) = daemon.stop().await;
    assert!(exit.success(), "{logs}");
}
