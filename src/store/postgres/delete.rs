//! Credentials leaving, and their grant with the last of them.

use sqlx::{Postgres, Transaction};

use super::{PgStore, next_change_seq};
use crate::model::GrantId;
use crate::store::{DeleteOutcome, StoreError};

impl PgStore {
    /// See [`crate::store::Backend::delete_credential`].
    #[tracing::instrument(skip_all, fields(credential_id = id), err)]
    pub(super) async fn delete(&self, id: &str) -> Result<Option<DeleteOutcome>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let seq = next_change_seq(&mut tx).await?;
        let grant_id: Option<i64> =
            sqlx::query_scalar("DELETE FROM credentials WHERE id = $1 RETURNING grant_id")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(grant_id) = grant_id else {
            // Nothing to delete: leave the change number where it was.
            tx.rollback().await?;
            return Ok(None);
        };
        sqlx::query(
            "INSERT INTO deleted_credentials (id, change_seq) VALUES ($1, $2)
             ON CONFLICT (id) DO UPDATE SET change_seq = excluded.change_seq",
        )
        .bind(id)
        .bind(seq)
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

/// Deletes the grant if no credential points at it any more.
pub(super) async fn delete_grant_if_unused(
    tx: &mut Transaction<'static, Postgres>,
    grant_id: i64,
) -> Result<bool, StoreError> {
    let deleted = sqlx::query(
        "DELETE FROM grants WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM credentials WHERE grant_id = $1)",
    )
    .bind(grant_id)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(deleted == 1)
}
