//! Refresh results, written with compare-and-set in one transaction per
//! batch (group commit), each reporting the grant as written. A batch costs
//! the same few statements whatever its size: the grants are read in one
//! query and written in one `UPDATE ... FROM unnest(...)`, so the change
//! counter's lock (which every writer queues on) is held for a handful of
//! round trips, not a few per refresh.

use std::collections::HashMap;

use sqlx::FromRow;

use super::rows::{CredentialRow, parse_extras};
use super::{PgStore, next_change_seq};
use crate::model::{CredentialExtras, GrantState, Status, merge_extras};
use crate::store::crypto::Field;
use crate::store::{CommitOutcome, StoreError, TokenCommit};

/// What a commit reads of its grant.
#[derive(FromRow, Clone)]
pub(super) struct Current {
    id: i64,
    provider: String,
    refresh_token: Vec<u8>,
    refresh_token_hash: Vec<u8>,
    previous_refresh_token: Option<Vec<u8>>,
    generation: i64,
    scope: Option<String>,
    application_calendar_id: Option<String>,
}

/// The columns of the grants' rows as the batch leaves them.
#[derive(Default)]
pub(super) struct Columns {
    pub(super) ids: Vec<i64>,
    pub(super) refresh: Vec<Vec<u8>>,
    pub(super) hashes: Vec<Vec<u8>>,
    pub(super) previous: Vec<Option<Vec<u8>>>,
    pub(super) access: Vec<Vec<u8>>,
    pub(super) token_types: Vec<String>,
    pub(super) scopes: Vec<Option<String>>,
    pub(super) expires: Vec<i64>,
    pub(super) lifetimes: Vec<i64>,
    pub(super) generations: Vec<i64>,
    pub(super) next: Vec<i64>,
}

/// The grants `ids` as a commit reads them, by id.
pub(super) async fn read_current(
    executor: impl sqlx::PgExecutor<'_>,
    ids: &[i64],
) -> Result<HashMap<i64, Current>, StoreError> {
    let rows: Vec<Current> = sqlx::query_as(
        "SELECT id, provider, refresh_token, refresh_token_hash, previous_refresh_token,
                generation, scope, application_calendar_id
         FROM grants WHERE id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(executor)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r)).collect())
}

