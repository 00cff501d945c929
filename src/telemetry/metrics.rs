//! Prometheus metrics (`GET /metrics`, text exposition format).
//!
//! No label ever carries a secret or a credential id: ids are unbounded and
//! belong to users. Labels are provider names, outcomes, statuses and route
//! templates (`/v1/tokens/{id}`), all from small fixed sets.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
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

/// The lock's data, whether or not a holder panicked: a handle table is
/// complete after every step (a panic leaves at most a handle unremembered).
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

/// One provider's proxy series.
#[derive(Debug)]
struct ProxyHandles {
    seconds: Histogram,
    by_status: Vec<(u16, Counter)>,
}

fn refresh_histogram() -> Histogram {
    // 10 ms to about 40 s: a provider call plus a synchronous commit.
    Histogram::new(exponential_buckets(0.01, 2.0, 13))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tokend");
        let refreshes = Family::<RefreshLabels, Counter>::default();
        registry.register(
            "refreshes",
            "Refresh attempts by provider and outcome",
            refreshes.clone(),
        );
        let refresh_seconds: HistogramFamily<ProviderLabels> =
            Family::new_with_constructor(refresh_histogram);
        registry.register(
            "refresh_duration_seconds",
            "Time from the provider call to the durable write, by provider",
            refresh_seconds.clone(),
        );
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route template and status",
            http_requests.clone(),
        );
        let grants = Family::<StatusLabels, Gauge>::default();
        registry.register(
            "grants",
            "Grants by status (failing: active with repeated failures)",
            grants.clone(),
        );
        let credentials = Gauge::default();
        registry.register(
            "credentials",
            "Credentials in the cache",
            credentials.clone(),
        );
        let earliest_expiry = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "earliest_expiry_seconds",
            "Seconds until the earliest expiry of an active access token (+Inf when there is none)",
            earliest_expiry.clone(),
        );
        let pauses = Family::<ProviderLabels, Counter>::default();
        registry.register(
            "provider_rate_limit_pauses",
            "Times a 429 paused a provider",
            pauses.clone(),
        );
        let webhooks = Family::<ResultLabels, Counter>::default();
        registry.register(
            "webhook_deliveries",
            "Webhook deliveries by result",
            webhooks.clone(),
        );
        let pending_writes = Gauge::default();
        registry.register(
            "durable_writes_pending",
            "Refreshed tokens held in memory because the database refused the write",
            pending_writes.clone(),
        );
        let budget = Family::<ProviderLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "refresh_budget_per_minute",
            "Background refreshes a minute the budget allows (refresh_share x max_requests_per_minute)",
            budget.clone(),
        );
        let need = Family::<ProviderLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "refresh_need_per_minute",
            "Refreshes a minute that keeping every active grant warm takes (projected)",
            need.clone(),
        );
        let warm = Family::<ProviderLabels, Gauge>::default();
        registry.register(
            "grants_warm",
            "Active grants kept warm by background refreshes",
            warm.clone(),
        );
        let lapsed = Family::<ProviderLabels, Gauge>::default();
        registry.register(
            "grants_lapsed",
            "Active grants not kept warm (refreshed on their next request)",
            lapsed.clone(),
        );
        let budget_round_at = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "refresh_budget_round_timestamp_seconds",
            "When the refresh budget's bookkeeping (every 5 s) last ran",
            budget_round_at.clone(),
        );
        let proxy_requests = Family::<ProxyLabels, Counter>::default();
        registry.register(
            "proxy_requests",
            "Requests through /v1/proxy by provider and the status answered (the API's or tokend's own)",
            proxy_requests.clone(),
        );
        // 1 ms to about 33 s: an API call from a nearby host to a slow one.
        let proxy_seconds: HistogramFamily<ProviderLabels> =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.001, 2.0, 16)));
        registry.register(
            "proxy_duration_seconds",
            "Time from a proxied request to the start of its answer, by provider",
            proxy_seconds.clone(),
        );
        let store_up = Gauge::default();
        registry.register(
            "store_up",
            "1 while the database takes writes, 0 while it refuses them or cannot be reached",
            store_up.clone(),
        );
        let handed_out = http_requests
            .get_or_create(&HttpLabels {
                route: HAND_OUT_ROUTE,
                status: 200,
            })
            .clone();
        Metrics {
            inner: Arc::new(Inner {
                registry,
                refreshes,
                refresh_seconds,
                http_requests,
                grants,
                credentials,
                earliest_expiry,
                pauses,
                webhooks,
                pending_writes,
                budget,
                need,
                warm,
                lapsed,
                budget_round_at,
                proxy_requests,
                proxy_seconds,
                store_up,
                handed_out,
                proxy_handles: RwLock::default(),
                route_handles: RwLock::default(),
            }),
        }
    }

    /// One refresh attempt ended with `outcome` after `seconds`.
    pub fn refresh(&self, provider: &str, outcome: &'static str, seconds: f64) {
        let provider = provider.to_owned();
        self.inner
            .refreshes
            .get_or_create(&RefreshLabels {
                provider: provider.clone(),
                outcome,
            })
            .inc();
        self.inner
            .refresh_seconds
            .get_or_create(&ProviderLabels { provider })
            .observe(seconds);
    }

    /// One request through the proxy for `provider`, answered `status`
    /// after `seconds` (until its answer began; the body may stream on).
    pub fn proxy_request(&self, provider: &str, status: u16, seconds: f64) {
        {
            let handles = read(&self.inner.proxy_handles);
            if let Some(h) = handles.get(provider)
                && let Some((_, requests)) = h.by_status.iter().find(|(s, _)| *s == status)
            {
                requests.inc();
                h.seconds.observe(seconds);
                return;
            }
        }
        let mut handles = write(&self.inner.proxy_handles);
        let h = handles
            .entry(provider.to_owned())
            .or_insert_with(|| ProxyHandles {
                seconds: self
                    .inner
                    .proxy_seconds
                    .get_or_create(&ProviderLabels {
                        provider: provider.to_owned(),
                    })
                    .clone(),
                by_status: Vec::new(),
            });
        if !h.by_status.iter().any(|(s, _)| *s == status) {
            let requests = ProxyLabels {
                provider: provider.to_owned(),
                status,
            };
            let counter = self.inner.proxy_requests.get_or_create(&requests).clone();
            h.by_status.push((status, counter));
        }
        if let Some((_, requests)) = h.by_status.iter().find(|(s, _)| *s == status) {
            requests.inc();
        }
        h.seconds.observe(seconds);
    }

    /// One request on `route` answered `status`. Its counter is resolved
    /// once per route and status and remembered: a family lookup hashes
    /// its labels with SipHash on every request.
    pub fn http_request(&self, route: &'static str, status: u16) {
        let key = (route, status);
        if let Some(counter) = read(&self.inner.route_handles).get(&key) {
            counter.inc();
            return;
        }
        write(&self.inner.route_handles)
            .entry(key)
            .or_insert_with(|| {
                self.inner
                    .http_requests
                    .get_or_create(&HttpLabels { route, status })
                    .clone()
            })
            .inc();
    }

    /// One token handed out by the fast path (a 200 on `/v1/tokens/:id`).
    pub fn handed_out(&self) {
        self.inner.handed_out.inc();
    }

    pub fn webhook(&self, result: &'static str) {
        self.inner
            .webhooks
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    pub fn set_pending_writes(&self, n: usize) {
        self.inner
            .pending_writes
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// The exposition text, with the gauges set from `now`.
    pub fn render(&self, now: &Snapshot) -> String {
        for (status, n) in [
            ("active", now.grants_active),
            ("failing", now.grants_failing),
            ("needs_reauth", now.grants_needs_reauth),
        ] {
            self.inner
                .grants
                .get_or_create(&StatusLabels { status })
                .set(n as i64);
        }
        self.inner.credentials.set(now.credentials as i64);
        self.inner.store_up.set(i64::from(!now.store_down));
        self.inner
            .earliest_expiry
            .set(now.earliest_expiry_secs.unwrap_or(f64::INFINITY));
        for (name, seen) in &now.rate_limit_pauses {
            let counter = self.inner.pauses.get_or_create(&ProviderLabels {
                provider: name.clone(),
            });
            counter.inc_by(seen.saturating_sub(counter.get()));
        }
        self.inner.budget_round_at.set(now.budget_round_at_secs);
        for b in &now.budgets {
            let labels = ProviderLabels {
                provider: b.provider.clone(),
            };
            let inner = &self.inner;
            inner.budget.get_or_create(&labels).set(b.budget_per_minute);
            inner.need.get_or_create(&labels).set(b.need_per_minute);
            inner.warm.get_or_create(&labels).set(b.warm as i64);
            inner.lapsed.get_or_create(&labels).set(b.lapsed as i64);
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.inner.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
