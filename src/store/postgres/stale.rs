//! Telling live pooled connections from dead ones. When the server goes
//! away (restarted, failed over, a network cut), the pool's idle
//! connections are dead but look fine until used; handed out, each would
//! fail one more operation after the server is back. So a connection is
//! pinged before it is handed out when it is older than the last loss of
//! connection this member saw (the listener sees one at once), or has been
//! idle a while (a loss nobody saw). Busy connections in a healthy cluster
//! are neither, and cost nothing extra.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::pool::PoolConnectionMetadata;
use sqlx::postgres::PgPoolOptions;

/// A connection idle this long is pinged before use.
const IDLE_CHECK: Duration = Duration::from_secs(5);

#[derive(Clone, Debug, Default)]
pub(crate) struct Staleness(Arc<AtomicU64>);

fn since_start() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl Staleness {
    /// A connection to the server was lost: every older one is suspect.
    pub(crate) fn lost(&self) {
        self.0.store(since_start(), Ordering::Release);
    }

    fn suspect(&self, meta: &PoolConnectionMetadata) -> bool {
        let age = u64::try_from(meta.age.as_millis()).unwrap_or(u64::MAX);
        let opened = since_start().saturating_sub(age);
        opened <= self.0.load(Ordering::Acquire) || meta.idle_for >= IDLE_CHECK
    }

    /// `options` with the check before each hand-out.
    pub(crate) fn checking(&self, options: PgPoolOptions) -> PgPoolOptions {
        let this = self.clone();
        options.before_acquire(move |conn, meta| {
            let suspect = this.suspect(&meta);
            Box::pin(async move { Ok(!suspect || conn.ping().await.is_ok()) })
        })
    }
}
