//! Writes: refresh results with compare-and-set, failures, leases, deletes.
//! New credentials are in `put`.

use sqlx::{Sqlite, Transaction};

use super::crypto::Field;
use super::{Store, StoreError, next_change_seq};
use crate::clock::UnixMillis;
use crate::store::model::*;

impl Store {
    /// Writes a successful refresh if the grant is still at `expected_generation`
    /// (compare-and-set). The old refresh token becomes the previous one when the
    /// provider rotated it. Releases any lease on the grant.
    #[tracing::instrument(skip_all, fields(grant_id = %grant_id), err)]
    pub async fn write_refresh(
        &self,
        grant_id: GrantId,
        expected_generation: i64,
        w: &RefreshWrite<'_>,
    ) -> Result<CasOutcome, StoreError> {
        let mut outcomes = self
            .write_refreshes(&[(grant_id, expected_generation, w)])
            .await?;
        Ok(outcomes.pop().unwrap_or(CasOutcome::Conflict))
    }

    /// [`Store::write_refresh`] for each of `batch`, each with its own
    /// compare-and-set, in one transaction: one commit (one fsync) makes
    /// them all durable. A conflict on one does not stop the others; a
    /// database error writes none.
    #[tracing::instrument(skip_all, fields(count = batch.len()), err)]
    pub async fn write_refreshes(
        &self,
        batch: &[(GrantId, i64, &RefreshWrite<'_>)],
    ) -> Result<Vec<CasOutcome>, StoreError> {
        let now = self.now();
        let _serial = self.write_lock().await;
        let mut tx = self.begin_write().await?;
        let seq = next_change_seq(&mut tx).await?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for (grant_id, expected, w) in batch {
            outcomes.push(
                self.write_refresh_in(&mut tx, seq, now, *grant_id, *expected, w)
                    .await?,
            );
        }
        if outcomes.iter().all(|o| *o == CasOutcome::Conflict) {
            // Nothing written: leave the change number where it was.
            tx.rollback().await?;
        } else {
            tx.commit().await?;
        }
        Ok(outcomes)
    }

    async fn write_refresh_in(
        &self,
        tx: &mut Transaction<'static, Sqlite>,
        seq: i64,
        now: UnixMillis,
        grant_id: GrantId,
        expected_generation: i64,
        w: &RefreshWrite<'_>,
    ) -> Result<CasOutcome, StoreError> {
        let Some(row) = sqlx::query!(
            "SELECT provider, refresh_token, refresh_token_hash, previous_refresh_token, generation
             FROM grants WHERE id = ?1",
            grant_id.0
        )
        .fetch_optional(&mut **tx)
        .await?
        else {
            return Ok(CasOutcome::Conflict);
        };
        if row.generation != expected_generation {
            return Ok(CasOutcome::Conflict);
        }
        let cipher = self.cipher();

        let (refresh, hash, previous) = match w.refresh_token {
            Some(new_rt) => {
                let new_hash = cipher.lookup_hash(&row.provider, new_rt);
                if new_hash == row.refresh_token_hash {
                    (
                        row.refresh_token,
                        row.refresh_token_hash,
                        row.previous_refresh_token,
                    )
                } else {
                    let old = cipher.open(grant_id.0, Field::RefreshToken, &row.refresh_token)?;
                    let previous = cipher.seal(grant_id.0, Field::PreviousRefreshToken, &old);
                    let current = cipher.seal_secret(grant_id.0, Field::RefreshToken, new_rt);
                    (current, new_hash, Some(previous))
                }
            }
            None => (
                row.refresh_token,
                row.refresh_token_hash,
                row.previous_refresh_token,
            ),
        };
        let access = cipher.seal_secret(grant_id.0, Field::AccessToken, &w.access.token);
        let generation = expected_generation + 1;
        sqlx::query!(
            "UPDATE grants SET refresh_token = ?1, refresh_token_hash = ?2, previous_refresh_token = ?3,
                 access_token = ?4, token_type = ?5, scope = coalesce(?6, scope), expires_at = ?7,
                 lifetime_secs = ?8, status = 'active', generation = ?9, lease_owner = NULL,
                 lease_until = NULL, last_refresh_at = ?10, next_refresh_at = ?11,
                 consecutive_failures = 0, last_error = NULL, updated_at = ?10, change_seq = ?12
             WHERE id = ?13",
            refresh,
            hash,
            previous,
            access,
            w.access.token_type,
            w.scope,
            w.access.expires_at,
            w.access.lifetime_secs,
            generation,
            now,
            w.next_refresh_at,
            seq,
            grant_id.0
        )
        .execute(&mut **tx)
        .await?;

        let rows = sqlx::query!(
            "SELECT id, extras FROM credentials WHERE grant_id = ?1 ORDER BY id",
            grant_id.0
        )
        .fetch_all(&mut **tx)
        .await?;
        let mut credentials = Vec::with_capacity(rows.len());
        for row in rows {
            let mut extras = parse_extras(&row.extras)?;
            if !w.extras.is_empty() {
                merge_extras(&mut extras, w.extras);
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
        Ok(CasOutcome::Written {
            generation,
            credentials,
        })
    }

    /// Records a failed refresh attempt that is worth retrying; returns the
    /// number of consecutive failures now. Releases `owner`'s lease.
    #[tracing::instrument(skip_all, fields(grant_id = %grant_id), err)]
    pub async fn record_failure(
        &self,
        grant_id: GrantId,
        owner: &str,
        error: &str,
        next_refresh_at: UnixMillis,
    ) -> Result<i64, StoreError> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        let seq = next_change_seq(&mut tx).await?;
        let failures = sqlx::query_scalar!(
            "UPDATE grants SET consecutive_failures = consecutive_failures + 1, last_error = ?1,
                 next_refresh_at = ?2, updated_at = ?3, change_seq = ?4,
                 lease_owner = CASE WHEN lease_owner = ?5 THEN NULL ELSE lease_owner END,
                 lease_until = CASE WHEN lease_owner = ?5 THEN NULL ELSE lease_until END
             WHERE id = ?6 RETURNING consecutive_failures",
            error,
            next_refresh_at,
            now,
            seq,
            owner,
            grant_id.0
        )
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(failures.unwrap_or(0))
    }

    /// The provider refused the refresh token for good: no more refreshes
    /// until a person re-authorizes. Releases `owner`'s lease.
    #[tracing::instrument(skip_all, fields(grant_id = %grant_id), err)]
    pub async fn mark_needs_reauth(
        &self,
        grant_id: GrantId,
        owner: &str,
        error: &str,
    ) -> Result<(), StoreError> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        let seq = next_change_seq(&mut tx).await?;
        sqlx::query!(
            "UPDATE grants SET status = 'needs_reauth', last_error = ?1, next_refresh_at = NULL,
                 consecutive_failures = consecutive_failures + 1, updated_at = ?2, change_seq = ?3,
                 lease_owner = CASE WHEN lease_owner = ?4 THEN NULL ELSE lease_owner END,
                 lease_until = CASE WHEN lease_owner = ?4 THEN NULL ELSE lease_until END
             WHERE id = ?5",
            error,
            now,
            seq,
            owner,
            grant_id.0
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Takes the grant's refresh lease for `owner` until `until`, unless another
    /// owner holds an unexpired one. Guards refreshes across processes.
    pub async fn try_lease(
        &self,
        grant_id: GrantId,
        owner: &str,
        until: UnixMillis,
    ) -> Result<LeaseOutcome, StoreError> {
        let now = self.now();
        let serial = self.write_lock().await;
        let taken = sqlx::query!(
            "UPDATE grants SET lease_owner = ?1, lease_until = ?2
             WHERE id = ?3 AND (lease_owner IS NULL OR lease_until <= ?4 OR lease_owner = ?1)",
            owner,
            until,
            grant_id.0,
            now
        )
        .execute(self.lease_pool())
        .await?
        .rows_affected();
        drop(serial);
        if taken == 1 {
            return Ok(LeaseOutcome::Acquired);
        }
        let held = sqlx::query_scalar!("SELECT lease_until FROM grants WHERE id = ?1", grant_id.0)
            .fetch_optional(self.lease_pool())
            .await?;
        Ok(match held {
            None => LeaseOutcome::Gone,
            Some(until) => LeaseOutcome::HeldUntil(until.unwrap_or(now)),
        })
    }

    pub async fn release_lease(&self, grant_id: GrantId, owner: &str) -> Result<(), StoreError> {
        let _serial = self.write_lock().await;
        sqlx::query!(
            "UPDATE grants SET lease_owner = NULL, lease_until = NULL WHERE id = ?1 AND lease_owner = ?2",
            grant_id.0,
            owner
        )
        .execute(self.lease_pool())
        .await?;
        Ok(())
    }

    /// Deletes a credential, and its grant when no other credential uses it.
    #[tracing::instrument(skip_all, fields(credential_id = id), err)]
    pub async fn delete_credential(&self, id: &str) -> Result<Option<DeleteOutcome>, StoreError> {
        let mut tx = self.begin_write().await?;
        let Some(grant_id) =
            sqlx::query_scalar!("SELECT grant_id FROM credentials WHERE id = ?1", id)
                .fetch_optional(&mut *tx)
                .await?
        else {
            return Ok(None);
        };
        let seq = next_change_seq(&mut tx).await?;
        sqlx::query!("DELETE FROM credentials WHERE id = ?1", id)
            .execute(&mut *tx)
            .await?;
        sqlx::query!(
            "INSERT OR REPLACE INTO deleted_credentials (id, change_seq) VALUES (?1, ?2)",
            id,
            seq
        )
        .execute(&mut *tx)
        .await?;
        let grant_deleted = delete_grant_if_unused(&mut tx, grant_id).await?;
        tx.commit().await?;
        Ok(Some(DeleteOutcome {
            grant_id: GrantId(grant_id),
            grant_deleted,
        }))
    }
}

pub(super) async fn delete_grant_if_unused(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    grant_id: i64,
) -> Result<bool, StoreError> {
    let deleted = sqlx::query!(
        "DELETE FROM grants WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM credentials WHERE grant_id = ?1)",
        grant_id
    )
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(deleted == 1)
}

pub(super) fn parse_extras(text: &str) -> Result<Extras, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("credential extras: {e}")))
}
