//! The push: one session connection per member `LISTEN`s on
//! `tokend_changes`, where every committed change number is announced (the
//! number only; see the migration's trigger). A notification wakes the
//! refresher's follower, which reads the change feed. Losing the connection
//! and getting it back also wakes it: whatever was committed meanwhile is
//! caught up from the feed, so nothing announced while deaf is missed.
//!
//! The connection is opened on the first wait (CLI commands never wait).

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::Notify;

use super::connect::PgTarget;
use super::stale::Staleness;

/// The channel the migration's trigger notifies.
pub(super) const CHANNEL: &str = "tokend_changes";

/// The follower also looks at the feed this often without a notification: a
/// safety net under the push, not the way changes normally arrive.
const SAFETY_POLL: Duration = Duration::from_secs(30);

/// How soon a follower whose read of the feed failed is woken again.
const RETRY: Duration = Duration::from_millis(500);

/// Waits between attempts to reconnect, doubling up to the last.
const BACKOFF: [Duration; 4] = [
    Duration::from_millis(100),
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
];

#[derive(Debug)]
pub(super) struct Listener {
    target: PgTarget,
    /// Told when the notification connection is lost: the pool's
    /// connections are suspect too.
    stale: Staleness,
    wake: Arc<Notify>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Listener {
    pub(super) fn new(target: PgTarget, stale: Staleness) -> Listener {
        Listener {
            target,
            stale,
            wake: Arc::new(Notify::new()),
            task: std::sync::Mutex::new(None),
        }
    }

    /// Returns when there may be changes to read (see
    /// [`crate::store::Backend::wait_for_changes`]).
    pub(super) async fn wait(&self) {
        {
            // A std mutex: held for the check and the spawn, never across an await.
            let mut task = self.task.lock().expect("listener lock");
            if task.is_none() {
                let (target, wake) = (self.target.clone(), Arc::clone(&self.wake));
                *task = Some(tokio::spawn(listen(target, wake, self.stale.clone())));
            }
        }
        tokio::select! {
            _ = self.wake.notified() => {}
            _ = tokio::time::sleep(SAFETY_POLL) => {}
        }
    }

    /// The feed could not be read: wake the follower again shortly, so
    /// that it catches up once the database answers (no notification may
    /// come for a while).
    pub(super) fn retry_soon(&self) {
        let wake = Arc::clone(&self.wake);
        tokio::spawn(async move {
            tokio::time::sleep(RETRY).await;
            wake.notify_one();
        });
    }

    pub(super) fn stop(&self) {
        if let Some(task) = self.task.lock().expect("listener lock").take() {
            task.abort();
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn listen(target: PgTarget, wake: Arc<Notify>, stale: Staleness) {
    let mut attempt = 0usize;
    loop {
        match subscribe(&target).await {
            Ok(mut listener) => {
                if attempt > 0 {
                    tracing::info!(database = %target.location(), "change notifications are back");
                }
                attempt = 0;
                // Anything committed before LISTEN took effect is read now.
                wake.notify_one();
                follow(&mut listener, &wake).await;
                stale.lost();
                tracing::warn!(
                    database = %target.location(),
                    "lost the change-notification connection; reconnecting"
                );
                wake.notify_one();
            }
            Err(e) => {
                if attempt == 0 {
                    tracing::warn!(database = %target.location(), error = %e, "cannot listen for changes; retrying");
                }
                tokio::time::sleep(BACKOFF[attempt.min(BACKOFF.len() - 1)]).await;
                attempt += 1;
            }
        }
    }
}

async fn subscribe(target: &PgTarget) -> Result<PgListener, crate::store::StoreError> {
    let options = target.options_named(super::connect::MEMBER_APPLICATION)?;
    let pool = target.pool_with(options, 1, Duration::from_secs(5), None)?;
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.eager_reconnect(false);
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// Wakes the follower for each notification until the connection is lost.
/// (`try_recv` is not cancelled midway: a message half read would be lost.)
async fn follow(listener: &mut PgListener, wake: &Notify) {
    while let Ok(Some(_)) = listener.try_recv().await {
        wake.notify_one();
    }
}
