//! The contract of listings: filters by status, provider and id patterns,
//! and paging in id order.

use super::{Fixture, put};
use crate::model::{Extras, Status};
use crate::store::ListFilter;

pub(crate) async fn listings_filter_and_page_in_id_order(f: Fixture) {
    let store = &f.store;
    for i in 0..25 {
        put(
            store,
            &format!("user-{i:02}"),
            &format!("rt-{i}"),
            None,
            &Extras::new(),
        )
        .await;
    }
    put(store, "svc-1", "rt-svc", None, &Extras::new()).await;
    let dead = store.grant_id_of("user-03").await.unwrap().unwrap();
    let crate::store::Claim::Acquired { lease, .. } = store.claim(dead, 60_000).await.unwrap()
    else {
        panic!("an unleased grant is claimed")
    };
    assert!(store.mark_needs_reauth(&lease, "gone").await.unwrap());

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

    let list = |f: ListFilter, patterns: &[&str]| {
        let patterns: Vec<String> = patterns.iter().map(|p| (*p).to_owned()).collect();
        async move { store.list_credentials(&f, &patterns).await.unwrap() }
    };
    let hundred = || ListFilter {
        limit: 100,
        ..ListFilter::default()
    };
    assert_eq!(list(hundred(), &["user-*"]).await.len(), 25);
    assert_eq!(list(hundred(), &["user-1?"]).await.len(), 10);
    assert_eq!(list(hundred(), &["svc-1", "user-0?"]).await.len(), 11);
    let dead_list = list(
        ListFilter {
            status: Some(Status::NeedsReauth),
            ..hundred()
        },
        &["*"],
    )
    .await;
    assert_eq!(
        dead_list.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(),
        ["user-03"]
    );
    let google = ListFilter {
        provider: Some("google".into()),
        ..hundred()
    };
    assert!(list(google, &["*"]).await.is_empty());
    // Paging counts only what the patterns admit.
    let page = list(
        ListFilter {
            limit: 2,
            ..ListFilter::default()
        },
        &["svc-*", "user-2?"],
    )
    .await;
    assert_eq!(
        page.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(),
        ["svc-1", "user-20"]
    );
}
