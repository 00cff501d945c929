//! The open-file budget. Every client connection is a descriptor, and so is
//! every SQLite file (database, WAL, shared memory, per pooled connection),
//! every provider call, DNS lookup, the webhook, the listeners and the log.
//! Run out and refreshes fail ("unable to open database file") while idle
//! clients hold the table. So the soft `RLIMIT_NOFILE` is raised to the hard
//! one at start (under systemd both come from `LimitNOFILE=`), and the
//! connection bound is lowered, if need be, to leave room for the rest.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Descriptors kept for everything but client connections ...
const RESERVED: u64 = 128;
/// ... plus these for each refresh that may be in flight (its socket, a DNS
/// lookup, an idle pooled connection to the provider, headroom).
const PER_REFRESH: u64 = 4;
/// Fewer connections than this and the daemon is not worth running; it
/// runs anyway (and says why it may starve).
const MIN_CONNECTIONS: u64 = 8;
/// Linux's default `fs.nr_open`: a soft limit above it is refused.
const NR_OPEN: u64 = 1 << 20;

/// How many connections to serve at most: `configured`, or fewer when the
/// open-file limit would not leave room for the database and the
/// providers besides (a WARN says so).
pub(super) fn max_connections(configured: usize, max_concurrency: usize) -> usize {
    let Some(limit) = raise_soft_limit() else {
        return configured;
    };
    let reserved = RESERVED + PER_REFRESH * max_concurrency as u64;
    let room = limit.saturating_sub(reserved);
    if configured as u64 <= room {
        return configured;
    }
    let serving = room.max(MIN_CONNECTIONS);
    tracing::warn!(
        max_connections = configured,
        serving,
        open_file_limit = limit,
        reserved,
        "server.max_connections does not fit under the open-file limit with room for the \
         database and the providers: serving fewer connections; raise LimitNOFILE= (ulimit -n)"
    );
    usize::try_from(serving).unwrap_or(configured)
}

/// The soft limit after raising it to the hard one where possible; `None`
/// when unlimited.
fn raise_soft_limit() -> Option<u64> {
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    let soft = current?;
    let target = maximum.unwrap_or(NR_OPEN).min(NR_OPEN);
    if target <= soft {
        return Some(soft);
    }
    let raised = Rlimit {
        current: Some(target),
        maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => Some(target),
        Err(e) => {
            tracing::debug!(error = %e, soft, target, "cannot raise the open-file limit");
            Some(soft)
        }
    }
}
