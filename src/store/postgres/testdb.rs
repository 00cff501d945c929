//! A throwaway PostgreSQL database per test: created under a random name on
//! the server `TOKEND_TEST_POSTGRES_URL` names (default: the local one),
//! dropped when the test ends. Without a reachable server the test says why
//! and passes, unless `TOKEND_REQUIRE_POSTGRES=1` (CI) makes that a failure.

use sqlx::{ConnectOptions, Connection};

use super::PgTarget;

pub(crate) const DEFAULT_URL: &str = "postgres://root@127.0.0.1:5432/postgres";

/// A database of its own for one test, dropped with this value.
#[derive(Debug)]
pub(crate) struct TestDb {
    pub target: PgTarget,
    admin: PgTarget,
    name: String,
}

impl TestDb {
    /// A fresh database, or `None` (after saying why) when no server is
    /// reachable and none is required.
    pub(crate) async fn create() -> Option<TestDb> {
        let url = std::env::var("TOKEND_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.into());
        let admin =
            PgTarget::parse(&url, None).expect("TOKEND_TEST_POSTGRES_URL is a postgres:// URL");
        let name = format!("tokend_test_{:016x}", rand::random::<u64>());
        let created = async {
            let mut conn = admin.options()?.connect().await?;
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
        Some(TestDb {
            target: admin.with_database(&name),
            admin,
            name,
        })
    }
}

impl Drop for TestDb {
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
