//! `tokend serve`: the composition root.
//!
//! Start-up order: bind the listeners (a port clash fails at once), serve
//! `/healthz` (and `/readyz` = 503), open the store, build the providers,
//! load the cache, start the refresher, then READY=1. Shutdown (SIGTERM,
//! SIGINT): STOPPING=1, stop accepting, let requests and refreshes in flight
//! finish (bounded), close the database. SIGHUP reloads what can be reloaded.
//!
//! - `listen`: TCP and unix listeners, systemd socket activation.
//! - `connections`, `connection`: serving them (HTTP/1.1, the connection
//!   bound, header-read and idle deadlines); `fdlimit`: the open-file budget.
//! - `reload`: SIGHUP; `signals`: SIGTERM and SIGINT, SIGXFSZ.
//! - `supervise`: systemd STATUS and WATCHDOG.

mod advice;
mod connection;
mod connections;
mod fdlimit;
mod listen;
mod reload;
mod signals;
mod supervise;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::api::auth::Clients;
use crate::api::{self, AppState, Readiness, Services};
use crate::cache::Cache;
use crate::clock::Clock;
use crate::config::{Config, ServerConfig};
use crate::lockfile::DatabaseLock;
use crate::provider::bucket::SharedBuckets;
use crate::provider::{self, Providers};
use crate::refresh::Refresher;
use crate::store::key::open_store;
use crate::telemetry::LogHandle;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::systemd;
use crate::webhook::Webhook;
use connection::Deadlines;
use connections::Shared;
pub use listen::Listeners;
use signals::catch_file_size_signal;
pub use signals::termination;

/// Options a test sets differently from production.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub clock: Clock,
    /// How long SIGTERM waits for refreshes in flight.
    pub drain_timeout: Duration,
    /// Where SIGHUP re-reads the configuration from (the `--config` path,
    /// `None` for the default); without it SIGHUP is not handled.
    pub reload_from: Option<Option<PathBuf>>,
    /// Lets SIGHUP change the log level.
    pub log: Option<LogHandle>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            clock: Clock::system(),
            drain_timeout: Duration::from_secs(20),
            reload_from: None,
            log: None,
        }
    }
}

/// What runs once the store is open: the services the API uses, and the
/// providers as built (SIGHUP rebuilds from them).
struct Running {
    services: Services,
    providers: Providers,
    /// The cluster's rate buckets (PostgreSQL), for providers rebuilt on SIGHUP.
    buckets: Option<Arc<dyn SharedBuckets>>,
    /// Keeps `tokend rotate-key` out while the database is open.
    /// `None` with PostgreSQL, where rotate-key looks for connected members.
    _lock: Option<DatabaseLock>,
}

