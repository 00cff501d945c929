//! The change feed a member follows (and the snapshot the full load at
//! start, in `load`, reads in too). Both read in one `REPEATABLE READ`
//! snapshot, so the change number they return is exactly what the rows they
//! return reflect.

use sqlx::postgres::{PgExecutor, PgPool};
use sqlx::{Postgres, Transaction};

use super::PgStore;
use super::rows::{GrantWithCredentials, credential_arrays, credentials_of, grant_columns};
use crate::model::{GrantId, GrantState};
use crate::store::{Changes, StoreError};

/// Starts a read-only transaction in one snapshot.
pub(super) const SNAPSHOT: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

/// A read-only transaction in one snapshot, and the change number it sees.
pub(super) async fn snapshot(
    pool: &PgPool,
) -> Result<(Transaction<'static, Postgres>, i64), StoreError> {
    let mut tx = pool.begin_with(SNAPSHOT).await?;
    let seq = change_seq(&mut *tx).await?;
    Ok((tx, seq))
}

/// The last committed change number (as a transaction in [`SNAPSHOT`]
/// sees it, when run in one).
pub(super) async fn change_seq(executor: impl PgExecutor<'_>) -> Result<i64, StoreError> {
    let seq = sqlx::query_scalar("SELECT seq FROM change_counter WHERE id = 0")
        .fetch_one(executor)
        .await?;
    Ok(seq)
}

impl PgStore {
    /// See [`crate::store::Backend::changes_since`].
    pub(super) async fn changes(&self, since: i64) -> Result<Changes, StoreError> {
        // One statement first: nothing new, or only this store's own
        // commits (`own`), needs no snapshot.
        let seq = change_seq(&self.pool).await?;
        if seq == since {
            return Ok(Changes {
                seq,
                ..Changes::default()
            });
        }
        if let Some(grants) = self.own_commits.take(since, seq) {
            return Ok(Changes {
                seq,
                grants: self.without_own_newer(seq, grants),
                deleted_credentials: Vec::new(),
            });
        }
        let (mut tx, seq) = snapshot(&self.pool).await?;
        self.own_commits.forget(seq);
        // The ids first, each side from its `change_seq` index, then the
        // grants by primary key: an `OR` of the two (or a join the planner
        // sizes from stale statistics) reads the whole table on every
        // change, and every member reads the feed after every commit.
        let grants: Vec<GrantWithCredentials> = sqlx::query_as(concat!(
            "SELECT ",
            grant_columns!(),
            ", ",
            credential_arrays!(),
            " FROM grants g
             WHERE g.id = ANY(ARRAY(
                 SELECT id FROM grants WHERE change_seq > $1
                 UNION SELECT grant_id FROM credentials WHERE change_seq > $1))"
        ))
        .bind(since)
        .fetch_all(&mut *tx)
        .await?;
        let deleted_credentials: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM deleted_credentials WHERE change_seq > $1 ORDER BY id",
        )
        .bind(since)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let grants = grants
            .into_iter()
            .map(|row| {
                let (row, creds) = row.split();
                let mut state = self.grant_state(row)?;
                state.credentials = credentials_of(creds)?;
                Ok(state)
            })
            .collect::<Result<Vec<GrantState>, StoreError>>()?;
        let grants = self.without_own_newer(seq, grants);
        Ok(Changes {
            seq,
            grants,
            deleted_credentials,
        })
    }

    /// Records that this store wrote a grant's status or failures (which
    /// leave its generation as it was) at change number `seq`.
    pub(super) fn wrote_status(&self, grant: GrantId, seq: i64) {
        let mut own = self.own_status.lock().unwrap_or_else(|e| e.into_inner());
        own.insert(grant.0, seq);
    }

    /// `grants` as read at change number `seq`, less those this store has
    /// written a status to since (their newer state is already published by
    /// the writer, and the generation, which that write leaves as it was,
    /// could not tell the follower that this snapshot is older). They come
    /// again with the next read, which that write's own notification brings.
    fn without_own_newer(&self, seq: i64, mut grants: Vec<GrantState>) -> Vec<GrantState> {
        let mut own = self.own_status.lock().unwrap_or_else(|e| e.into_inner());
        // Writes this snapshot includes need no more care.
        own.retain(|_, written| *written > seq);
        if !own.is_empty() {
            grants.retain(|g| !own.contains_key(&g.id.0));
        }
        grants
    }

    /// How many grants there are (to size what the load fills): above a
    /// hundred thousand, the planner's estimate (a count reads the whole
    /// table, a while at a million).
    pub(super) async fn count(&self) -> Result<usize, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT CASE WHEN c.reltuples > 100000 THEN c.reltuples::bigint
                         ELSE (SELECT count(*) FROM grants) END
             FROM pg_class c WHERE c.oid = 'grants'::regclass",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(usize::try_from(n).unwrap_or(0))
    }
}
