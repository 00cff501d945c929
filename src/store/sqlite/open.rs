//! Opening the database: the file created private before SQLite touches
//! it, WAL, `synchronous`, busy timeout and foreign keys on every connection.

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
    SqliteTransactionManager,
};
use sqlx::{SqlitePool, TransactionManager};

use crate::store::StoreError;

pub(super) async fn open_pool(path: &Path) -> Result<SqlitePool, StoreError> {
    create_private_file(path)?;
    connect(path, SqliteSynchronous::Full, 4).await
}

pub(super) async fn connect(
    path: &Path,
    synchronous: SqliteSynchronous,
    connections: u32,
) -> Result<SqlitePool, StoreError> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(synchronous)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true);
    let file = path.to_path_buf();
    Ok(SqlitePoolOptions::new()
        .max_connections(connections)
        .min_connections(1)
        // A transaction whose COMMIT (or statement) failed with SQLITE_FULL
        // or an I/O error is rolled back by SQLite itself; sqlx's ROLLBACK
        // then fails and sqlx still counts the connection as inside a
        // transaction, so every later BEGIN on it would fail ("attempted to
        // call begin_with at non-zero transaction depth"). Such a connection
        // is closed instead of handed out (a new one is opened): one failed
        // write never breaks the next. (sqlx pings a connection as it comes
        // back to the pool, after any rollback it queued, so the count
        // read here is settled.)
        .before_acquire(move |conn, _| {
            let test_limit = super::page_limit::limit_of(&file);
            Box::pin(async move {
                let depth =
                    <SqliteTransactionManager as TransactionManager>::get_transaction_depth(conn);
                if let Some(pages) = test_limit {
                    let pragma = format!("PRAGMA max_page_count = {pages}");
                    sqlx::query(&pragma).execute(&mut *conn).await?;
                }
                Ok(depth == 0)
            })
        })
        .connect_with(options)
        .await?)
}

/// Creates the database file 0600 before SQLite touches it: SQLite gives the
/// `-wal` and `-shm` files the mode of the database file, so all three are
/// private from their first byte. An existing file is tightened to 0600.
fn create_private_file(path: &Path) -> Result<(), StoreError> {
    let err = |source| StoreError::File {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let mode = std::fs::metadata(path).map_err(err)?.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777), "database file was readable by others; setting it to 0600");
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                    .map_err(err)?;
            }
            Ok(())
        }
        Err(e) => Err(err(e)),
    }
}
