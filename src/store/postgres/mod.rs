//! The PostgreSQL backend: one database that every member of a cluster (a
//! `tokend serve` per application host) and the CLI share.
//!
//! - `connect`: the URL, its password kept out of every message, the pools.
//! - `rows`: rows as stored, and turning them into the model.
//! - `read`: grants, credential views, listings.
//! - `put`: new credentials, one or a batch in one transaction.
//! - `commit`, `commit_cas`: refresh results with compare-and-set (group
//!   commit; the usual batch in one statement).
//! - `lease`: refresh leases and the failure writes made under them;
//!   `claims`: the leases asked for at the same moment, in one statement;
//!   `batch`: the connections those batches and the commits use.
//! - `delete`, `rotate`: credentials leaving; re-sealing under a new key.
//! - `copy`: every grant as stored, out or in (`copy-store`).
//! - `feed`: the change feed (`own`: this store's commits, which it need
//!   not read back); `load`: the full load at start (`binary`: the
//!   COPY rows it reads; `load_credentials`: the credentials it holds).
//! - `listen`: the push (`LISTEN tokend_changes`) that wakes the follower;
//!   `stale`: pooled connections a lost server left dead, found before use.
//! - [`scratch`]: throwaway databases for tests and benchmarks.
//! - `usage`: when credentials were last handed out (the refresh budget's
//!   order), written by each member and read back from the others.
//! - `bucket`: the cluster's rate buckets (request limits, 429 pauses,
//!   refresh budgets), one row each.
//! - `seam`: the [`Backend`] trait, each call handed to one of the above.
//!
//! Every write transaction takes the next change number first: the counter
//! row's lock serialises writers (so they never deadlock on each other's
//! rows) and makes commit order the change number's order, which is what a
//! reader of the feed relies on. A lease is one statement on its own, so no
//! lock outlives it: nothing is held while a member calls a provider.
//! Writes return once PostgreSQL acknowledged the commit
//! (`synchronous_commit` as the server is configured; its default is
//! durable).

mod batch;
mod binary;
mod bucket;
#[cfg(test)]
mod bucket_tests;
mod claims;
mod commit;
mod commit_cas;
pub mod connect;
mod copy;
mod delete;
mod feed;
mod lease;
mod listen;
mod load;
mod load_credentials;
#[cfg(test)]
mod load_tests;
mod own;
#[cfg(test)]
mod own_tests;
mod put;
mod read;
mod rotate;
mod rows;
pub mod scratch;
mod seam;
mod stale;
mod usage;

use std::time::Duration;

use sqlx::postgres::PgPool;
use sqlx::{Postgres, Transaction};

