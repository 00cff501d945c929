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
//! - [`owner`]: who holds a refresh lease, and whether that process is
//!   provably gone (its lease is then taken over at once).
//! - `rows`: rows as both backends read them, and turning them into the model.
//! - [`health`]: whether the store takes writes now (a full disk, a
//!   database that cannot be reached), for every backend alike.
//!
//! # Adding a backend
//! 1. Implement [`Backend`] in `store/<name>/`, sealing with the shared
//!    [`Cipher`](crypto::Cipher) (the same associated data, so data moves
//!    between backends sealed as it is). Name lease owners with
//!    [`owner::this_process`] and take over a lease whose holder
//!    [`owner::is_provably_dead`]; make sure the errors of a store
//!    that cannot take writes are ones [`StoreError::is_outage`] knows, and
//!    override [`Backend::check_writable`] if a ping does not prove writes.
//! 2. Open it where the configured store is opened (`key::open_store`),
//!    checking the key as [`Backend`] says under "Sealing", and refuse to
//!    generate a key for a database that already holds sealed data (as
//!    `KeyError::Missing` does for SQLite).
//! 3. Run the contract: `store_contract!(fixture)` in its tests, with a
//!    `store::contract::Fixture` for a fresh, empty database.

mod backend;
#[cfg(test)]
pub(crate) mod contract;
pub mod crypto;
pub mod health;
pub mod key;
pub mod owner;
pub mod postgres;
mod rows;
pub mod sqlite;
mod types;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::clock::Clock;
pub use backend::{Backend, POLL_INTERVAL};
use crypto::{CryptoError, MasterKey};
pub use health::StoreHealth;
pub use types::{
    Changes, Claim, CommitOutcome, DeleteOutcome, Lease, ListFilter, NewCredential, PutOutcome,
    SealedCredential, SealedGrant, TokenCommit,
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
    /// The store cannot take writes for a reason the backend saw itself
    /// (SQLite: the database file was deleted, replaced or made read-only
    /// while open).
    #[error("the database {database} cannot take writes: {reason}")]
    Unwritable {
        /// [`Backend::location`]: never a secret.
        database: String,
        reason: String,
    },
}

impl StoreError {
    /// Whether this error means the store cannot take writes (or cannot be
    /// reached) now, and may again later without anything changing in
    /// tokend: a full disk, a read-only or vanished file, an I/O error, a
    /// lock held too long, a lost connection. Not a conflict, a wrong key or
    /// corrupt data. Such an error turns [`StoreHealth`] down.
    pub fn is_outage(&self) -> bool {
        match self {
            StoreError::Unwritable { .. } | StoreError::File { .. } => true,
            StoreError::Sqlx(e) => sqlx_outage(e),
            StoreError::Migrate(_)
            | StoreError::Crypto(_)
            | StoreError::WrongKey { .. }
            | StoreError::Corrupt(_) => false,
        }
    }
}

/// See [`StoreError::is_outage`].
fn sqlx_outage(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Tls(_) => true,
        // A conversation with the server that broke off, typically while
        // connecting to one going away or behind a cut network (the TLS
        // negotiation answered by a closed socket): the connection is
        // unusable and a new one is the remedy.
        sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| outage_code(&code)),
        _ => false,
    }
}

/// A database error code that means "not now": SQLite's (a number, the
/// primary code in its low byte) BUSY, LOCKED, NOMEM, READONLY, IOERR,
/// FULL, CANTOPEN; PostgreSQL's (SQLSTATE) connection exceptions (class
/// 08), insufficient resources (53, e.g. disk full), operator intervention
/// (57, e.g. shutting down) and a read-only transaction (25006, a standby).
fn outage_code(code: &str) -> bool {
    if let Ok(n) = code.parse::<i32>() {
        return matches!(n & 0xff, 5 | 6 | 7 | 8 | 10 | 13 | 14);
    }
    code.starts_with("08") || code.starts_with("53") || code.starts_with("57") || code == "25006"
}

/// The handle every part of tokend shares: one backend behind the
/// [`Backend`] seam (call its methods on the handle). Cheap to clone.
/// The handle also carries the store's [`StoreHealth`], which every part
/// that meets a store failure reports to.
#[derive(Clone, Debug)]
pub struct Store(Arc<dyn Backend>, StoreHealth);

impl Store {
    /// A handle on `backend`.
    pub fn new(backend: impl Backend + 'static) -> Store {
        Store::from_arc(Arc::new(backend))
    }

    /// A handle on a backend that is shared already (e.g. one wrapped to
    /// inject faults in a test, whose own handle the test keeps).
    pub fn from_arc(backend: Arc<dyn Backend>) -> Store {
        Store::with_health(backend, StoreHealth::default())
    }

    /// A handle on `backend` reporting to `health` (a backend that sees
    /// outages by itself, e.g. a lost server connection, reports there too).
    pub fn with_health(backend: Arc<dyn Backend>, health: StoreHealth) -> Store {
        Store(backend, health)
    }

    /// Whether the store takes writes now (see [`health`]).
    pub fn health(&self) -> &StoreHealth {
        &self.1
    }

    /// Reports `error` to the store's health (an outage turns it down);
    /// returns it, for `map_err`.
    pub fn report(&self, error: StoreError) -> StoreError {
        self.1.report(&self.0.location(), &error);
        error
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
    /// The rate buckets the members of a cluster share (see
    /// [`Backend::shared_buckets`]); `None` for SQLite.
    pub fn shared_buckets(&self) -> Option<Arc<dyn crate::provider::bucket::SharedBuckets>> {
        self.0.shared_buckets()
    }

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
