//! Where the encryption key comes from (SPEC §3 `storage.encryption_key_file`):
//! the configured file, else `$CREDENTIALS_DIRECTORY/tokend.key` (systemd
//! `LoadCredential=`), else `tokend.key` beside the database, else
//! `tokend.key` in systemd's credential stores (`/etc/credstore`, ...: where
//! the unit's `LoadCredential=` finds it, so a root shell's CLI command finds
//! the service's key), else generated (0600) beside the database on first
//! start. An existing database is never given a fresh key.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::crypto::{CryptoError, MasterKey};
use super::sqlite::SqliteStore;
use super::{Store, StoreError};

pub const KEY_FILE_NAME: &str = "tokend.key";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOrigin {
    /// `storage.encryption_key_file`.
    Configured(PathBuf),
    /// `$CREDENTIALS_DIRECTORY/tokend.key`, or `tokend.key` in a systemd
    /// credential store (`/etc/credstore`, ...).
    SystemdCredential(PathBuf),
    /// `tokend.key` beside the database, from an earlier start.
    BesideDatabase(PathBuf),
    /// Generated just now beside the database.
    Generated(PathBuf),
}

impl KeyOrigin {
    pub fn path(&self) -> &Path {
        match self {
            KeyOrigin::Configured(p)
            | KeyOrigin::SystemdCredential(p)
            | KeyOrigin::BesideDatabase(p)
            | KeyOrigin::Generated(p) => p,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read encryption key {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("encryption key {path}: {source}")]
    Invalid { path: PathBuf, source: CryptoError },
    #[error("cannot write generated encryption key {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the database {database} is encrypted with key {key_id}, but no key was found: \
         storage.encryption_key_file is empty, and neither $CREDENTIALS_DIRECTORY/tokend.key, {beside} nor /etc/credstore/tokend.key exists; \
         restore the key file (tokend will not generate a new key for an existing database)"
    )]
    Missing {
        database: PathBuf,
        key_id: String,
        beside: PathBuf,
    },
    #[error(
        "a PostgreSQL database is shared by every member, so tokend never generates its key: \
         give every member the same 32-byte key through storage.encryption_key_file or systemd \
         LoadCredential=tokend.key (make one with `head -c 32 /dev/urandom | base64`; \
         copy-store moves an existing installation's key along with its data)"
    )]
    NoSharedKey,
    #[error(transparent)]
    Secret(#[from] crate::config::SecretError),
    #[error(transparent)]
    Target(#[from] super::postgres::TargetError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Finds (or, for a new database, generates) the encryption key.
pub async fn load_key(
    configured: Option<&Path>,
    search: &KeySearch,
    database: &Path,
) -> Result<(MasterKey, KeyOrigin), KeyError> {
    if let Some(path) = configured {
        return Ok((read_key(path)?, KeyOrigin::Configured(path.to_path_buf())));
    }
    if let Some(found) = search.credentials_directory() {
        return Ok((read_key(&found)?, KeyOrigin::SystemdCredential(found)));
    }
    let beside = database
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join(KEY_FILE_NAME);
    if beside.exists() {
        return Ok((read_key(&beside)?, KeyOrigin::BesideDatabase(beside)));
    }
    if let Some(found) = search.credstore() {
        return Ok((read_key(&found)?, KeyOrigin::SystemdCredential(found)));
    }
    if let Some(key_id) = SqliteStore::stored_key_id(database).await? {
        return Err(KeyError::Missing {
            database: database.to_path_buf(),
            key_id,
            beside,
        });
    }
    let key = MasterKey::generate();
    write_new_key(&beside, &key)?;
    Ok((key, KeyOrigin::Generated(beside)))
}

/// Reads a key file (32 raw bytes or base64), warning when others can read it.
pub fn read_key(path: &Path) -> Result<MasterKey, KeyError> {
    let contents =
        zeroize::Zeroizing::new(std::fs::read(path).map_err(|source| KeyError::Read {
            path: path.to_path_buf(),
            source,
        })?);
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "encryption key file is readable by group or others; chmod 0600 it");
    }
    MasterKey::from_file_contents(&contents).map_err(|source| KeyError::Invalid {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes a new key as base64, 0600, refusing to overwrite an existing file.
pub fn write_new_key(path: &Path, key: &MasterKey) -> Result<(), KeyError> {
    let err = |source| KeyError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    let text = key.to_base64();
    file.write_all(text.as_bytes()).map_err(err)?;
    file.write_all(b"\n").map_err(err)?;
    file.sync_all().map_err(err)?;
    Ok(())
}

/// The key of a shared (PostgreSQL) database: configured, from systemd's
/// credentials, or `tokend.key` in the state directory; never generated,
/// since every member must hold the same one.
pub fn load_shared_key(
    configured: Option<&Path>,
    search: &KeySearch,
    state_dir: &Path,
) -> Result<(MasterKey, KeyOrigin), KeyError> {
    if let Some(path) = configured {
        return Ok((read_key(path)?, KeyOrigin::Configured(path.to_path_buf())));
    }
    if let Some(found) = search.credentials_directory() {
        return Ok((read_key(&found)?, KeyOrigin::SystemdCredential(found)));
    }
    let beside = state_dir.join(KEY_FILE_NAME);
    if beside.exists() {
        return Ok((read_key(&beside)?, KeyOrigin::BesideDatabase(beside)));
    }
    if let Some(found) = search.credstore() {
        return Ok((read_key(&found)?, KeyOrigin::SystemdCredential(found)));
    }
    Err(KeyError::NoSharedKey)
}

/// Where systemd keeps credentials: the service's own
/// `$CREDENTIALS_DIRECTORY`, and the credential stores `LoadCredential=`
/// reads from (`/etc/credstore`, `/run/credstore`, `/usr/lib/credstore`).
#[derive(Debug, Clone, Default)]
pub struct KeySearch {
    pub credentials_dir: Option<PathBuf>,
    pub credstores: Vec<PathBuf>,
}

impl KeySearch {
    /// This process's.
    pub fn from_env() -> KeySearch {
        KeySearch {
            credentials_dir: std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from),
            credstores: crate::config::CREDSTORE_DIRS
                .iter()
                .map(PathBuf::from)
                .collect(),
        }
    }

    fn credentials_directory(&self) -> Option<PathBuf> {
        let path = self.credentials_dir.as_ref()?.join(KEY_FILE_NAME);
        path.exists().then_some(path)
    }

    fn credstore(&self) -> Option<PathBuf> {
        self.credstores
            .iter()
            .map(|dir| dir.join(KEY_FILE_NAME))
            .find(|path| path.exists())
    }
}

/// The configured PostgreSQL database, its password read from
/// `storage.database_password_file` when set; `None` for SQLite.
pub fn postgres_target(
    config: &crate::config::Config,
) -> Result<Option<super::postgres::PgTarget>, KeyError> {
    let Some(url) = config.postgres_url() else {
        return Ok(None);
    };
    let password = config
        .storage
        .database_password_file
        .as_deref()
        .map(|path| {
            crate::config::SecretSearch::from_env().read("storage.database_password_file", path)
        })
        .transpose()?;
    Ok(Some(super::postgres::PgTarget::parse(url, password)?))
}

/// Opens the configured database with the configured (or generated) key,
/// logging where the key came from; a generated key gets a WARN that says how
/// to supply a real one.
pub async fn open_store(
    config: &crate::config::Config,
    clock: crate::clock::Clock,
) -> Result<(Store, KeyOrigin), KeyError> {
    let database = config.database_path();
    let search = KeySearch::from_env();
    if let Some(target) = postgres_target(config)? {
        let state_dir = database.parent().unwrap_or(Path::new("."));
        let (key, origin) = load_shared_key(
            config.storage.encryption_key_file.as_deref(),
            &search,
            state_dir,
        )?;
        let store = Store::new(super::postgres::PgStore::open(&target, &key, clock).await?);
        tracing::info!(database = %target.location(), key_id = %store.key_id(), key_file = %origin.path().display(), "database open");
        return Ok((store, origin));
    }
    let (key, origin) = load_key(
        config.storage.encryption_key_file.as_deref(),
        &search,
        &database,
    )
    .await?;
    if let KeyOrigin::Generated(path) = &origin {
        tracing::warn!(
            key_file = %path.display(),
            "generated a new encryption key beside the database; back it up with the database, \
             or supply your own 32-byte key via storage.encryption_key_file or systemd \
             LoadCredential=tokend.key before storing credentials"
        );
    }
    let store = Store::open(&database, &key, clock).await?;
    tracing::info!(database = %database.display(), key_id = %store.key_id(), key_file = %origin.path().display(), "database open");
    Ok((store, origin))
}
