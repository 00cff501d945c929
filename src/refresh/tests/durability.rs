//! Nothing is handed out before it is durable: a store that refuses the
//! commit gets it again until it takes it, and concurrent results share
//! one commit.

use super::faulty::Faults;
use super::{Harness, until};
use crate::refresh::{Outcome, Trigger};

#[tokio::test]
async fn a_refused_commit_is_held_and_retried_and_nothing_is_handed_out_before() {
    let mut faults = None;
    let h = Harness::wrapping(|store| {
        let (wrapped, handle) = Faults::wrap(store);
        faults = Some(handle);
        wrapped
    })
    .await;
    let faults = faults.unwrap();
    let g = h.grant("alice", "rt-1", Some(("at-old", 60_000)), 0).await;
    h.fake.rotates("rt-1", "at-new", "rt-2");
    faults.refuse_commits(2);
    let r = h.refresher.clone();
    let flight = tokio::spawn(async move { r.refresh_grant(g, Trigger::Scheduled).await });
    until("a commit", || faults.commits().0 > 0).await;
    // Refused: the new token exists only in memory, so it is not handed
    // out, and the daemon says it is not ready.
    assert!(!h.refresher.is_durable());
    assert!(
        !h.store.health().is_up(),
        "the refused commit turned the store down"
    );
    assert_eq!(h.refresher.unstored_results(), [(g, "alice".to_owned())]);
    let pending = |n: u8| format!("tokend_durable_writes_pending {n}\n");
    let metrics = || h.metrics.render(&Default::default());
    assert!(metrics().contains(&pending(1)), "{}", metrics());
    assert_eq!(h.handed_out("alice"), "at-old");
    assert_eq!(h.stored_tokens(g).await.0, "rt-1");
    // The store takes it on the third try (after 100 ms and 200 ms).
    assert_eq!(flight.await.unwrap().unwrap(), Outcome::Refreshed);
    assert_eq!(faults.commits().0, 3);
    assert!(h.refresher.is_durable());
    assert!(
        h.store.health().is_up(),
        "the stored commit turned it up again"
    );
    assert!(metrics().contains(&pending(0)));
    assert_eq!(h.handed_out("alice"), "at-new");
    assert_eq!(h.stored_tokens(g).await.0, "rt-2");
    assert_eq!(h.fake.calls(), ["rt-1"], "the provider was asked once");
}

#[tokio::test]
async fn concurrent_results_share_commits() {
    let mut faults = None;
    let h = Harness::wrapping(|store| {
        let (wrapped, handle) = Faults::wrap(store);
        faults = Some(handle);
        wrapped
    })
    .await;
    let faults = faults.unwrap();
    // Fewer than refresh.max_concurrency (16), so that all are in flight at once.
    let mut grants = Vec::new();
    for i in 0..12 {
        let (id, rt) = (format!("user-{i}"), format!("rt-{i}"));
        h.fake
            .rotates(&rt, &format!("at-{i}"), &format!("{rt}-next"));
        grants.push(h.grant(&id, &rt, None, 0).await);
    }
    let gate = h.fake.close();
    let flights: Vec<_> = grants
        .iter()
        .map(|&g| {
            let r = h.refresher.clone();
            tokio::spawn(async move { r.refresh_grant(g, Trigger::MinTtl(0)).await })
        })
        .collect();
    until("every call", || h.fake.calls().len() == 12).await;
    // Every answer arrives at once.
    gate.add_permits(12);
    for f in flights {
        assert_eq!(f.await.unwrap().unwrap(), Outcome::Refreshed);
    }
    let (transactions, results) = faults.commits();
    assert_eq!(results, 12);
    assert!(
        transactions < 12,
        "{transactions} transactions for 12 results"
    );
    for i in 0..12 {
        assert_eq!(h.handed_out(&format!("user-{i}")), format!("at-{i}"));
    }
}
