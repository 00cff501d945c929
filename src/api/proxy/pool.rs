//! The proxy's connections to the providers' APIs: HTTP/1.1 keep-alive
//! connections (TLS through hyper-rustls for `https`), kept idle per
//! origin, each driven by the request that uses it.
//!
//! A pooled client (hyper-util's, reqwest's) runs every connection in a
//! task of its own: a proxied request then hops between the caller's task,
//! the connection's task and back for the head and for each piece of the
//! body, each hop a wake-up and often a thread switch. Here the request's
//! own future polls the connection until the head has arrived, and the body
//! passed back to the caller polls it while it streams ([`Streamed`]), so
//! the whole exchange runs in the task serving the caller. Once the body has
//! ended, the connection goes back to the pool; a body dropped before its
//! end closes it.
//!
//! Idle connections are nobody's task: one the API closed meanwhile is
//! found out when it is next taken (it is never ready) and dropped, and one
//! idle for longer than [`IDLE_TIMEOUT`] is dropped instead of reused.

use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{Request, Response, Uri};
use http_body_util::Full;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::client::conn::http1;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tower::Service;

use super::target::Base;

type Io = MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>;
/// An origin (`scheme://authority`, as [`Base`] spells it): hashed and
/// compared as one string.
type Key = Arc<str>;

/// An idle connection is not reused after this long (the API may have
/// given up on it).
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle connections kept per origin at most.
const MAX_IDLE: usize = 256;

/// Why a request got no answer.
pub(super) type Error = Box<dyn std::error::Error + Send + Sync>;

/// The connections, idle ones by origin.
pub(super) struct Pool {
    connector: HttpsConnector<HttpConnector>,
    idle: Mutex<HashMap<Key, Vec<Conn>, foldhash::fast::RandomState>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").finish_non_exhaustive()
    }
}

/// One connection: its request handle and the connection itself (which
/// must be polled for anything to move).
struct Conn {
    sender: http1::SendRequest<Full<Bytes>>,
    driver: Pin<Box<http1::Connection<Io, Full<Bytes>>>>,
    /// The driver finished (closed, or failed): never poll it again.
    done: bool,
    idle_since: Instant,
}

impl Conn {
    /// Moves the connection along; `false` once it has ended.
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.done && self.driver.as_mut().poll(cx).is_ready() {
            self.done = true;
        }
        !self.done
    }
}

impl Pool {
    pub fn new(connector: HttpsConnector<HttpConnector>) -> Pool {
        Pool {
            connector,
            idle: Mutex::default(),
        }
    }

    /// Sends `request` (in origin form, with its `Host`) to `base`'s origin
    /// and returns the answer once its head has arrived, its body
    /// streaming from the connection. A request that a reused connection
    /// could not take (it closed meanwhile; hyper hands the unsent request
    /// back) is sent again on another.
    pub async fn send(
        &'static self,
        base: &Base,
        mut request: Request<Full<Bytes>>,
    ) -> Result<Response<Body>, Error> {
        let key = &base.origin;
        loop {
            let (mut conn, reused) = match self.take(key) {
                Some(conn) => (conn, true),
                None => (self.connect(base).await?, false),
            };
            let ready = poll_fn(|cx| {
                if !conn.drive(cx) {
                    return Poll::Ready(false);
                }
                conn.sender.poll_ready(cx).map(|r| r.is_ok())
            })
            .await;
            if !ready {
                if reused {
                    continue;
                }
                return Err("the connection closed before the request was sent".into());
            }
            let mut pending = std::pin::pin!(conn.sender.try_send_request(request));
            let head = poll_fn(|cx| {
                let alive = conn.drive(cx);
                // Only the driver just polled can complete `pending`, so
                // it is asked without a waker: the connection completing it
                // would otherwise wake this very task while it runs, and
                // the runtime would schedule it again for nothing.
                let mut quiet = Context::from_waker(std::task::Waker::noop());
                match pending.as_mut().poll(&mut quiet) {
                    Poll::Ready(r) => Poll::Ready(r.map_err(Some)),
                    Poll::Pending if alive => Poll::Pending,
                    Poll::Pending => Poll::Ready(Err(None)),
                }
            })
            .await;
            match head {
                Ok(answer) => return Ok(self.stream(key.clone(), conn, answer)),
                Err(Some(mut e)) => match e.take_message() {
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(Box::new(e.into_error())),
                },
                Err(None) => return Err("the connection closed before the answer came".into()),
            }
        }
    }

    /// The answer as ours, its body streaming from `conn`; `conn` goes back
    /// to the pool at once when there is no body.
    fn stream(&'static self, key: Key, conn: Conn, answer: Response<Incoming>) -> Response<Body> {
        let (parts, incoming) = answer.into_parts();
        if hyper::body::Body::is_end_stream(&incoming) {
            self.put(key, conn);
            return Response::from_parts(parts, Body::new(incoming));
        }
        let body = Streamed {
            incoming,
            conn: Some((key, conn)),
            pool: self,
        };
        Response::from_parts(parts, Body::new(body))
    }

    fn take(&self, key: &str) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let conns = idle.get_mut(key)?;
        while let Some(conn) = conns.pop() {
            if !conn.done && !conn.sender.is_closed() && conn.idle_since.elapsed() < IDLE_TIMEOUT {
                return Some(conn);
            }
        }
        None
    }

    fn put(&self, key: Key, mut conn: Conn) {
        if conn.done || conn.sender.is_closed() {
            return;
        }
        conn.idle_since = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let conns = idle.entry(key).or_default();
        // The oldest first: drop those gone stale, and any over the cap.
        let stale = conns
            .iter()
            .take_while(|c| c.idle_since.elapsed() >= IDLE_TIMEOUT)
            .count()
            .max((conns.len() + 1).saturating_sub(MAX_IDLE));
        conns.drain(..stale);
        conns.push(conn);
    }

    async fn connect(&self, base: &Base) -> Result<Conn, Error> {
        let uri = Uri::builder()
            .scheme(base.scheme.clone())
            .authority(base.authority.clone())
            .path_and_query("/")
            .build()?;
        let io = self.connector.clone().call(uri).await?;
        let (sender, driver) = http1::handshake(io).await?;
        Ok(Conn {
            sender,
            driver: Box::pin(driver),
            done: false,
            idle_since: Instant::now(),
        })
    }
}

/// An answer's body, read from a connection this body drives; the
/// connection goes back to the pool at the body's end.
struct Streamed {
    incoming: Incoming,
    /// `None` once given back (or closed).
    conn: Option<(Key, Conn)>,
    pool: &'static Pool,
}

impl hyper::body::Body for Streamed {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        if let Some((_, conn)) = &mut this.conn {
            conn.drive(cx);
        }
        let frame = ready!(Pin::new(&mut this.incoming).poll_frame(cx));
        // hyper stops polling a body that says it has ended: give the
        // connection back as soon as it has.
        let ended = match &frame {
            None => true,
            Some(Ok(_)) => this.incoming.is_end_stream(),
            Some(Err(_)) => false,
        };
        if ended && let Some((key, conn)) = this.conn.take() {
            this.pool.put(key, conn);
        }
        if let Some(Err(_)) = frame {
            this.conn = None;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
