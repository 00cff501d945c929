//! The database file under the daemon: still the one opened, still
//! writable, and a write that proves the store takes writes again.
//!
//! SQLite keeps writing to a file deleted while open (the data is lost at
//! the next start, which makes a new, empty one), and to a file made
//! read-only (until a connection is reopened, when every write fails). So
//! before every write transaction the path is looked at: a `stat` and an
//! `access`, microseconds beside the write's fsync. A file that is gone,
//! replaced or read-only refuses the write with a clear
//! [`StoreError::Unwritable`] before anything is written, and before the
//! refresher spends a refresh token at the provider.

use std::path::Path;

use rustix::fs::Access;
use rustix::io::Errno;

use super::SqliteStore;
use crate::store::StoreError;

/// Which file a path named when the store was opened (device, inode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileId(u64, u64);

impl FileId {
    pub(super) fn of(path: &Path) -> Result<FileId, StoreError> {
        let st = rustix::fs::stat(path).map_err(|e| StoreError::File {
            path: path.to_path_buf(),
            source: e.into(),
        })?;
        Ok(FileId(st.st_dev, st.st_ino))
    }
}

impl SqliteStore {
    /// Refuses a write to a database file that was deleted, replaced or
    /// made read-only since it was opened.
    pub(super) fn check_file(&self) -> Result<(), StoreError> {
        let unwritable = |reason: &str| StoreError::Unwritable {
            database: self.path.display().to_string(),
            reason: reason.to_owned(),
        };
        let st = match rustix::fs::stat(&self.path) {
            Ok(st) => st,
            Err(Errno::NOENT) => {
                return Err(unwritable(
                    "the file was deleted while tokend had it open, so nothing written now could be kept; \
                     put it back (e.g. from a backup) and restart tokend",
                ));
            }
            Err(e) => return Err(self.file_error(e)),
        };
        if FileId(st.st_dev, st.st_ino) != self.file_id {
            return Err(unwritable(
                "the file was replaced while tokend had it open; restart tokend to use the new file",
            ));
        }
        let read_only = "the file is read-only (its permissions or its file system changed); \
                         make it writable for tokend's user again";
        // No write bit at all is read-only too, also to root (whom `access`
        // lets write anything): the owner said so.
        if st.st_mode & 0o222 == 0 {
            return Err(unwritable(read_only));
        }
        match rustix::fs::access(&self.path, Access::WRITE_OK) {
            Ok(()) => Ok(()),
            Err(Errno::ACCESS | Errno::PERM | Errno::ROFS) => Err(unwritable(read_only)),
            Err(e) => Err(self.file_error(e)),
        }
    }

    fn file_error(&self, e: Errno) -> StoreError {
        StoreError::File {
            path: self.path.clone(),
            source: e.into(),
        }
    }

    /// See [`crate::store::Backend::check_writable`]: the file check, then
    /// a committed write of a value nothing reads (a write that changed
    /// nothing would not reach the disk at all).
    pub(super) async fn probe_write(&self) -> Result<(), StoreError> {
        let _serial = self.write_lock.lock().await;
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT OR REPLACE INTO meta (key, value) VALUES ('write_probe', ?1)")
            .bind(self.now().to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        // The lease connection writes too.
        sqlx::query("UPDATE meta SET value = value || '.' WHERE key = 'write_probe'")
            .execute(&self.lease_pool)
            .await?;
        Ok(())
    }
}
