//! The change feed answering this store's own commits from memory (`own`):
//! what it returns is what a read of the database returns, and a change
//! another member made in the range sends it to the database.

use super::tests::with_writer;
use crate::model::{Extras, GrantId};
use crate::store::contract::{T0, access, put, summary};
use crate::store::{CommitOutcome, TokenCommit};

fn commit(grant_id: GrantId, expected_generation: i64, at: &str) -> TokenCommit {
    TokenCommit {
        grant_id,
        expected_generation,
        refresh_token: None,
        access: access(at, T0 + 3_600_000),
        scope: Some("read".into()),
        extras: Extras::new(),
        next_refresh_at: T0 + 2_000_000,
    }
}

fn sorted(mut grants: Vec<crate::model::GrantState>) -> Vec<String> {
    grants.sort_by_key(|g| g.id);
    grants.iter().map(summary).collect()
}

#[tokio::test]
async fn own_commits_read_back_as_the_database_has_them() {
    let Some((_db, pg, other)) = with_writer().await else {
        return;
    };
    let pg = crate::store::Store::new(pg);
    let a = put(&pg, "a", "rt-a", None, &Extras::new()).await.grant_id();
    let b = put(&pg, "b", "rt-b", None, &Extras::new()).await.grant_id();
    let since = pg.changes_since(0).await.unwrap().seq;

    // Two batches of this store's own, one grant written in both.
    for batch in [
        vec![commit(a, 0, "at-a1"), commit(b, 0, "at-b")],
        vec![commit(a, 1, "at-a2")],
    ] {
        let out = pg.commit_refreshes(&batch).await.unwrap();
        assert!(out.iter().all(|o| matches!(o, CommitOutcome::Written(_))));
    }
    let mine = pg.changes_since(since).await.unwrap();
    let read = other.changes_since(since).await.unwrap();
    assert_eq!(mine.seq, since + 2);
    assert_eq!(read.seq, mine.seq);
    assert_eq!(sorted(mine.grants), sorted(read.grants));
    let back = summary(&pg.get_grant(a).await.unwrap().unwrap().state);
    assert!(back.contains("at-a2"), "{back}");

    // Another member's change between two of ours: read from the database.
    let since = mine.seq;
    pg.commit_refreshes(&[commit(a, 2, "at-a3")]).await.unwrap();
    put(&other, "c", "rt-c", None, &Extras::new()).await;
    pg.commit_refreshes(&[commit(b, 1, "at-b2")]).await.unwrap();
    let mine = pg.changes_since(since).await.unwrap();
    let read = other.changes_since(since).await.unwrap();
    assert_eq!(mine.seq, since + 3);
    let ids: Vec<String> = sorted(mine.grants.clone());
    assert_eq!(ids.len(), 3, "a, b and the other member's c: {ids:?}");
    assert_eq!(ids, sorted(read.grants));
}
