//! The refresher: the only way tokens move from a provider into the store
//! and the cache.
//!
//! - `single`: [`Refresher::refresh_grant`], the single entry point every
//!   trigger (schedule, `min_ttl`, forced refresh, import) goes through:
//!   one attempt per grant at a time in this process, shared by its callers;
//!   the forced-refresh window; draining on shutdown.
//! - `flight`: one refresh of one grant: a concurrency permit, the grant
//!   claimed in the store (its lease keeps other processes off it), the
//!   provider call; `invalid_grant`: what the provider's `invalid_grant`
//!   really means.
//! - `outcome`: how one refresh ends: the answer made durable, then
//!   published; or the failure recorded and retried on backoff.
//! - `issue`: the one conversion from a provider's answer to a stored token.
//! - `commit`: group commit: concurrent refresh results written in one
//!   transaction, each flight told after the commit.
//! - `intake`: grants arriving (import, code exchange, application calendar)
//!   and the authorization URL (`arrival`: what arrived, stored and
//!   published); `retire`: credentials leaving (delete, revoke).
//! - `schedule`: due times, backoff, and the task that sleeps until the
//!   earliest due grant; `queue`: the grants waiting, earliest first, one
//!   queue per provider.
//! - `budget`: the share of each provider's rate background refreshes may
//!   use (`refresh_share`, `refresh_mode`).
//! - `providers`: the providers held, replaced on SIGHUP and paused by a
//!   429 from their API; their pauses and budgets reported.
//! - `sync`: loading the cache at start and following other writers.
//! - `events`: status transitions (needs_reauth, failing, recovered).
//! - `error`: what callers learn when something fails.
//!
//! The refresher is handed its collaborators (store, cache, providers,
//! clock, metrics) and keeps them to itself: callers ask it for refreshes,
//! never for its parts.

mod arrival;
pub mod budget;
mod commit;
mod error;
mod events;
mod flight;
mod intake;
mod invalid_grant;
mod issue;
mod outcome;
mod providers;
mod queue;
mod retire;
pub mod schedule;
mod single;
mod sync;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::ArcSwap;
use futures::future::{BoxFuture, Shared};
use tokio::sync::{Semaphore, broadcast, mpsc, watch};

use crate::cache::Cache;
use crate::clock::{Clock, UnixMillis};
use crate::config::{Config, RefreshConfig};
use crate::model::{GrantId, GrantState};
use crate::provider::Providers;
use crate::store::Store;
use crate::telemetry::metrics::Metrics;
use flight::lease_lifetime;

/// The parameters of an authorization URL ([`Refresher::authorization_url`]),
/// and the PKCE rules the sign-in flow applies to them.
pub use crate::provider::{AuthorizationRequest, pkce};
pub use error::{DeleteError, IntakeError, ProviderFailure, RefreshError};
pub use events::{EventKind, StatusEvent};
pub use intake::{Import, IntakeOutcome};
use schedule::Msg;

/// Why a refresh is wanted; decides, after the grant is claimed and re-read,
/// whether a provider call is still needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The grant's due time came.
    Scheduled,
    /// A caller needs more than this many milliseconds left before the
    /// hand-out margin (`refresh.handout_margin_ms`).
    MinTtl(i64),
    /// A caller's token was refused; refresh unless the grant already moved
    /// past the generation the caller saw.
    Forced { seen_generation: i64 },
}

