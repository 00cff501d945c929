//! Store lifecycle: failures, status and leases; listings and paging;
//! key rotation; the change feed other processes follow.

use secrecy::ExposeSecret;

use super::crypto::MasterKey;
use super::tests::{T0, access, put, s};
use super::*;
use crate::clock::Clock;

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
