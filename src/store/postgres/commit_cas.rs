//! The usual group commit of refresh results in one statement (one round
//! trip, one durable commit), for a batch of distinct grants whose answers
//! brought no extras to merge.
//!
//! The grants are read first, without a lock or transaction: only to seal
//! the refresh token each replaces as the previous one. That is safe because
//! the write compares and sets on the generation the refresh read, and a
//! grant's tokens never change without a new generation: a row that still
//! has the expected generation when it is written still holds the refresh
//! token read here; one that moved on is not written (a conflict).
//!
//! The write takes the next change number first, as every write does: the
//! counter is read in an init plan of the grants' `UPDATE`, which runs
//! before that `UPDATE` touches its first row, so writers still queue on
//! the counter before any grant row (no deadlock between writers), and the
//! counter stays locked until the statement's commit.

use std::collections::HashMap;

use sqlx::FromRow;

use super::PgStore;
use super::commit::read_current;
use super::rows::{CredentialRow, credential_arrays, credentials_of};
use crate::store::{CommitOutcome, StoreError, TokenCommit};

/// A grant the statement wrote, with its credentials as they are now.
#[derive(FromRow)]
struct Written {
    id: i64,
    scope: Option<String>,
    application_calendar_id: Option<String>,
    change_seq: i64,
    credential_ids: Vec<String>,
    credential_extras: Vec<String>,
}

impl PgStore {
    /// [`PgStore::commit_batch`] for distinct grants and no extras.
    pub(super) async fn commit_cas(
        &self,
        batch: &[TokenCommit],
    ) -> Result<Vec<CommitOutcome>, StoreError> {
        let now = self.now();
        let ids: Vec<i64> = batch.iter().map(|c| c.grant_id.0).collect();
        let mut current = read_current(&self.batch_pool, &ids).await?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for c in batch {
            outcomes.push(self.apply(&mut current, c, now)?);
        }
        let written: Vec<i64> = outcomes.iter().flatten().map(|s| s.id.0).collect();
        if written.is_empty() {
            return Ok(batch.iter().map(|_| CommitOutcome::Conflict).collect());
        }
        let cols = self.columns(&written, &current, batch, &outcomes);
        // Each grant is written at most once: the generation it was read at
        // is the one before the one it gets.
        let expected: Vec<i64> = cols.generations.iter().map(|g| g - 1).collect();
        let rows: Vec<Written> = sqlx::query_as(concat!(
            "WITH counter AS (UPDATE change_counter SET seq = seq + 1 WHERE id = 0 RETURNING seq),
             written AS (
                 UPDATE grants g SET refresh_token = v.rt, refresh_token_hash = v.hash,
                     previous_refresh_token = v.prev, access_token = v.at, token_type = v.tt,
                     scope = coalesce(v.scope, g.scope), expires_at = v.exp,
                     lifetime_secs = v.life, status = 'active', generation = v.gen,
                     lease_owner = CASE WHEN g.lease_owner = $13 THEN NULL ELSE g.lease_owner END,
                     lease_until = CASE WHEN g.lease_owner = $13 THEN NULL ELSE g.lease_until END,
                     last_refresh_at = $14, next_refresh_at = v.next, consecutive_failures = 0,
                     last_error = NULL, updated_at = $14,
                     change_seq = (SELECT seq FROM counter)
                 FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::bytea[], $5::bytea[],
                             $6::bytea[], $7::text[], $8::text[], $9::bigint[], $10::bigint[],
                             $11::bigint[], $12::bigint[])
                      AS v(id, expected, rt, hash, prev, at, tt, scope, exp, life, gen, next)
                 WHERE g.id = v.id AND g.generation = v.expected
                 RETURNING g.id, g.scope, g.application_calendar_id, g.change_seq)
             SELECT g.id, g.scope, g.application_calendar_id, g.change_seq, ",
            credential_arrays!(),
            " FROM written g"
        ))
        .bind(&cols.ids)
        .bind(&expected)
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
        .fetch_all(&self.batch_pool)
        .await?;
        let seq = rows.first().map(|w| w.change_seq);
        let mut by_id: HashMap<i64, Written> = rows.into_iter().map(|w| (w.id, w)).collect();
        let outcomes = outcomes
            .into_iter()
            .map(|outcome| {
                // Read at its generation but moved on before the write: a conflict.
                let Some(mut state) = outcome else {
                    return Ok(CommitOutcome::Conflict);
                };
                let Some(w) = by_id.remove(&state.id.0) else {
                    return Ok(CommitOutcome::Conflict);
                };
                state.scope = w.scope;
                state.application_calendar_id = w.application_calendar_id;
                state.credentials = credentials_of(
                    w.credential_ids
                        .into_iter()
                        .zip(w.credential_extras)
                        .map(|(id, extras)| CredentialRow {
                            id,
                            grant_id: w.id,
                            extras,
                        })
                        .collect(),
                )?;
                Ok(CommitOutcome::Written(state))
            })
            .collect::<Result<Vec<CommitOutcome>, StoreError>>()?;
        if let Some(seq) = seq {
            self.own_commits.record(seq, written_states(&outcomes));
        }
        Ok(outcomes)
    }
}

/// The grants a batch wrote, as written.
pub(super) fn written_states(outcomes: &[CommitOutcome]) -> Vec<crate::model::GrantState> {
    outcomes
        .iter()
        .filter_map(|o| match o {
            CommitOutcome::Written(state) => Some(state.clone()),
            CommitOutcome::Conflict => None,
        })
        .collect()
}
