//! Store tests on a real SQLite file in a temp dir.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::crypto::MasterKey;
use super::key::{KeyError, KeyOrigin, load_key};
use super::*;
use crate::clock::Clock;

pub(super) const T0: i64 = 1_700_000_000_000;

pub(super) fn s(v: &str) -> SecretString {
    SecretString::from(v.to_owned())
}

pub(super) fn extras(v: serde_json::Value) -> Extras {
    v.as_object().unwrap().clone()
}

pub(super) fn access(token: &str, expires_at: i64) -> AccessToken {
    AccessToken {
        token: s(token),
        token_type: "bearer".into(),
        expires_at,
        lifetime_secs: 3600,
    }
}

pub(super) async fn put(
    store: &Store,
    id: &str,
    rt: &str,
    at: Option<&AccessToken>,
    ex: &Extras,
) -> PutOutcome {
    store
        .put_credential(&NewCredential {
            id,
            provider: "cronofy",
            refresh_token: &s(rt),
            access: at,
            scope: Some("read_write"),
            extras: ex,
            application_calendar_id: None,
            next_refresh_at: Some(T0 + 1000),
            last_refresh_at: None,
        })
        .await
        .unwrap()
}

fn raw_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for name in ["tokend.db", "tokend.db-wal"] {
        if let Ok(b) = std::fs::read(dir.join(name)) {
            all.extend(b);
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn round_trip_keeps_tokens_out_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = test_store(dir.path(), Clock::manual(T0)).await;
    let at = access("AT-plaintext-1234567890", T0 + 3_600_000);
    let out = put(
        &store,
        "alice",
        "RT-plaintext-0987654321",
        Some(&at),
        &extras(json!({"sub": "acc_1"})),
    )
    .await;
    assert!(out.created && !out.linked);

    let grant = store.get_grant(out.grant_id).await.unwrap().unwrap();
    assert_eq!(
        grant.refresh_token.expose_secret(),
        "RT-plaintext-0987654321"
    );
    let a = grant.state.access.as_ref().unwrap();
    assert_eq!(a.token.expose_secret(), "AT-plaintext-1234567890");
    assert_eq!(a.expires_at, T0 + 3_600_000);
    assert_eq!(grant.state.credentials[0].extras["sub"], "acc_1");

    let view = store.get_credential("alice").await.unwrap().unwrap();
    assert_eq!(view.status, Status::Active);
    assert_eq!(view.scope.as_deref(), Some("read_write"));
    assert_eq!(view.next_refresh_at, Some(T0 + 1000));

    let bytes = raw_bytes(dir.path());
    assert!(
        contains(&bytes, "alice"),
        "sanity: the file holds the id in clear"
    );
    assert!(!contains(&bytes, "RT-plaintext"));
    assert!(!contains(&bytes, "AT-plaintext"));
}

#[tokio::test]
async fn database_wal_and_key_files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state/tokend.db");
    let (key, origin) = load_key(None, None, &db).await.unwrap();
    assert_eq!(
        origin,
        KeyOrigin::Generated(dir.path().join("state/tokend.key"))
    );
    let store = Store::open(&db, &key, Clock::manual(T0)).await.unwrap();
    put(&store, "a", "rt", None, &Extras::new()).await;
    for name in ["tokend.db", "tokend.db-wal", "tokend.db-shm", "tokend.key"] {
        let mode = std::fs::metadata(dir.path().join("state").join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name} has mode {:o}", mode & 0o777);
    }
    store.close().await;

    // Second start: the same key is found beside the database.
    let (again, origin) = load_key(None, None, &db).await.unwrap();
    assert!(matches!(origin, KeyOrigin::BesideDatabase(_)));
    Store::open(&db, &again, Clock::manual(T0)).await.unwrap();
}

#[tokio::test]
async fn wrong_or_missing_key_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = test_store(dir.path(), Clock::manual(T0)).await;
    put(&store, "a", "rt", None, &Extras::new()).await;
    let stored_id = store.key_id();
    store.close().await;

    let db = dir.path().join("tokend.db");
    let err = Store::open(&db, &MasterKey::generate(), Clock::manual(T0))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::WrongKey { .. }), "{msg}");
    assert!(
        msg.contains(&stored_id) && msg.contains("storage.encryption_key_file"),
        "{msg}"
    );

    // No key anywhere for an existing database: refused, nothing generated.
    let err = load_key(None, None, &db).await.unwrap_err();
    assert!(matches!(err, KeyError::Missing { .. }), "{err}");
    assert!(err.to_string().contains(&stored_id));
    assert!(!dir.path().join("tokend.key").exists());
}

