//! The refresher: the only way tokens move from a provider into the store
//! and the cache.
//!
//! - `schedule`: due times, backoff, and the task that sleeps until the
//!   earliest due grant.
//! - `flight`: one refresh of one grant: single-flight in this process, a
//!   lease in SQLite across processes, compare-and-set on write, and what
//!   each provider error means.
//! - `intake`: grants that arrive (import, code exchange, application
//!   calendar) and leave (delete, revoke).
//! - `commit`: group commit: concurrent refresh results written in one
//!   transaction, each flight told after the commit.
//! - `sync`: loading the cache at start and following other processes'
//!   writes (the CLI on the same database).
//!
//! [`Refresher::refresh_grant`] is the single entry point every trigger
//! (schedule, `min_ttl`, forced refresh, import) goes through.

mod commit;
mod flight;
mod intake;
pub mod schedule;
mod sync;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use futures::future::{BoxFuture, FutureExt, Shared};
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, mpsc, watch};

use crate::cache::Cache;
use crate::clock::{Clock, UnixMillis};
use crate::config::{Config, RefreshConfig};
use crate::provider::{Provider, ProviderError, Providers};
use crate::store::{GrantId, GrantState, Status, Store};
use crate::telemetry::metrics::Metrics;

pub use intake::{DeleteError, Import, IntakeError, IntakeOutcome};
use schedule::Msg;

/// Why a refresh is wanted; decides, after the lease is taken and the grant
/// re-read, whether a provider call is still needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The grant's due time came.
    Scheduled,
    /// A caller needs at least this many milliseconds left.
    MinTtl(i64),
    /// A caller's token was refused; refresh unless the grant already moved
    /// past the generation the caller saw.
    Forced { seen_generation: i64 },
}

