//! When credentials were last handed out: written in batches, read at start.

use sqlx::Row;

use super::SqliteStore;
use crate::clock::UnixMillis;
use crate::store::StoreError;

/// Rows per statement: SQLite binds at most 32,766 parameters.
const ROWS_PER_STATEMENT: usize = 1_000;
/// Rows read per query at start.
const PAGE: i64 = 10_000;

impl SqliteStore {
    /// See [`crate::store::Backend::record_hand_outs`].
    pub(super) async fn write_hand_outs(
        &self,
        batch: &[(String, UnixMillis)],
    ) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for chunk in batch.chunks(ROWS_PER_STATEMENT) {
            let values = vec!["(?, ?)"; chunk.len()].join(", ");
            let sql = format!(
                "WITH seen (id, at) AS (VALUES {values})
                 UPDATE credentials
                 SET last_handed_out_at = max(coalesce(last_handed_out_at, 0), seen.at)
                 FROM seen WHERE credentials.id = seen.id"
            );
            let mut query = sqlx::query(&sql);
            for (id, at) in chunk {
                query = query.bind(id).bind(at);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// See [`crate::store::Backend::hand_outs_each`].
    pub(super) async fn read_hand_outs(
        &self,
        each: &mut (dyn for<'s> FnMut(&'s str, UnixMillis) + Send),
    ) -> Result<(), StoreError> {
        let mut after = String::new();
        loop {
            let rows = sqlx::query(
                "SELECT id, last_handed_out_at FROM credentials
                 WHERE id > ?1 AND last_handed_out_at IS NOT NULL ORDER BY id LIMIT ?2",
            )
            .bind(&after)
            .bind(PAGE)
            .fetch_all(&self.pool)
            .await?;
            for row in &rows {
                each(row.try_get::<&str, _>(0)?, row.try_get(1)?);
            }
            match rows.last() {
                Some(last) if rows.len() as i64 == PAGE => after = last.try_get(0)?,
                _ => return Ok(()),
            }
        }
    }
}
