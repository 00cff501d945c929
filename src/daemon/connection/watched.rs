//! The client's socket wrapped so that hyper's waits on it end at the
//! connection's deadlines: every read and write is reported to the
//! connection's [`Activity`], and a wait past the deadline fails.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::{Activity, Deadlines};

/// The client's socket, failing the wait hyper is in once the phase's
/// deadline has passed (hyper then closes the connection).
#[derive(Debug)]
pub(in crate::daemon) struct Watched<S> {
    io: S,
    activity: Arc<Activity>,
    limits: Deadlines,
    timer: Pin<Box<Sleep>>,
    armed: Option<Instant>,
}

impl<S> Watched<S> {
    pub fn new(io: S, activity: Arc<Activity>, limits: Deadlines) -> Self {
        Watched {
            io,
            activity,
            limits,
            timer: Box::pin(tokio::time::sleep(Duration::from_secs(86_400))),
            armed: None,
        }
    }

    /// Called when the socket has nothing for hyper: `Ready` with an error
    /// once the client has had its time.
    ///
    /// Activity only ever moves a deadline later, so the timer is not reset
    /// per request (a reset takes the timer driver's lock): it stays armed
    /// at an earlier deadline and is moved on when it fires too soon. Only a
    /// deadline that came *earlier* (a head began) re-arms it at once.
    fn overdue(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        loop {
            let Some(deadline) = self.activity.deadline(&self.limits) else {
                return Poll::Pending;
            };
            match self.armed {
                Some(armed) if armed <= deadline => {}
                _ => {
                    self.timer.as_mut().reset(deadline);
                    self.armed = Some(deadline);
                }
            }
            ready!(self.timer.as_mut().poll(cx));
            // The timer works in whole milliseconds: a millisecond's slack
            // so a deadline it just reached cannot look a tick away.
            if Instant::now() + Duration::from_millis(1) >= deadline {
                break;
            }
            self.armed = None;
        }
        let what = if self.activity.is_idle() {
            "idle connection closed (server.idle_timeout_secs)"
        } else {
            "request head not complete in time (server.header_read_timeout_secs)"
        };
        Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, what))
    }
}

impl<S> Watched<S> {
    fn after_write(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match written {
            Poll::Ready(Ok(n)) => {
                self.activity.wrote();
                // Without a header-read timeout hyper does not read again
                // once an answer is out until the client sends something:
                // the idle deadline must be armed (on this task) from here.
                let _ = self.overdue(cx);
                Poll::Ready(Ok(n))
            }
            // A client that stops reading its answer is held to the idle deadline.
            Poll::Pending => self.overdue(cx).map(Err),
            other => other,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.activity.read();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => this.overdue(cx).map(Err),
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.io).poll_write(cx, buf);
        this.after_write(cx, written)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.after_write(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
