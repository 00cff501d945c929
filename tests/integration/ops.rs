//! Running under systemd and being watched: sd_notify messages read from a
//! unixgram socket the test owns, SIGHUP reloads, Prometheus metrics, and
//! signed webhooks.

use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::fake_provider::{Canned, FakeProvider};
use crate::helpers::{AppOptions, eventually, send, spawn_app, spawn_app_with};
use crate::process::{Daemon, write_config};

/// Collects datagrams sent to `NOTIFY_SOCKET`.
fn notify_socket(dir: &std::path::Path) -> (std::path::PathBuf, Arc<Mutex<Vec<String>>>) {
    let path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = socket.recv(&mut buf) {
            sink.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    });
    (path, seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn systemd_hears_ready_status_watchdog_and_stopping() {
    let fake = FakeProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &fake, "");
    let (socket, seen) = notify_socket(dir.path());
    let daemon = Daemon::start(
        &config,
        &[
            ("NOTIFY_SOCKET", socket.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    daemon.wait_ready().await;
    let count = |what: &str| {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|m| m.contains(what))
            .count()
    };
    eventually("READY=1", async || count("READY=1") == 1).await;
    let first = seen.lock().unwrap()[0].clone();
    assert!(
        first.contains("READY=1\n") && first.contains("STATUS=0 credentials; grants: 0 active"),
        "{first}"
    );
    // Half of WATCHDOG_USEC: a ping every 200 ms while the scheduler answers.
    eventually("three WATCHDOG=1", async || count("WATCHDOG=1") >= 3).await;
    let (exit, logs) = daemon.stop().await;
    assert!(exit.success(), "{logs}");
    assert_eq!(count("STOPPING=1"), 1);
    let all = seen.lock().unwrap();
    let stopping = all.iter().position(|m| m.contains("STOPPING=1")).unwrap();
    assert!(all[..stopping].iter().any(|m| m.contains("WATCHDOG=1")));
}

fn client_table(name: &str, key: &str) -> String {
    let hash = hex::encode(Sha256::digest(key.as_bytes()));
    format!("[clients.{name}]\nkey_sha256 = \"{hash}\"\nmanage = true\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_changes_a_client_key_and_the_log_level_live() {
    let fake = FakeProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let before = client_table("app", "tkd_first_key");
    let config = write_config(dir.path(), &fake, &before);
    let daemon = Daemon::start_ready(&config).await;
    let call = async |key: &str| {
        reqwest::Client::new()
            .get(format!("{}/v1/credentials", daemon.url))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(call("tkd_first_key").await, StatusCode::OK);
    assert_eq!(call("tkd_second_key").await, StatusCode::UNAUTHORIZED);

    let text = std::fs::read_to_string(&config).unwrap();
    let text = text
        .replace(&before, &client_table("app", "tkd_second_key"))
        .replace("level = \"info\"", "level = \"info,tokend=debug\"")
        + "[refresh]\nmax_concurrency = 3\n";
    std::fs::write(&config, text).unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &daemon.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    eventually("the new key works", async || {
        call("tkd_second_key").await == StatusCode::OK
    })
    .await;
    assert_eq!(
        call("tkd_first_key").await,
        StatusCode::UNAUTHORIZED,
        "the old key is gone"
    );

    // Debug lines now appear (a provider call logs one at debug level).
    fake.add_refresh_token("rt-hup", json!({}));
    let r = reqwest::Client::new()
        .put(format!("{}/v1/credentials/after-hup", daemon.url))
        .bearer_auth("tkd_second_key")
        .json(&json!({"provider": "cronofy", "refresh_token": "rt-hup"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    eventually("a DEBUG line", async || {
        daemon.logs().contains("\"level\":\"DEBUG\"")
    })
    .await;
    let logs = daemon.logs();
    assert!(
        logs.contains("refresh.max_concurrency") && logs.contains("only after a restart"),
        "{logs}"
    );
    let (exit, _) = daemon.stop().await;
    assert!(exit.success());
}

/// The value of one sample, matched by name and labels.
fn sample(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(ref h) => {
                h.iter().map(|b| b.count).fold(0.0, f64::max)
            }
            _ => f64::NAN,
        })
}

async fn scrape(app: &crate::helpers::TestApp) -> prometheus_parse::Scrape {
    let (status, body) = send(app.get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    let text = body.as_str().unwrap().to_owned();
    assert!(
        !text.contains("alice"),
        "no credential id in a metric:\n{text}"
    );
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    prometheus_parse::Scrape::parse(lines).unwrap()
}

#[tokio::test]
async fn metrics_move_with_refreshes_and_requests() {
    let app = spawn_app().await;
    app.import("alice", "rt-alice").await;
    let before = scrape(&app).await;
    assert_eq!(
        sample(&before, "tokend_grants", &[("status", "active")]),
        Some(1.0)
    );
    assert_eq!(sample(&before, "tokend_credentials", &[]), Some(1.0));
    let expiry = sample(&before, "tokend_earliest_expiry_seconds", &[]).unwrap();
    assert!((3590.0..=3600.0).contains(&expiry), "{expiry}");

    let due = app.next_refresh_at("alice").await;
    app.advance_to(due + 1_000);
    app.wait_refresh_calls(2).await;
    app.wait_token("alice", |t| t["expires_in"].as_i64().unwrap() > 3_500)
        .await;
    app.fake.push(Canned::error(503, "down"));
    app.clock.advance(Duration::from_secs(3_000));
    app.wait_refresh_calls(3).await;
    eventually("the failure counted", async || {
        sample(
            &scrape(&app).await,
            "tokend_refreshes_total",
            &[("outcome", "transient")],
        ) == Some(1.0)
    })
    .await;
    let after = scrape(&app).await;
    let refreshed = sample(
        &after,
        "tokend_refreshes_total",
        &[("provider", "cronofy"), ("outcome", "refreshed")],
    );
    assert_eq!(
        refreshed,
        Some(1.0),
        "the scheduled refresh (the import's own is not a refresh of a grant)"
    );
    assert!(
        sample(
            &after,
            "tokend_http_requests_total",
            &[("route", "/v1/tokens/:id"), ("status", "200")]
        )
        .unwrap()
            >= 1.0
    );
    assert!(
        sample(
            &after,
            "tokend_refresh_duration_seconds",
            &[("provider", "cronofy")]
        )
        .unwrap()
            >= 2.0
    );

    // Without a key: 401, unless metrics_public.
    let anonymous = reqwest::Client::new()
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn metrics_public_serves_without_a_key() {
    let app = spawn_app_with(AppOptions {
        env: vec![("TOKEND__SERVER__METRICS_PUBLIC".into(), "true".into())],
        ..AppOptions::default()
    })
    .await;
    let anonymous = reqwest::Client::new()
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::OK);
    assert!(anonymous.text().await.unwrap().contains("tokend_grants"));
    // The rest of the API still needs a key.
    let token = reqwest::Client::new()
        .get(format!("{}/v1/credentials", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), StatusCode::UNAUTHORIZED);
}

/// A webhook receiver: records every delivery, answers with the scripted statuses first.
#[derive(Clone, Default)]
struct Receiver {
    seen: Arc<Mutex<Vec<(HeaderMap, String)>>>,
    script: Arc<Mutex<Vec<u16>>>,
}

async fn start_receiver() -> (Receiver, String) {
    let receiver = Receiver::default();
    let r = receiver.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let r = r.clone();
            async move {
                r.seen.lock().unwrap().push((headers, body));
                let next = {
                    let mut s = r.script.lock().unwrap();
                    if s.is_empty() { 200 } else { s.remove(0) }
                };
                StatusCode::from_u16(next).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (receiver, url)
}

fn verify(headers: &HeaderMap, body: &str, secret: &str) -> bool {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    headers
        .get("x-tokend-signature")
        .and_then(|v| v.to_str().ok())
        == Some(expected.as_str())
}

#[tokio::test]
async fn webhooks_are_signed_retried_and_sent_once_per_transition() {
    let (receiver, url) = start_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let secret_path = dir.path().join("hook.secret");
    std::fs::write(&secret_path, "hook-secret-value\n").unwrap();
    let app = spawn_app_with(AppOptions {
        extra_toml: format!(
            "[notify]\nwebhook_url = \"{url}\"\nwebhook_secret_file = \"{}\"\nfailing_after = 2\n",
            secret_path.display()
        ),
        ..AppOptions::default()
    })
    .await;
    app.import("alice", "rt-alice").await;

    // Three failures; the second sends "failing", which the receiver refuses once.
    receiver.script.lock().unwrap().push(500);
    for _ in 0..3 {
        app.fake.push(Canned::error(502, "bad_gateway"));
    }
    let mut due = app.next_refresh_at("alice").await;
    for failures in 1..=3 {
        app.advance_to(due + 1_000);
        app.wait_refresh_calls(failures as usize + 1).await;
        // The retry time is saved after the fake answered: read it only once
        // the view shows this failure (the same write), never before.
        let view = app
            .wait_view("alice", |v| v["consecutive_failures"] == failures)
            .await;
        due = crate::helpers::parse_time(view["next_refresh_at"].as_str().unwrap());
    }
    // Then it recovers: the next refresh is due in most of an hour.
    app.advance_to(due + 1_000);
    app.wait_refresh_calls(5).await;
    let view = app
        .wait_view("alice", |v| v["consecutive_failures"] == 0)
        .await;
    let due = crate::helpers::parse_time(view["next_refresh_at"].as_str().unwrap());
    // Events go out one at a time, in order: the refused "failing" is sent
    // again after a second of backoff on the manual clock, then "recovered".
    // Moving the clock on in small steps cannot reach the next refresh.
    let r = receiver.clone();
    for _ in 0..100 {
        if r.seen.lock().unwrap().len() >= 3 {
            break;
        }
        app.clock.advance(Duration::from_millis(500));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(app.clock.now() < due, "no refresh was due meanwhile");
    assert_eq!(
        r.seen.lock().unwrap().len(),
        3,
        "failing, its retry, recovered"
    );
    // Then the grant dies.
    app.fake.revoke_refresh_token("rt-alice");
    app.advance_to(due + 1_000);
    eventually("needs_reauth", async || r.seen.lock().unwrap().len() == 4).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let seen = receiver.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4, "one delivery per transition, plus one retry");
    let events: Vec<Value> = seen
        .iter()
        .map(|(_, b)| serde_json::from_str(b).unwrap())
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["failing", "failing", "recovered", "needs_reauth"]);
    assert_eq!(
        events[0]["id"], events[1]["id"],
        "a retry is the same event"
    );
    assert_eq!(
        seen[0].0.get("x-tokend-event-id"),
        seen[1].0.get("x-tokend-event-id")
    );
    assert_eq!(events[0]["credential_ids"], json!(["alice"]));
    assert_eq!(events[3]["provider"], "cronofy");
    for (headers, body) in &seen {
        assert!(
            verify(headers, body, "hook-secret-value"),
            "bad signature on {body}"
        );
        assert!(!body.contains("rt-alice"), "no token in an event");
    }
}