use super::crypto::{Cipher, MasterKey};
use super::{Backend, StoreError};
use crate::clock::{Clock, UnixMillis};
pub use connect::{PgTarget, TargetError, is_postgres_url};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections for statements (besides the batch statements' own, below).
/// More connections than the busy users only queue in the server.
const CONNECTIONS: u32 = 6;

/// Connections for the refresh path's batch statements: the group claim
/// and the group commit, each one statement at a time from its own task.
const BATCH_CONNECTIONS: u32 = 2;

/// How long a connection attempt (or a wait for a free connection) may take
/// before the operation fails: an unreachable server must be an error soon,
/// not a request that hangs.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A store in one PostgreSQL database.
pub struct PgStore {
    pool: PgPool,
    /// The group claims' and commits' connections, which plan generically
    /// (`batch`).
    batch_pool: PgPool,
    target: PgTarget,
    cipher: std::sync::Arc<Cipher>,
    clock: Clock,
    /// Identifies this handle's leases in the shared database.
    owner: String,
    listener: listen::Listener,
    /// Group claims, started by the first claim (a CLI command that never
    /// claims starts no task).
    claims: std::sync::OnceLock<claims::Claims>,
    /// Grants whose status or failures this store wrote, and at which change
    /// number, until a read of the feed includes that number (see
    /// `feed`): a few entries at a time. A std mutex: held for a map
    /// operation, never across an await.
    own_status: std::sync::Mutex<std::collections::HashMap<i64, i64>>,
    /// Refresh results this store committed, until the feed is past them
    /// (`own`).
    own_commits: own::OwnCommits,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("database", &self.target.location())
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects, applies migrations (under sqlx's advisory lock, so members
    /// starting together migrate one after the other) and checks that `key`
    /// is the one the database was sealed with.
    pub async fn open(
        target: &PgTarget,
        key: &MasterKey,
        clock: Clock,
    ) -> Result<PgStore, StoreError> {
        let stale = stale::Staleness::default();
        let pool = target.pool_with(
            target.options()?,
            CONNECTIONS,
            CONNECT_TIMEOUT,
            Some(&stale),
        )?;
        MIGRATOR.run(&pool).await?;
        let batch_pool = target.pool_with(
            batch::options(target.options()?),
            BATCH_CONNECTIONS,
            CONNECT_TIMEOUT,
            Some(&stale),
        )?;
        let store = PgStore {
            listener: listen::Listener::new(target.clone(), stale),
            pool,
            batch_pool,
            target: target.clone(),
            cipher: std::sync::Arc::new(Cipher::new(key)),
            clock,
            owner: crate::store::owner::this_process(rand::random()),
            claims: std::sync::OnceLock::new(),
            own_status: std::sync::Mutex::default(),
            own_commits: own::OwnCommits::default(),
        };
        store.check_key().await?;
        Ok(store)
    }

    /// Applies pending migrations (also done by [`PgStore::open`]).
    pub async fn migrate(target: &PgTarget) -> Result<(), StoreError> {
        let pool = target.pool(1, CONNECT_TIMEOUT)?;
        MIGRATOR.run(&pool).await?;
        pool.close().await;
        Ok(())
    }

    /// The client addresses of the serving members connected to the
    /// database now (each listens for changes on a connection of its own).
    pub async fn connected_members(target: &PgTarget) -> Result<Vec<String>, StoreError> {
        let pool = target.pool(1, CONNECT_TIMEOUT)?;
        let members: Vec<String> = sqlx::query_scalar(
            "SELECT coalesce(host(client_addr), 'local socket') FROM pg_stat_activity
             WHERE datname = current_database() AND application_name = $1",
        )
        .bind(connect::MEMBER_APPLICATION)
        .fetch_all(&pool)
        .await?;
        pool.close().await;
        Ok(members)
    }

    /// Whether the database holds no grant and no credential yet (the
    /// target of `copy-store` must).
    pub async fn is_empty(&self) -> Result<bool, StoreError> {
        let any: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM grants) OR EXISTS (SELECT 1 FROM credentials)",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(!any)
    }

    async fn check_key(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        // Two members starting on an empty database: the first to insert
        // records its key, the other reads it back below.
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ('key_id', $1), ('key_check', $2)
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(self.cipher.key_id())
        .bind(hex::encode(self.cipher.key_check()))
        .execute(&mut *tx)
        .await?;
        let stored: Vec<(String, String)> =
            sqlx::query_as("SELECT key, value FROM meta WHERE key IN ('key_id', 'key_check')")
                .fetch_all(&mut *tx)
                .await?;
        tx.commit().await?;
        let get = |k: &str| stored.iter().find(|r| r.0 == k).map(|r| r.1.clone());
        let (Some(id), Some(check)) = (get("key_id"), get("key_check")) else {
            return Err(StoreError::Corrupt("meta lacks key_id or key_check".into()));
        };
        if id != self.cipher.key_id() {
            return Err(StoreError::WrongKey {
                database: self.location(),
                stored: id,
                configured: self.cipher.key_id(),
            });
        }
        let check = hex::decode(check)
            .map_err(|_| StoreError::Corrupt("meta.key_check is not hex".into()))?;
        self.cipher.verify_key_check(&check)?;
        Ok(())
    }

    fn now(&self) -> UnixMillis {
        self.clock.now()
    }
}

/// Records which key seals this database, and a value only that key opens.
async fn write_key_check(
    tx: &mut Transaction<'static, Postgres>,
    cipher: &Cipher,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO meta (key, value) VALUES ('key_id', $1), ('key_check', $2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .bind(cipher.key_id())
    .bind(hex::encode(cipher.key_check()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Takes the next change number; rows touched in this transaction carry it.
/// The counter row stays locked until the transaction ends: writers queue
/// here, before touching any other row.
async fn next_change_seq(tx: &mut Transaction<'static, Postgres>) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("UPDATE change_counter SET seq = seq + 1 WHERE id = 0 RETURNING seq")
            .fetch_one(&mut **tx)
            .await?,
    )
}

#[cfg(test)]
mod tests;
