//! Serving connections: HTTP/1.1 only (hyper's http1 server; HTTP/2 with
//! prior knowledge is not spoken), at most `server.max_connections` open at
//! once over every listener, and a shutdown no client can hold up.
//!
//! Past the bound the listener stops accepting (newcomers wait in the
//! kernel's backlog) and the connection idle the longest is closed to make
//! room; connections in the middle of a request are never closed for it.
//! On stop, idle and half-sent connections close at once and requests under
//! way get `grace` to be answered. Each connection's own deadlines are in
//! [`super::connection`]; the open-file budget in [`super::fdlimit`].

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::Response;
use hyper::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tower::{Service, ServiceExt};

use super::connection::{Activity, Answer, Busy, Deadlines, Watched};
use crate::api::guard::Peer;

/// What every listener of one daemon shares.
#[derive(Debug)]
pub(super) struct Shared {
    permits: Arc<Semaphore>,
    max: usize,
    open: Mutex<HashMap<u64, Arc<Activity>>>,
    next_id: AtomicU64,
    started: std::time::Instant,
    /// Seconds after `started` (plus 60) of the last WARN about the bound.
    warned_at: AtomicU64,
    pub deadlines: Deadlines,
    /// How long requests under way may take to be answered after a stop.
    pub grace: Duration,
}

impl Shared {
    pub fn new(max_connections: usize, deadlines: Deadlines, grace: Duration) -> Self {
        Shared {
            permits: Arc::new(Semaphore::new(max_connections)),
            max: max_connections,
            open: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            started: std::time::Instant::now(),
            warned_at: AtomicU64::new(0),
            deadlines,
            grace,
        }
    }

    /// A slot for one more connection. At the bound, the connection idle
    /// the longest is asked to close, again every 100 ms while none frees.
    async fn slot(&self) -> OwnedSemaphorePermit {
        if let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() {
            return permit;
        }
        self.warn_at_bound();
        loop {
            self.evict_longest_idle();
            let acquire = Arc::clone(&self.permits).acquire_owned();
            if let Ok(Ok(permit)) = tokio::time::timeout(Duration::from_millis(100), acquire).await
            {
                return permit;
            }
        }
    }

    /// One WARN a minute at most: a flood must not flood the log too.
    fn warn_at_bound(&self) {
        let now = self.started.elapsed().as_secs() + 60;
        let last = self.warned_at.load(Ordering::Relaxed);
        if now >= last + 60
            && self
                .warned_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                max_connections = self.max,
                "server.max_connections reached: closing the longest idle connections, \
                 newcomers wait while every connection is busy"
            );
        }
    }

    fn evict_longest_idle(&self) {
        // A std Mutex: held for a scan without `.await`, only at the bound.
        let open = self.open.lock().expect("connection table lock");
        let longest = open
            .values()
            .filter_map(|a| a.idle_for().map(|idle| (idle, a)))
            .max_by_key(|(idle, _)| *idle);
        if let Some((_, activity)) = longest {
            activity.evict.notify_one();
        }
    }

    fn register(&self, activity: &Arc<Activity>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut open = self.open.lock().expect("connection table lock");
        open.insert(id, Arc::clone(activity));
        id
    }

    fn unregister(&self, id: u64) {
        self.open.lock().expect("connection table lock").remove(&id);
    }
}

/// A listener and who is on the other end of what it accepts.
pub(super) trait Accept: Send + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn accept(&self) -> impl Future<Output = std::io::Result<(Self::Io, Peer)>> + Send;
}

impl Accept for TcpListener {
    type Io = tokio::net::TcpStream;
    async fn accept(&self) -> std::io::Result<(Self::Io, Peer)> {
        let (stream, _) = TcpListener::accept(self).await?;
        let local_port = stream.local_addr().map_or(0, |a| a.port());
        Ok((stream, Peer::Tcp { local_port }))
    }
}

impl Accept for UnixListener {
    type Io = tokio::net::UnixStream;
    async fn accept(&self) -> std::io::Result<(Self::Io, Peer)> {
        let (stream, _) = UnixListener::accept(self).await?;
        let uid = stream.peer_cred().ok().map(|c| c.uid());
        Ok((stream, Peer::Unix { uid }))
    }
}

/// Accepts and serves until `stop`, then waits for its connections (each
/// bounded by `grace`).
pub(super) async fn serve<L, S, F>(
    listener: L,
    make: F,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) -> std::io::Result<()>
where
    L: Accept,
    F: Fn(Peer) -> S + Send + 'static,
    S: Service<Request<Incoming>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let mut connections = JoinSet::new();
    let mut stopped = pin!(stopped(stop.clone()));
    loop {
        let permit = tokio::select! {
            permit = shared.slot() => permit,
            () = &mut stopped => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stopped => break,
        };
        match accepted {
            Ok((io, peer)) => {
                tracing::trace!(?peer, "connection accepted");
                let service = make(peer);
                let shared = Arc::clone(&shared);
                connections.spawn(connection(io, service, permit, shared, stop.clone()));
            }
            Err(e) => accept_failed(&e).await,
        }
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Out of file descriptors (the bound is derived from the limit, but other
/// processes share the system-wide table): wait a moment rather than spin.
async fn accept_failed(e: &std::io::Error) {
    use rustix::io::Errno;
    match Errno::from_io_error(e) {
        Some(Errno::MFILE | Errno::NFILE) => {
            tracing::warn!(error = %e, "cannot accept connections: out of file descriptors");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        _ => tracing::debug!(error = %e, "accept failed"),
    }
}

/// One connection, from accept to close.
async fn connection<I, S>(
    io: I,
    service: S,
    permit: OwnedSemaphorePermit,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<Request<Incoming>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let id = shared.register(&activity);
    let io = TokioIo::new(Watched::new(io, Arc::clone(&activity), shared.deadlines));
    let tracked = Arc::clone(&activity);
    // hyper's request as it is: the service boxes the body only if it needs to.
    let handler = hyper::service::service_fn(move |request: Request<Incoming>| Answer {
        busy: Some(Busy::start(&tracked)),
        inner: service.clone().oneshot(request),
    });
    let mut conn = pin!(
        hyper::server::conn::http1::Builder::new()
            .header_read_timeout(None) // ours: Watched
            .serve_connection(io, handler)
    );
    let mut stopped = pin!(stopped(stop));
    let mut evicted = pin!(activity.evict.notified());
    let mut grace = pin!(tokio::time::sleep(Duration::from_secs(86_400)));
    let mut stopping = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection closed");
                }
                break;
            }
            () = &mut evicted => {
                if activity.is_idle() {
                    break;
                }
                evicted.set(activity.evict.notified());
            }
            () = &mut stopped, if !stopping => {
                if !activity.is_busy() {
                    break;
                }
                // Answer the request under way, then close; within `grace`.
                conn.as_mut().graceful_shutdown();
                grace.as_mut().reset(tokio::time::Instant::now() + shared.grace);
                stopping = true;
            }
            () = &mut grace, if stopping => break,
        }
    }
    shared.unregister(id);
    drop(permit);
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
