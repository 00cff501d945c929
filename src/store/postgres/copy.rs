//! `copy-store`: every grant as stored (tokens sealed) out of this database,
//! or into it.

use super::{PgStore, next_change_seq};
use crate::store::types::{SEALED_GRANT_COLUMNS, attach_credentials};
use crate::store::{SealedGrant, StoreError};

impl PgStore {
    /// See [`crate::store::Backend::export_page`].
    pub(super) async fn export(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<SealedGrant>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let sql =
            format!("SELECT {SEALED_GRANT_COLUMNS} FROM grants WHERE id > $1 ORDER BY id LIMIT $2");
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
             WHERE grant_id >= $1 AND grant_id <= $2 ORDER BY id",
        )
        .bind(first)
        .bind(last)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        attach_credentials(&mut grants, credentials);
        Ok(grants)
    }

    /// See [`crate::store::Backend::import_sealed`]. Two statements for the
    /// whole batch (`INSERT ... SELECT FROM unnest(...)`), not two per grant:
    /// a million grants copy in seconds, not minutes.
    pub(super) async fn import(&self, batch: &[SealedGrant]) -> Result<(), StoreError> {
        let col = |f: &dyn Fn(&SealedGrant) -> Option<i64>| batch.iter().map(f).collect::<Vec<_>>();
        let text =
            |f: &dyn Fn(&SealedGrant) -> Option<String>| batch.iter().map(f).collect::<Vec<_>>();
        let bytes =
            |f: &dyn Fn(&SealedGrant) -> Option<Vec<u8>>| batch.iter().map(f).collect::<Vec<_>>();
        let mut tx = self.pool.begin().await?;
        let seq = next_change_seq(&mut tx).await?;
        sqlx::query(
            "INSERT INTO grants (id, provider, status, refresh_token, refresh_token_hash,
                 previous_refresh_token, access_token, token_type, scope, expires_at,
                 lifetime_secs, application_calendar_id, generation, last_refresh_at,
                 next_refresh_at, consecutive_failures, last_error, created_at, updated_at,
                 change_seq)
             SELECT *, $20 FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bytea[],
                 $5::bytea[], $6::bytea[], $7::bytea[], $8::text[], $9::text[], $10::bigint[],
                 $11::bigint[], $12::text[], $13::bigint[], $14::bigint[], $15::bigint[],
                 $16::bigint[], $17::text[], $18::bigint[], $19::bigint[])",
        )
        .bind(col(&|g| Some(g.id)))
        .bind(text(&|g| Some(g.provider.clone())))
        .bind(text(&|g| Some(g.status.clone())))
        .bind(bytes(&|g| Some(g.refresh_token.clone())))
        .bind(bytes(&|g| Some(g.refresh_token_hash.clone())))
        .bind(bytes(&|g| g.previous_refresh_token.clone()))
        .bind(bytes(&|g| g.access_token.clone()))
        .bind(text(&|g| Some(g.token_type.clone())))
        .bind(text(&|g| g.scope.clone()))
        .bind(col(&|g| g.expires_at))
        .bind(col(&|g| g.lifetime_secs))
        .bind(text(&|g| g.application_calendar_id.clone()))
        .bind(col(&|g| Some(g.generation)))
        .bind(col(&|g| g.last_refresh_at))
        .bind(col(&|g| g.next_refresh_at))
        .bind(col(&|g| Some(g.consecutive_failures)))
        .bind(text(&|g| g.last_error.clone()))
        .bind(col(&|g| Some(g.created_at)))
        .bind(col(&|g| Some(g.updated_at)))
        .bind(seq)
        .execute(&mut *tx)
        .await?;
        let credentials = || {
            batch
                .iter()
                .flat_map(|g| g.credentials.iter().map(move |c| (g.id, c)))
        };
        sqlx::query(
            "INSERT INTO credentials (id, grant_id, extras, created_at, updated_at, change_seq)
             SELECT *, $6 FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[],
                 $5::bigint[])",
        )
        .bind(credentials().map(|(_, c)| c.id.clone()).collect::<Vec<_>>())
        .bind(credentials().map(|(g, _)| g).collect::<Vec<_>>())
        .bind(
            credentials()
                .map(|(_, c)| c.extras.clone())
                .collect::<Vec<_>>(),
        )
        .bind(credentials().map(|(_, c)| c.created_at).collect::<Vec<_>>())
        .bind(credentials().map(|(_, c)| c.updated_at).collect::<Vec<_>>())
        .bind(seq)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
