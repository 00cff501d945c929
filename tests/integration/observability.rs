//! `GET /metrics` in the format its content type promises, checked by
//! `promtool` itself, and the shipped alert rules and Grafana dashboard
//! built on metric names the daemon really exports.
//!
//! `promtool` comes from Debian's `prometheus` package (`.ci/run` extracts
//! it without installing a server). Where it is missing the promtool checks
//! print why and pass, unless `TOKEND_REQUIRE_PROMTOOL=1` (set by `.ci/run`).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE};

use crate::fake_provider::Canned;
use crate::helpers::{TestApp, spawn_app};

const ALERTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/prometheus/alerts.yml");
const DASHBOARD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/grafana/tokend.json");

/// A daemon that has refreshed, failed once, been paused and served requests,
/// so every metric family has samples.
async fn busy_app() -> TestApp {
    let app = spawn_app().await;
    app.import("alice", "rt-alice").await;
    // A forced refresh is counted (with its latency) by outcome.
    let forced = app.post("/v1/tokens/alice/refresh").send().await.unwrap();
    assert_eq!(forced.status(), StatusCode::OK);
    app.token("alice").await;
    app.token("nobody").await;
    // Last: the 429 pauses the provider.
    app.fake
        .push(Canned::error(429, "slow_down").header("Retry-After", "1"));
    app.import("bob", "rt-bob").await;
    app
}

async fn scrape(app: &TestApp, accept: Option<&str>) -> (String, String) {
    let mut request = app.get("/metrics");
    if let Some(accept) = accept {
        request = request.header(ACCEPT, accept);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    (content_type, response.text().await.unwrap())
}

/// Metric family names announced by `# TYPE` lines.
fn families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn text_format_announces_every_sample_under_its_own_name() {
    let app = busy_app().await;
    let (content_type, text) = scrape(&app, None).await;
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert!(!text.contains("# EOF"), "{text}");
    let announced = families(&text);
    let helped: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# HELP "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_owned)
        .collect();
    assert_eq!(announced, helped, "every family has HELP and TYPE");
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let name = line.split(['{', ' ']).next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| announced.contains(*f)))
            .unwrap_or(name);
        assert!(
            announced.contains(family),
            "{name} is not announced:\n{text}"
        );
    }
    for counter in [
        "tokend_refreshes_total",
        "tokend_http_requests_total",
        "tokend_provider_rate_limit_pauses_total",
    ] {
        assert!(
            text.contains(&format!("# TYPE {counter} counter")),
            "{counter}:\n{text}"
        );
    }
    assert!(text.contains("tokend_earliest_expiry_seconds "), "{text}");

    // A scraper that asks for OpenMetrics gets it, as such.
    let (content_type, om) = scrape(&app, Some("application/openmetrics-text;version=1.0.0")).await;
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(om.contains("# TYPE tokend_refreshes counter"), "{om}");
}

#[tokio::test]
async fn alerts_and_dashboard_use_only_exported_metrics() {
    let app = busy_app().await;
    let (_, text) = scrape(&app, None).await;
    let exported = families(&text);
    for (file, body) in [
        (ALERTS, std::fs::read_to_string(ALERTS).unwrap()),
        (DASHBOARD, std::fs::read_to_string(DASHBOARD).unwrap()),
    ] {
        let mut used = BTreeSet::new();
        let mut rest = body.as_str();
        while let Some(at) = rest.find("tokend_") {
            rest = &rest[at..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            used.insert(rest[..end].to_owned());
            rest = &rest[end..];
        }
        assert!(used.len() >= 5, "{file} uses {used:?}");
        for name in used {
            let family = name.strip_suffix("_bucket").unwrap_or(&name);
            assert!(
                exported.contains(family),
                "{file} uses {name}, which tokend does not export ({exported:?})"
            );
        }
    }
}

/// `promtool`: `$TOKEND_PROMTOOL`, else on `PATH`.
fn promtool() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("TOKEND_PROMTOOL") {
        return Some(PathBuf::from(path));
    }
    let found = Command::new("promtool").arg("--version").output();
    found
        .is_ok_and(|o| o.status.success())
        .then(|| PathBuf::from("promtool"))
}

fn promtool_or_skip() -> Option<PathBuf> {
    let found = promtool();
    if found.is_none() {
        assert!(
            std::env::var_os("TOKEND_REQUIRE_PROMTOOL").is_none(),
            "TOKEND_REQUIRE_PROMTOOL is set but no promtool was found (set TOKEND_PROMTOOL)"
        );
        eprintln!(
            "skipped: promtool not found (Debian package prometheus; or set TOKEND_PROMTOOL)"
        );
    }
    found
}

#[tokio::test]
async fn promtool_accepts_the_metrics_and_the_alert_rules() {
    let Some(promtool) = promtool_or_skip() else {
        return;
    };
    let app = busy_app().await;
    let (_, text) = scrape(&app, None).await;
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let out = Command::new(&promtool)
        .args(["check", "rules", ALERTS])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
