//! The registry: every series tokend exports, registered once with its
//! help text, and the exposition text rendered from it.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::{
    HAND_OUT_ROUTE, HistogramFamily, HttpLabels, Inner, Metrics, ProviderLabels, ProxyLabels,
    RefreshLabels, ResultLabels, Snapshot, StatusLabels,
};

fn refresh_histogram() -> Histogram {
    // 10 ms to about 40 s: a provider call plus a synchronous commit.
    Histogram::new(exponential_buckets(0.01, 2.0, 13))
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
