//! The two formats `GET /metrics` speaks.
//!
//! `prometheus-client` writes OpenMetrics 1.0: a counter family `x` is
//! announced as `# TYPE x counter` with samples named `x_total`, and the text
//! ends with `# EOF`. Read as the classic Prometheus text format 0.0.4 (what
//! `text/plain; version=0.0.4` promises, what `promtool check metrics` and
//! many scrapers parse), those samples belong to no announced family and
//! have no HELP. So a scraper that asks for OpenMetrics (Prometheus does, in
//! its `Accept` header) gets it as written, and everyone else gets the same
//! numbers rewritten into text format 0.0.4.

use std::collections::HashSet;

pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub const TEXT_0_0_4: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether an `Accept` header value asks for OpenMetrics (with a q above 0).
pub fn wants_openmetrics(accept: &str) -> bool {
    accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default();
        let refused = parts.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        media.eq_ignore_ascii_case("application/openmetrics-text") && !refused
    })
}

/// OpenMetrics text as written by `prometheus-client`, rewritten into the
/// Prometheus text format 0.0.4: counter families named with their `_total`
/// suffix, no `# UNIT` and no `# EOF` lines, infinities as `+Inf`/`-Inf`.
pub fn to_text_format(openmetrics: &str) -> String {
    let counters: HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some((tag, rest)) = ["# HELP ", "# TYPE "]
            .iter()
            .find_map(|tag| line.strip_prefix(tag).map(|rest| (*tag, rest)))
        {
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            out.push_str(tag);
            out.push_str(name);
            if counters.contains(name) {
                out.push_str("_total");
            }
            out.push(' ');
            out.push_str(tail);
        } else if let Some((sample, value)) = line.rsplit_once(' ') {
            out.push_str(sample);
            out.push(' ');
            out.push_str(match value {
                "inf" | "+inf" => "+Inf",
                "-inf" => "-Inf",
                "nan" => "NaN",
                other => other,
            });
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPENMETRICS_TEXT: &str = "\
# HELP tokend_refreshes Refresh attempts by provider and outcome.
# TYPE tokend_refreshes counter
tokend_refreshes_total{provider=\"cronofy\",outcome=\"refreshed\"} 3
# HELP tokend_earliest_expiry_seconds Seconds until the earliest expiry.
# TYPE tokend_earliest_expiry_seconds gauge
# UNIT tokend_earliest_expiry_seconds seconds
tokend_earliest_expiry_seconds inf
# EOF
";

    #[test]
    fn counters_are_announced_under_their_sample_names() {
        assert_eq!(
            to_text_format(OPENMETRICS_TEXT),
            "\
# HELP tokend_refreshes_total Refresh attempts by provider and outcome.
# TYPE tokend_refreshes_total counter
tokend_refreshes_total{provider=\"cronofy\",outcome=\"refreshed\"} 3
# HELP tokend_earliest_expiry_seconds Seconds until the earliest expiry.
# TYPE tokend_earliest_expiry_seconds gauge
tokend_earliest_expiry_seconds +Inf
"
        );
    }

    #[test]
    fn accept_headers() {
        // What Prometheus 2.x sends.
        assert!(wants_openmetrics(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        ));
        assert!(!wants_openmetrics("text/plain;version=0.0.4"));
        assert!(!wants_openmetrics("*/*"));
        assert!(!wants_openmetrics("application/openmetrics-text;q=0"));
    }
}
