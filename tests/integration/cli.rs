//! The binary's commands: serve on defaults, check-config, client-key,
//! credentials import/list/show/delete, token, rotate-key, migrate, and
//! that no secret reaches its log at the most verbose level.

use std::os::unix::fs::PermissionsExt;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::fake_provider::{CLIENT_SECRET, FakeProvider};
use crate::process::{BIN, Daemon, cli, write_config};

#[tokio::test(flavor = "multi_thread")]
async fn serve_on_embedded_defaults_creates_private_files_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    // No config file at all: the embedded defaults, but on a free port.
    let mut child = std::process::Command::new(BIN)
        .arg("serve")
        .current_dir(dir.path())
        .env("TOKEND__SERVER__LISTEN", "127.0.0.1:0")
        .env_remove("RUST_LOG")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["message"] == "listening"
            {
                let _ = tx.send(v["address"].as_str().unwrap().to_owned());
            }
        }
    });
    let addr = rx.recv_timeout(std::time::Duration::from_secs(20)).unwrap();
    let http = reqwest::Client::new();
    crate::helpers::eventually("readyz 200", async || {
        http.get(format!("http://{addr}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    for name in [
        "tokend.db",
        "tokend.db-wal",
        "tokend.db-shm",
        "tokend.key",
        "client.key",
    ] {
        let mode = std::fs::metadata(dir.path().join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}");
    }
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success(), "SIGTERM exits 0");
}

#[test]
fn check_config_redacts_and_names_bad_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.toml");
    std::fs::write(&path, "[providers.c]\nkind = \"cronofy\"\nclient_id = \"x\"\nclient_secret = \"hunter2-secret\"\n").unwrap();
    let (status, out, _) = cli(&path, &["check-config"], "");
    assert!(status.success());
    assert!(
        out.contains("client_secret = \"[REDACTED]\"") && !out.contains("hunter2"),
        "{out}"
    );

    std::fs::write(&path, "[refresh]\nlead_fration = 0.1\n").unwrap();
    let (status, _, err) = cli(&path, &["check-config"], "");
    assert_eq!(status.code(), Some(2));
    assert!(err.contains("refresh.lead_fration"), "{err}");
}

