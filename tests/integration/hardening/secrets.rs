//! No secret in any output: provider text that echoes the request (in any
//! encoding), configuration errors (never a source line), `check-config`
//! (no URL credentials) and 400 answers (never the caller's values).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use serde_json::json;

use crate::api::{assert_error, import_with_token};
use crate::fake_provider::{CLIENT_ID, CLIENT_SECRET, Canned, FakeProvider};
use crate::helpers::{send, spawn_app};
use crate::process::{BIN, Daemon, cli, write_config};
use crate::provider::Logs;

fn form(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The forms a server may echo `secret` in, and `secret` itself.
fn echoed_forms(secret: &str) -> Vec<String> {
    let lower = form(secret)
        .split('%')
        .enumerate()
        .map(|(i, part)| match i {
            0 => part.to_owned(),
            _ => part[..2].to_ascii_lowercase() + &part[2..],
        })
        .collect::<Vec<_>>()
        .join("%");
    vec![
        secret.to_owned(),
        form(secret),
        form(secret).replace('+', "%20"),
        lower,
        secret.replace('/', "\\/"),
        STANDARD.encode(secret),
    ]
}

#[tokio::test]
async fn a_provider_echoing_the_request_leaks_no_secret_in_any_encoding() {
    let (logs, _guard) = Logs::capture();
    let app = spawn_app().await;
    let basic = STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
    let mut needles = vec![CLIENT_SECRET.to_owned(), basic.clone()];
    let mut seen = Vec::new();
    for i in 0..echoed_forms("x").len() {
        let id = format!("user-{i}");
        let refresh_token = format!("1//0g-SECRET+rt/x y{i}");
        let (status, view) = import_with_token(&app, &id, "cronofy", &refresh_token).await;
        assert_eq!(status, StatusCode::CREATED, "{view}");
        let echo_i = echoed_forms(&refresh_token)[i].clone();
        let sent = format!(
            "client_id={CLIENT_ID}&client_secret={CLIENT_SECRET}&refresh_token={echo_i} (Authorization: Basic {basic})"
        );
        app.fake.push(Canned::json(
            400,
            json!({"error": "invalid_request", "error_description": format!("cannot parse {sent}")}),
        ));
        let got = send(app.post(&format!("/v1/tokens/{id}/refresh"))).await;
        assert_error(&got, StatusCode::BAD_GATEWAY, "provider_error");
        seen.push(got.1.to_string());
        seen.push(app.view(&id).await.to_string());
        needles.extend(echoed_forms(&refresh_token));
        needles.push(echo_i);
    }
    // The descriptions are kept, minus the secrets.
    assert!(
        seen[0].contains("cannot parse client_id=fake-client-id"),
        "{}",
        seen[0]
    );
    seen.push(logs.text());
    for text in &seen {
        for needle in &needles {
            assert!(!text.contains(needle.as_str()), "{needle} in {text}");
        }
    }
}

const SECRET_LINE: &str = "client_secret = \"s3cret-LINE-9f2e";

/// A configuration whose provider table carries a TOML syntax error on
/// the `client_secret` line (an unterminated string).
fn broken(text: &str) -> String {
    text.replace(&format!("client_secret = \"{CLIENT_SECRET}\""), SECRET_LINE)
}

#[tokio::test(flavor = "multi_thread")]
async fn configuration_errors_never_quote_a_source_line() {
    let fake = FakeProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &fake, "");
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, broken(&good)).unwrap();

    for args in [&["check-config"][..], &["serve"], &["credentials", "list"]] {
        let (status, out, err) = cli(&config, args, "");
        assert_eq!(status.code(), Some(2), "{args:?}: {err}");
        assert!(
            !out.contains("s3cret-LINE") && !err.contains("s3cret-LINE"),
            "{args:?}: {err}"
        );
        assert!(
            err.contains("line ") && err.contains("column "),
            "{args:?} says where: {err}"
        );
    }
    // A value of the wrong type is named by key, never repeated.
    let typed = good.replace(
        "[providers.cronofy]\n",
        "[providers.cronofy]\nprevious_client_secrets = \"0ld-SECRET-77\"\n",
    );
    std::fs::write(&config, typed).unwrap();
    let (status, _, err) = cli(&config, &["check-config"], "");
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(!err.contains("0ld-SECRET"), "{err}");
    assert!(
        err.contains("providers.cronofy.previous_client_secrets"),
        "{err}"
    );

    // SIGHUP with the broken file: the reload fails, and says so without the line.
    std::fs::write(&config, &good).unwrap();
    let daemon = Daemon::start_ready(&config).await;
    std::fs::write(&config, broken(&good)).unwrap();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &daemon.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let mut logs = daemon.logs();
    for _ in 0..200 {
        if logs.contains("reload failed") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        logs = daemon.logs();
    }
    assert!(
        logs.contains("reload failed") && logs.contains("line "),
        "{logs}"
    );
    assert!(!logs.contains("s3cret-LINE"), "{logs}");
    let (exit, _) = daemon.stop().await;
    assert!(exit.success());
}

