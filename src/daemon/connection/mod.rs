//! One client connection: HTTP/1.1 through hyper, the API's per-connection
//! service, and the deadlines no client can escape.
//!
//! What a connection is doing is tracked in [`Activity`]: *idle* (no request
//! under way: just opened, or between keep-alive requests), *head* (bytes of
//! a request head have arrived, the head is not complete) or *busy* (the
//! service is answering). The deadlines live in the socket wrapper
//! [`Watched`] (`watched`), because that is what hyper polls whenever it
//! waits for the client: an idle connection is closed `idle_timeout` after
//! its last activity, a head must be complete `header_read_timeout` after
//! its first byte (trickling bytes buys nothing), and a busy one has no
//! deadline of ours (`server.request_timeout_secs` bounds the answer).

mod watched;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant as StdInstant};

use pin_project_lite::pin_project;
use tokio::sync::Notify;
use tokio::time::Instant;
pub(super) use watched::Watched;

const IDLE: u8 = 0;
const HEAD: u8 = 1;
const BUSY: u8 = 2;

/// [`Activity::since`] not read from the clock yet: it is, the first time
/// a deadline is asked for, which is microseconds after the moment it
/// stands for (the same poll of the connection's task). A keep-alive
/// request then reads the clock once, not three times (first byte, answer,
/// write): about 400 of the 14,600 instructions a hand-out cost.
const UNREAD: u64 = u64::MAX;

/// The two client deadlines (`server.header_read_timeout_secs`,
/// `server.idle_timeout_secs`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadlines {
    pub header_read: Duration,
    pub idle: Duration,
}

/// What one connection is doing, shared by its socket wrapper, its service
/// wrapper, its task and the eviction scan of [`super::connections`].
#[derive(Debug)]
pub(super) struct Activity {
    phase: AtomicU8,
    /// Milliseconds since `epoch`: when the head began, or the connection
    /// last went idle or wrote to an idle client ([`UNREAD`]: just now).
    since: AtomicU64,
    epoch: StdInstant,
    /// Closes the connection if it is still idle (to make room).
    pub evict: Notify,
}

impl Activity {
    pub fn new() -> Self {
        Activity {
            phase: AtomicU8::new(IDLE),
            since: AtomicU64::new(0),
            epoch: StdInstant::now(),
            evict: Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    pub fn is_idle(&self) -> bool {
        self.phase.load(Ordering::Acquire) == IDLE
    }

    pub fn is_busy(&self) -> bool {
        self.phase.load(Ordering::Acquire) == BUSY
    }

    /// How long it has been idle, `None` when it is not.
    pub fn idle_for(&self) -> Option<u64> {
        self.is_idle()
            .then(|| match self.since.load(Ordering::Acquire) {
                UNREAD => 0,
                since => self.now().saturating_sub(since),
            })
    }

    /// Bytes arrived: the first ones after an idle spell start a head.
    fn read(&self) {
        if self.is_idle() {
            self.since.store(UNREAD, Ordering::Release);
            self.phase.store(HEAD, Ordering::Release);
        }
    }

    /// Bytes left: a client still reading its answer is not idle.
    fn wrote(&self) {
        if self.is_idle() {
            self.since.store(UNREAD, Ordering::Release);
        }
    }

    fn busy(&self) {
        self.phase.store(BUSY, Ordering::Release);
    }

    fn answered(&self) {
        self.since.store(UNREAD, Ordering::Release);
        self.phase.store(IDLE, Ordering::Release);
    }

    /// When the client must have done something by; `None` while busy.
    /// Only the connection's own task calls it (and so fills in `since`).
    fn deadline(&self, limits: &Deadlines) -> Option<Instant> {
        let limit = match self.phase.load(Ordering::Acquire) {
            IDLE => limits.idle,
            HEAD => limits.header_read,
            _ => return None,
        };
        let since = match self.since.load(Ordering::Acquire) {
            UNREAD => {
                let now = self.now();
                self.since.store(now, Ordering::Release);
                now
            }
            since => since,
        };
        Some(Instant::from_std(
            self.epoch + Duration::from_millis(since) + limit,
        ))
    }
}

/// Marks the connection busy from the service call until its answer is
/// ready (or the request is dropped).
#[derive(Debug)]
pub(super) struct Busy(Arc<Activity>);

impl Busy {
    pub fn start(activity: &Arc<Activity>) -> Self {
        activity.busy();
        Busy(Arc::clone(activity))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.answered();
    }
}

pin_project! {
    /// The service's answer future, holding the connection busy.
    #[derive(Debug)]
    pub(super) struct Answer<F> {
        #[pin]
        pub inner: F,
        pub busy: Option<Busy>,
    }
}

impl<F: Future> Future for Answer<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let out = ready!(this.inner.poll(cx));
        this.busy.take();
        Poll::Ready(out)
    }
}