impl Trigger {
    /// `margin_ms`: `refresh.handout_margin_ms`; hand-outs and `min_ttl`
    /// see a token as expired that long before its expiry.
    fn needs_call(self, grant: &GrantState, now: UnixMillis, margin_ms: i64) -> bool {
        match self {
            Trigger::Scheduled => {
                grant.access.is_none() || grant.next_refresh_at.is_none_or(|t| t <= now)
            }
            Trigger::MinTtl(ms) => grant
                .access
                .as_ref()
                .is_none_or(|a| a.expires_at - margin_ms - now <= ms),
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

/// One attempt that several callers await (see `single`).
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
    /// How long a refresh lease lasts ([`flight::lease_lifetime`]): one
    /// value for every grant, replaced when SIGHUP changes the providers.
    lease_ms: AtomicI64,
    config: RefreshConfig,
    failing_after: i64,
    /// Refreshes in flight in this process, by grant: later callers join.
    /// A std mutex: held only to look up or insert, never across an await.
    inflight: Mutex<HashMap<GrantId, Flight>>,
    /// When each grant was last force-refreshed from this process (SPEC §4:
    /// at most one forced refresh per grant per interval).
    forced: Mutex<HashMap<GrantId, UnixMillis>>,
    permits: Arc<Semaphore>,
    /// Each provider's refresh budget (background refreshes only).
    budgets: Arc<budget::Budgets>,
    schedule_tx: mpsc::UnboundedSender<Msg>,
    schedule_rx: Mutex<Option<mpsc::UnboundedReceiver<Msg>>>,
    events: broadcast::Sender<StatusEvent>,
    /// Grants whose refreshed tokens the provider issued but the store has
    /// not taken yet (held in memory, the write retried), with their
    /// credential ids for the log. A std mutex: held only to insert, remove
    /// or copy.
    unstored: Mutex<BTreeMap<GrantId, String>>,
    metrics: Metrics,
    /// Started on the first refresh (it needs a runtime to run on).
    committer: OnceLock<commit::Committer>,
    /// Held while a batch of other processes' changes is read and applied,
    /// and while this process deletes a credential or records a failed
    /// refresh: a batch read before would otherwise bring back, for a
    /// moment, the deleted credential or the status before the failure.
    feed: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refresher")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Refresher {
    pub fn new(
        store: Store,
        cache: Arc<Cache>,
        providers: Providers,
        clock: Clock,
        config: &Config,
        metrics: Metrics,
    ) -> Self {
        let (schedule_tx, schedule_rx) = mpsc::unbounded_channel();
        let (events, _) = broadcast::channel(1024);
        // The budget holds for the cluster where the store is shared.
        let permits: Arc<dyn budget::Permits> = match store.shared_buckets() {
            Some(shared) => Arc::new(budget::SharedPermits::new(shared, clock.clone())),
            None => Arc::new(budget::LocalPermits::new(clock.clone())),
        };
        let budgets = Arc::new(budget::Budgets::new(config, permits));
        Refresher {
            inner: Arc::new(Inner {
                store,
                cache,
                clock,
                providers: ArcSwap::from_pointee(providers),
                lease_ms: AtomicI64::new(lease_lifetime(config)),
                config: config.refresh.clone(),
                failing_after: i64::from(config.notify.failing_after),
                inflight: Mutex::new(HashMap::new()),
                forced: Mutex::new(HashMap::new()),
                permits: Arc::new(Semaphore::new(config.refresh.max_concurrency)),
                budgets,
                schedule_tx,
                schedule_rx: Mutex::new(Some(schedule_rx)),
                events,
                unstored: Mutex::new(BTreeMap::new()),
                metrics,
                committer: OnceLock::new(),
                feed: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Loads every grant into the cache and starts the scheduler and the
    /// follower of other processes' writes. Returns once the cache is loaded.
    pub async fn start(&self, stop: watch::Receiver<bool>) -> Result<(), RefreshError> {
        let (seq, queue) = self.load().await?;
        let rx = self
            .inner
            .schedule_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .expect("Refresher::start is called once");
        tokio::spawn(schedule::run(self.clone(), queue, rx, stop.clone()));
        tokio::spawn(self.clone().keep_budget(stop.clone()));
        tokio::spawn(self.clone().follow(seq, stop));
        Ok(())
    }

    /// False while a refreshed token is held in memory because the database
    /// refused the write (disk full, read-only).
    pub fn is_durable(&self) -> bool {
        self.unstored_results().is_empty()
    }

    /// The grants (with their credential ids) whose refreshed tokens are
    /// held in memory because the store has not taken them yet: what a
    /// shutdown now would lose.
    pub fn unstored_results(&self) -> Vec<(GrantId, String)> {
        self.inner
            .unstored
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(g, c)| (*g, c.clone()))
            .collect()
    }

    /// Holds a refreshed result the store refused (see `unstored`).
    fn hold(&self, grant: &GrantState) {
        let mut unstored = self
            .inner
            .unstored
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        unstored.insert(grant.id, outcome::credential_list(grant));
        self.inner.metrics.set_pending_writes(unstored.len());
    }

    /// The held result of `grant` is stored now.
    fn release_hold(&self, grant: GrantId) {
        let mut unstored = self
            .inner
            .unstored
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        unstored.remove(&grant);
        self.inner.metrics.set_pending_writes(unstored.len());
    }

    fn committer(&self) -> &commit::Committer {
        self.inner
            .committer
            .get_or_init(|| commit::Committer::start(self.inner.store.clone()))
    }
}
