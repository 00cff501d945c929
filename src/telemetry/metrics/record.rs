//! Recording: what the other parts call as things happen, by area
//! (refreshes, HTTP requests, the proxy, webhooks, durable writes). The
//! series the hot paths count into are resolved once and remembered.

use std::sync::{PoisonError, RwLock};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;

use super::{HttpLabels, Metrics, ProviderLabels, ProxyLabels, RefreshLabels, ResultLabels};

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
pub(super) struct ProxyHandles {
    seconds: Histogram,
    by_status: Vec<(u16, Counter)>,
}

impl Metrics {
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
}