/// Serves until `shutdown` completes; then stops accepting, lets requests
/// and refreshes in flight finish (bounded) and closes the database.
pub async fn serve(
    config: Config,
    listeners: Listeners,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mut config = config;
    config.read_secrets()?;
    catch_file_size_signal();
    advice::warn_at_start(&config);
    let database = config.database_path();
    if let Some(dir) = database.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let clients =
        Clients::from_config(&config, &database).context("cannot set up the default client")?;
    let metrics = Metrics::new();
    let state = AppState::new(
        config.clone(),
        clients,
        Readiness::default(),
        metrics.clone(),
        options.clock.clone(),
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let unix_path = listeners.unix.as_ref().and_then(|(_, p)| p.clone());
    let servers = spawn_servers(
        listeners,
        api::service(state.clone()),
        &stop_rx,
        &config.server,
        // Requests under way get half the stop budget to be answered: the
        // refreshes they wait on run meanwhile, and get the drain after.
        (config.refresh.max_concurrency, options.drain_timeout / 2),
    )?;

    let started = start(&config, &options, &state, metrics, stop_rx.clone()).await;
    if let Ok(running) = &started {
        let supervisor = supervise::Supervisor::new(&running.services, &config);
        let status = supervisor.status_line();
        systemd::ready(&status);
        tracing::info!(status = %status, "ready");
        tokio::spawn(supervisor.clone().run(stop_rx.clone()));
        if let Some(source) = options.reload_from.clone() {
            let reloader = reload::Reloader {
                current: config.clone(),
                source,
                state: state.clone(),
                refresher: running.services.refresher.clone(),
                providers: running.providers.clone(),
                buckets: running.buckets.clone(),
                clock: options.clock.clone(),
                log: options.log.clone(),
                supervisor,
            };
            tokio::spawn(reloader.run(stop_rx.clone()));
        }
        shutdown.await;
        tracing::info!("shutting down");
        systemd::stopping();
    }
    state.readiness().set(false);
    let _ = stop_tx.send(true);
    for joined in servers.join_all().await {
        if let Err(e) = joined {
            tracing::error!(error = %e, "server error");
        }
    }
    if let Some(path) = unix_path {
        let _ = std::fs::remove_file(path);
    }
    // Held until the database is closed: its lock goes last.
    let running = started?;
    let refresher = &running.services.refresher;
    refresher.drain(options.drain_timeout).await;
    let unstored = refresher.unstored_results();
    running.services.store.close().await;
    if !unstored.is_empty() {
        // The provider may have rotated these refresh tokens: what the
        // database holds may no longer work.
        let grants = unstored
            .iter()
            .map(|(g, credentials)| format!("grant {g} (credentials {credentials})"))
            .collect::<Vec<_>>()
            .join("; ");
        tracing::error!(grants = %grants,
            "stopped with refreshed tokens the database never took: if the provider rotated \
             their refresh tokens, these grants need re-authorization");
        anyhow::bail!(
            "stopped with {} refreshed result(s) the database never took: {grants}",
            unstored.len()
        );
    }
    tracing::info!("stopped");
    Ok(())
}

/// Opens the store, builds the providers, loads the cache and starts the
/// refresher and the webhook sender.
async fn start(
    config: &Config,
    options: &ServeOptions,
    state: &AppState,
    metrics: Metrics,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Running> {
    let lock = match config.postgres_url() {
        Some(_) => None,
        None => {
            let lock = DatabaseLock::shared(&config.database_path())?;
            crate::store::sqlite::read_ahead_before_open(&config.database_path()).await;
            Some(lock)
        }
    };
    let (store, _origin) = open_store(config, options.clock.clone()).await?;
    tokio::spawn(store.health().clone().watch(store.clone(), stop.clone()));
    let buckets = store.shared_buckets();
    let providers = provider::build_all(config, options.clock.clone(), buckets.as_ref())?;
    // Sized for what the load is about to publish (a grant has one
    // credential, seldom more; a few more grow the table of their shard).
    let cache = Arc::new(Cache::with_capacity(store.count_grants().await?));
    let refresher = Refresher::new(
        store.clone(),
        Arc::clone(&cache),
        providers.clone(),
        options.clock.clone(),
        config,
        metrics.clone(),
    );
    if let Some(url) = &config.notify.webhook_url {
        let webhook = Webhook::new(
            url.clone(),
            config.notify.webhook_secret.clone(),
            options.clock.clone(),
            metrics,
        )
        .context("cannot set up the webhook client")?;
        tokio::spawn(webhook.run(refresher.subscribe(), stop.clone()));
    }
    refresher.start(stop).await?;
    let services = Services {
        store,
        cache,
        refresher,
    };
    state.set_services(services.clone());
    state.readiness().set(true);
    Ok(Running {
        services,
        providers,
        buckets,
        _lock: lock,
    })
}

/// Serves every listener until `stop` (see [`connections`]): one bound on
/// open connections for all of them, fitted under the open-file limit.
fn spawn_servers(
    listeners: Listeners,
    app: api::MakeConnection,
    stop: &watch::Receiver<bool>,
    server: &ServerConfig,
    limits: (usize, Duration),
) -> anyhow::Result<JoinSet<std::io::Result<()>>> {
    let (max_concurrency, grace) = limits;
    let max = fdlimit::max_connections(server.max_connections, max_concurrency);
    let deadlines = Deadlines {
        header_read: Duration::from_secs(server.header_read_timeout_secs),
        idle: Duration::from_secs(server.idle_timeout_secs),
    };
    let shared = Arc::new(Shared::new(max, deadlines, grace));
    let mut servers = JoinSet::new();
    for listener in listeners.tcp {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        tracing::info!(address = %listener.local_addr()?, "listening");
        let app = app.clone();
        let make = move |peer| app.connection(peer);
        servers.spawn(connections::serve(
            listener,
            make,
            Arc::clone(&shared),
            stop.clone(),
        ));
    }
    if let Some((listener, path)) = listeners.unix {
        let listener = tokio::net::UnixListener::from_std(listener)?;
        match &path {
            Some(p) => tracing::info!(socket = %p.display(), "listening"),
            None => tracing::info!("listening on the socket systemd passed"),
        }
        let make = move |peer| app.connection(peer);
        servers.spawn(connections::serve(listener, make, shared, stop.clone()));
    }
    Ok(servers)
}
