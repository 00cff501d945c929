//! Durability against a provider that rotates refresh tokens: the real
//! binary killed with SIGKILL at random moments (reuse grace), and at fixed
//! points (strict rotation), never loses a grant the provider honours.

use std::path::Path;
use std::time::Duration;

use rand::Rng;
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde_json::json;

use crate::fake_provider::{FakeProvider, Rotation};
use crate::process::{Daemon, write_config};
use tokend::clock::Clock;
use tokend::store::Store;
use tokend::store::key::read_key;

const GRANTS: usize = 8;

/// Fast settings: 2 s tokens are refreshed about every second; forced
/// refreshes are not rate limited.
const FAST: &str = "[refresh]\nforce_refresh_min_interval_secs = 0\nretry_initial_secs = 0.05\nretry_max_secs = 0.5\n";

/// The refresh tokens the database holds, current and previous, by credential.
async fn stored_tokens(dir: &Path) -> Vec<(String, String, Option<String>)> {
    let key = read_key(&dir.join("tokend.key")).unwrap();
    let store = Store::open(&dir.join("tokend.db"), &key, Clock::system())
        .await
        .unwrap();
    let mut grants = Vec::new();
    store.load_each(&mut |g| grants.push(g)).await.unwrap();
    let mut out = Vec::new();
    for g in grants {
        let full = store.get_grant(g.id).await.unwrap().unwrap();
        for c in &g.credentials {
            out.push((
                c.id.clone(),
                full.refresh_token.expose_secret().to_owned(),
                full.previous_refresh_token
                    .as_ref()
                    .map(|t| t.expose_secret().to_owned()),
            ));
        }
    }
    store.close().await;
    out.sort();
    out
}

