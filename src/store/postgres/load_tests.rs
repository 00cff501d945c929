//! The full load stopped part-way: its error, and a pool that still serves
//! (the connection left in the middle of a COPY is closed, not reused).

use super::tests::with_writer;
use super::*;
use crate::model::{AccessToken, Extras};
use crate::store::contract::{T0, put};

#[tokio::test]
async fn a_token_that_does_not_open_fails_the_load_and_leaves_the_pool_usable() {
    let Some((_db, pg, writer)) = with_writer().await else {
        return;
    };
    let access = AccessToken {
        token: "at".to_string().into(),
        token_type: "bearer".into(),
        expires_at: T0 + 3_600_000,
        lifetime_secs: 3600,
        lifetime_issued: true,
    };
    let mut ids = Vec::new();
    for i in 0..40 {
        let id = format!("c{i:02}");
        let outcome = put(
            &writer,
            &id,
            &format!("rt-{i}"),
            Some(&access),
            &Extras::new(),
        )
        .await;
        ids.push(outcome.grant_id());
    }
    // The first row in the table: the load stops with the rest unread.
    let first: i64 = sqlx::query_scalar("SELECT id FROM grants ORDER BY ctid LIMIT 1")
        .fetch_one(&pg.pool)
        .await
        .unwrap();
    let update = "UPDATE grants SET access_token = $2 WHERE id = $1 RETURNING access_token";
    let sealed: Vec<u8> = sqlx::query_scalar(update)
        .bind(first)
        .bind(b"not sealed".to_vec())
        .fetch_one(&pg.pool)
        .await
        .unwrap();
    assert_eq!(sealed, b"not sealed");
    for _ in 0..3 {
        let mut loaded = 0;
        let err = pg.load_pages(1, &mut |_| loaded += 1).await.unwrap_err();
        assert!(matches!(err, StoreError::Crypto(_)), "{err}");
        assert!(loaded < ids.len(), "stopped at the bad row: {loaded}");
    }
    // Every pooled connection answers.
    let checks = (0..CONNECTIONS)
        .map(|_| sqlx::query_scalar::<_, i64>("SELECT count(*) FROM grants").fetch_one(&pg.pool));
    for n in futures::future::try_join_all(checks).await.unwrap() {
        assert_eq!(n, ids.len() as i64);
    }
    sqlx::query("DELETE FROM credentials WHERE grant_id = $1")
        .bind(first)
        .execute(&pg.pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM grants WHERE id = $1")
        .bind(first)
        .execute(&pg.pool)
        .await
        .unwrap();
    let mut loaded = Vec::new();
    pg.load_pages(1, &mut |g| loaded.push(g.id)).await.unwrap();
    loaded.sort();
    ids.retain(|id| id.0 != first);
    ids.sort();
    assert_eq!(loaded, ids);
}