#[test]
fn check_config_redacts_credentials_in_urls() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokend.toml");
    std::fs::write(
        &path,
        r#"
[storage]
database = "postgres://tokend:db-PASSWORD-1@db.internal:5432/tokend?sslmode=verify-full"
[notify]
webhook_url = "http://hook:hook-PASSWORD-2@127.0.0.1:9000/events?token=hook-TOKEN-3&team=ops&api_key=hook-KEY-4"
[providers.cronofy]
kind = "cronofy"
client_id = "cid"
client_secret = "x"
api_base_url = "http://proxy-user:proxy-PASSWORD-5@127.0.0.1:9001/cronofy"
redirect_uris = ["https://app.example/cb?sig=redirect-SIG-6"]
"#,
    )
    .unwrap();
    let out = std::process::Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .arg("check-config")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for secret in ["PASSWORD", "TOKEN-3", "KEY-4", "SIG-6"] {
        assert!(!stdout.contains(secret), "{secret} in:\n{stdout}");
    }
    // What is not secret is still shown, so the output is worth reading.
    for kept in [
        "db.internal:5432/tokend",
        "sslmode=verify-full",
        "team=ops",
        "127.0.0.1:9001/cronofy",
        "[REDACTED]",
    ] {
        assert!(stdout.contains(kept), "{kept} missing in:\n{stdout}");
    }
}

#[tokio::test]
async fn bad_input_is_described_never_echoed() {
    let app = spawn_app().await;
    let value = "v4lue-SECRET-echo";
    let bodies = [
        json!({"provider": value, "refresh_token": "rt"}),
        json!({"provider": "cronofy", "refresh_token": "rt", "access_token": "at", "expires_in": value}),
        json!({"provider": "cronofy", "refresh_token": ["rt", value]}),
        json!({"provider": "cronofy", "refresh_token": "rt", "scope": {"x": value}}),
        json!({"provider": "cronofy", "refresh_token": "rt", format!("{value} !"): "x"}),
    ];
    for body in &bodies {
        let got = send(app.put("/v1/credentials/alice").json(body)).await;
        assert_error(&got, StatusCode::BAD_REQUEST, "invalid_request");
        let message = got.1["message"].as_str().unwrap();
        assert!(!message.contains("SECRET"), "{body}: {message}");
    }
    let got = send(app.post("/v1/credentials/bob/authorization-code").json(&json!({
        "provider": "cronofy", "code": "c", "redirect_uri": format!("https://evil.example/{value}"),
    })))
    .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "invalid_request");
    assert!(!got.1.to_string().contains("SECRET"), "{}", got.1);
    assert!(
        got.1["message"].as_str().unwrap().contains("redirect_uri"),
        "{}",
        got.1
    );
    for path in [
        format!("/v1/credentials?status={value}"),
        format!("/v1/credentials?provider={value}"),
        format!("/v1/credentials?limit={value}"),
        format!("/v1/tokens/alice?min_ttl={value}"),
        format!("/v1/credentials/alice?revoke={value}"),
        format!("/v1/credentials?{value}%20!=1"),
    ] {
        let method = if path.contains("revoke") {
            reqwest::Method::DELETE
        } else {
            reqwest::Method::GET
        };
        let got = send(app.request(method, &path)).await;
        assert_error(&got, StatusCode::BAD_REQUEST, "invalid_request");
        assert!(!got.1.to_string().contains("SECRET"), "{path}: {}", got.1);
    }
    // The message still says what is wrong: which field, what is allowed.
    let got = send(app.put("/v1/credentials/alice").json(&bodies[1])).await;
    let message = got.1["message"].as_str().unwrap();
    assert!(message.contains("expires_in"), "{message}");
    let got = send(app.get(&format!("/v1/credentials?status={value}"))).await;
    let message = got.1["message"].as_str().unwrap();
    assert!(
        message.contains("active") && message.contains("needs_reauth"),
        "{message}"
    );
}
