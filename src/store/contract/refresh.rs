//! What refreshes rely on: commits with compare-and-set (alone and in a
//! batch), and leases with the writes they fence.

use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::json;

use super::{Fixture, T0, access, extras, put, s};
use crate::model::{Extras, GrantId, GrantState, Status};
use crate::store::{Claim, CommitOutcome, Lease, Store, TokenCommit};

pub(super) fn commit(
    grant_id: GrantId,
    expected_generation: i64,
    rt: Option<&str>,
    at: &str,
) -> TokenCommit {
    TokenCommit {
        grant_id,
        expected_generation,
        refresh_token: rt.map(s),
        access: access(at, T0 + 3_600_000),
        scope: None,
        extras: Extras::new(),
        next_refresh_at: T0 + 2_000_000,
    }
}

pub(super) async fn claimed(store: &Store, grant_id: GrantId) -> Lease {
    match store.claim(grant_id, 30_000).await.unwrap() {
        Claim::Acquired { lease, grant } => {
            assert_eq!(grant.state.id, grant_id);
            assert_eq!(lease.generation, grant.state.generation);
            lease
        }
        other => panic!("expected the lease, got {other:?}"),
    }
}

pub(super) fn written(out: CommitOutcome) -> GrantState {
    match out {
        CommitOutcome::Written(state) => state,
        CommitOutcome::Conflict => panic!("expected a write, got a conflict"),
    }
}

pub(crate) async fn a_commit_is_compare_and_set_and_keeps_the_previous_token(f: Fixture) {
    let store = &f.store;
    let g = put(
        store,
        "alice",
        "rt-1",
        None,
        &extras(json!({"sub": "a", "account_id": "acc"})),
    )
    .await;
    put(store, "bob", "rt-1", None, &extras(json!({"sub": "b"}))).await;
    let gen0 = store
        .get_grant(g.grant_id())
        .await
        .unwrap()
        .unwrap()
        .state
        .generation;

    let mut c = commit(g.grant_id(), gen0, Some("rt-2"), "at-2");
    c.extras = extras(json!({"linking_profile": {"profile_id": "p1"}}));
    let state = written(store.commit_refresh(&c).await.unwrap());
    assert_eq!(state.generation, gen0 + 1);
    assert_eq!(state.access.as_ref().unwrap().token.expose_secret(), "at-2");
    assert_eq!(
        state.scope.as_deref(),
        Some("read_write"),
        "no scope in the answer keeps the grant's"
    );
    assert_eq!(
        (state.last_refresh_at, state.next_refresh_at),
        (Some(T0), Some(T0 + 2_000_000))
    );
    // Extras merged field by field for every credential; absent fields kept.
    assert_eq!(state.credentials.len(), 2);
    assert_eq!(state.credentials[0].extras["sub"], "a");
    assert_eq!(state.credentials[0].extras["account_id"], "acc");
    assert_eq!(
        state.credentials[1].extras["linking_profile"]["profile_id"],
        "p1"
    );
    assert_eq!(
        store.get_credential("bob").await.unwrap().unwrap().extras["sub"],
        "b"
    );

    // A second writer that read the old generation loses and writes nothing.
    let stale = commit(g.grant_id(), gen0, Some("rt-3"), "at-3");
    assert!(matches!(
        store.commit_refresh(&stale).await.unwrap(),
        CommitOutcome::Conflict
    ));
    let grant = store.get_grant(g.grant_id()).await.unwrap().unwrap();
    assert_eq!(grant.refresh_token.expose_secret(), "rt-2");
    assert_eq!(
        grant.previous_refresh_token.unwrap().expose_secret(),
        "rt-1"
    );
    // The rotated token is how the grant is found now.
    assert!(
        put(store, "carol", "rt-2", None, &Extras::new())
            .await
            .linked
    );

    // No refresh token in the answer: the grant keeps its own (and its previous one).
    let keep = commit(g.grant_id(), state.generation, None, "at-4");
    written(store.commit_refresh(&keep).await.unwrap());
    let grant = store.get_grant(g.grant_id()).await.unwrap().unwrap();
    assert_eq!(grant.refresh_token.expose_secret(), "rt-2");
    assert_eq!(
        grant.previous_refresh_token.unwrap().expose_secret(),
        "rt-1"
    );
    // A commit of a grant that is gone is a conflict.
    let gone = commit(GrantId(12345), 0, None, "at");
    assert!(matches!(
        store.commit_refresh(&gone).await.unwrap(),
        CommitOutcome::Conflict
    ));
}

pub(crate) async fn a_conflict_in_a_batch_does_not_stop_the_others(f: Fixture) {
    let store = &f.store;
    let a = put(store, "a", "rt-a", None, &Extras::new())
        .await
        .grant_id();
    let b = put(store, "b", "rt-b", None, &Extras::new())
        .await
        .grant_id();
    let seq_before = store.changes_since(0).await.unwrap().seq;
    // Grant b is expected at a generation it is not at: it conflicts.
    let out = store
        .commit_refreshes(&[commit(a, 0, None, "at-a"), commit(b, 7, None, "at-b")])
        .await
        .unwrap();
    assert_eq!(written(out[0].clone()).generation, 1);
    assert!(matches!(out[1], CommitOutcome::Conflict));
    let seq_after = store.changes_since(seq_before).await.unwrap().seq;
    assert_eq!(seq_after, seq_before + 1, "one transaction");
    let read_a = store.get_grant(a).await.unwrap().unwrap();
    assert_eq!(read_a.state.access.unwrap().token.expose_secret(), "at-a");
    let read_b = store.get_grant(b).await.unwrap().unwrap();
    assert!(read_b.state.access.is_none() && read_b.state.generation == 0);
    // Nothing to write: no change is recorded.
    let none = store
        .commit_refreshes(&[commit(b, 7, None, "at-b")])
        .await
        .unwrap();
    assert!(matches!(none[..], [CommitOutcome::Conflict]));
    let changes = store.changes_since(seq_after).await.unwrap();
    assert!(changes.grants.is_empty() && changes.deleted_credentials.is_empty());
    assert!(store.commit_refreshes(&[]).await.unwrap().is_empty());
}

