//! `tokend serve`: binds the listeners, opens the store and serves until told to stop.

use std::future::Future;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::api::auth::Clients;
use crate::api::{self, AppState, Readiness};
use crate::cache::Cache;
use crate::clock::Clock;
use crate::config::{Config, ServerConfig};
use crate::provider;
use crate::refresh::Refresher;
use crate::store::Store;
use crate::store::key::open_store;

/// The sockets `serve` answers on, bound before anything else so a port
/// clash fails at once.
#[derive(Debug)]
pub struct Listeners {
    pub tcp: Vec<std::net::TcpListener>,
    pub unix: Option<(std::os::unix::net::UnixListener, PathBuf)>,
}

impl Listeners {
    pub fn bind(server: &ServerConfig) -> anyhow::Result<Listeners> {
        let mut tcp = Vec::new();
        for addr in &server.listen {
            let listener = std::net::TcpListener::bind(addr)
                .with_context(|| format!("cannot listen on {addr} (server.listen)"))?;
            listener.set_nonblocking(true)?;
            tcp.push(listener);
        }
        let unix = match &server.unix_socket {
            Some(path) => Some((bind_unix(path, server.unix_socket_mode)?, path.clone())),
            None => None,
        };
        Ok(Listeners { tcp, unix })
    }

    /// The TCP addresses actually bound (port 0 resolved).
    pub fn local_addrs(&self) -> Vec<std::net::SocketAddr> {
        self.tcp
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }
}

/// Binds the unix socket, replacing a stale socket file (never another kind of
/// file), and sets its mode: bind() obeys the umask, which systemd sets to 0077.
fn bind_unix(path: &Path, mode: u32) -> anyhow::Result<std::os::unix::net::UnixListener> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        anyhow::ensure!(
            meta.file_type().is_socket(),
            "server.unix_socket {} exists and is not a socket; refusing to replace it",
            path.display()
        );
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove stale socket {}", path.display()))?;
    }
    let listener = std::os::unix::net::UnixListener::bind(path)
        .with_context(|| format!("cannot listen on {} (server.unix_socket)", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Options a test sets differently from production.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub clock: Clock,
    /// How long SIGTERM waits for refreshes in flight.
    pub drain_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            clock: Clock::system(),
            drain_timeout: Duration::from_secs(20),
        }
    }
}

/// Serves until `shutdown` completes; then stops accepting, lets requests
/// and refreshes in flight finish (bounded) and closes the database.
///
/// The listeners answer `/healthz` at once and `/readyz` with 503 until the
/// database is open and the cache loaded.
pub async fn serve(
    config: Config,
    listeners: Listeners,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let database = config.database_path();
    if let Some(dir) = database.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let clients =
        Clients::from_config(&config, &database).context("cannot set up the default client")?;
    let state = AppState::new(config.clone(), clients, Readiness::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let servers = spawn_servers(listeners, api::service(state.clone()), &stop_rx)?;

    let started = start(&config, &options, &state, stop_rx).await;
    if started.is_ok() {
        shutdown.await;
        tracing::info!("shutting down");
    }
    state.readiness().set(false);
    let _ = stop_tx.send(true);
    for joined in servers.join_all().await {
        if let Err(e) = joined {
            tracing::error!(error = %e, "server error");
        }
    }
    if let Some(path) = &config.server.unix_socket {
        let _ = std::fs::remove_file(path);
    }
    let (store, refresher) = started?;
    refresher.drain(options.drain_timeout).await;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Opens the store, builds the providers, loads the cache, starts the
/// refresher and declares the daemon ready.
async fn start(
    config: &Config,
    options: &ServeOptions,
    state: &AppState,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<(Store, Refresher)> {
    let (store, _origin) = open_store(config, options.clock.clone()).await?;
    let providers = provider::build_all(config, options.clock.clone())?;
    let refresher = Refresher::new(store.clone(), Arc::new(Cache::new()), providers, config);
    refresher.start(stop).await?;
    state.set_refresher(refresher.clone());
    state.readiness().set(true);
    tracing::info!("ready");
    Ok((store, refresher))
}

fn spawn_servers(
    listeners: Listeners,
    app: api::MakeConnection,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<JoinSet<std::io::Result<()>>> {
    let mut servers = JoinSet::new();
    for listener in listeners.tcp {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        tracing::info!(address = %listener.local_addr()?, "listening");
        let service = app.clone();
        let stop = stopped(stop.clone());
        servers.spawn(async move {
            axum::serve(listener, service)
                .with_graceful_shutdown(stop)
                .await
        });
    }
    if let Some((listener, path)) = listeners.unix {
        let listener = tokio::net::UnixListener::from_std(listener)?;
        tracing::info!(socket = %path.display(), "listening");
        let service = app;
        let stop = stopped(stop.clone());
        servers.spawn(async move {
            axum::serve(listener, service)
                .with_graceful_shutdown(stop)
                .await
        });
    }
    Ok(servers)
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Completes on SIGTERM or SIGINT.
pub async fn termination() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler installs");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}