impl Trigger {
    fn needs_call(self, grant: &GrantState, now: UnixMillis) -> bool {
        match self {
            Trigger::Scheduled => {
                grant.access.is_none() || grant.next_refresh_at.is_none_or(|t| t <= now)
            }
            Trigger::MinTtl(ms) => grant
                .access
                .as_ref()
                .is_none_or(|a| a.expires_at - now <= ms),
            Trigger::Forced { seen_generation } => grant.generation <= seen_generation,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A provider call replaced the tokens.
    Refreshed,
    /// No call was needed (another refresh, maybe in another process, did it).
    Current,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RefreshError {
    #[error("the credential or grant no longer exists")]
    Gone,
    #[error("the grant needs re-authorization: {0}")]
    NeedsReauth(String),
    #[error(transparent)]
    Provider(ProviderError),
    #[error("provider {0} is not configured")]
    UnknownProvider(String),
    #[error("storage error: {0}")]
    Store(String),
}

/// A status transition of a grant (SPEC §7: webhooks and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    NeedsReauth,
    Failing,
    Recovered,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusEvent {
    pub event: EventKind,
    pub provider: String,
    pub credential_ids: Vec<String>,
    pub consecutive_failures: i64,
    pub error: Option<String>,
    pub at: UnixMillis,
}

type Flight = Shared<BoxFuture<'static, Result<Outcome, RefreshError>>>;

#[derive(Clone, Debug)]
pub struct Refresher {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    cache: Arc<Cache>,
    clock: Clock,
    providers: ArcSwap<Providers>,
    /// Lease lifetimes by provider: longer than every call a refresh can make.
    lease_ms: ArcSwap<HashMap<String, i64>>,
    config: RefreshConfig,
    failing_after: i64,
    /// Identifies this process's leases in the shared database.
    owner: String,
    /// Refreshes in flight in this process, by grant: later callers join.
    /// A std mutex: held only to look up or insert, never across an await.
    inflight: Mutex<HashMap<GrantId, Flight>>,
    /// When each grant was last force-refreshed from this process (SPEC §4:
    /// at most one forced refresh per grant per interval).
    forced: Mutex<HashMap<GrantId, UnixMillis>>,
    permits: Arc<Semaphore>,
    schedule_tx: mpsc::UnboundedSender<Msg>,
    schedule_rx: Mutex<Option<mpsc::UnboundedReceiver<Msg>>>,
    events: broadcast::Sender<StatusEvent>,
    /// Refreshed tokens the provider issued that are not yet durable.
    pending_writes: AtomicUsize,
    metrics: Metrics,
    /// Started on the first refresh (it needs a runtime to run on).
    committer: OnceLock<commit::Committer>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refresher")
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

impl Refresher {
    pub fn new(
        store: Store,
        cache: Arc<Cache>,
        providers: Providers,
        config: &Config,
        metrics: Metrics,
    ) -> Self {
        let (schedule_tx, schedule_rx) = mpsc::unbounded_channel();
        let (events, _) = broadcast::channel(1024);
        let clock = store.clock().clone();
        Refresher {
            inner: Arc::new(Inner {
                store,
                cache,
                clock,
                providers: ArcSwap::from_pointee(providers),
                lease_ms: ArcSwap::from_pointee(lease_lifetimes(config)),
                config: config.refresh.clone(),
                failing_after: i64::from(config.notify.failing_after),
                owner: format!("pid{}-{:08x}", std::process::id(), rand::random::<u32>()),
                inflight: Mutex::new(HashMap::new()),
                forced: Mutex::new(HashMap::new()),
                permits: Arc::new(Semaphore::new(config.refresh.max_concurrency)),
                schedule_tx,
                schedule_rx: Mutex::new(Some(schedule_rx)),
                events,
                pending_writes: AtomicUsize::new(0),
                metrics,
                committer: OnceLock::new(),
            }),
        }
    }

    /// Loads every grant into the cache and starts the scheduler and the
    /// follower of other processes' writes. Returns once the cache is loaded.
    pub async fn start(&self, stop: watch::Receiver<bool>) -> Result<(), RefreshError> {
        let seq = self.load().await?;
        let rx = self
            .inner
            .schedule_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .expect("Refresher::start is called once");
        tokio::spawn(schedule::run(self.clone(), rx, stop.clone()));
        tokio::spawn(self.clone().follow(seq, stop));
        Ok(())
    }

    /// Refreshes a grant if `trigger` still calls for it once the grant's
    /// lease is held. Concurrent callers for one grant share one attempt and
    /// its result; the attempt runs to completion even if every caller goes away.
    pub async fn refresh_grant(
        &self,
        grant: GrantId,
        trigger: Trigger,
    ) -> Result<Outcome, RefreshError> {
        self.refresh_grant_with(grant, trigger, None).await
    }

    async fn refresh_grant_with(
        &self,
        grant: GrantId,
        trigger: Trigger,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Result<Outcome, RefreshError> {
        let flight = {
            let mut inflight = self
                .inner
                .inflight
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            match inflight.get(&grant) {
                Some(f) => {
                    // Joining: the running attempt has its own permit.
                    drop(permit);
                    f.clone()
                }
                None => {
                    let this = self.clone();
                    let task = tokio::spawn(async move {
                        let result = this.flight(grant, trigger, permit).await;
                        this.inner
                            .inflight
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&grant);
                        result
                    });
                    let f: Flight = async move {
                        task.await.unwrap_or_else(|e| {
                            Err(RefreshError::Store(format!("refresh task failed: {e}")))
                        })
                    }
                    .boxed()
                    .shared();
                    inflight.insert(grant, f.clone());
                    f
                }
            }
        };
        flight.await
    }

    /// Whether a refresh of this grant is running in this process now.
    pub fn is_refreshing(&self, grant: GrantId) -> bool {
        self.inner
            .inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&grant)
    }

    /// The end of the grant's forced-refresh window if it is still open at
    /// `now`; otherwise opens a new window (this caller may force a refresh).
    pub fn claim_forced_refresh(&self, grant: GrantId, now: UnixMillis) -> Result<(), UnixMillis> {
        let window = self.inner.config.force_refresh_min_interval_secs as i64 * 1000;
        let mut forced = self.inner.forced.lock().unwrap_or_else(|e| e.into_inner());
        match forced.get(&grant) {
            Some(&last) if now < last + window => Err(last + window),
            _ => {
                forced.insert(grant, now);
                Ok(())
            }
        }
    }

    /// Status transitions as they happen.
    pub fn subscribe(&self) -> broadcast::Receiver<StatusEvent> {
        self.inner.events.subscribe()
    }

    /// False while a refreshed token is held in memory because the database
    /// refused the write (disk full, read-only): `/readyz` says 503 then.
    pub fn is_durable(&self) -> bool {
        self.inner.pending_writes.load(Ordering::Acquire) == 0
    }

    /// Refreshes running now in this process.
    pub fn in_flight(&self) -> usize {
        self.inner
            .inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Waits until no refresh is in flight, at most `limit` (on shutdown:
    /// a token the provider already issued must reach the database).
    pub async fn drain(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.in_flight() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if self.in_flight() > 0 {
            tracing::warn!(
                in_flight = self.in_flight(),
                "shutting down with refreshes still in flight"
            );
        }
    }

    /// Replaces the providers (SIGHUP): secrets, limits, endpoints.
    pub fn set_providers(&self, providers: Providers, config: &Config) {
        self.inner.lease_ms.store(Arc::new(lease_lifetimes(config)));
        self.inner.providers.store(Arc::new(providers));
    }

    pub fn provider(&self, name: &str) -> Option<Arc<dyn Provider>> {
        self.inner.providers.load().get(name).cloned()
    }

    /// The providers now (a copy of the map; the providers are shared).
    pub fn providers(&self) -> Providers {
        self.inner.providers.load().as_ref().clone()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Consecutive failures that make a grant "failing" (`notify.failing_after`).
    pub fn failing_after(&self) -> i64 {
        self.inner.failing_after
    }

    /// Whether the scheduler loop answers within `limit` (the watchdog).
    pub async fn alive(&self, limit: Duration) -> bool {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.inner.schedule_tx.send(Msg::Ping(tx)).is_err() {
            return false;
        }
        matches!(tokio::time::timeout(limit, rx).await, Ok(Ok(())))
    }

    pub fn cache(&self) -> &Arc<Cache> {
        &self.inner.cache
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    pub fn config(&self) -> &RefreshConfig {
        &self.inner.config
    }

    /// The due time the scheduler holds for a grant (tests and diagnostics).
    pub async fn scheduled_at(&self, grant: GrantId) -> Option<UnixMillis> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.inner.schedule_tx.send(Msg::Query(grant, tx)).ok()?;
        rx.await.ok().flatten()
    }

    fn committer(&self) -> &commit::Committer {
        self.inner
            .committer
            .get_or_init(|| commit::Committer::start(self.inner.store.clone()))
    }

    fn permits(&self) -> Arc<Semaphore> {
        Arc::clone(&self.inner.permits)
    }

    /// Publishes a grant's state to the cache and (re)schedules it.
    fn publish(&self, grant: &GrantState) {
        self.inner.cache.publish(grant);
        self.schedule(grant);
    }

    fn schedule(&self, grant: &GrantState) {
        self.schedule_from(grant, self.inner.clock.now());
    }

    /// Schedules a grant at its due time, or at `floor` if that has passed:
    /// overdue grants then queue by expiry, soonest first.
    fn schedule_from(&self, grant: &GrantState, floor: UnixMillis) {
        let msg = match (grant.status, grant.credentials.is_empty()) {
            (Status::Active, false) => Msg::Schedule {
                grant: grant.id,
                due: grant.next_refresh_at.map_or(floor, |t| t.max(floor)),
                expires_at: grant.access.as_ref().map_or(0, |a| a.expires_at),
            },
            _ => Msg::Unschedule(grant.id),
        };
        let _ = self.inner.schedule_tx.send(msg);
    }

    fn unschedule(&self, grant: GrantId) {
        let _ = self.inner.schedule_tx.send(Msg::Unschedule(grant));
    }

    fn emit(&self, event: EventKind, grant: &GrantState, error: Option<&str>) {
        let e = StatusEvent {
            event,
            provider: grant.provider.clone(),
            credential_ids: grant.credentials.iter().map(|c| c.id.clone()).collect(),
            consecutive_failures: grant.consecutive_failures,
            error: error.map(str::to_owned),
            at: self.inner.clock.now(),
        };
        // No subscriber is fine: the log line is the record.
        let _ = self.inner.events.send(e);
    }

    fn lease_ms(&self, provider: &str) -> i64 {
        self.inner
            .lease_ms
            .load()
            .get(provider)
            .copied()
            .unwrap_or(120_000)
    }
}

/// A lease outlives every call one refresh can make: each previous client
/// secret, the previous refresh token and an application-calendar
/// re-provisioning are further calls, each bounded by the provider timeout.
fn lease_lifetimes(config: &Config) -> HashMap<String, i64> {
    config
        .providers
        .iter()
        .map(|(name, p)| {
            let calls = 3 + p.previous_client_secrets.len() as i64;
            (
                name.clone(),
                (p.request_timeout_secs as i64 * calls + 10) * 1000,
            )
        })
        .collect()
}
