//! What every handler can reach: the store, the cache and the refresher
//! side by side once they are up, the clients and configuration SIGHUP
//! replaces, the metrics and the clock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;

use super::auth::Clients;
use super::error::ApiError;
use super::proxy::apis::Apis;
use crate::cache::Cache;
use crate::clock::{Clock, UnixMillis};
use crate::config::Config;
use crate::refresh::Refresher;
use crate::store::Store;
use crate::telemetry::metrics::Metrics;

/// Whether the daemon can serve tokens: the database is open and the cache
/// loaded (a store that refuses writes later does not change it).
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// What every handler can reach. The services arrive once the store is
/// open and the cache loaded; until then `/v1` answers 503 `not_ready`.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<StateInner>,
}

#[derive(Debug)]
struct StateInner {
    readiness: Readiness,
    services: OnceLock<Services>,
    clients: ArcSwap<Clients>,
    config: ArcSwap<Config>,
    /// The providers' APIs as the proxy uses them, made from `config`.
    proxy_apis: ArcSwap<Apis>,
    metrics: Metrics,
    clock: Clock,
    /// `notify.failing_after` as started with (a restart-only setting).
    failing_after: i64,
    /// `refresh.handout_margin_ms` (restart-only, as every `[refresh]` key).
    handout_margin_ms: i64,
    /// `refresh.handout_wait_ms` (restart-only).
    handout_wait: std::time::Duration,
}

/// The store, the cache and the refresher side by side: handlers read
/// tokens from the cache and views from the store, and ask the refresher
/// for refreshes and for anything else that needs a provider.
#[derive(Clone, Debug)]
pub struct Services {
    pub store: Store,
    pub cache: Arc<Cache>,
    pub refresher: Refresher,
}

impl AppState {
    pub fn new(
        config: Config,
        clients: Clients,
        readiness: Readiness,
        metrics: Metrics,
        clock: Clock,
    ) -> Self {
        AppState {
            inner: Arc::new(StateInner {
                failing_after: i64::from(config.notify.failing_after),
                handout_margin_ms: config.refresh.handout_margin_ms as i64,
                handout_wait: std::time::Duration::from_millis(config.refresh.handout_wait_ms),
                readiness,
                services: OnceLock::new(),
                clients: ArcSwap::from_pointee(clients),
                proxy_apis: ArcSwap::from_pointee(Apis::new(&config)),
                config: ArcSwap::from_pointee(config),
                metrics,
                clock,
            }),
        }
    }

    /// Hands the open store, the loaded cache and the started refresher to
    /// the handlers.
    pub fn set_services(&self, services: Services) {
        let _ = self.inner.services.set(services);
    }

    /// SIGHUP: new clients and configuration for the checks made here.
    pub fn reload(&self, config: Config, clients: Clients) {
        self.inner.clients.store(Arc::new(clients));
        self.inner.proxy_apis.store(Arc::new(Apis::new(&config)));
        self.inner.config.store(Arc::new(config));
    }

    pub fn readiness(&self) -> &Readiness {
        &self.inner.readiness
    }

    pub(super) fn services(&self) -> Result<&Services, ApiError> {
        self.inner.services.get().ok_or(ApiError::NotReady)
    }

    pub(super) fn now(&self) -> UnixMillis {
        self.inner.clock.now()
    }

    /// The instant hand-out decisions are made for: `handout_margin_ms`
    /// ahead of now, so a token counts as expired that long before its
    /// expiry, and `expires_in` counts down to that point.
    pub(super) fn handout_now(&self) -> UnixMillis {
        self.inner.clock.now() + self.inner.handout_margin_ms
    }

    pub(super) fn handout_margin_ms(&self) -> i64 {
        self.inner.handout_margin_ms
    }

    /// How long a hand-out waits for a refresh of its grant under way.
    pub(super) fn handout_wait(&self) -> std::time::Duration {
        self.inner.handout_wait
    }

    pub(super) fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub(super) fn proxy_apis(&self) -> arc_swap::Guard<Arc<Apis>> {
        self.inner.proxy_apis.load()
    }

    pub(super) fn config(&self) -> arc_swap::Guard<Arc<Config>> {
        self.inner.config.load()
    }

    pub(super) fn clients(&self) -> arc_swap::Guard<Arc<Clients>> {
        self.inner.clients.load()
    }

    /// `notify.failing_after` as started with (a restart-only setting).
    pub(super) fn failing_after(&self) -> i64 {
        self.inner.failing_after
    }
}
