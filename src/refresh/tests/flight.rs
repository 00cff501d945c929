//! One refresh from start to end: called only when needed, one call for
//! every concurrent caller, committed before it is handed out.

use super::{Harness, T0, until};
use crate::refresh::{Outcome, Trigger};
use crate::store::Claim;

#[tokio::test]
async fn a_due_grant_is_refreshed_committed_then_handed_out() {
    let h = Harness::new().await;
    let g = h.grant("alice", "rt-1", Some(("at-old", 60_000)), 0).await;
    h.fake.rotates("rt-1", "at-new", "rt-2");

    let out = h.refresher.refresh_grant(g, Trigger::Scheduled).await;
    assert_eq!(out.unwrap(), Outcome::Refreshed);
    assert_eq!(h.fake.calls(), ["rt-1"]);
    assert_eq!(h.handed_out("alice"), "at-new");
    assert_eq!(h.entry("alice").generation, 1);
    // The rotated token is stored, the one it replaced kept as the previous.
    assert_eq!(
        h.stored_tokens(g).await,
        ("rt-2".to_owned(), Some("rt-1".to_owned()))
    );
    let view = h.store.get_credential("alice").await.unwrap().unwrap();
    assert_eq!(view.last_refresh_at, Some(T0));
    assert_eq!(view.expires_at, Some(T0 + 3_600_000));
    // Due again ahead of expiry by the lead (20 % of an hour), with jitter.
    let due = view.next_refresh_at.unwrap();
    assert!(
        (T0 + 3_600_000 - 720_000 - 180_000..=T0 + 3_600_000 - 720_000).contains(&due),
        "{due}"
    );
    assert!(h.refresher.is_durable());
    // The commit released the lease: another process may claim the grant.
    let other = h.other_process().await;
    assert!(matches!(
        other.claim(g, 1_000).await.unwrap(),
        Claim::Acquired { .. }
    ));
}

#[tokio::test]
async fn no_call_is_made_while_the_token_is_good_enough() {
    let h = Harness::new().await;
    let g = h
        .grant("alice", "rt-1", Some(("at-1", 600_000)), 300_000)
        .await;
    h.fake.rotates("rt-1", "at-2", "rt-2");
    let r = &h.refresher;
    assert_eq!(
        r.refresh_grant(g, Trigger::Scheduled).await.unwrap(),
        Outcome::Current
    );
    assert_eq!(
        r.refresh_grant(g, Trigger::MinTtl(598_999)).await.unwrap(),
        Outcome::Current
    );
    assert!(h.fake.calls().is_empty());
    // A caller that needs more than is left before the hand-out margin
    // (1 s) gets a refresh.
    assert_eq!(
        r.refresh_grant(g, Trigger::MinTtl(599_000)).await.unwrap(),
        Outcome::Refreshed
    );
    assert_eq!(h.fake.calls(), ["rt-1"]);
    // A forced refresh from a caller who saw generation 0 is answered by the
    // refresh that already replaced it; one who saw the current one forces a call.
    h.fake.rotates("rt-2", "at-3", "rt-3");
    let seen_old = Trigger::Forced { seen_generation: 0 };
    assert_eq!(
        r.refresh_grant(g, seen_old).await.unwrap(),
        Outcome::Current
    );
    let seen_new = Trigger::Forced { seen_generation: 1 };
    assert_eq!(
        r.refresh_grant(g, seen_new).await.unwrap(),
        Outcome::Refreshed
    );
    assert_eq!(h.fake.calls(), ["rt-1", "rt-2"]);
    assert_eq!(h.handed_out("alice"), "at-3");
}

#[tokio::test]
async fn concurrent_callers_share_one_provider_call() {
    let h = Harness::new().await;
    let g = h.grant("alice", "rt-1", None, 0).await;
    h.fake.rotates("rt-1", "at-1", "rt-2");
    let gate = h.fake.close();
    let callers: Vec<_> = (0..20)
        .map(|_| {
            let r = h.refresher.clone();
            tokio::spawn(async move { r.refresh_grant(g, Trigger::MinTtl(0)).await })
        })
        .collect();
    until("the provider call", || !h.fake.calls().is_empty()).await;
    assert!(h.refresher.is_refreshing(g));
    assert_eq!(h.refresher.in_flight(), 1);
    gate.add_permits(1);
    for caller in callers {
        assert_eq!(caller.await.unwrap().unwrap(), Outcome::Refreshed);
    }
    assert_eq!(h.fake.calls(), ["rt-1"]);
    assert_eq!(h.refresher.in_flight(), 0);
}

#[tokio::test]
async fn an_attempt_runs_to_its_end_when_every_caller_has_gone() {
    let h = Harness::new().await;
    let g = h.grant("alice", "rt-1", None, 0).await;
    h.fake.rotates("rt-1", "at-1", "rt-2");
    let gate = h.fake.close();
    let r = h.refresher.clone();
    let caller = tokio::spawn(async move { r.refresh_grant(g, Trigger::MinTtl(0)).await });
    until("the provider call", || !h.fake.calls().is_empty()).await;
    // The caller times out (a request deadline) and goes away.
    caller.abort();
    gate.add_permits(1);
    // The provider's answer still reaches the store and the cache.
    until("the attempt's end", || h.refresher.in_flight() == 0).await;
    assert_eq!(h.stored_tokens(g).await.0, "rt-2");
    assert_eq!(h.handed_out("alice"), "at-1");
}
