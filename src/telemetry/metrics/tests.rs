//! The metric handles remembered per label set count into the same series
//! the families export, whichever call resolved them first.

use super::{Metrics, Snapshot};

fn line<'a>(text: &'a str, start: &str) -> Option<&'a str> {
    text.lines().find(|l| l.starts_with(start))
}

/// The value of `family{labels}` in the exposition `text`.
fn count(text: &str, family: &str, labels: &str) -> Option<String> {
    line(text, &format!("{family}{{{labels}}}"))
        .and_then(|l| l.rsplit(' ').next())
        .map(str::to_owned)
}

#[test]
fn remembered_proxy_handles_count_into_their_own_series() {
    let metrics = Metrics::new();
    for (provider, status) in [("a", 200), ("a", 200), ("a", 401), ("b", 200), ("a", 200)] {
        metrics.proxy_request(provider, status, 0.002);
    }
    let text = metrics.render(&Snapshot::default());
    let count = |labels| count(&text, "tokend_proxy_requests_total", labels);
    assert_eq!(
        count(r#"provider="a",status="200""#).as_deref(),
        Some("3"),
        "{text}"
    );
    assert_eq!(count(r#"provider="a",status="401""#).as_deref(), Some("1"));
    assert_eq!(count(r#"provider="b",status="200""#).as_deref(), Some("1"));
    let observed = line(
        &text,
        r#"tokend_proxy_duration_seconds_count{provider="a"}"#,
    );
    assert!(observed.is_some_and(|l| l.ends_with(" 4")), "{text}");
}

#[test]
fn remembered_route_counters_add_to_the_route_series() {
    let metrics = Metrics::new();
    metrics.http_request("/r/:id", 200);
    for status in [200, 404, 200] {
        metrics.http_request("/r/:id", status);
    }
    metrics.http_request("/s", 200);
    let text = metrics.render(&Snapshot::default());
    let count = |labels| count(&text, "tokend_http_requests_total", labels);
    assert_eq!(
        count(r#"route="/r/:id",status="200""#).as_deref(),
        Some("3"),
        "{text}"
    );
    assert_eq!(
        count(r#"route="/r/:id",status="404""#).as_deref(),
        Some("1")
    );
    assert_eq!(count(r#"route="/s",status="200""#).as_deref(), Some("1"));
}