#[tokio::test]
async fn same_refresh_token_links_to_one_grant() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = test_store(dir.path(), Clock::manual(T0)).await;
    let a = put(
        &store,
        "alice",
        "shared-rt",
        None,
        &extras(json!({"sub": "a"})),
    )
    .await;
    let b = put(
        &store,
        "bob",
        "shared-rt",
        None,
        &extras(json!({"sub": "b"})),
    )
    .await;
    assert!(b.linked && b.created);
    assert_eq!(a.grant_id, b.grant_id);
    assert_eq!(store.credential_count(a.grant_id).await.unwrap(), 2);
    // Each credential keeps its own extras.
    assert_eq!(
        store.get_credential("bob").await.unwrap().unwrap().extras["sub"],
        "b"
    );
    assert_eq!(
        store.get_credential("alice").await.unwrap().unwrap().extras["sub"],
        "a"
    );

    // Another provider's identical token is another grant.
    let other = store
        .put_credential(&NewCredential {
            id: "carol",
            provider: "google",
            refresh_token: &s("shared-rt"),
            access: None,
            scope: None,
            extras: &Extras::new(),
            application_calendar_id: None,
            next_refresh_at: None,
            last_refresh_at: None,
        })
        .await
        .unwrap();
    assert!(!other.linked);
    assert_ne!(other.grant_id, a.grant_id);

    // Deleting one keeps the grant; deleting the last removes it.
    let d = store.delete_credential("alice").await.unwrap().unwrap();
    assert!(!d.grant_deleted);
    let d = store.delete_credential("bob").await.unwrap().unwrap();
    assert!(d.grant_deleted);
    assert!(store.get_grant(a.grant_id).await.unwrap().is_none());
    assert!(store.delete_credential("bob").await.unwrap().is_none());
}

#[tokio::test]
async fn re_putting_a_credential_moves_it_and_drops_the_orphan() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = test_store(dir.path(), Clock::manual(T0)).await;
    let first = put(&store, "alice", "rt-1", None, &Extras::new()).await;
    let second = put(&store, "alice", "rt-2", None, &Extras::new()).await;
    assert!(!second.created);
    assert_eq!(second.orphaned_grant, Some(first.grant_id));
    assert!(store.get_grant(first.grant_id).await.unwrap().is_none());
}

#[tokio::test]
async fn refresh_write_is_compare_and_set_and_keeps_previous_token() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = test_store(dir.path(), Clock::manual(T0)).await;
    let g = put(
        &store,
        "alice",
        "rt-1",
        None,
        &extras(json!({"sub": "a", "account_id": "acc"})),
    )
    .await;
    put(&store, "bob", "rt-1", None, &extras(json!({"sub": "b"}))).await;
    let gen0 = store
        .get_grant(g.grant_id)
        .await
        .unwrap()
        .unwrap()
        .state
        .generation;

    let new_at = access("at-2", T0 + 3_600_000);
    let update = extras(json!({"linking_profile": {"profile_id": "p1"}}));
    let w = RefreshWrite {
        refresh_token: Some(&s("rt-2")),
        access: &new_at,
        scope: None,
        extras: &update,
        next_refresh_at: T0 + 2_000_000,
    };
    let out = store.write_refresh(g.grant_id, gen0, &w).await.unwrap();
    let CasOutcome::Written {
        generation,
        credentials,
    } = out
    else {
        panic!("expected a write, got {out:?}")
    };
    assert_eq!(generation, gen0 + 1);
    assert_eq!(credentials.len(), 2);
    // Extras merged field by field for every credential; absent fields kept.
    assert_eq!(credentials[0].extras["sub"], "a");
    assert_eq!(credentials[0].extras["account_id"], "acc");
    assert_eq!(credentials[1].extras["linking_profile"]["profile_id"], "p1");

    // A second writer that read the old generation loses.
    let stale = store.write_refresh(g.grant_id, gen0, &w).await.unwrap();
    assert_eq!(stale, CasOutcome::Conflict);

    let grant = store.get_grant(g.grant_id).await.unwrap().unwrap();
    assert_eq!(grant.refresh_token.expose_secret(), "rt-2");
    assert_eq!(
        grant.previous_refresh_token.unwrap().expose_secret(),
        "rt-1"
    );
    // The rotated token is how the grant is found now.
    let again = put(&store, "carol", "rt-2", None, &Extras::new()).await;
    assert!(again.linked);

    // No refresh token in the answer: the grant keeps its own.
    let w = RefreshWrite {
        refresh_token: None,
        ..w
    };
    store
        .write_refresh(g.grant_id, generation, &w)
        .await
        .unwrap();
    let grant = store.get_grant(g.grant_id).await.unwrap().unwrap();
    assert_eq!(grant.refresh_token.expose_secret(), "rt-2");
}
