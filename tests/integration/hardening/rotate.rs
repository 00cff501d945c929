//! `tokend rotate-key` never re-encrypts a database under a running daemon:
//! it refuses, naming the daemon's pid and telling the operator to stop the
//! service first (`--help` says so too), and the daemon keeps working.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::fake_provider::FakeProvider;
use crate::process::{BIN, Daemon, cli, write_config};

#[tokio::test(flavor = "multi_thread")]
async fn rotate_key_refuses_while_a_daemon_has_the_database_open() {
    let fake = FakeProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &fake, "");
    fake.add_refresh_token("rt-1", json!({}));
    fake.add_refresh_token("rt-2", json!({}));
    let daemon = Daemon::start_ready(&config).await;
    let import = |id: &str, rt: &str| {
        daemon
            .request(Method::PUT, &format!("/v1/credentials/{id}"))
            .json(&json!({"provider": "cronofy", "refresh_token": rt}))
            .send()
    };
    assert_eq!(
        import("alice", "rt-1").await.unwrap().status(),
        StatusCode::CREATED
    );

    let new_key = dir.path().join("new.key");
    std::fs::write(&new_key, [9u8; 32]).unwrap();
    let (status, _, err) = cli(&config, &["rotate-key", new_key.to_str().unwrap()], "");
    assert!(!status.success(), "rotate-key ran beside the daemon: {err}");
    assert!(
        err.contains(&format!("pid {}", daemon.pid())),
        "names the process: {err}"
    );
    assert!(err.contains("stop"), "says to stop the service: {err}");

    // Nothing was re-encrypted: the daemon still writes and reads.
    assert_eq!(
        import("bob", "rt-2").await.unwrap().status(),
        StatusCode::CREATED
    );
    let token = daemon
        .request(Method::GET, "/v1/tokens/alice")
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), StatusCode::OK);
    let (exit, logs) = daemon.stop().await;
    assert!(exit.success(), "{logs}");

    // With the daemon stopped it runs.
    let (status, _, err) = cli(&config, &["rotate-key", new_key.to_str().unwrap()], "");
    assert!(status.success(), "{err}");
    assert!(err.contains("re-encrypted 2 grants"), "{err}");
}

#[test]
fn rotate_key_help_says_to_stop_the_daemon_first() {
    let out = std::process::Command::new(BIN)
        .args(["rotate-key", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(help.contains("Stop the daemon first"), "{help}");
}
