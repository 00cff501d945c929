//! A dead process's lease does not freeze a grant (issue 11.8): the real
//! daemon killed with SIGKILL while its refresh waits on a slow token
//! endpoint leaves the grant's lease behind; the restarted daemon sees its
//! holder is gone (same machine, PID no longer alive) and takes it over at
//! once instead of waiting the lease out (25 s with these provider
//! timeouts, 70 s at the defaults).

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::fake_provider::FakeProvider;
use crate::helpers::eventually;
use crate::process::{Daemon, write_config};

const SETTINGS: &str = "[refresh]\nforce_refresh_min_interval_secs = 0\n";

#[tokio::test(flavor = "multi_thread")]
async fn a_forced_refresh_after_a_kill_mid_refresh_does_not_wait_out_the_dead_lease() {
    let fake = FakeProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &fake, SETTINGS);
    let daemon = Daemon::start_ready(&config).await;
    fake.add_refresh_token("rt-alice", json!({}));
    let r = daemon
        .request(Method::PUT, "/v1/credentials/alice")
        .json(&json!({"provider": "cronofy", "refresh_token": "rt-alice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    // A refresh holding the lease, waiting on the provider, when the kill lands.
    fake.set_delay(Duration::from_secs(3));
    let calls = fake.refresh_calls();
    let forced = daemon
        .request(Method::POST, "/v1/tokens/alice/refresh")
        .send();
    let _forced = tokio::spawn(forced);
    eventually("the provider call", async || fake.refresh_calls() > calls).await;
    daemon.kill9();
    fake.set_delay(Duration::ZERO);

    let daemon = Daemon::start_ready(&config).await;
    let started = Instant::now();
    let r = daemon
        .request(Method::POST, "/v1/tokens/alice/refresh")
        .send()
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(r.status(), StatusCode::OK, "{}", daemon.logs());
    // The lease would last 25 s; the bound leaves room for a loaded machine.
    assert!(
        elapsed < Duration::from_secs(10),
        "took {elapsed:?}: the dead lease was waited out"
    );
    let logs = daemon.logs();
    assert!(
        logs.contains("took over the refresh lease of a process that is gone"),
        "{logs}"
    );
    let (exit, logs) = daemon.stop().await;
    assert!(exit.success(), "{logs}");
}
