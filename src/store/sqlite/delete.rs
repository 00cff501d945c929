//! Credentials leaving, and their grant with the last of them.

use sqlx::{Sqlite, Transaction};

use super::{SqliteStore, next_change_seq};
use crate::model::GrantId;
use crate::store::{DeleteOutcome, StoreError};

impl SqliteStore {
    /// See [`crate::store::Backend::delete_credential`].
    #[tracing::instrument(skip_all, fields(credential_id = id), err)]
    pub(super) async fn delete(&self, id: &str) -> Result<Option<DeleteOutcome>, StoreError> {
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

/// Deletes the grant if no credential points at it any more.
pub(super) async fn delete_grant_if_unused(
    tx: &mut Transaction<'static, Sqlite>,
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
