//! The PostgreSQL backend on a database of its own per test: the store
//! contract, and what only a shared server has (several members at once).

use std::sync::Arc;

use futures::FutureExt;

use super::scratch::ScratchDb;
use super::*;
use crate::model::{Extras, GrantState};
use crate::store::contract::{Fixture, T0, put, store_contract};
use crate::store::{Claim, Store};

/// A fresh database with a new key, on a manual clock; `None` without a server.
pub(super) async fn fixture() -> Option<Fixture> {
    let db = ScratchDb::create().await?;
    let clock = Clock::manual(T0);
    let key = Arc::new(MasterKey::generate());
    let store = Store::new(
        PgStore::open(&db.target, &key, clock.clone())
            .await
            .unwrap(),
    );
    let (target, reopen_clock) = (db.target.clone(), clock.clone());
    Some(Fixture {
        store,
        clock,
        key,
        reopen: Box::new(move |key: &MasterKey| {
            let (target, clock) = (target.clone(), reopen_clock.clone());
            let key = MasterKey::from_file_contents(key.to_base64().as_bytes())
                .expect("a key's own base64 reads back");
            async move { Ok(Store::new(PgStore::open(&target, &key, clock).await?)) }.boxed()
        }),
        _keep: Box::new(db),
    })
}

/// A store and a second member writing to the same fresh database (with
/// the same key); `None` without a server.
pub(super) async fn with_writer() -> Option<(ScratchDb, PgStore, Store)> {
    let db = ScratchDb::create().await?;
    let key = MasterKey::generate();
    let open = || PgStore::open(&db.target, &key, Clock::manual(T0));
    let (pg, writer) = (open().await.unwrap(), Store::new(open().await.unwrap()));
    Some((db, pg, writer))
}

store_contract!(optional fixture);

#[tokio::test]
async fn a_member_with_another_key_is_refused_naming_both_key_ids() {
    let Some(f) = fixture().await else { return };
    put(&f.store, "a", "rt", None, &Extras::new()).await;
    let err = (f.reopen)(&MasterKey::generate()).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::WrongKey { .. }), "{msg}");
    assert!(msg.contains(&f.store.key_id()), "{msg}");
    assert!(msg.contains("storage.encryption_key_file"), "{msg}");
}

#[tokio::test]
async fn members_starting_together_migrate_once_and_agree_on_the_key() {
    let Some(db) = ScratchDb::create().await else {
        return;
    };
    let key = Arc::new(MasterKey::generate());
    let opens = (0..4).map(|_| {
        let (target, key) = (db.target.clone(), Arc::clone(&key));
        tokio::spawn(async move { PgStore::open(&target, &key, Clock::manual(T0)).await })
    });
    for open in futures::future::join_all(opens).await {
        open.unwrap().unwrap();
    }
}

#[tokio::test]
async fn a_change_wakes_another_members_follower() {
    let Some(f) = fixture().await else { return };
    let other = (f.reopen)(&f.key).await.unwrap();
    // The first wait subscribes and returns at once (catch up on connect).
    tokio::time::timeout(std::time::Duration::from_secs(5), other.wait_for_changes())
        .await
        .expect("the first wait returns once listening");
    let seq = other.changes_since(0).await.unwrap().seq;
    let waiting = tokio::spawn(async move {
        other.wait_for_changes().await;
        other.changes_since(seq).await.unwrap()
    });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    put(&f.store, "pushed", "rt", None, &Extras::new()).await;
    let changes = tokio::time::timeout(std::time::Duration::from_secs(2), waiting)
        .await
        .expect("a notification, well before the safety poll")
        .unwrap();
    assert_eq!(changes.grants.len(), 1);
    assert_eq!(changes.grants[0].credentials[0].id, "pushed");
}

