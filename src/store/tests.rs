//! Store tests on a real SQLite file in a temp dir.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::crypto::MasterKey;
use super::key::{KeyError, KeyOrigin, load_key};
use super::*;
use crate::clock::Clock;

const T0: i64 = 1_700_000_000_000;

fn s(v: &str) -> SecretString {
    SecretString::from(v.to_owned())
}

fn extras(v: serde_json::Value) -> Extras {
    v.as_object().unwrap().clone()
}

fn access(token: &str, expires_at: i64) -> AccessToken {
    AccessToken {
        token: s(token),
        token_type: "bearer".into(),
        expires_at,
        lifetime_secs: 3600,
    }
}

async fn put(
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

#[tokio::test]
async fn failures_status_and_leases() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(T0);
    let (store, _) = test_store(dir.path(), clock.clone()).await;
    let g = put(&store, "alice", "rt", None, &Extras::new())
        .await
        .grant_id;

    assert_eq!(
        store.try_lease(g, "p1", T0 + 30_000).await.unwrap(),
        LeaseOutcome::Acquired
    );
    assert_eq!(
        store.try_lease(g, "p2", T0 + 30_000).await.unwrap(),
        LeaseOutcome::HeldUntil(T0 + 30_000)
    );
    clock.advance(std::time::Duration::from_secs(31));
    assert_eq!(
        store.try_lease(g, "p2", T0 + 90_000).await.unwrap(),
        LeaseOutcome::Acquired
    );

    assert_eq!(
        store
            .record_failure(g, "p2", "provider answered 503", T0 + 95_000)
            .await
            .unwrap(),
        1
    );
    // The failure released p2's lease.
    assert_eq!(
        store.try_lease(g, "p3", T0 + 99_000).await.unwrap(),
        LeaseOutcome::Acquired
    );
    store.release_lease(g, "p3").await.unwrap();
    assert_eq!(
        store
            .record_failure(g, "x", "again", T0 + 96_000)
            .await
            .unwrap(),
        2
    );
    let v = store.get_credential("alice").await.unwrap().unwrap();
    assert_eq!(
        (v.consecutive_failures, v.last_error.as_deref()),
        (2, Some("again"))
    );

    store
        .mark_needs_reauth(g, "x", "invalid_grant: revoked")
        .await
        .unwrap();
    let v = store.get_credential("alice").await.unwrap().unwrap();
    assert_eq!(v.status, Status::NeedsReauth);
    assert_eq!(v.next_refresh_at, None);
    assert_eq!(
        store.try_lease(GrantId(12345), "p", T0).await.unwrap(),
        LeaseOutcome::Gone
    );
}

#[tokio::test]
async fn listing_filters_and_pages_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = test_store(dir.path(), Clock::manual(T0)).await;
    for i in 0..25 {
        put(
            &store,
            &format!("user-{i:02}"),
            &format!("rt-{i}"),
            None,
            &Extras::new(),
        )
        .await;
    }
    put(&store, "svc-1", "rt-svc", None, &Extras::new()).await;
    let dead = store.grant_id_of("user-03").await.unwrap().unwrap();
    store.mark_needs_reauth(dead, "x", "gone").await.unwrap();

    let all = vec!["*".to_owned()];
    let mut filter = ListFilter {
        limit: 10,
        ..ListFilter::default()
    };
    let mut seen = Vec::new();
    loop {
        let page = store.list_credentials(&filter, &all).await.unwrap();
        if page.is_empty() {
            break;
        }
        filter.after = Some(page.last().unwrap().id.clone());
        seen.extend(page.into_iter().map(|v| v.id));
    }
    assert_eq!(seen.len(), 26);
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "id order");

    let users = vec!["user-*".to_owned()];
    let f = ListFilter {
        limit: 100,
        ..ListFilter::default()
    };
    assert_eq!(store.list_credentials(&f, &users).await.unwrap().len(), 25);
    let f = ListFilter {
        limit: 100,
        status: Some(Status::NeedsReauth),
        ..ListFilter::default()
    };
    let dead_list = store.list_credentials(&f, &all).await.unwrap();
    assert_eq!(
        dead_list.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(),
        ["user-03"]
    );
    let f = ListFilter {
        limit: 100,
        provider: Some("google".into()),
        ..ListFilter::default()
    };
    assert!(store.list_credentials(&f, &all).await.unwrap().is_empty());
    let one = vec!["user-1?".to_owned()];
    let f = ListFilter {
        limit: 100,
        ..ListFilter::default()
    };
    assert_eq!(store.list_credentials(&f, &one).await.unwrap().len(), 10);
}

#[tokio::test]
async fn rotate_key_reseals_everything() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = test_store(dir.path(), Clock::manual(T0)).await;
    let at = access("at-1", T0 + 3_600_000);
    let g = put(&store, "alice", "rt-1", Some(&at), &Extras::new())
        .await
        .grant_id;
    let gen0 = store.get_grant(g).await.unwrap().unwrap().state.generation;
    let w = RefreshWrite {
        refresh_token: Some(&s("rt-2")),
        access: &at,
        scope: None,
        extras: &Extras::new(),
        next_refresh_at: T0,
    };
    store.write_refresh(g, gen0, &w).await.unwrap();
    put(&store, "bob", "rt-b", None, &Extras::new()).await;

    let new_key = MasterKey::generate();
    assert_eq!(store.rotate_key(&new_key).await.unwrap(), 2);
    store.close().await;

    let db = dir.path().join("tokend.db");
    let reopened = Store::open(&db, &new_key, Clock::manual(T0)).await.unwrap();
    let grant = reopened.get_grant(g).await.unwrap().unwrap();
    assert_eq!(grant.refresh_token.expose_secret(), "rt-2");
    assert_eq!(
        grant.previous_refresh_token.unwrap().expose_secret(),
        "rt-1"
    );
    assert_eq!(grant.state.access.unwrap().token.expose_secret(), "at-1");
    assert_eq!(
        grant.state.generation,
        gen0 + 2,
        "rotation bumps the generation"
    );
    // Lookup hashes were recomputed under the new key.
    assert!(
        put(&reopened, "carol", "rt-b", None, &Extras::new())
            .await
            .linked
    );
    reopened.close().await;
    // The old key no longer opens the database.
    let old = Store::open(&db, &MasterKey::generate(), Clock::manual(T0)).await;
    assert!(matches!(old, Err(StoreError::WrongKey { .. })));
}

#[tokio::test]
async fn change_feed_reports_writes_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = test_store(dir.path(), Clock::manual(T0)).await;
    put(&store, "alice", "rt-a", None, &Extras::new()).await;
    let (seq, grants) = store.load_all().await.unwrap();
    assert_eq!(grants.len(), 1);
    assert!(store.changes_since(seq).await.unwrap().grants.is_empty());

    put(&store, "bob", "rt-a", None, &Extras::new()).await;
    store.delete_credential("alice").await.unwrap();
    let changes = store.changes_since(seq).await.unwrap();
    assert!(changes.seq > seq);
    assert_eq!(changes.deleted_credentials, ["alice"]);
    assert_eq!(changes.grants.len(), 1);
    let ids: Vec<_> = changes.grants[0]
        .credentials
        .iter()
        .map(|c| c.id.as_str())
        .collect();
    assert_eq!(ids, ["bob"]);
}