#[test]
fn client_key_prints_a_key_and_its_hash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.toml");
    std::fs::write(&path, "").unwrap();
    let (status, out, _) = cli(&path, &["client-key", "billing"], "");
    assert!(status.success());
    let key = out.lines().find(|l| l.starts_with("tkd_")).unwrap();
    let hash = hex::encode(Sha256::digest(key.as_bytes()));
    assert!(out.contains("[clients.billing]"));
    assert!(out.contains(&format!("key_sha256 = \"{hash}\"")), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_commands_work_beside_a_running_daemon() {
    let fake = FakeProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    // No hand-out margin: `--min-ttl 3599` below then asks for a refresh
    // that a fresh one-hour token meets.
    let config = write_config(dir.path(), &fake, "[refresh]\nhandout_margin_ms = 0\n");
    let daemon = Daemon::start_ready(&config).await;

    fake.add_refresh_token("rt-cli", json!({"account_id": "acc_cli"}));
    let (status, out, err) = cli(
        &config,
        &["credentials", "import", "bob", "--provider", "cronofy"],
        "rt-cli\n",
    );
    assert!(status.success(), "{err}");
    let view: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(view["status"], "active");
    assert_eq!(view["account_id"], "acc_cli");

    // The daemon follows the CLI's write within a couple of seconds.
    let http_ok = async || {
        daemon
            .request(Method::GET, "/v1/tokens/bob")
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK)
    };
    crate::helpers::eventually("daemon sees the import", http_ok).await;

    let (status, out, _) = cli(&config, &["credentials", "list", "--json"], "");
    assert!(status.success());
    assert_eq!(out.lines().count(), 1);
    let (status, token, _) = cli(&config, &["token", "bob"], "");
    assert!(status.success());
    assert!(token.trim().starts_with("at-"), "{token}");
    let (status, _, err) = cli(&config, &["token", "bob", "--min-ttl", "3599"], "");
    assert!(status.success(), "a refresh through the lease: {err}");

    let (status, _, err) = cli(&config, &["credentials", "show", "nobody"], "");
    assert!(
        !status.success() && err.contains("no credential nobody"),
        "{err}"
    );
    let (status, _, _) = cli(&config, &["credentials", "delete", "bob"], "");
    assert!(status.success());
    crate::helpers::eventually("daemon sees the delete", async || {
        daemon
            .request(Method::GET, "/v1/tokens/bob")
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::NOT_FOUND)
    })
    .await;
    let (exit, logs) = daemon.sigterm();
    assert!(exit.success(), "{logs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn rotate_key_round_trip_through_the_cli() {
    let fake = FakeProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &fake, "");
    fake.add_refresh_token("rt-1", json!({}));
    let (status, _, err) = cli(
        &config,
        &["credentials", "import", "alice", "--provider", "cronofy"],
        "rt-1",
    );
    assert!(status.success(), "{err}");

    let new_key = dir.path().join("new.key");
    std::fs::write(&new_key, [9u8; 32]).unwrap();
    let (status, _, err) = cli(&config, &["rotate-key", new_key.to_str().unwrap()], "");
    assert!(status.success(), "{err}");
    assert!(err.contains("re-encrypted 1 grants"), "{err}");

    // The old key (tokend.key beside the database) is refused, by key id.
    let (status, _, err) = cli(&config, &["credentials", "show", "alice"], "");
    assert!(!status.success());
    assert!(
        err.contains("is encrypted with key") && err.contains("storage.encryption_key_file"),
        "{err}"
    );

    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[storage]\n",
        &format!(
            "[storage]\nencryption_key_file = {:?}\n",
            new_key.to_str().unwrap()
        ),
    );
    std::fs::write(&config, text).unwrap();
    let (status, out, err) = cli(&config, &["token", "alice"], "");
    assert!(status.success(), "{err}");
    assert!(out.trim().starts_with("at-"));
    let (status, _, _) = cli(&config, &["migrate"], "");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_reaches_the_log_even_at_trace_level() {
    let fake = FakeProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &fake, "");
    let daemon = Daemon::start(&config, &[("RUST_LOG", "trace")]);
    daemon.wait_ready().await;
    let key = daemon.key.clone();

    fake.add_refresh_token("rt-SECRET-one", json!({}));
    let import = daemon
        .request(Method::PUT, "/v1/credentials/alice")
        .json(&json!({"provider": "cronofy", "refresh_token": "rt-SECRET-one"}))
        .send()
        .await
        .unwrap();
    assert_eq!(import.status(), StatusCode::CREATED);
    let token: Value = daemon
        .request(Method::GET, "/v1/tokens/alice")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = token["access_token"].as_str().unwrap().to_owned();
    let forced = daemon
        .request(Method::POST, "/v1/tokens/alice/refresh")
        .json(&json!({"rejected_token": access}))
        .send()
        .await
        .unwrap();
    assert!(forced.status().is_success() || forced.status() == StatusCode::TOO_MANY_REQUESTS);
    fake.add_code("code-SECRET-1", "rt-SECRET-two", json!({"sub": "s"}));
    let exchange = daemon
        .request(Method::POST, "/v1/credentials/bob/authorization-code")
        .json(&json!({"provider": "cronofy", "code": "code-SECRET-1", "redirect_uri": crate::helpers::REDIRECT_URI}))
        .send()
        .await
        .unwrap();
    assert_eq!(exchange.status(), StatusCode::CREATED);
    // A refused code's answer, a provider error, a bad key.
    let _ = daemon
        .request(Method::POST, "/v1/credentials/carol/authorization-code")
        .json(&json!({"provider": "cronofy", "code": "code-SECRET-1", "redirect_uri": crate::helpers::REDIRECT_URI}))
        .send()
        .await
        .unwrap();
    let _ = reqwest::Client::new()
        .get(format!("{}/v1/tokens/alice", daemon.url))
        .bearer_auth("tkd_SECRET_wrong_key")
        .send()
        .await
        .unwrap();

    let (exit, logs) = daemon.sigterm();
    assert!(exit.success());
    assert!(
        logs.contains("TRACE") || logs.contains("\"level\":\"TRACE\""),
        "trace level was on"
    );
    for secret in [
        "rt-SECRET-one",
        "rt-SECRET-two",
        "code-SECRET-1",
        "tkd_SECRET_wrong_key",
        CLIENT_SECRET,
        access.as_str(),
        key.as_str(),
    ] {
        assert!(!logs.contains(secret), "{secret} leaked into the log");
    }
    // Nor into the database file.
    let db = std::fs::read(dir.path().join("tokend.db")).unwrap();
    let wal = std::fs::read(dir.path().join("tokend.db-wal")).unwrap_or_default();
    for secret in ["rt-SECRET-one", "rt-SECRET-two", access.as_str()] {
        let hit = |b: &[u8]| b.windows(secret.len()).any(|w| w == secret.as_bytes());
        assert!(
            !hit(&db) && !hit(&wal),
            "{secret} is in the database in clear"
        );
    }
}
