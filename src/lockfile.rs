//! The database's lock file, `<database>.lock`: every `tokend serve` holds a
//! shared `flock` on it for its whole life, and `tokend rotate-key` takes it
//! exclusively. So a key rotation never re-encrypts the database under a
//! running daemon (which would then fail every write), and a daemon never
//! starts in the middle of one.
//!
//! A file of its own, never the database: SQLite's locks are POSIX locks,
//! owned by the process and the file, and closing *any* descriptor of the
//! database file in the daemon would silently drop them. `flock` locks
//! belong to this file's open description alone and go when the process
//! ends, however it ends. Who holds one is read from `/proc/locks`.

use std::fs::File;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;

/// A lock on the database, held until dropped.
#[derive(Debug)]
pub struct DatabaseLock {
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot open the lock file {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{} {} the database {} open: stop the service first (systemctl stop tokend), then run rotate-key again",
        holders(.pids),
        if .pids.len() > 1 { "have" } else { "has" },
        .database.display()
    )]
    DaemonRunning { database: PathBuf, pids: Vec<u32> },
    #[error(
        "{} is re-encrypting the database {}: start tokend again once it has finished",
        holders(.pids).replacen("tokend", "tokend rotate-key", 1),
        .database.display()
    )]
    Rotating { database: PathBuf, pids: Vec<u32> },
    #[error("cannot lock {path}: {source}")]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl DatabaseLock {
    /// What `tokend serve` holds: shared with other daemons on the same
    /// database, refused while `rotate-key` runs.
    pub fn shared(database: &Path) -> Result<Self, LockError> {
        Self::take(database, FlockOperation::NonBlockingLockShared)
    }

    /// What `tokend rotate-key` holds: refused while any daemon runs.
    pub fn exclusive(database: &Path) -> Result<Self, LockError> {
        Self::take(database, FlockOperation::NonBlockingLockExclusive)
    }

    fn take(database: &Path, operation: FlockOperation) -> Result<Self, LockError> {
        let path = lock_path(database);
        let file = open(&path).map_err(|source| LockError::Open {
            path: path.clone(),
            source,
        })?;
        match rustix::fs::flock(&file, operation) {
            Ok(()) => Ok(DatabaseLock { _file: file }),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                let database = database.to_path_buf();
                let pids = holders_of(&file);
                Err(match operation {
                    FlockOperation::NonBlockingLockExclusive => {
                        LockError::DaemonRunning { database, pids }
                    }
                    _ => LockError::Rotating { database, pids },
                })
            }
            Err(e) => Err(LockError::Lock {
                path,
                source: e.into(),
            }),
        }
    }
}

/// `tokend.db` → `tokend.db.lock`, beside it.
fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Opens (creating) the lock file; read access is all `flock` needs. A new
/// one is 0600 like the database (anyone who could open it could keep the
/// daemon from starting); when root creates it (the CLI run as root), it is
/// given to the database file's owner so the daemon can still open it.
fn open(path: &Path) -> std::io::Result<File> {
    match std::fs::File::open(path) {
        Ok(file) => Ok(file),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)?;
            give_to_database_owner(&file, path);
            Ok(file)
        }
        Err(e) => Err(e),
    }
}

fn give_to_database_owner(file: &File, lock: &Path) {
    let database = lock.with_extension("");
    let Ok(meta) = std::fs::metadata(&database) else {
        return;
    };
    if rustix::process::geteuid().is_root() && meta.uid() != 0 {
        let owner = rustix::fs::Uid::from_raw(meta.uid());
        let group = rustix::fs::Gid::from_raw(meta.gid());
        // Best effort: without it only root can take the lock later.
        let _ = rustix::fs::fchown(file, Some(owner), Some(group));
    }
}

/// The pids `/proc/locks` names as holding a lock on `file`.
fn holders_of(file: &File) -> Vec<u32> {
    let Ok(meta) = file.metadata() else {
        return Vec::new();
    };
    let id = format!(
        "{:02x}:{:02x}:{}",
        rustix::fs::major(meta.dev()),
        rustix::fs::minor(meta.dev()),
        meta.ino()
    );
    let locks = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    let mut pids: Vec<u32> = locks.lines().filter_map(|l| holder(l, &id)).collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// `1: FLOCK  ADVISORY  READ 1234 fe:00:5652792 0 EOF` → 1234 when the
/// file id matches (lines with `->` are waiters, not holders).
fn holder(line: &str, id: &str) -> Option<u32> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    match fields.as_slice() {
        [_, "FLOCK", _, _, pid, file, ..] if *file == id => pid.parse().ok(),
        _ => None,
    }
}

fn holders(pids: &[u32]) -> String {
    match pids {
        [] => "another tokend process".to_owned(),
        [pid] => format!("tokend (pid {pid})"),
        pids => format!(
            "tokend (pids {})",
            pids.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_locks_coexist_and_keep_the_exclusive_one_out() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("tokend.db");
        let a = DatabaseLock::shared(&db).unwrap();
        let b = DatabaseLock::shared(&db).unwrap();
        let err = DatabaseLock::exclusive(&db).unwrap_err().to_string();
        let me = std::process::id();
        assert!(err.contains(&format!("tokend (pid {me})")), "{err}");
        assert!(err.contains("stop the service first"), "{err}");
        drop((a, b));
        let rotating = DatabaseLock::exclusive(&db).unwrap();
        let err = DatabaseLock::shared(&db).unwrap_err().to_string();
        assert!(
            err.contains(&format!("tokend rotate-key (pid {me})")),
            "{err}"
        );
        drop(rotating);
        DatabaseLock::shared(&db).unwrap();
        assert!(dir.path().join("tokend.db.lock").exists());
    }

    #[test]
    fn proc_locks_lines() {
        let id = "fe:00:5652792";
        assert_eq!(
            holder("5: FLOCK  ADVISORY  READ 24542 fe:00:5652792 0 EOF", id),
            Some(24542)
        );
        assert_eq!(
            holder("5: FLOCK  ADVISORY  READ 24542 fe:00:5652793 0 EOF", id),
            None
        );
        assert_eq!(
            holder("5: -> FLOCK  ADVISORY  WRITE 1 fe:00:5652792 0 EOF", id),
            None
        );
        assert_eq!(
            holder("1: POSIX  ADVISORY  READ 25530 fe:00:5652792 128 128", id),
            None
        );
    }
}
