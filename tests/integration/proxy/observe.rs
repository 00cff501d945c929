//! What the proxy tells: requests by provider and status, a duration
//! histogram by provider, one DEBUG line a request; never the API path,
//! the query or a token.

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::{app_with_alice, call, proxy};
use crate::fake_provider::Canned;
use crate::helpers::AppOptions;
use crate::logs::Logs;

#[tokio::test]
async fn counts_by_provider_and_status_and_logs_one_line_without_personal_data() {
    let (logs, _guard) = Logs::capture();
    let app = app_with_alice(AppOptions::default()).await;
    let path = "alice/api/echo/person-jane.doe?email=jane%40example.com";
    assert_eq!(call(proxy(&app, Method::GET, path)).await.0, StatusCode::OK);
    app.fake.push(Canned::json(403, json!({"error": "scope"})));
    assert_eq!(
        call(proxy(&app, Method::POST, path)).await.0,
        StatusCode::FORBIDDEN
    );
    // Refused before the provider is known: not counted by provider.
    assert_eq!(
        call(proxy(&app, Method::GET, "nobody/api/echo/x")).await.0,
        StatusCode::NOT_FOUND
    );

    let metrics = app
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let families =
        prometheus_parse::Scrape::parse(metrics.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let value = |name: &str, labels: &[(&str, &str)]| {
        families
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
                prometheus_parse::Value::Histogram(ref h) => h.last().map_or(0.0, |b| b.count),
                _ => f64::NAN,
            })
    };
    let counted = |status: &str| {
        value(
            "tokend_proxy_requests_total",
            &[("provider", "cronofy"), ("status", status)],
        )
    };
    assert_eq!(counted("200"), Some(1.0), "{metrics}");
    assert_eq!(counted("403"), Some(1.0), "{metrics}");
    assert_eq!(counted("404"), None, "{metrics}");
    assert_eq!(
        value("tokend_proxy_duration_seconds", &[("provider", "cronofy")]),
        Some(2.0),
        "{metrics}"
    );
    for private in ["jane", "alice", "echo", "at-1"] {
        assert!(
            !metrics.contains(private),
            "{private} in the metrics: {metrics}"
        );
    }

    let text = logs.text();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("proxied request"))
        .collect();
    assert_eq!(lines.len(), 3, "one line a request: {text}");
    assert!(lines[0].contains("DEBUG"), "{}", lines[0]);
    for (line, method, status) in [(lines[0], "GET", "200"), (lines[1], "POST", "403")] {
        assert!(line.contains(&format!("method={method}")), "{line}");
        assert!(line.contains("credential=alice"), "{line}");
        assert!(line.contains("provider=cronofy"), "{line}");
        assert!(line.contains(&format!("status={status}")), "{line}");
        assert!(line.contains("duration_ms="), "{line}");
    }
    for private in ["jane", "example.com", "echo", "at-1", &app.key] {
        assert!(!text.contains(private), "{private} in the log: {text}");
    }
}
