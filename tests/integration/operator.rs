//! An operator's view of the binary: the shipped example configuration
//! starts, CLI commands that need no provider secret run without one (a
//! root shell on an installed system cannot see the service's
//! `$CREDENTIALS_DIRECTORY`), and under journald every line carries its
//! syslog priority.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::fake_provider::{CLIENT_SECRET, FakeProvider};
use crate::process::{BIN, Daemon};

/// Runs `tokend --config CONFIG ARGS` with `env`, stdin closed.
fn run(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("STATE_DIRECTORY")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// A Cronofy provider on `fake` whose secret is the bare name `cronofy_secret`.
fn config_with_secret_file(dir: &Path, fake: &FakeProvider) -> std::path::PathBuf {
    let path = dir.join("tokend.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\n[storage]\ndatabase = \"{db}\"\n\
             [providers.cronofy]\nkind = \"cronofy\"\napi_base_url = \"{url}\"\n\
             client_id = \"fake-client-id\"\nclient_secret_file = \"cronofy_secret\"\n",
            db = dir.join("tokend.db").display(),
            url = fake.url,
        ),
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn commands_that_call_no_provider_run_without_its_secret() {
    let fake = FakeProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_with_secret_file(dir.path(), &fake);

    let out = run(&config, &["check-config"], &[]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning: providers.cronofy.client_secret_file: no file \"cronofy_secret\"")
            && err.contains("/etc/credstore")
            && err.contains("configuration is valid"),
        "{err}"
    );
    for args in [
        &["migrate"][..],
        &["credentials", "list"],
        &["client-key", "admin", "--manage"],
    ] {
        let out = run(&config, args, &[]);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    }
    let out = run(&config, &["client-key", "admin", "--manage"], &[]);
    assert!(text(&out.stdout).contains("[clients.admin]\nkey_sha256 = \""));
    assert!(text(&out.stdout).contains("manage = true"));

    // A command that calls the provider says which file is missing and how
    // systemd would provide it; nothing is stored.
    fake.add_refresh_token("rt-operator-1", json!({}));
    let import = |env: &[(&str, &str)]| {
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .args(["credentials", "import", "user-1", "--provider", "cronofy"])
            .env_remove("RUST_LOG")
            .env_remove("CREDENTIALS_DIRECTORY")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"rt-operator-1\n")
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = import(&[]);
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("providers.cronofy.client_secret_file")
            && err.contains("LoadCredential=cronofy_secret"),
        "{err}"
    );
    assert_eq!(fake.refresh_calls(), 0);

    // With the secret where systemd puts it, the import works.
    let creds = tempfile::tempdir().unwrap();
    std::fs::write(
        creds.path().join("cronofy_secret"),
        format!("{CLIENT_SECRET}\n"),
    )
    .unwrap();
    let creds_dir = creds.path().to_str().unwrap();
    let out = import(&[("CREDENTIALS_DIRECTORY", creds_dir)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(fake.refresh_calls(), 1);
    let listed = run(&config, &["credentials", "list"], &[]);
    assert!(text(&listed.stdout).contains("user-1"));

    // An empty secret file is refused with what to do.
    std::fs::write(creds.path().join("cronofy_secret"), "\n").unwrap();
    let out = run(
        &config,
        &["token", "user-1", "--min-ttl", "999999"],
        &[("CREDENTIALS_DIRECTORY", creds_dir)],
    );
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("is empty; write the secret into it"), "{err}");
}

#[test]
fn a_root_shell_without_the_service_environment_is_told_how_to_reach_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("t.toml");
    std::fs::write(&config, "[storage]\ndatabase = \"tokend.db\"\n").unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .args(["credentials", "list"])
        .current_dir(dir.path())
        .env_remove("STATE_DIRECTORY")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("no database at tokend.db")
            && err.contains("$STATE_DIRECTORY")
            && err.contains("STATE_DIRECTORY=/var/lib/tokend"),
        "{err}"
    );
    assert!(!dir.path().join("tokend.db").exists(), "nothing created");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_example_configuration_starts_as_shipped_with_a_managing_client() {
    let state = tempfile::tempdir().unwrap();
    let creds = tempfile::tempdir().unwrap();
    std::fs::write(creds.path().join("cronofy_secret"), "from-credstore\n").unwrap();
    let key = creds.path().join("tokend.key");
    std::fs::write(&key, [7u8; 32]).unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let config = state.path().join("tokend.toml");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/config/tokend.example.toml"),
        &config,
    )
    .unwrap();
    let daemon = Daemon::start(
        &config,
        &[
            // Only the port differs from the installed system's.
            ("TOKEND__SERVER__LISTEN", "127.0.0.1:0"),
            ("STATE_DIRECTORY", state.path().to_str().unwrap()),
            ("CREDENTIALS_DIRECTORY", creds.path().to_str().unwrap()),
        ],
    );
    daemon.wait_ready().await;
    assert!(
        !daemon.key.is_empty(),
        "the default client's key file exists"
    );
    // That client manages: it may start a sign-in (no provider call needed).
    let response = daemon
        .request(
            Method::GET,
            "/v1/authorize-url?provider=cronofy&credential_id=user-1\
             &redirect_uri=https://app.example.com/oauth/callback&scope=read_write",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["url"]
            .as_str()
            .unwrap()
            .starts_with("https://app.cronofy.com/"),
        "{body}"
    );
    let (status, logs) = daemon.stop().await;
    assert!(status.success());
    // The one WARN is the default client's key file being created.
    let warnings: Vec<&str> = logs.lines().filter(|l| l.contains("\"WARN\"")).collect();
    assert_eq!(warnings.len(), 1, "{logs}");
    assert!(warnings[0].contains("created client"), "{logs}");
}

