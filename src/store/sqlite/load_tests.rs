//! The start-up load: pages of grants read as JSON must give exactly the
//! grants the store holds, whatever falls on a page boundary.

use super::SqliteStore;
use crate::clock::Clock;
use crate::store::Backend;
use crate::store::contract::{T0, summary, varied_grants};

#[tokio::test]
async fn every_page_size_loads_the_grants_the_store_holds() {
    let dir = tempfile::tempdir().unwrap();
    let (store, key) = super::test_store(dir.path(), Clock::manual(T0)).await;
    varied_grants(&store).await;
    let mut whole = Vec::new();
    store
        .load_each(&mut |g| whole.push(summary(&g)))
        .await
        .unwrap();
    assert_eq!(whole.len(), 10);
    let sqlite = SqliteStore::open(&dir.path().join("tokend.db"), &key, Clock::manual(T0))
        .await
        .unwrap();
    for page_size in [1, 2, 3, 7, 100] {
        let mut paged = Vec::new();
        sqlite
            .load_pages(page_size, &mut |g| paged.push(summary(&g)))
            .await
            .unwrap();
        assert_eq!(paged, whole, "page size {page_size}");
    }
    assert_eq!(sqlite.count_grants().await.unwrap(), 10);
}
