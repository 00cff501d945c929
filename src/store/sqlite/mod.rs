//! The SQLite backend: one database file (WAL, `synchronous=FULL`) that the
//! daemon and the CLI share, processes coordinating through transactions and
//! refresh leases.
//!
//! - `open`: connections (WAL, `synchronous`, private files).
//! - `load`: the whole database, a page at a time, at start (`load_page`:
//!   a page's JSON records decoded into grants).
//! - `put`: new credentials, one or a batch in one transaction.
//! - `read`: grants, credential views, listings.
//! - `feed`: the change feed other processes follow.
//! - `commit`: refresh results with compare-and-set (group commit).
//! - `lease`: refresh leases and the failure writes made under them.
//! - `delete`: credentials leaving, and their grants when unused.
//! - `rotate`: re-sealing under a new key.
//! - `copy`: every grant as stored, out or in (`copy-store`).
//! - `usage`: when credentials were last handed out (the refresh budget's order).
//! - `seam`: the [`Backend`] trait, each call handed to one of the above.
//!
//! Every write that hands out or replaces a token runs in a `BEGIN IMMEDIATE`
//! transaction on a WAL database with `synchronous=FULL`: once a write returns,
//! a `kill -9` cannot take it back.

mod commit;
mod copy;
mod delete;
mod feed;
mod file;
mod lease;
mod load;
mod load_page;
mod open;
mod page_limit;
mod put;
mod read;
mod rotate;
mod seam;
mod usage;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sqlx::sqlite::SqliteSynchronous;
use sqlx::{SqlitePool, Transaction};

use super::crypto::{Cipher, MasterKey};
use super::{Backend, StoreError};
use crate::clock::{Clock, UnixMillis};
pub use load::read_ahead_before_open;
use open::{connect, open_pool};
#[doc(hidden)]
pub use page_limit::limit_pages_for_tests;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A store in one SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// One connection for refresh leases, with `synchronous=NORMAL`: a lease
    /// is visible to other processes as soon as it commits, whether or not
    /// it reached the disk, and one lost to a power cut is harmless (its
    /// holder is gone too). It spares every refresh an fsync; the
    /// `synchronous=FULL` commits of tokens sync the shared WAL as before.
    lease_pool: SqlitePool,
    /// Taken around the frequent writes (leases, refresh results) so this
    /// process's own connections queue here, woken at once, rather than
    /// meeting SQLite's busy handler, which sleeps (1 ms, 2 ms, 5 ms, ...)
    /// before trying again. Other processes still meet the busy handler.
    write_lock: Arc<tokio::sync::Mutex<()>>,
    /// Shared with the thread that opens tokens while the cache loads.
    cipher: Arc<Cipher>,
    clock: Clock,
    path: PathBuf,
    /// The file `path` named when opened: a write to another (or none) is refused.
    file_id: file::FileId,
    /// Identifies this handle's leases in the shared database.
    owner: String,
}

impl SqliteStore {
    /// Opens (creating, 0600, if missing) the database, applies migrations and
    /// checks that `key` is the one the database was sealed with.
    pub async fn open(
        path: &Path,
        key: &MasterKey,
        clock: Clock,
    ) -> Result<SqliteStore, StoreError> {
        let pool = open_pool(path).await?;
        MIGRATOR.run(&pool).await?;
        let lease_pool = connect(path, SqliteSynchronous::Normal, 1).await?;
        let store = SqliteStore {
            pool,
            lease_pool,
            write_lock: Arc::default(),
            cipher: Arc::new(Cipher::new(key)),
            clock,
            path: path.to_path_buf(),
            file_id: file::FileId::of(path)?,
            owner: crate::store::owner::this_process(rand::random()),
        };
        store.check_key().await?;
        Ok(store)
    }

    /// The key id this database was sealed with, if it holds any sealed data
    /// yet. Lets start-up tell "no key for an existing database" from a new one.
    pub async fn stored_key_id(path: &Path) -> Result<Option<String>, StoreError> {
        if !path.exists() {
            return Ok(None);
        }
        let pool = open_pool(path).await?;
        MIGRATOR.run(&pool).await?;
        let id = sqlx::query_scalar!("SELECT value FROM meta WHERE key = 'key_id'")
            .fetch_optional(&pool)
            .await?;
        pool.close().await;
        Ok(id)
    }

    /// Applies pending migrations (also done by [`SqliteStore::open`]).
    pub async fn migrate(path: &Path) -> Result<(), StoreError> {
        let pool = open_pool(path).await?;
        MIGRATOR.run(&pool).await?;
        pool.close().await;
        Ok(())
    }

    async fn check_key(&self) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let stored =
            sqlx::query!("SELECT key, value FROM meta WHERE key IN ('key_id', 'key_check')")
                .fetch_all(&mut *tx)
                .await?;
        let get = |k: &str| stored.iter().find(|r| r.key == k).map(|r| r.value.clone());
        match (get("key_id"), get("key_check")) {
            (Some(id), Some(check)) => {
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
            }
            _ => write_key_check(&mut tx, &self.cipher).await?,
        }
        tx.commit().await?;
        Ok(())
    }

    /// A write transaction that takes the write lock up front, so two writers
    /// never deadlock upgrading read locks (busy_timeout then serialises them).
    /// The file is checked first (see `file`).
    async fn begin_write(&self) -> Result<Transaction<'static, sqlx::Sqlite>, StoreError> {
        self.check_file()?;
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    fn now(&self) -> UnixMillis {
        self.clock.now()
    }
}

/// Records which key seals this database, and a value only that key opens.
async fn write_key_check(
    tx: &mut Transaction<'static, sqlx::Sqlite>,
    cipher: &Cipher,
) -> Result<(), StoreError> {
    let id = cipher.key_id();
    let check = hex::encode(cipher.key_check());
    sqlx::query!(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('key_id', ?1), ('key_check', ?2)",
        id,
        check
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Takes the next change number; rows touched in this transaction carry it.
async fn next_change_seq(tx: &mut Transaction<'static, sqlx::Sqlite>) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar!("UPDATE change_counter SET seq = seq + 1 WHERE id = 0 RETURNING seq")
            .fetch_one(&mut **tx)
            .await?,
    )
}

/// Opens a store for a test: a fresh database in `dir` with a new key.
#[cfg(test)]
pub(crate) async fn test_store(dir: &Path, clock: Clock) -> (super::Store, Arc<MasterKey>) {
    let key = Arc::new(MasterKey::generate());
    let store = super::Store::open(&dir.join("tokend.db"), &key, clock)
        .await
        .unwrap();
    (store, key)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod load_tests;

#[cfg(test)]
mod fault_tests;
