//! Faults of the file under the store: SQLite's own "disk full"
//! (`max_page_count`), a file deleted or made read-only while open. Each
//! write is refused with an outage error and changes nothing, and the next
//! writes work again as soon as the fault is gone, on the same store. And
//! the lease of a process that died holding it.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use secrecy::SecretString;
use serde_json::json;

use super::*;
use crate::store::contract::{T0, extras, new_credential};
use crate::store::{Claim, PutOutcome, Store};

async fn open(dir: &Path) -> (Arc<SqliteStore>, Store) {
    let key = MasterKey::generate();
    let sqlite = Arc::new(
        SqliteStore::open(&dir.join("tokend.db"), &key, Clock::manual(T0))
            .await
            .unwrap(),
    );
    (Arc::clone(&sqlite), Store::from_arc(sqlite))
}

/// Imports credential `id` with extras of `size` bytes.
async fn put(store: &Store, id: &str, size: usize) -> Result<PutOutcome, StoreError> {
    let rt = SecretString::from(format!("rt-{id}"));
    let ex = extras(json!({ "padding": "x".repeat(size) }));
    store
        .put_credential(&new_credential(id, &rt, None, &ex))
        .await
}

#[tokio::test]
async fn a_full_disk_never_breaks_a_connection_and_writes_resume_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let (sqlite, store) = open(dir.path()).await;
    put(&store, "before", 10).await.unwrap();
    page_limit::limit_pages_for_tests(&sqlite.path, Some(1));
    // Fill every free byte: some imports still fit, then SQLITE_FULL.
    let mut refused = None;
    for i in 0..500 {
        if let Err(e) = put(&store, &format!("fill-{i}"), 3_000).await {
            refused = Some(e);
            break;
        }
    }
    let refused = refused.expect("the page limit refused an import");
    assert!(refused.is_outage(), "{refused}");
    assert!(refused.to_string().contains("full"), "{refused}");
    assert!(store.get_credential("fill-0").await.unwrap().is_some());

    page_limit::limit_pages_for_tests(&sqlite.path, None);
    for i in 0..12 {
        put(&store, &format!("after-{i}"), 3_000)
            .await
            .unwrap_or_else(|e| panic!("write {i} after space returned: {e}"));
    }
    store.check_writable().await.unwrap();
    let claimed = store
        .claim(store.grant_id_of("before").await.unwrap().unwrap(), 1_000)
        .await
        .unwrap();
    assert!(matches!(claimed, Claim::Acquired { .. }));
}

#[tokio::test]
async fn a_deleted_database_file_refuses_writes_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (_sqlite, store) = open(dir.path()).await;
    put(&store, "alice", 10).await.unwrap();
    let grant = store.grant_id_of("alice").await.unwrap().unwrap();
    std::fs::remove_file(dir.path().join("tokend.db")).unwrap();

    let e = put(&store, "bob", 10).await.unwrap_err();
    assert!(e.is_outage());
    let text = e.to_string();
    assert!(
        text.contains("tokend.db") && text.contains("deleted"),
        "{text}"
    );
    let e = store.claim(grant, 1_000).await.unwrap_err();
    assert!(e.to_string().contains("deleted"), "{e}");
    assert!(store.check_writable().await.is_err());
}

#[tokio::test]
async fn a_read_only_database_file_refuses_writes_until_it_is_writable_again() {
    let dir = tempfile::tempdir().unwrap();
    let (_sqlite, store) = open(dir.path()).await;
    put(&store, "alice", 10).await.unwrap();
    let path = dir.path().join("tokend.db");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();

    let e = put(&store, "bob", 10).await.unwrap_err();
    assert!(e.is_outage());
    assert!(e.to_string().contains("read-only"), "{e}");
    assert!(store.check_writable().await.is_err());
    assert!(store.get_credential("bob").await.unwrap().is_none());

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    store.check_writable().await.unwrap();
    put(&store, "bob", 10).await.unwrap();
}

#[tokio::test]
async fn a_lease_of_a_dead_process_is_taken_over_and_a_live_ones_still_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokend.db");
    let key = MasterKey::generate();
    let sqlite = SqliteStore::open(&path, &key, Clock::manual(T0))
        .await
        .unwrap();
    let (pool, mine) = (sqlite.pool.clone(), sqlite.owner.clone());
    let store = Store::new(sqlite);
    put(&store, "alice", 10).await.unwrap();
    let grant = store.grant_id_of("alice").await.unwrap().unwrap();
    // A process of this machine that is gone, holding an unexpired lease.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let me = format!("pid={} ", std::process::id());
    let holder = mine.replace(&me, &format!("pid={dead} "));
    assert_ne!(holder, mine);
    sqlx::query("UPDATE grants SET lease_owner = ?1, lease_until = ?2 WHERE id = ?3")
        .bind(&holder)
        .bind(T0 + 3_600_000)
        .bind(grant.0)
        .execute(&pool)
        .await
        .unwrap();
    assert!(matches!(
        store.claim(grant, 60_000).await.unwrap(),
        Claim::Acquired { .. }
    ));
    // Now held by a live process (this one): another store waits.
    let other = Store::open(&path, &key, Clock::manual(T0)).await.unwrap();
    assert!(matches!(
        other.claim(grant, 60_000).await.unwrap(),
        Claim::Held { .. }
    ));
}
