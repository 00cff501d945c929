//! Being watched: `/healthz`, `/readyz`, `GET /metrics`, the count of every
//! request by route template and status (never the credential id in the
//! path), and a span around each request the router serves.

use std::sync::OnceLock;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use super::error::ApiError;
use super::{AppState, routes};
use crate::telemetry::exposition;
use crate::telemetry::metrics::{BudgetGauges, Snapshot};

/// `GET /metrics`: Prometheus text format 0.0.4, or OpenMetrics when the
/// scraper asks for it (`Accept`).
pub(super) async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let services = state.services()?;
    let cache = &services.cache;
    let counts = cache.grant_counts(state.failing_after());
    let now = state.now();
    let snapshot = Snapshot {
        grants_active: counts.active,
        grants_failing: counts.failing,
        grants_needs_reauth: counts.needs_reauth,
        credentials: cache.len(),
        earliest_expiry_secs: cache.earliest_expiry().map(|at| (at - now) as f64 / 1000.0),
        rate_limit_pauses: services.refresher.rate_limit_pauses(),
        budget_round_at_secs: services.refresher.budget_round_at() as f64 / 1000.0,
        budgets: services
            .refresher
            .budget_report()
            .into_iter()
            .map(|r| BudgetGauges {
                provider: r.provider.to_string(),
                budget_per_minute: r.budget_per_minute,
                need_per_minute: r.standing.need_per_minute,
                warm: r.standing.warm,
                lapsed: r.standing.lapsed,
            })
            .collect(),
        store_down: !services.store.health().is_up(),
    };
    let body = state.metrics().render(&snapshot);
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(exposition::wants_openmetrics);
    let (content_type, body) = match openmetrics {
        true => (exposition::OPENMETRICS, body),
        false => (exposition::TEXT_0_0_4, exposition::to_text_format(&body)),
    };
    let content_type = HeaderValue::from_static(content_type);
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

/// Counts every request by route template (never the id in it) and status.
pub(super) async fn count_request(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| route_label(m.as_str()));
    let response = next.run(request).await;
    state
        .metrics()
        .http_request(route, response.status().as_u16());
    response
}

/// A span per request the router serves (method, route template, status),
/// so that what a request causes (a refresh and its provider call, a store
/// error) is logged inside it. The hand-out fast path answers from memory
/// before the router and gets none: it logs nothing either.
pub(super) async fn request_span(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| route_label(m.as_str()));
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        route,
        status = tracing::field::Empty,
    );
    let response = next.run(request).instrument(span.clone()).await;
    span.record("status", response.status().as_u16());
    response
}

/// A route template as a metric label, `{id}` written `:id`: label values
/// without braces keep simple regex-based scrapers of the text format working.
fn route_label(template: &str) -> &'static str {
    static LABELS: OnceLock<Vec<(&'static str, &'static str)>> = OnceLock::new();
    let labels = LABELS.get_or_init(|| {
        let mut paths: Vec<&'static str> = routes().into_iter().map(|(_, p)| p).collect();
        paths.dedup();
        // Built once per process from the fixed route list.
        paths
            .into_iter()
            .map(|p| (p, &*Box::leak(p.replace("{id}", ":id").into_boxed_str())))
            .chain([(super::proxy::ROUTE, super::proxy::ROUTE_LABEL)])
            .collect()
    });
    labels
        .iter()
        .find(|(t, _)| *t == template)
        .map_or("other", |(_, l)| l)
}

pub(super) async fn healthz() -> StatusCode {
    StatusCode::OK
}

/// `GET /readyz`: 503 (no body) until the cache is loaded, then 200 with
/// the store's state. A store that refuses writes does not make the daemon
/// unready: it still serves every token that is valid, and taking every
/// application host out of its load balancer at once for a database outage
/// would stop those too.
pub(super) async fn readyz(State(state): State<AppState>) -> Response {
    let services = match state.services() {
        Ok(s) if state.readiness().is_ready() => s,
        _ => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
    };
    let health = services.store.health();
    let unstored = services.refresher.unstored_results().len();
    let body = match health.reason() {
        None if unstored == 0 => serde_json::json!({"status": "ready", "store": "up"}),
        _ => serde_json::json!({
            "status": "ready",
            "store": "down",
            "unstored_refreshes": unstored,
        }),
    };
    axum::Json(body).into_response()
}
