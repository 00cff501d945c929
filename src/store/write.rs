//! Writes: new credentials (linked to an existing grant when the refresh token
//! matches), refresh results with compare-and-set, failures, leases, deletes.

use super::crypto::Field;
use super::{Store, StoreError, next_change_seq};
use crate::clock::UnixMillis;
use crate::store::model::*;

impl Store {
    /// Creates or replaces credential `new.id`. When a grant of the same
    /// provider already holds the refresh token, the credential is linked to
    /// it instead of creating a second grant.
    #[tracing::instrument(skip_all, fields(credential_id = new.id, provider = new.provider), err)]
    pub async fn put_credential(&self, new: &NewCredential<'_>) -> Result<PutOutcome, StoreError> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        let seq = next_change_seq(&mut tx).await?;
        let hash = self.cipher().lookup_hash(new.provider, new.refresh_token);

        let existing = sqlx::query!(
            r#"SELECT id AS "id!", expires_at FROM grants WHERE provider = ?1 AND refresh_token_hash = ?2"#,
            new.provider,
            hash
        )
        .fetch_optional(&mut *tx)
        .await?;

        let (grant_id, linked) = match existing {
            Some(row) => {
                let id = GrantId(row.id);
                // The provider just issued an access token on this refresh token,
                // so the grant lives; keep whichever access token lasts longer.
                if let Some(access) = new
                    .access
                    .filter(|a| row.expires_at.is_none_or(|e| a.expires_at > e))
                {
                    let sealed = self
                        .cipher()
                        .seal_secret(id.0, Field::AccessToken, &access.token);
                    sqlx::query!(
                        "UPDATE grants SET access_token = ?1, token_type = ?2, expires_at = ?3, lifetime_secs = ?4,
                             scope = coalesce(?5, scope), status = 'active', consecutive_failures = 0,
                             last_error = NULL, next_refresh_at = coalesce(?6, next_refresh_at),
                             last_refresh_at = coalesce(?10, last_refresh_at),
                             generation = generation + 1, updated_at = ?7, change_seq = ?8
                         WHERE id = ?9",
                        sealed,
                        access.token_type,
                        access.expires_at,
                        access.lifetime_secs,
                        new.scope,
                        new.next_refresh_at,
                        now,
                        seq,
                        id.0,
                        new.last_refresh_at
                    )
                    .execute(&mut *tx)
                    .await?;
                }
                (id, true)
            }
            None => {
                let id = GrantId(rand::random::<i64>() & i64::MAX);
                let refresh =
                    self.cipher()
                        .seal_secret(id.0, Field::RefreshToken, new.refresh_token);
                let access = new.access.map(|a| {
                    self.cipher()
                        .seal_secret(id.0, Field::AccessToken, &a.token)
                });
                let token_type = new.access.map_or("bearer", |a| a.token_type.as_str());
                let expires_at = new.access.map(|a| a.expires_at);
                let lifetime = new.access.map(|a| a.lifetime_secs);
                sqlx::query!(
                    "INSERT INTO grants (id, provider, refresh_token, refresh_token_hash, access_token,
                         token_type, scope, expires_at, lifetime_secs, application_calendar_id,
                         next_refresh_at, last_refresh_at, created_at, updated_at, change_seq)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?14, ?12, ?12, ?13)",
                    id.0,
                    new.provider,
                    refresh,
                    hash,
                    access,
                    token_type,
                    new.scope,
                    expires_at,
                    lifetime,
                    new.application_calendar_id,
                    new.next_refresh_at,
                    now,
                    seq,
                    new.last_refresh_at
                )
                .execute(&mut *tx)
                .await?;
                (id, false)
            }
        };

        let extras = serde_json::to_string(new.extras).expect("a JSON map serializes");
        let previous =
            sqlx::query_scalar!("SELECT grant_id FROM credentials WHERE id = ?1", new.id)
                .fetch_optional(&mut *tx)
                .await?;
        let mut orphaned_grant = None;
        match previous {
            Some(old) => {
                sqlx::query!(
                    "UPDATE credentials SET grant_id = ?1, extras = ?2, updated_at = ?3, change_seq = ?4 WHERE id = ?5",
                    grant_id.0,
                    extras,
                    now,
                    seq,
                    new.id
                )
                .execute(&mut *tx)
                .await?;
                if old != grant_id.0 && delete_grant_if_unused(&mut tx, old).await? {
                    orphaned_grant = Some(GrantId(old));
                }
            }
            None => {
                sqlx::query!(
                    "INSERT INTO credentials (id, grant_id, extras, created_at, updated_at, change_seq)
                     VALUES (?1, ?2, ?3, ?4, ?4, ?5)",
                    new.id,
                    grant_id.0,
                    extras,
                    now,
                    seq
                )
                .execute(&mut *tx)
                .await?;
                sqlx::query!("DELETE FROM deleted_credentials WHERE id = ?1", new.id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(PutOutcome {
            created: previous.is_none(),
            grant_id,
            linked,
            orphaned_grant,
        })
    }

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
        let now = self.now();
        let mut tx = self.begin_write().await?;
        let Some(row) = sqlx::query!(
            "SELECT provider, refresh_token, refresh_token_hash, previous_refresh_token, generation
             FROM grants WHERE id = ?1",
            grant_id.0
        )
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(CasOutcome::Conflict);
        };
        if row.generation != expected_generation {
            return Ok(CasOutcome::Conflict);
        }
        let seq = next_change_seq(&mut tx).await?;
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
        .execute(&mut *tx)
        .await?;

        let rows = sqlx::query!(
            "SELECT id, extras FROM credentials WHERE grant_id = ?1 ORDER BY id",
            grant_id.0
        )
        .fetch_all(&mut *tx)
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
                .execute(&mut *tx)
                .await?;
            }
            credentials.push(CredentialExtras { id: row.id, extras });
        }
        tx.commit().await?;
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
        let taken = sqlx::query!(
            "UPDATE grants SET lease_owner = ?1, lease_until = ?2
             WHERE id = ?3 AND (lease_owner IS NULL OR lease_until <= ?4 OR lease_owner = ?1)",
            owner,
            until,
            grant_id.0,
            now
        )
        .execute(self.pool())
        .await?
        .rows_affected();
        if taken == 1 {
            return Ok(LeaseOutcome::Acquired);
        }
        let held = sqlx::query_scalar!("SELECT lease_until FROM grants WHERE id = ?1", grant_id.0)
            .fetch_optional(self.pool())
            .await?;
        Ok(match held {
            None => LeaseOutcome::Gone,
            Some(until) => LeaseOutcome::HeldUntil(until.unwrap_or(now)),
        })
    }

    pub async fn release_lease(&self, grant_id: GrantId, owner: &str) -> Result<(), StoreError> {
        sqlx::query!(
            "UPDATE grants SET lease_owner = NULL, lease_until = NULL WHERE id = ?1 AND lease_owner = ?2",
            grant_id.0,
            owner
        )
        .execute(self.pool())
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

async fn delete_grant_if_unused(
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
