//! When credentials were last handed out: written in batches, read at
//! start, and read again each minute for what other members handed out.

use sqlx::Row;

use super::PgStore;
use crate::clock::UnixMillis;
use crate::store::StoreError;

/// Rows read per query at start.
const PAGE: i64 = 10_000;

impl PgStore {
    /// See [`crate::store::Backend::record_hand_outs`]: one statement, the
    /// batch as two arrays.
    pub(super) async fn write_hand_outs(
        &self,
        batch: &[(String, UnixMillis)],
    ) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let (ids, ats): (Vec<&str>, Vec<i64>) =
            batch.iter().map(|(id, at)| (id.as_str(), *at)).unzip();
        sqlx::query(
            "UPDATE credentials AS c
             SET last_handed_out_at = GREATEST(COALESCE(c.last_handed_out_at, 0), seen.at)
             FROM UNNEST($1::text[], $2::bigint[]) AS seen (id, at)
             WHERE c.id = seen.id",
        )
        .bind(&ids)
        .bind(&ats)
        .execute(&self.pool)
        .await?;
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
                 WHERE id > $1 AND last_handed_out_at IS NOT NULL ORDER BY id LIMIT $2",
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

    /// See [`crate::store::Backend::hand_outs_since`] (the partial index on
    /// `last_handed_out_at` finds them).
    pub(super) async fn read_hand_outs_since(
        &self,
        since: UnixMillis,
        each: &mut (dyn for<'s> FnMut(&'s str, UnixMillis) + Send),
    ) -> Result<(), StoreError> {
        let rows = sqlx::query(
            "SELECT id, last_handed_out_at FROM credentials WHERE last_handed_out_at > $1",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        for row in &rows {
            each(row.try_get::<&str, _>(0)?, row.try_get(1)?);
        }
        Ok(())
    }
}