/// Starts the binary with stderr in a file that `JOURNAL_STREAM` names (or
/// not), waits for "ready", stops it, and returns what it wrote.
fn journal_run(dir: &Path, matching: bool) -> String {
    let config = dir.join("t.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\n[storage]\ndatabase = \"{}\"\n",
            dir.join("t.db").display()
        ),
    )
    .unwrap();
    let log = dir.join(format!("stderr-{matching}"));
    let file = std::fs::File::create(&log).unwrap();
    let meta = file.metadata().unwrap();
    let stream = match matching {
        true => format!("{}:{}", meta.dev(), meta.ino()),
        false => format!("{}:{}", meta.dev(), meta.ino() + 1),
    };
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env_remove("RUST_LOG")
        .env("JOURNAL_STREAM", stream)
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !std::fs::read_to_string(&log).unwrap().contains("ready") {
        assert!(started.elapsed() < Duration::from_secs(20), "never ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
    std::fs::read_to_string(&log).unwrap()
}

#[test]
fn under_journald_a_warn_is_priority_4() {
    let dir = tempfile::tempdir().unwrap();
    // No provider configured: the start-up WARN says what to add.
    let out = journal_run(dir.path(), true);
    let warn = out
        .lines()
        .find(|l| l.contains("no provider is configured"))
        .unwrap_or_else(|| panic!("no WARN about providers:\n{out}"));
    assert!(warn.starts_with("<4> WARN "), "{warn}");
    assert!(warn.contains("[providers.NAME]"), "{warn}");
    for line in out.lines() {
        let info = line.contains(" INFO ");
        assert!(
            line.starts_with('<') && (!info || line.starts_with("<6>")),
            "{line}"
        );
    }

    // A JOURNAL_STREAM inherited by a process whose stderr is elsewhere
    // changes nothing: JSON lines, no prefix.
    let out = journal_run(dir.path(), false);
    assert!(out.lines().all(|l| l.starts_with('{')), "{out}");
    assert!(out.contains("\"level\":\"WARN\""), "{out}");
}
