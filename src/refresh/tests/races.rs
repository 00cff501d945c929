//! Another process on the same store: its lease is waited for, its commit
//! wins over ours when it came first, and what our stale attempt learned
//! afterwards changes nothing.

use std::time::Duration;

use secrecy::SecretString;

use super::{Harness, until};
use crate::model::Extras;
use crate::provider::ProviderError;
use crate::refresh::{Outcome, RefreshError, Trigger};
use crate::store::{Claim, CommitOutcome, Lease, Store, TokenCommit};

/// Longer than the harness's lease (three 5 s calls and 10 s).
const PAST_THE_LEASE: Duration = Duration::from_secs(26);

async fn claim(store: &Store, grant: crate::model::GrantId) -> Lease {
    match store.claim(grant, 25_000).await.unwrap() {
        Claim::Acquired { lease, .. } => lease,
        other => panic!("expected the lease, got {other:?}"),
    }
}

/// Another process refreshes the grant: `rt` rotated to `next`, handing out `at`.
async fn their_refresh(h: &Harness, other: &Store, lease: Lease, at: &str, next: &str) {
    let now = h.clock.now();
    let commit = TokenCommit {
        grant_id: lease.grant_id,
        expected_generation: lease.generation,
        refresh_token: Some(SecretString::from(next.to_owned())),
        access: crate::model::AccessToken {
            token: SecretString::from(at.to_owned()),
            token_type: "bearer".into(),
            expires_at: now + 3_600_000,
            lifetime_secs: 3600,
            lifetime_issued: true,
        },
        scope: None,
        extras: Extras::new(),
        next_refresh_at: now + 3_000_000,
    };
    let out = other.commit_refresh(&commit).await.unwrap();
    assert!(matches!(out, CommitOutcome::Written(_)));
}

/// Starts a refresh whose provider call is held open, and waits for the call.
async fn held_refresh(
    h: &Harness,
    grant: crate::model::GrantId,
) -> (
    tokio::task::JoinHandle<Result<Outcome, RefreshError>>,
    std::sync::Arc<tokio::sync::Semaphore>,
) {
    let gate = h.fake.close();
    let r = h.refresher.clone();
    let task = tokio::spawn(async move { r.refresh_grant(grant, Trigger::MinTtl(0)).await });
    until("the provider call", || !h.fake.calls().is_empty()).await;
    (task, gate)
}