impl PgStore {
    /// See [`crate::store::Backend::commit_refreshes`]. A batch of
    /// distinct grants whose answers bring no extras (the usual case) is one
    /// statement (`commit_cas`); the rest take a transaction that merges
    /// the extras into the credentials.
    #[tracing::instrument(skip_all, fields(count = batch.len()), err)]
    pub(super) async fn commit_batch(
        &self,
        batch: &[TokenCommit],
    ) -> Result<Vec<CommitOutcome>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut ids: Vec<i64> = batch.iter().map(|c| c.grant_id.0).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() == batch.len() && batch.iter().all(|c| c.extras.is_empty()) {
            return self.commit_cas(batch).await;
        }
        self.commit_merging(batch).await
    }

    /// [`PgStore::commit_batch`] in a transaction that reads the grants and
    /// credentials under the change counter's lock: for extras to merge, and
    /// for a batch that writes a grant twice.
    async fn commit_merging(
        &self,
        batch: &[TokenCommit],
    ) -> Result<Vec<CommitOutcome>, StoreError> {
        let now = self.now();
        let ids: Vec<i64> = batch.iter().map(|c| c.grant_id.0).collect();
        let mut tx = self.batch_pool.begin().await?;
        let seq = next_change_seq(&mut tx).await?;
        let mut current = read_current(&mut *tx, &ids).await?;

        // Compare-and-set each in batch order; a later entry for the same
        // grant sees the earlier one's write.
        let mut outcomes: Vec<Option<GrantState>> = Vec::with_capacity(batch.len());
        for c in batch {
            outcomes.push(self.apply(&mut current, c, now)?);
        }
        let written: Vec<i64> = {
            let mut w: Vec<i64> = outcomes.iter().flatten().map(|s| s.id.0).collect();
            w.sort_unstable();
            w.dedup();
            w
        };
        if written.is_empty() {
            // Nothing written: leave the change number where it was.
            tx.rollback().await?;
            return Ok(batch.iter().map(|_| CommitOutcome::Conflict).collect());
        }
        let cols = self.columns(&written, &current, batch, &outcomes);
        sqlx::query(
            "UPDATE grants g SET refresh_token = v.rt, refresh_token_hash = v.hash,
                 previous_refresh_token = v.prev, access_token = v.at, token_type = v.tt,
                 scope = coalesce(v.scope, g.scope), expires_at = v.exp, lifetime_secs = v.life,
                 status = 'active', generation = v.gen,
                 lease_owner = CASE WHEN g.lease_owner = $12 THEN NULL ELSE g.lease_owner END,
                 lease_until = CASE WHEN g.lease_owner = $12 THEN NULL ELSE g.lease_until END,
                 last_refresh_at = $13, next_refresh_at = v.next, consecutive_failures = 0,
                 last_error = NULL, updated_at = $13, change_seq = $14
             FROM unnest($1::bigint[], $2::bytea[], $3::bytea[], $4::bytea[], $5::bytea[],
                         $6::text[], $7::text[], $8::bigint[], $9::bigint[], $10::bigint[],
                         $11::bigint[])
                  AS v(id, rt, hash, prev, at, tt, scope, exp, life, gen, next)
             WHERE g.id = v.id",
        )
        .bind(&cols.ids)
        .bind(&cols.refresh)
        .bind(&cols.hashes)
        .bind(&cols.previous)
        .bind(&cols.access)
        .bind(&cols.token_types)
        .bind(&cols.scopes)
        .bind(&cols.expires)
        .bind(&cols.lifetimes)
        .bind(&cols.generations)
        .bind(&cols.next)
        .bind(&self.owner)
        .bind(now)
        .bind(seq)
        .execute(&mut *tx)
        .await?;

        // Credentials: their extras merged with what each refresh brought.
        let creds: Vec<CredentialRow> = sqlx::query_as(
            "SELECT id, grant_id, extras FROM credentials WHERE grant_id = ANY($1) ORDER BY id",
        )
        .bind(&written)
        .fetch_all(&mut *tx)
        .await?;
        let mut by_grant: HashMap<i64, Vec<CredentialExtras>> = HashMap::new();
        for row in creds {
            by_grant
                .entry(row.grant_id)
                .or_default()
                .push(CredentialExtras {
                    extras: parse_extras(&row.extras)?,
                    id: row.id,
                });
        }
        let (mut changed_ids, mut changed_extras) = (Vec::new(), Vec::new());
        for (c, outcome) in batch.iter().zip(&outcomes) {
            if outcome.is_none() || c.extras.is_empty() {
                continue;
            }
            for cred in by_grant.get_mut(&c.grant_id.0).into_iter().flatten() {
                merge_extras(&mut cred.extras, &c.extras);
                changed_ids.push(cred.id.clone());
                changed_extras
                    .push(serde_json::to_string(&cred.extras).expect("a JSON map serializes"));
            }
        }
        if !changed_ids.is_empty() {
            sqlx::query(
                "UPDATE credentials c SET extras = v.extras, updated_at = $3, change_seq = $4
                 FROM unnest($1::text[], $2::text[]) AS v(id, extras) WHERE c.id = v.id",
            )
            .bind(&changed_ids)
            .bind(&changed_extras)
            .bind(now)
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        let outcomes: Vec<CommitOutcome> = outcomes
            .into_iter()
            .map(|o| match o {
                Some(mut state) => {
                    state.credentials = by_grant.get(&state.id.0).cloned().unwrap_or_default();
                    CommitOutcome::Written(state)
                }
                None => CommitOutcome::Conflict,
            })
            .collect();
        self.own_commits
            .record(seq, super::commit_cas::written_states(&outcomes));
        Ok(outcomes)
    }

    /// One compare-and-set against the batch's view of the grant, which it
    /// updates on success; the grant as written (credentials still empty).
    pub(super) fn apply(
        &self,
        current: &mut HashMap<i64, Current>,
        c: &TokenCommit,
        now: i64,
    ) -> Result<Option<GrantState>, StoreError> {
        let id = c.grant_id;
        let Some(row) = current.get_mut(&id.0) else {
            return Ok(None);
        };
        if row.generation != c.expected_generation {
            return Ok(None);
        }
        if let Some(new_rt) = &c.refresh_token {
            let new_hash = self.cipher.lookup_hash(&row.provider, new_rt);
            if new_hash != row.refresh_token_hash {
                let old = self
                    .cipher
                    .open(id.0, Field::RefreshToken, &row.refresh_token)?;
                row.previous_refresh_token =
                    Some(self.cipher.seal(id.0, Field::PreviousRefreshToken, &old));
                row.refresh_token = self.cipher.seal_secret(id.0, Field::RefreshToken, new_rt);
                row.refresh_token_hash = new_hash;
            }
        }
        row.generation = c.expected_generation + 1;
        if c.scope.is_some() {
            row.scope.clone_from(&c.scope);
        }
        Ok(Some(GrantState {
            id,
            provider: row.provider.clone(),
            status: Status::Active,
            access: Some(c.access.clone()),
            scope: row.scope.clone(),
            application_calendar_id: row.application_calendar_id.clone(),
            generation: row.generation,
            last_refresh_at: Some(now),
            next_refresh_at: Some(c.next_refresh_at),
            consecutive_failures: 0,
            last_error: None,
            credentials: Vec::new(),
        }))
    }

    /// The written grants' final columns, one entry per grant (the last
    /// write of a grant the batch wrote twice).
    pub(super) fn columns(
        &self,
        written: &[i64],
        current: &HashMap<i64, Current>,
        batch: &[TokenCommit],
        outcomes: &[Option<GrantState>],
    ) -> Columns {
        let mut last: HashMap<i64, &TokenCommit> = HashMap::with_capacity(written.len());
        for (c, o) in batch.iter().zip(outcomes) {
            if o.is_some() {
                last.insert(c.grant_id.0, c);
            }
        }
        let mut cols = Columns::default();
        for id in written {
            let (row, c) = (&current[id], last[id]);
            cols.ids.push(*id);
            cols.refresh.push(row.refresh_token.clone());
            cols.hashes.push(row.refresh_token_hash.clone());
            cols.previous.push(row.previous_refresh_token.clone());
            cols.access.push(
                self.cipher
                    .seal_secret(*id, Field::AccessToken, &c.access.token),
            );
            cols.token_types.push(c.access.token_type.clone());
            cols.scopes.push(row.scope.clone());
            cols.expires.push(c.access.expires_at);
            cols.lifetimes.push(c.access.stored_lifetime());
            cols.generations.push(row.generation);
            cols.next.push(c.next_refresh_at);
        }
        cols
    }
}
