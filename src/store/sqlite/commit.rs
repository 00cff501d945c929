//! Refresh results, written with compare-and-set in one transaction per
//! batch (group commit), each reporting the grant as written.

use sqlx::{Sqlite, Transaction};

use super::read::parse_extras;
use super::{SqliteStore, next_change_seq};
use crate::clock::UnixMillis;
use crate::model::{CredentialExtras, GrantState, Status, merge_extras};
use crate::store::crypto::Field;
use crate::store::{CommitOutcome, StoreError, TokenCommit};

impl SqliteStore {
    /// See [`crate::store::Backend::commit_refreshes`].
    #[tracing::instrument(skip_all, fields(count = batch.len()), err)]
    pub(super) async fn commit_batch(
        &self,
        batch: &[TokenCommit],
    ) -> Result<Vec<CommitOutcome>, StoreError> {
        let now = self.now();
        let _serial = self.write_lock.lock().await;
        let mut tx = self.begin_write().await?;
        let seq = next_change_seq(&mut tx).await?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for commit in batch {
            outcomes.push(self.commit_in(&mut tx, seq, now, commit).await?);
        }
        if outcomes
            .iter()
            .all(|o| matches!(o, CommitOutcome::Conflict))
        {
            // Nothing written: leave the change number where it was.
            tx.rollback().await?;
        } else {
            tx.commit().await?;
        }
        Ok(outcomes)
    }

    async fn commit_in(
        &self,
        tx: &mut Transaction<'static, Sqlite>,
        seq: i64,
        now: UnixMillis,
        c: &TokenCommit,
    ) -> Result<CommitOutcome, StoreError> {
        let id = c.grant_id;
        let Some(row) = sqlx::query!(
            "SELECT provider, refresh_token, refresh_token_hash, previous_refresh_token, generation,
                    scope, application_calendar_id
             FROM grants WHERE id = ?1",
            id.0
        )
        .fetch_optional(&mut **tx)
        .await?
        else {
            return Ok(CommitOutcome::Conflict);
        };
        if row.generation != c.expected_generation {
            return Ok(CommitOutcome::Conflict);
        }
        let cipher = &self.cipher;
        let (refresh, hash, previous) = match &c.refresh_token {
            Some(new_rt) => {
                let new_hash = cipher.lookup_hash(&row.provider, new_rt);
                if new_hash == row.refresh_token_hash {
                    (
                        row.refresh_token,
                        row.refresh_token_hash,
                        row.previous_refresh_token,
                    )
                } else {
                    let old = cipher.open(id.0, Field::RefreshToken, &row.refresh_token)?;
                    let previous = cipher.seal(id.0, Field::PreviousRefreshToken, &old);
                    let current = cipher.seal_secret(id.0, Field::RefreshToken, new_rt);
                    (current, new_hash, Some(previous))
                }
            }
            None => (
                row.refresh_token,
                row.refresh_token_hash,
                row.previous_refresh_token,
            ),
        };
        let access = cipher.seal_secret(id.0, Field::AccessToken, &c.access.token);
        let generation = c.expected_generation + 1;
        let lifetime = c.access.stored_lifetime();
        sqlx::query!(
            "UPDATE grants SET refresh_token = ?1, refresh_token_hash = ?2, previous_refresh_token = ?3,
                 access_token = ?4, token_type = ?5, scope = coalesce(?6, scope), expires_at = ?7,
                 lifetime_secs = ?8, status = 'active', generation = ?9,
                 lease_owner = CASE WHEN lease_owner = ?14 THEN NULL ELSE lease_owner END,
                 lease_until = CASE WHEN lease_owner = ?14 THEN NULL ELSE lease_until END,
                 last_refresh_at = ?10, next_refresh_at = ?11,
                 consecutive_failures = 0, last_error = NULL, updated_at = ?10, change_seq = ?12
             WHERE id = ?13",
            refresh,
            hash,
            previous,
            access,
            c.access.token_type,
            c.scope,
            c.access.expires_at,
            lifetime,
            generation,
            now,
            c.next_refresh_at,
            seq,
            id.0,
            self.owner
        )
        .execute(&mut **tx)
        .await?;

        let rows = sqlx::query!(
            "SELECT id, extras FROM credentials WHERE grant_id = ?1 ORDER BY id",
            id.0
        )
        .fetch_all(&mut **tx)
        .await?;
        let mut credentials = Vec::with_capacity(rows.len());
        for row in rows {
            let mut extras = parse_extras(&row.extras)?;
            if !c.extras.is_empty() {
                merge_extras(&mut extras, &c.extras);
                let text = serde_json::to_string(&extras).expect("a JSON map serializes");
                sqlx::query!(
                    "UPDATE credentials SET extras = ?1, updated_at = ?2, change_seq = ?3 WHERE id = ?4",
                    text,
                    now,
                    seq,
                    row.id
                )
                .execute(&mut **tx)
                .await?;
            }
            credentials.push(CredentialExtras { id: row.id, extras });
        }
        Ok(CommitOutcome::Written(GrantState {
            id,
            provider: row.provider,
            status: Status::Active,
            access: Some(c.access.clone()),
            scope: c.scope.clone().or(row.scope),
            application_calendar_id: row.application_calendar_id,
            generation,
            last_refresh_at: Some(now),
            next_refresh_at: Some(c.next_refresh_at),
            consecutive_failures: 0,
            last_error: None,
            credentials,
        }))
    }
}
