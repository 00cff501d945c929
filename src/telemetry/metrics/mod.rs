//! Prometheus metrics (`GET /metrics`, text exposition format).
//!
//! No label ever carries a secret or a credential id: ids are unbounded and
//! belong to users. Labels are provider names, outcomes, statuses and route
//! templates (`/v1/tokens/{id}`), all from small fixed sets.

//!
//! - `registry`: every series, registered once (`Metrics::new`), and the
//!   exposition text with the gauges set from a [`Snapshot`] (`render`).
//! - `record`: what the other parts call as things happen (refreshes,
//!   requests, proxied calls, webhooks, pending writes), each series
//!   resolved once where the hot paths need it.

mod record;
mod registry;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use record::ProxyHandles;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefreshLabels {
    provider: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProxyLabels {
    provider: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// What the gauges show at a scrape, gathered by the caller from the parts
/// that know it (the cache, the providers): they report here, this module
/// depends on none of them.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub grants_active: u64,
    pub grants_failing: u64,
    pub grants_needs_reauth: u64,
    pub credentials: usize,
    /// Seconds until the earliest expiry of an active access token; `None`
    /// when there is none.
    pub earliest_expiry_secs: Option<f64>,
    /// 429 pauses since start, by provider.
    pub rate_limit_pauses: Vec<(String, u64)>,
    /// Each provider's refresh budget and where it stands.
    pub budgets: Vec<BudgetGauges>,
    /// When the budget's bookkeeping last ran (Unix seconds).
    pub budget_round_at_secs: f64,
    /// The store refuses writes or cannot be reached (`tokend_store_up` 0).
    pub store_down: bool,
}

/// One provider's refresh budget as the gauges show it.
#[derive(Debug, Clone, Default)]
pub struct BudgetGauges {
    pub provider: String,
    pub budget_per_minute: f64,
    pub need_per_minute: f64,
    pub warm: u64,
    pub lapsed: u64,
}

/// The route label of `GET /v1/tokens/{id}`.
pub const HAND_OUT_ROUTE: &str = "/v1/tokens/:id";

/// Every metric tokend exports; cheap to clone.
#[derive(Clone, Debug)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    refreshes: Family<RefreshLabels, Counter>,
    refresh_seconds: HistogramFamily<ProviderLabels>,
    http_requests: Family<HttpLabels, Counter>,
    grants: Family<StatusLabels, Gauge>,
    credentials: Gauge,
    earliest_expiry: Gauge<f64, AtomicU64>,
    pauses: Family<ProviderLabels, Counter>,
    webhooks: Family<ResultLabels, Counter>,
    pending_writes: Gauge,
    budget: Family<ProviderLabels, Gauge<f64, AtomicU64>>,
    need: Family<ProviderLabels, Gauge<f64, AtomicU64>>,
    warm: Family<ProviderLabels, Gauge>,
    lapsed: Family<ProviderLabels, Gauge>,
    budget_round_at: Gauge<f64, AtomicU64>,
    proxy_requests: Family<ProxyLabels, Counter>,
    proxy_seconds: HistogramFamily<ProviderLabels>,
    store_up: Gauge,
    /// `http_requests_total{route="/v1/tokens/:id",status="200"}`, resolved
    /// once: the hand-out fast path increments it without a label lookup.
    handed_out: Counter,
    /// The proxy's series, resolved once per provider and status: a family
    /// lookup hashes its labels with SipHash and clones the provider name.
    proxy_handles: RwLock<HashMap<String, ProxyHandles, foldhash::fast::RandomState>>,
    /// `http_requests_total` counters by route and status, resolved once
    /// ([`Metrics::http_request`]).
    route_handles: RwLock<HashMap<(&'static str, u16), Counter, foldhash::fast::RandomState>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
