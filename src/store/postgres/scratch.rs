//! Throwaway PostgreSQL databases for tests and benchmarks: each created
//! under a random name on the server `TOKEND_TEST_POSTGRES_URL` names
//! (default: the local one) and dropped with its [`ScratchDb`]. Without a
//! reachable server the caller is told why and gets `None` (a test then
//! passes), unless `TOKEND_REQUIRE_POSTGRES=1` (CI) makes that a failure.
//!
//! Names carry the creating process's id: a process that died before
//! dropping its databases (a test run killed midway) leaves them behind,
//! and the next process to create one drops those of processes gone.

use std::sync::OnceLock;

use sqlx::{ConnectOptions, Connection};

use super::PgTarget;

/// The server tests use when `TOKEND_TEST_POSTGRES_URL` is not set.
pub const DEFAULT_URL: &str = "postgres://root@127.0.0.1:5432/postgres";

/// What every scratch database's name starts with.
const PREFIX: &str = "tokend_scratch_";

/// A database of its own for one test, dropped with this value.
#[derive(Debug)]
pub struct ScratchDb {
    pub target: PgTarget,
    admin: PgTarget,
    name: String,
}

impl ScratchDb {
    /// A fresh database, or `None` (after saying why) when no server is
    /// reachable and none is required.
    pub async fn create() -> Option<ScratchDb> {
        let url = std::env::var("TOKEND_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.into());
        let admin =
            PgTarget::parse(&url, None).expect("TOKEND_TEST_POSTGRES_URL is a postgres:// URL");
        let name = format!(
            "{PREFIX}{}_{:016x}",
            std::process::id(),
            rand::random::<u64>()
        );
        let created = async {
            let mut conn = admin.options()?.connect().await?;
            static SWEPT: OnceLock<()> = OnceLock::new();
            if SWEPT.set(()).is_ok() {
                sweep(&mut conn).await;
            }
            sqlx::query(&format!("CREATE DATABASE \"{name}\""))
                .execute(&mut conn)
                .await?;
            conn.close().await?;
            Ok::<(), crate::store::StoreError>(())
        }
        .await;
        if let Err(e) = created {
            let required = std::env::var("TOKEND_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "TOKEND_REQUIRE_POSTGRES=1 but PostgreSQL at {} is not usable: {e}",
                admin.location()
            );
            eprintln!(
                "skipped: no PostgreSQL at {} ({e}); set TOKEND_TEST_POSTGRES_URL",
                admin.location()
            );
            return None;
        }
        Some(ScratchDb {
            target: admin.with_database(&name),
            admin,
            name,
        })
    }

    /// [`ScratchDb::create`] from code that is not async (or runs inside a
    /// runtime it may not block): on a thread with a runtime of its own.
    pub fn create_blocking() -> Option<ScratchDb> {
        std::thread::spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime")
                .block_on(ScratchDb::create())
        })
        .join()
        .expect("creating a scratch database panicked")
    }

    /// The URL to configure (`storage.database`); the test server's own
    /// user and password, if any, included.
    pub fn url(&self) -> String {
        self.target.url_with_password()
    }
}

/// Drops the scratch databases of processes that are gone.
async fn sweep(conn: &mut sqlx::PgConnection) {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE starts_with(datname, $1)")
            .bind(PREFIX)
            .fetch_all(&mut *conn)
            .await
            .unwrap_or_default();
    for name in names {
        let pid = name[PREFIX.len()..].split('_').next().unwrap_or_default();
        if !pid.is_empty() && !std::path::Path::new("/proc").join(pid).exists() {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .execute(&mut *conn)
                .await;
        }
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop runs inside the test's runtime, which cannot be blocked on:
        // a thread with a runtime of its own drops the database.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async {
                let mut conn = admin.options().ok()?.connect().await.ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}