pub(crate) async fn leases_are_exclusive_until_they_expire(f: Fixture) {
    let g = put(&f.store, "alice", "rt", None, &Extras::new())
        .await
        .grant_id();
    let other = (f.reopen)(&f.key).await.unwrap();
    let lease = claimed(&f.store, g).await;
    // Held by another owner; taken again by its own.
    match other.claim(g, 30_000).await.unwrap() {
        Claim::Held { until } => assert_eq!(until, T0 + 30_000),
        c => panic!("expected the lease to be held, got {c:?}"),
    }
    claimed(&f.store, g).await;
    // Released: free for another owner.
    f.store.release(&lease).await.unwrap();
    let theirs = claimed(&other, g).await;
    // Expired: taken over.
    f.clock.advance(Duration::from_secs(31));
    claimed(&f.store, g).await;
    // Releasing a lease another owner holds now does nothing.
    other.release(&theirs).await.unwrap();
    assert!(matches!(
        other.claim(g, 30_000).await.unwrap(),
        Claim::Held { .. }
    ));
    // A commit releases its owner's lease.
    written(
        f.store
            .commit_refresh(&commit(g, lease.generation, None, "at"))
            .await
            .unwrap(),
    );
    claimed(&other, g).await;
    assert!(matches!(
        f.store.claim(GrantId(12345), 30_000).await.unwrap(),
        Claim::Gone
    ));
}

pub(crate) async fn failure_writes_release_the_lease(f: Fixture) {
    let g = put(&f.store, "alice", "rt", None, &Extras::new())
        .await
        .grant_id();
    let other = (f.reopen)(&f.key).await.unwrap();
    let lease = claimed(&f.store, g).await;
    let failures = f
        .store
        .record_failure(&lease, "provider answered 503", T0 + 95_000)
        .await;
    assert_eq!(failures.unwrap(), Some(1));
    let lease = claimed(&other, g).await;
    assert_eq!(
        other
            .record_failure(&lease, "again", T0 + 96_000)
            .await
            .unwrap(),
        Some(2)
    );
    let v = f.store.get_credential("alice").await.unwrap().unwrap();
    assert_eq!(
        (v.consecutive_failures, v.last_error.as_deref()),
        (2, Some("again"))
    );
    assert_eq!(v.next_refresh_at, Some(T0 + 96_000));

    let lease = claimed(&f.store, g).await;
    assert!(
        f.store
            .mark_needs_reauth(&lease, "invalid_grant: revoked")
            .await
            .unwrap()
    );
    let v = other.get_credential("alice").await.unwrap().unwrap();
    assert_eq!(v.status, Status::NeedsReauth);
    assert_eq!(v.next_refresh_at, None);
    assert_eq!(v.consecutive_failures, 3);
    claimed(&other, g).await;
    // A commit brings the grant back: active, no failures.
    let state = written(
        other
            .commit_refresh(&commit(g, lease.generation, None, "at"))
            .await
            .unwrap(),
    );
    assert_eq!(
        (state.status, state.consecutive_failures, state.last_error),
        (Status::Active, 0, None)
    );
}

pub(crate) async fn a_lease_whose_grant_moved_on_writes_nothing(f: Fixture) {
    let g = put(&f.store, "alice", "rt-1", None, &Extras::new())
        .await
        .grant_id();
    let other = (f.reopen)(&f.key).await.unwrap();
    let stale = claimed(&f.store, g).await;
    // The lease expires; another owner takes over and commits.
    f.clock.advance(Duration::from_secs(31));
    let theirs = claimed(&other, g).await;
    written(
        other
            .commit_refresh(&commit(g, theirs.generation, Some("rt-2"), "at-2"))
            .await
            .unwrap(),
    );
    // The first holder's failure and verdict come too late: nothing changes.
    assert_eq!(
        f.store
            .record_failure(&stale, "timeout", T0 + 99_000)
            .await
            .unwrap(),
        None
    );
    assert!(
        !f.store
            .mark_needs_reauth(&stale, "invalid_grant")
            .await
            .unwrap()
    );
    let v = f.store.get_credential("alice").await.unwrap().unwrap();
    assert_eq!((v.status, v.consecutive_failures), (Status::Active, 0));
    assert_eq!(v.next_refresh_at, Some(T0 + 2_000_000));
    // Nor does it hold a lease any more.
    claimed(&other, g).await;
    // A grant deleted under a lease: the failure write changes nothing.
    let lease = claimed(&other, g).await;
    other.delete_credential("alice").await.unwrap();
    assert_eq!(other.record_failure(&lease, "x", T0).await.unwrap(), None);
}
