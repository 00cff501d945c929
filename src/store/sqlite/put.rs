//! New credentials: one at a time (import, code exchange, application
//! calendar) or many in one transaction (bulk imports, benchmarks). A
//! credential whose refresh token a grant of the same provider already holds
//! is linked to that grant instead of creating a second one, starting with
//! the grant's current extras (it shows the account it joins at once, not
//! only after the next refresh). Each reports the
//! grant as written, so the caller publishes it without reading it back.

use sqlx::{Sqlite, Transaction};

use super::delete::delete_grant_if_unused;
use super::read::parse_extras;
use super::{SqliteStore, next_change_seq};
use crate::clock::UnixMillis;
use crate::model::{AccessToken, Extras, GrantId, merge_extras};
use crate::store::crypto::Field;
use crate::store::{NewCredential, PutOutcome, StoreError};

impl SqliteStore {
    /// See [`crate::store::Backend::put_credentials`].
    #[tracing::instrument(skip_all, fields(count = batch.len()), err)]
    pub(super) async fn put_batch(
        &self,
        batch: &[NewCredential<'_>],
    ) -> Result<Vec<PutOutcome>, StoreError> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        let seq = next_change_seq(&mut tx).await?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for new in batch {
            outcomes.push(self.put_in(&mut tx, seq, now, new).await?);
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn put_in(
        &self,
        tx: &mut Transaction<'static, Sqlite>,
        seq: i64,
        now: UnixMillis,
        new: &NewCredential<'_>,
    ) -> Result<PutOutcome, StoreError> {
        let hash = self.cipher.lookup_hash(new.provider, new.refresh_token);
        let existing = sqlx::query!(
            r#"SELECT id AS "id!", expires_at FROM grants WHERE provider = ?1 AND refresh_token_hash = ?2"#,
            new.provider,
            hash
        )
        .fetch_optional(&mut **tx)
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
                        .cipher
                        .seal_secret(id.0, Field::AccessToken, &access.token);
                    let lifetime = access.stored_lifetime();
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
                        lifetime,
                        new.scope,
                        new.next_refresh_at,
                        now,
                        seq,
                        id.0,
                        new.last_refresh_at
                    )
                    .execute(&mut **tx)
                    .await?;
                } else if let Some(error) = new.failure {
                    sqlx::query!(
                        "UPDATE grants SET consecutive_failures = consecutive_failures + 1,
                             last_error = ?1, next_refresh_at = coalesce(?2, next_refresh_at),
                             updated_at = ?3, change_seq = ?4
                         WHERE id = ?5",
                        error,
                        new.next_refresh_at,
                        now,
                        seq,
                        id.0
                    )
                    .execute(&mut **tx)
                    .await?;
                }
                (id, true)
            }
            None => (self.insert_grant(tx, seq, now, new, &hash).await?, false),
        };

        let extras = if linked {
            // The grant's current extras (account_id, sub, linking_profile,
            // merged refresh extras), the latest-written credential's last,
            // with what arrived for this credential over them.
            let rows = sqlx::query_scalar!(
                "SELECT extras FROM credentials WHERE grant_id = ?1 ORDER BY change_seq, id",
                grant_id.0
            )
            .fetch_all(&mut **tx)
            .await?;
            let mut merged = Extras::new();
            for row in &rows {
                merge_extras(&mut merged, &parse_extras(row)?);
            }
            merge_extras(&mut merged, new.extras);
            serde_json::to_string(&merged)
        } else {
            serde_json::to_string(new.extras)
        }
        .expect("a JSON map serializes");
        let previous =
            sqlx::query_scalar!("SELECT grant_id FROM credentials WHERE id = ?1", new.id)
                .fetch_optional(&mut **tx)
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
                .execute(&mut **tx)
                .await?;
                if old != grant_id.0 && delete_grant_if_unused(tx, old).await? {
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
                .execute(&mut **tx)
                .await?;
                sqlx::query!("DELETE FROM deleted_credentials WHERE id = ?1", new.id)
                    .execute(&mut **tx)
                    .await?;
            }
        }
        let state = if linked {
            // Other credentials and the kept access token are the database's.
            self.state_in(tx, grant_id)
                .await?
                .ok_or_else(|| StoreError::Corrupt(format!("grant {grant_id} vanished")))?
        } else {
            new.initial_state(grant_id)
        };
        Ok(PutOutcome {
            created: previous.is_none(),
            linked,
            orphaned_grant,
            state,
        })
    }

    async fn insert_grant(
        &self,
        tx: &mut Transaction<'static, Sqlite>,
        seq: i64,
        now: UnixMillis,
        new: &NewCredential<'_>,
        hash: &[u8],
    ) -> Result<GrantId, StoreError> {
        let id = GrantId(rand::random::<i64>() & i64::MAX);
        let refresh = self
            .cipher
            .seal_secret(id.0, Field::RefreshToken, new.refresh_token);
        let access = new
            .access
            .map(|a| self.cipher.seal_secret(id.0, Field::AccessToken, &a.token));
        let token_type = new.access.map_or("bearer", |a| a.token_type.as_str());
        let expires_at = new.access.map(|a| a.expires_at);
        let lifetime = new.access.map(AccessToken::stored_lifetime);
        let failures = i64::from(new.failure.is_some());
        sqlx::query!(
            "INSERT INTO grants (id, provider, refresh_token, refresh_token_hash, access_token,
                 token_type, scope, expires_at, lifetime_secs, application_calendar_id,
                 next_refresh_at, last_refresh_at, consecutive_failures, last_error,
                 created_at, updated_at, change_seq)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?15, ?16)",
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
            new.last_refresh_at,
            failures,
            new.failure,
            now,
            seq
        )
        .execute(&mut **tx)
        .await?;
        Ok(id)
    }
}