#[tokio::test]
async fn a_lease_held_elsewhere_is_waited_for_and_its_result_used() {
    let h = Harness::new().await;
    let g = h.grant("alice", "rt-1", None, 0).await;
    h.fake.rotates("rt-1", "at-ours", "rt-ours");
    let other = h.other_process().await;
    let theirs = claim(&other, g).await;
    let r = h.refresher.clone();
    let ours = tokio::spawn(async move { r.refresh_grant(g, Trigger::MinTtl(0)).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(h.fake.calls().is_empty(), "no call while the lease is held");
    assert!(!ours.is_finished());
    their_refresh(&h, &other, theirs, "at-theirs", "rt-theirs").await;
    // Their commit released the lease; ours finds a fresh token: no call.
    assert_eq!(ours.await.unwrap().unwrap(), Outcome::Current);
    assert!(h.fake.calls().is_empty());
    assert_eq!(h.handed_out("alice"), "at-theirs");
}

#[tokio::test]
async fn a_commit_that_lost_the_race_keeps_the_winners_tokens() {
    let h = Harness::new().await;
    let g = h.grant("alice", "rt-1", None, 0).await;
    h.fake.rotates("rt-1", "at-ours", "rt-ours");
    let (ours, gate) = held_refresh(&h, g).await;
    // Our call outlives the lease; another process takes over and commits.
    h.clock.advance(PAST_THE_LEASE);
    let other = h.other_process().await;
    let theirs = claim(&other, g).await;
    their_refresh(&h, &other, theirs, "at-theirs", "rt-theirs").await;
    gate.add_permits(1);
    assert_eq!(ours.await.unwrap().unwrap(), Outcome::Current);
    assert_eq!(h.handed_out("alice"), "at-theirs");
    assert_eq!(h.stored_tokens(g).await.0, "rt-theirs");
}

#[tokio::test]
async fn a_failure_learned_after_losing_the_lease_changes_nothing() {
    let h = Harness::new().await;
    let g = h.grant("alice", "rt-1", None, 0).await;
    h.fake.answer(
        "rt-1",
        Err(ProviderError::Transient {
            reason: "timeout".into(),
        }),
    );
    let (ours, gate) = held_refresh(&h, g).await;
    h.clock.advance(PAST_THE_LEASE);
    let other = h.other_process().await;
    let theirs = claim(&other, g).await;
    their_refresh(&h, &other, theirs, "at-theirs", "rt-theirs").await;
    gate.add_permits(1);
    // Our timeout is stale: the grant moved on; we serve what they stored.
    assert_eq!(ours.await.unwrap().unwrap(), Outcome::Current);
    assert_eq!(h.handed_out("alice"), "at-theirs");
    assert_eq!(h.entry("alice").consecutive_failures(), 0);
    let view = h.store.get_credential("alice").await.unwrap().unwrap();
    assert_eq!((view.consecutive_failures, view.last_error), (0, None));
}

#[tokio::test]
async fn invalid_grant_after_a_lost_race_adopts_the_winners_token() {
    let h = Harness::new().await;
    let g = h.grant("alice", "rt-1", None, 0).await;
    // The provider already rotated rt-1 for the other process.
    h.fake.answer(
        "rt-1",
        Err(ProviderError::InvalidGrant {
            description: "used".into(),
        }),
    );
    let (ours, gate) = held_refresh(&h, g).await;
    h.clock.advance(PAST_THE_LEASE);
    let other = h.other_process().await;
    let theirs = claim(&other, g).await;
    their_refresh(&h, &other, theirs, "at-theirs", "rt-theirs").await;
    gate.add_permits(1);
    assert_eq!(ours.await.unwrap().unwrap(), Outcome::Current);
    assert_eq!(h.handed_out("alice"), "at-theirs");
    let view = h.store.get_credential("alice").await.unwrap().unwrap();
    assert_eq!(view.status, crate::model::Status::Active);
}

#[tokio::test]
async fn a_grant_deleted_elsewhere_is_gone_from_the_cache_too() {
    let h = Harness::new().await;
    let g = h.grant("alice", "rt-1", None, 0).await;
    let other = h.other_process().await;
    other.delete_credential("alice").await.unwrap();
    let out = h.refresher.refresh_grant(g, Trigger::MinTtl(0)).await;
    assert!(matches!(out, Err(RefreshError::Gone)), "{out:?}");
    assert!(h.cache.get("alice").is_none());
    assert!(h.fake.calls().is_empty());
}

#[tokio::test]
async fn a_batch_of_changes_read_before_a_delete_never_brings_the_credential_back() {
    let mut faults = None;
    let h = Harness::wrapping(|store| {
        let (wrapped, handle) = super::faulty::Faults::wrap(store);
        faults = Some(handle);
        wrapped
    })
    .await;
    let faults = faults.unwrap();
    h.grant("alice", "rt-1", Some(("at-1", 3_600_000)), 3_000_000)
        .await;
    // The follower reads a batch that still holds alice, then stalls...
    faults.hold_feed();
    let r = h.refresher.clone();
    let follower = tokio::spawn(async move { r.catch_up(0).await });
    faults.feed_read().await;
    // ...while alice is deleted through this process.
    let r = h.refresher.clone();
    let delete = tokio::spawn(async move { r.delete("alice", false).await });
    // (It waits for the follower; without that it would be done at once.)
    for _ in 0..20 {
        if delete.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    faults.release_feed();
    follower.await.unwrap().unwrap();
    delete.await.unwrap().unwrap();
    assert!(
        h.cache.get("alice").is_none(),
        "a deleted credential is not served again"
    );
}

#[tokio::test]
async fn a_batch_of_changes_read_before_a_failure_is_recorded_never_hides_it() {
    let mut faults = None;
    let h = Harness::wrapping(|store| {
        let (wrapped, handle) = super::faulty::Faults::wrap(store);
        faults = Some(handle);
        wrapped
    })
    .await;
    let faults = faults.unwrap();
    let g = h.grant("alice", "rt-1", Some(("at-1", 60_000)), 0).await;
    h.fake.answer(
        "rt-1",
        Err(ProviderError::InvalidGrant {
            description: "revoked".into(),
        }),
    );
    // The follower reads a batch with alice still active, then stalls...
    faults.hold_feed();
    let r = h.refresher.clone();
    let follower = tokio::spawn(async move { r.catch_up(0).await });
    faults.feed_read().await;
    // ...while a refresh finds the grant revoked.
    let r = h.refresher.clone();
    let refresh = tokio::spawn(async move { r.refresh_grant(g, Trigger::Scheduled).await });
    for _ in 0..20 {
        if refresh.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    faults.release_feed();
    follower.await.unwrap().unwrap();
    assert!(matches!(
        refresh.await.unwrap(),
        Err(RefreshError::NeedsReauth(_))
    ));
    assert_eq!(
        h.entry("alice").status,
        crate::model::Status::NeedsReauth,
        "the cache shows what the refresh found"
    );
}