/// Imports credential `id` with a refresh token the fake honours.
async fn import(daemon: &Daemon, fake: &FakeProvider, id: &str, rt: &str) {
    fake.add_refresh_token(rt, json!({}));
    let r = daemon
        .request(Method::PUT, &format!("/v1/credentials/{id}"))
        .json(&json!({"provider": "cronofy", "refresh_token": rt}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
}

async fn import_all(daemon: &Daemon, fake: &FakeProvider) {
    for i in 0..GRANTS {
        import(daemon, fake, &format!("user-{i}"), &format!("rt-start-{i}")).await;
    }
}

async fn refresh(daemon: &Daemon, id: &str) -> StatusCode {
    daemon
        .request(Method::POST, &format!("/v1/tokens/{id}/refresh"))
        .send()
        .await
        .unwrap()
        .status()
}

/// Every grant refreshes once more, and none was marked needs_reauth.
async fn all_refreshable(daemon: &Daemon) {
    for i in 0..GRANTS {
        assert_eq!(
            refresh(daemon, &format!("user-{i}")).await,
            StatusCode::OK,
            "user-{i}:\n{}",
            daemon.logs()
        );
    }
    let list: serde_json::Value = daemon
        .request(Method::GET, "/v1/credentials?status=needs_reauth")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["credentials"], json!([]), "no grant was lost");
}

#[tokio::test(flavor = "multi_thread")]
async fn random_sigkills_lose_no_grant_with_a_reuse_grace() {
    let fake = FakeProvider::start().await;
    fake.set_rotation(Rotation::Grace);
    fake.set_expires_in(Some(2));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &fake, FAST);

    let mut daemon = Daemon::start_ready(&config).await;
    import_all(&daemon, &fake).await;
    let mut rng = rand::thread_rng();
    for _ in 0..5 {
        // Grants refresh about every second: a kill lands anywhere in a refresh.
        tokio::time::sleep(Duration::from_millis(rng.gen_range(200..1_200))).await;
        daemon.kill9();
        daemon = Daemon::start_ready(&config).await;
    }
    assert!(
        fake.refresh_calls() > GRANTS * 2,
        "refreshes happened between the kills"
    );
    daemon.kill9();

    // What a crash leaves: every grant holds a refresh token the provider honours.
    let stored = stored_tokens(dir.path()).await;
    assert_eq!(stored.len(), GRANTS);
    for (id, current, previous) in &stored {
        let honoured =
            fake.is_valid(current) || previous.as_ref().is_some_and(|p| fake.is_valid(p));
        assert!(honoured, "{id} holds no live refresh token");
    }
    let daemon = Daemon::start_ready(&config).await;
    all_refreshable(&daemon).await;
    let (exit, logs) = daemon.stop().await;
    assert!(exit.success(), "{logs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn strict_rotation_survives_kills_at_fixed_points() {
    let fake = FakeProvider::start().await;
    fake.set_rotation(Rotation::Strict);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &fake, FAST);
    let mut daemon = Daemon::start_ready(&config).await;
    import_all(&daemon, &fake).await;

    // (a) Killed before a provider call (idle): nothing is lost.
    daemon.kill9();
    daemon = Daemon::start_ready(&config).await;
    all_refreshable(&daemon).await;

    // (b) Killed right after a commit (the answer is sent only after it).
    assert_eq!(refresh(&daemon, "user-0").await, StatusCode::OK);
    daemon.kill9();
    daemon = Daemon::start_ready(&config).await;
    assert_eq!(refresh(&daemon, "user-0").await, StatusCode::OK);

    // (c) SIGTERM during a slow provider call: the call finishes, its rotated
    // refresh token is stored, the process exits 0.
    fake.set_delay(Duration::from_millis(800));
    let calls = fake.refresh_calls();
    let url = daemon.url.clone();
    let key = daemon.key.clone();
    let pending = tokio::spawn(async move {
        reqwest::Client::new()
            .post(format!("{url}/v1/tokens/user-1/refresh"))
            .bearer_auth(key)
            .send()
            .await
            .map(|r| r.status())
    });
    let f = fake.clone();
    crate::helpers::eventually("the call reached the provider", async || {
        f.refresh_calls() > calls
    })
    .await;
    let (exit, logs) = daemon.stop().await;
    assert!(exit.success(), "{logs}");
    assert_eq!(
        pending.await.unwrap().unwrap(),
        StatusCode::OK,
        "the in-flight request was answered"
    );
    fake.set_delay(Duration::ZERO);

    // With strict rotation only the newest token lives: the database has it.
    for (id, current, _) in stored_tokens(dir.path()).await {
        assert!(fake.is_valid(&current), "{id} holds a dead refresh token");
    }
    let daemon = Daemon::start_ready(&config).await;
    all_refreshable(&daemon).await;
}

/// Another process (the CLI, `sqlite3`, a backup) opening and closing the
/// database while the daemon runs must not take the daemon's WAL from under
/// it. A daemon that dropped its own POSIX locks (by closing a descriptor of
/// the database file after SQLite opened it) would let that process
/// checkpoint and delete the WAL, and the daemon's later writes would land
/// in a deleted file.
#[tokio::test(flavor = "multi_thread")]
async fn another_process_closing_the_database_leaves_the_daemons_wal_alone() {
    let fake = FakeProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &fake, "");
    // A second start reads an existing database ahead of opening it.
    let daemon = Daemon::start_ready(&config).await;
    import(&daemon, &fake, "before", "rt-before").await;
    let (exit, _) = daemon.stop().await;
    assert!(exit.success());
    let daemon = Daemon::start_ready(&config).await;

    // This test process is the other process: it reads and closes.
    assert_eq!(stored_tokens(dir.path()).await.len(), 1);
    assert!(
        dir.path().join("tokend.db-wal").exists(),
        "the running daemon's WAL is still there"
    );
    import(&daemon, &fake, "after", "rt-after").await;
    let ids: Vec<String> = stored_tokens(dir.path())
        .await
        .into_iter()
        .map(|(id, _, _)| id)
        .collect();
    assert_eq!(ids, ["after", "before"], "{}", daemon.logs());
    let (exit, logs) = daemon.stop().await;
    assert!(exit.success(), "{logs}");
}
