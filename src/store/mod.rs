//! Storage of grants and credentials, tokens sealed at rest, behind one seam.
//!
//! - [`Backend`] (`backend`): the seam, and the contract every backend
//!   keeps (durability, atomicity, generations, leases, the change feed).
//! - `types`: what crosses the seam ([`NewCredential`], [`TokenCommit`],
//!   [`Claim`], [`Changes`], ...).
//! - [`Store`]: the handle every part of tokend shares.
//! - [`sqlite`]: the SQLite backend (WAL, `synchronous=FULL`).
//! - [`postgres`]: the PostgreSQL backend (cluster mode: many members, one
//!   database, changes pushed with `LISTEN`/`NOTIFY`).
//! - [`crypto`]: the AEAD that seals token columns, and the key check; the
//!   same for every backend.
//! - [`key`]: where the encryption key comes from (file, systemd
//!   credential, or generated on first start), and opening the configured store.

mod backend;
#[cfg(test)]
pub(crate) mod contract;
pub mod crypto;
pub mod key;
pub mod postgres;
pub mod sqlite;
mod types;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::clock::Clock;
pub use backend::{Backend, POLL_INTERVAL};
use crypto::{CryptoError, MasterKey};
pub use types::{
    Changes, Claim, CommitOutcome, DeleteOutcome, Lease, ListFilter, NewCredential, PutOutcome,
    TokenCommit,
};

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
        "the database {database} is encrypted with key {stored}, but the configured key is {configured}; \
         point storage.encryption_key_file at the right key (tokend never guesses)"
    )]
    WrongKey {
        /// [`Backend::location`]: never a secret.
        database: String,
        stored: String,
        configured: String,
    },
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
}

/// The handle every part of tokend shares: one backend behind the
/// [`Backend`] seam (call its methods on the handle). Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store(Arc<dyn Backend>);

impl Store {
    /// A handle on `backend`.
    pub fn new(backend: impl Backend + 'static) -> Store {
        Store(Arc::new(backend))
    }

    /// A handle on a backend that is shared already (e.g. one wrapped to
    /// inject faults in a test, whose own handle the test keeps).
    pub fn from_arc(backend: Arc<dyn Backend>) -> Store {
        Store(backend)
    }

    /// Opens (creating, 0600, if missing) the SQLite database at `path`,
    /// applies migrations and checks that `key` is the one it was sealed with.
    pub async fn open(path: &Path, key: &MasterKey, clock: Clock) -> Result<Store, StoreError> {
        Ok(Store::new(
            sqlite::SqliteStore::open(path, key, clock).await?,
        ))
    }

    /// Applies pending migrations to the SQLite database at `path` (also
    /// done by [`Store::open`]).
    pub async fn migrate(path: &Path) -> Result<(), StoreError> {
        sqlite::SqliteStore::migrate(path).await
    }

    /// The public fingerprint of the key the store is sealed with.
    pub fn key_id(&self) -> String {
        self.0.cipher().key_id()
    }

    /// Signs `data` with a key derived from the encryption key (authorization `state`).
    pub fn state_mac(&self, data: &[u8]) -> [u8; 32] {
        self.0.cipher().state_mac(data)
    }
}

impl std::ops::Deref for Store {
    type Target = dyn Backend;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}
