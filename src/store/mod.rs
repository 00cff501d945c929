//! SQLite storage of grants and credentials, tokens sealed at rest.
//!
//! - [`crypto`]: the AEAD that seals token columns, and the key check.
//! - [`key`]: where the encryption key comes from (file, systemd credential,
//!   or generated on first start).
//! - [`model`]: the records the store reads and writes.
//! - `open`: connections (WAL, `synchronous`, private files).
//! - `put` / `write` / `read`: the store API the refresher, the API and the CLI
//!   use (`put`: new credentials, one or a batch in one transaction).
//!
//! Every write that hands out or replaces a token runs in a `BEGIN IMMEDIATE`
//! transaction on a WAL database with `synchronous=FULL`: once a write returns,
//! a `kill -9` cannot take it back.

pub mod crypto;
pub mod key;
mod load;
pub mod model;
mod open;
mod put;
mod read;
mod rotate;
mod write;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sqlx::sqlite::SqliteSynchronous;
use sqlx::{SqlitePool, Transaction};

use crate::clock::Clock;
use crypto::{Cipher, CryptoError, MasterKey};
pub use load::read_ahead_before_open;
pub use model::*;
use open::{connect, open_pool};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot prepare database file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(
        "the database {path} is encrypted with key {stored}, but the configured key is {configured}; \
         point storage.encryption_key_file at the right key (tokend never guesses)"
    )]
    WrongKey {
        path: PathBuf,
        stored: String,
        configured: String,
    },
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error("no credential {0}")]
    NoSuchCredential(String),
}

/// The handle every part of tokend shares; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
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
    cipher: Arc<Cipher>,
    clock: Clock,
    path: PathBuf,
}

impl Store {
    /// Opens (creating, 0600, if missing) the database, applies migrations and
    /// checks that `key` is the one the database was sealed with.
    pub async fn open(path: &Path, key: &MasterKey, clock: Clock) -> Result<Store, StoreError> {
        let pool = open_pool(path).await?;
        MIGRATOR.run(&pool).await?;
        let lease_pool = connect(path, SqliteSynchronous::Normal, 1).await?;
        let cipher = Arc::new(Cipher::new(key));
        let store = Store {
            pool,
            lease_pool,
            write_lock: Arc::default(),
            cipher,
            clock,
            path: path.to_path_buf(),
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

    /// Applies pending migrations (also done by [`Store::open`]).
    pub async fn migrate(path: &Path) -> Result<(), StoreError> {
        let pool = open_pool(path).await?;
        MIGRATOR.run(&pool).await?;
        pool.close().await;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn key_id(&self) -> String {
        self.cipher.key_id()
    }

    /// Signs `data` with a key derived from the encryption key (authorization `state`).
    pub fn state_mac(&self, data: &[u8]) -> [u8; 32] {
        self.cipher.state_mac(data)
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Waits for in-flight statements and checkpoints the WAL.
    pub async fn close(&self) {
        self.lease_pool.close().await;
        let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await;
        self.pool.close().await;
    }

    /// A cheap liveness probe of the database.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
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
                        path: self.path.clone(),
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
    async fn begin_write(&self) -> Result<Transaction<'static, sqlx::Sqlite>, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
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

impl Store {
    pub(crate) fn cipher(&self) -> &Cipher {
        &self.cipher
    }

    pub(crate) fn now(&self) -> i64 {
        self.clock.now()
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub(crate) fn lease_pool(&self) -> &SqlitePool {
        &self.lease_pool
    }

    pub(crate) async fn write_lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.write_lock.lock().await
    }
}

/// Opens a store for a test: a fresh database in `dir` with a new key.
#[cfg(test)]
pub(crate) async fn test_store(dir: &Path, clock: Clock) -> (Store, Arc<MasterKey>) {
    let key = Arc::new(MasterKey::generate());
    let store = Store::open(&dir.join("tokend.db"), &key, clock)
        .await
        .unwrap();
    (store, key)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod batch_tests;

#[cfg(test)]
mod load_tests;

#[cfg(test)]
mod lifecycle_tests;
