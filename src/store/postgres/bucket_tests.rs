//! The cluster's rate buckets on a database of their own per test: two
//! members (two stores on one database) take from one bucket.

use std::sync::Arc;

use super::PgStore;
use super::scratch::ScratchDb;
use crate::clock::Clock;
use crate::provider::bucket::SharedBuckets;
use crate::store::Backend;
use crate::store::contract::T0;
use crate::store::crypto::MasterKey;

/// Two members' views of one database's rate buckets.
async fn two_members() -> Option<(ScratchDb, Arc<dyn SharedBuckets>, Arc<dyn SharedBuckets>)> {
    let db = ScratchDb::create().await?;
    let key = Arc::new(MasterKey::generate());
    let a = PgStore::open(&db.target, &key, Clock::manual(T0))
        .await
        .unwrap();
    let b = PgStore::open(&db.target, &key, Clock::manual(T0))
        .await
        .unwrap();
    Some((db, a.shared_buckets().unwrap(), b.shared_buckets().unwrap()))
}

#[tokio::test]
async fn the_members_share_one_bucket_its_burst_its_rate_and_its_pause() {
    use crate::provider::bucket::{BucketRate, Taken};
    let Some((_db, a, b)) = two_members().await else {
        return;
    };
    let rate = BucketRate {
        per_minute: 60.0,
        burst: 3,
    };
    // The burst, taken by both members, is three cells in all.
    assert_eq!(a.take("p", rate, 2, T0).await.unwrap(), Taken::Cells(2));
    assert_eq!(b.take("p", rate, 5, T0).await.unwrap(), Taken::Cells(1));
    assert_eq!(
        a.take("p", rate, 1, T0).await.unwrap(),
        Taken::NotBefore(T0 + 1_000)
    );
    assert_eq!(
        b.take("p", rate, 1, T0 + 999).await.unwrap(),
        Taken::NotBefore(T0 + 1_000)
    );
    assert_eq!(
        b.take("p", rate, 3, T0 + 1_000).await.unwrap(),
        Taken::Cells(1)
    );
    // Another key is another bucket.
    assert_eq!(a.take("q", rate, 9, T0).await.unwrap(), Taken::Cells(3));
    // Ten seconds idle fill it again, up to the burst only.
    assert_eq!(
        a.take("p", rate, 9, T0 + 11_000).await.unwrap(),
        Taken::Cells(3)
    );
    // One member's pause holds for the other; a shorter one does not shorten it.
    a.pause("p", T0 + 60_000).await.unwrap();
    b.pause("p", T0 + 30_000).await.unwrap();
    assert_eq!(
        b.take("p", rate, 1, T0 + 40_000).await.unwrap(),
        Taken::Paused(T0 + 60_000)
    );
    assert_eq!(
        a.take("q", rate, 1, T0 + 40_000).await.unwrap(),
        Taken::Cells(1)
    );
    assert_eq!(
        b.take("p", rate, 1, T0 + 60_000).await.unwrap(),
        Taken::Cells(1)
    );
}

#[tokio::test]
async fn at_a_high_rate_members_take_many_cells_and_never_more_than_the_rate() {
    use crate::provider::bucket::{BucketRate, SharedStock, Taken};
    let Some((_db, a, b)) = two_members().await else {
        return;
    };
    let rate = BucketRate {
        per_minute: 600_000.0, // ten a millisecond
        burst: 100,
    };
    let stocks = [
        SharedStock::new(a, "fast".into()),
        SharedStock::new(b, "fast".into()),
    ];
    // Over 100 ms of the clock, both members taking as fast as they can:
    // at most the burst plus the rate's 1,000, and a round trip per batch.
    let mut cells = 0;
    for now in (T0..T0 + 100).step_by(5) {
        for stock in &stocks {
            while let Taken::Cells(n) = stock.take(rate, now).await.unwrap() {
                cells += n;
            }
        }
    }
    assert!((1_000..=1_100).contains(&cells), "{cells}");
}

#[tokio::test]
async fn two_members_refresh_budgets_are_one_and_a_permit_given_back_is_there_again() {
    use crate::refresh::budget::{Permits, Rate, SharedPermits};
    let Some((_db, a, b)) = two_members().await else {
        return;
    };
    let clock = Clock::manual(T0);
    let members = [
        SharedPermits::new(a, clock.clone()),
        SharedPermits::new(b, clock.clone()),
    ];
    let rate = Rate {
        per_minute: 30.0,
        burst: 3,
    };
    for m in &members {
        m.configure("cronofy", rate);
    }
    members[0].take("cronofy").await.unwrap();
    members[1].take("cronofy").await.unwrap();
    members[1].take("cronofy").await.unwrap();
    assert_eq!(members[0].take("cronofy").await, Err(T0 + 2_000));
    assert_eq!(members[1].take("cronofy").await, Err(T0 + 2_000));
    members[0].give_back("cronofy").await;
    members[1].take("cronofy").await.unwrap();
    assert!(members[0].take("cronofy").await.is_err());
    clock.advance(std::time::Duration::from_secs(2));
    members[0].take("cronofy").await.unwrap();
    assert!(members[1].take("cronofy").await.is_err());
    // A provider without a budget has none to keep.
    members[0].take("other").await.unwrap();
}
