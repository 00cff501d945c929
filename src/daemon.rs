//! `tokend serve`: binds the listeners, opens the store and serves until told to stop.

use std::future::Future;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use tokio::sync::watch;

use crate::api::{self, AppState, Readiness};
use crate::clock::Clock;
use crate::config::{Config, ServerConfig};
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
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            clock: Clock::system(),
        }
    }
}

/// Serves until `shutdown` completes, then stops accepting, lets in-flight
/// requests finish and closes the database.
pub async fn serve(
    config: Config,
    listeners: Listeners,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let readiness = Readiness::default();
    let state = AppState {
        readiness: readiness.clone(),
    };
    let app = api::router(state);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut servers = tokio::task::JoinSet::new();
    for listener in listeners.tcp {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        tracing::info!(address = %listener.local_addr()?, "listening");
        let app = app.clone();
        let stop = stopped(stop_rx.clone());
        servers.spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
        });
    }
    let unix_path = listeners.unix.as_ref().map(|(_, p)| p.clone());
    if let Some((listener, path)) = listeners.unix {
        let listener = tokio::net::UnixListener::from_std(listener)?;
        tracing::info!(socket = %path.display(), "listening");
        let app = app.clone();
        let stop = stopped(stop_rx.clone());
        servers.spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
        });
    }

    let result = run_until(&config, &options, &readiness, shutdown).await;
    let _ = stop_tx.send(true);
    while let Some(joined) = servers.join_next().await {
        if let Ok(Err(e)) = joined {
            tracing::error!(error = %e, "server error");
        }
    }
    if let Some(path) = unix_path {
        let _ = std::fs::remove_file(path);
    }
    tracing::info!("stopped");
    result
}

async fn run_until(
    config: &Config,
    options: &ServeOptions,
    readiness: &Readiness,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let (store, _origin) = open_store(config, options.clock.clone()).await?;
    readiness.set(true);
    tracing::info!("ready");
    shutdown.await;
    tracing::info!("shutting down");
    readiness.set(false);
    store.close().await;
    Ok(())
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