#[tokio::test]
async fn a_copy_from_sqlite_reads_back_the_same_under_the_same_key() {
    use crate::store::contract::{summary, varied_grants};
    let Some(f) = fixture().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::open(&dir.path().join("tokend.db"), &f.key, Clock::manual(T0))
        .await
        .unwrap();
    let mut ids = varied_grants(&sqlite).await;
    ids.sort();
    ids.dedup();
    let mut after = i64::MIN;
    loop {
        let page = sqlite.export_page(after, 2).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.id;
        f.store.import_sealed(&page).await.unwrap();
    }
    let load = |store: Store| async move {
        let mut all = Vec::new();
        store
            .load_each(&mut |g| all.push(summary(&g)))
            .await
            .unwrap();
        all
    };
    let copied = load(f.store.clone()).await;
    assert_eq!(copied.len(), ids.len());
    assert_eq!(copied, load(sqlite.clone()).await);
    for id in ids {
        let (a, b) = (
            sqlite.get_grant(id).await.unwrap(),
            f.store.get_grant(id).await.unwrap(),
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        use secrecy::ExposeSecret;
        assert_eq!(
            a.refresh_token.expose_secret(),
            b.refresh_token.expose_secret()
        );
        let prev = |g: &crate::model::Grant| {
            g.previous_refresh_token
                .as_ref()
                .map(|t| t.expose_secret().to_owned())
        };
        assert_eq!(prev(&a), prev(&b));
        // Linked by refresh token as before: the lookup hashes came along.
        assert_eq!(
            f.store
                .grant_by_refresh_token(&a.state.provider, &a.refresh_token)
                .await
                .unwrap(),
            Some(id)
        );
    }
}

#[tokio::test]
async fn a_lease_of_a_dead_process_is_taken_over_and_a_live_ones_still_blocks() {
    let Some(db) = ScratchDb::create().await else {
        return;
    };
    let key = MasterKey::generate();
    let pg = PgStore::open(&db.target, &key, Clock::manual(T0))
        .await
        .unwrap();
    let (pool, mine) = (pg.pool.clone(), pg.owner.clone());
    let store = Store::new(pg);
    put(&store, "alice", "rt", None, &Extras::new()).await;
    let grant = store.grant_id_of("alice").await.unwrap().unwrap();
    // A process of this machine that is gone, holding an unexpired lease.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let me = format!("pid={} ", std::process::id());
    let holder = mine.replace(&me, &format!("pid={dead} "));
    assert_ne!(holder, mine);
    sqlx::query("UPDATE grants SET lease_owner = $1, lease_until = $2 WHERE id = $3")
        .bind(&holder)
        .bind(T0 + 3_600_000)
        .bind(grant.0)
        .execute(&pool)
        .await
        .unwrap();
    assert!(matches!(
        store.claim(grant, 60_000).await.unwrap(),
        Claim::Acquired { .. }
    ));
    // Now held by a live member (this process): another member waits.
    let other = PgStore::open(&db.target, &key, Clock::manual(T0))
        .await
        .unwrap();
    assert!(matches!(
        other.take_lease(grant, 60_000).await.unwrap(),
        Claim::Held { .. }
    ));
}

#[tokio::test]
async fn the_load_page_by_page_reads_what_the_feed_reads() {
    use crate::store::contract::{summary, varied_grants};
    let Some(db) = ScratchDb::create().await else {
        return;
    };
    let key = MasterKey::generate();
    let writer = Store::new(
        PgStore::open(&db.target, &key, Clock::manual(T0))
            .await
            .unwrap(),
    );
    let mut ids = varied_grants(&writer).await;
    // Enough grants to fill several table blocks (and pages of one row).
    for i in 0..80 {
        let outcome = put(
            &writer,
            &format!("many-{i:02}"),
            &format!("rt-many-{i}"),
            None,
            &Extras::new(),
        )
        .await;
        ids.push(outcome.grant_id());
    }
    ids.sort();
    ids.dedup();
    let reader = PgStore::open(&db.target, &key, Clock::manual(T0))
        .await
        .unwrap();
    // Old row versions left behind by updates spread the rows over blocks.
    for id in &ids {
        let lease = match reader.take_lease(*id, 1_000).await.unwrap() {
            Claim::Acquired { lease, .. } => lease,
            other => panic!("{other:?}"),
        };
        reader.release_lease(&lease).await.unwrap();
    }
    let mut paged = Vec::new();
    let seq = reader.load_pages(1, &mut |g| paged.push(g)).await.unwrap();
    let mut fed = reader.changes(0).await.unwrap();
    fed.grants.sort_by_key(|g| g.id);
    paged.sort_by_key(|g| g.id);
    assert_eq!(seq, fed.seq);
    let blocks: i64 = sqlx::query_scalar(
        "SELECT pg_relation_size('grants') / current_setting('block_size')::bigint",
    )
    .fetch_one(&reader.pool)
    .await
    .unwrap();
    assert!(blocks > 2, "several pages: {blocks} blocks");
    assert_eq!(paged.iter().map(|g| g.id).collect::<Vec<_>>(), ids);
    assert!(paged.iter().any(|g| g.credentials.len() > 1));
    let summaries = |gs: &[GrantState]| gs.iter().map(summary).collect::<Vec<_>>();
    assert_eq!(summaries(&paged), summaries(&fed.grants));
}

#[tokio::test]
async fn the_feed_leaves_out_a_grant_whose_status_this_store_wrote_after_the_snapshot() {
    let Some((_db, pg, writer)) = with_writer().await else {
        return;
    };
    let alice = put(&writer, "alice", "rt-a", None, &Extras::new()).await;
    put(&writer, "bob", "rt-b", None, &Extras::new()).await;
    let seq = pg.changes(0).await.unwrap().seq;
    // As if a failure of alice's were written here after the snapshot.
    pg.wrote_status(alice.grant_id(), seq + 1);
    let changes = pg.changes(0).await.unwrap();
    let ids: Vec<&str> = changes
        .grants
        .iter()
        .map(|g| g.credentials[0].id.as_str())
        .collect();
    assert_eq!(ids, ["bob"], "alice's older state is left out");
    // Once a snapshot includes the write, alice is reported again.
    pg.wrote_status(alice.grant_id(), seq);
    assert_eq!(pg.changes(0).await.unwrap().grants.len(), 2);
}
