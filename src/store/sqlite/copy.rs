//! `copy-store`: every grant as stored (tokens sealed) out of this database,
//! or into it. Runtime-checked queries: nothing here is on a hot path.

use super::{SqliteStore, next_change_seq};
use crate::store::types::{SEALED_GRANT_COLUMNS, attach_credentials};
use crate::store::{SealedGrant, StoreError};

impl SqliteStore {
    /// See [`crate::store::Backend::export_page`].
    pub(super) async fn export(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<SealedGrant>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let sql =
            format!("SELECT {SEALED_GRANT_COLUMNS} FROM grants WHERE id > ?1 ORDER BY id LIMIT ?2");
        let mut grants: Vec<SealedGrant> = sqlx::query_as(&sql)
            .bind(after)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
        let (Some(first), Some(last)) = (grants.first(), grants.last()) else {
            return Ok(grants);
        };
        let (first, last) = (first.id, last.id);
        let credentials = sqlx::query_as(
            "SELECT id, grant_id, extras, created_at, updated_at FROM credentials
             WHERE grant_id >= ?1 AND grant_id <= ?2 ORDER BY id",
        )
        .bind(first)
        .bind(last)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        attach_credentials(&mut grants, credentials);
        Ok(grants)
    }

    /// See [`crate::store::Backend::import_sealed`].
    pub(super) async fn import(&self, batch: &[SealedGrant]) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let seq = next_change_seq(&mut tx).await?;
        for g in batch {
            sqlx::query(
                "INSERT INTO grants (id, provider, status, refresh_token, refresh_token_hash,
                     previous_refresh_token, access_token, token_type, scope, expires_at,
                     lifetime_secs, application_calendar_id, generation, last_refresh_at,
                     next_refresh_at, consecutive_failures, last_error, created_at, updated_at,
                     change_seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                         ?17, ?18, ?19, ?20)",
            )
            .bind(g.id)
            .bind(&g.provider)
            .bind(&g.status)
            .bind(&g.refresh_token)
            .bind(&g.refresh_token_hash)
            .bind(&g.previous_refresh_token)
            .bind(&g.access_token)
            .bind(&g.token_type)
            .bind(&g.scope)
            .bind(g.expires_at)
            .bind(g.lifetime_secs)
            .bind(&g.application_calendar_id)
            .bind(g.generation)
            .bind(g.last_refresh_at)
            .bind(g.next_refresh_at)
            .bind(g.consecutive_failures)
            .bind(&g.last_error)
            .bind(g.created_at)
            .bind(g.updated_at)
            .bind(seq)
            .execute(&mut *tx)
            .await?;
            for c in &g.credentials {
                sqlx::query(
                    "INSERT INTO credentials (id, grant_id, extras, created_at, updated_at, change_seq)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .bind(&c.id)
                .bind(g.id)
                .bind(&c.extras)
                .bind(c.created_at)
                .bind(c.updated_at)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}
