//! `tokend rotate-key`: re-seal every token under a new key in one transaction.

use sqlx::FromRow;

use super::{PgStore, next_change_seq, write_key_check};
use crate::store::StoreError;
use crate::store::crypto::{Cipher, Field, MasterKey};

#[derive(FromRow)]
struct Sealed {
    id: i64,
    provider: String,
    refresh_token: Vec<u8>,
    previous_refresh_token: Option<Vec<u8>>,
    access_token: Option<Vec<u8>>,
}

impl PgStore {
    /// See [`crate::store::Backend::rotate_key`].
    #[tracing::instrument(skip_all, err)]
    pub(super) async fn reseal(&self, new_key: &MasterKey) -> Result<u64, StoreError> {
        let new = Cipher::new(new_key);
        let old = &self.cipher;
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let seq = next_change_seq(&mut tx).await?;
        let rows: Vec<Sealed> = sqlx::query_as(
            "SELECT id, provider, refresh_token, previous_refresh_token, access_token FROM grants",
        )
        .fetch_all(&mut *tx)
        .await?;
        let mut count = 0;
        for row in rows {
            let reseal = |field, sealed: &[u8]| -> Result<Vec<u8>, StoreError> {
                let plain = old.open(row.id, field, sealed)?;
                Ok(new.seal(row.id, field, &plain))
            };
            let refresh_plain = old.open_secret(row.id, Field::RefreshToken, &row.refresh_token)?;
            let refresh = new.seal_secret(row.id, Field::RefreshToken, &refresh_plain);
            let hash = new.lookup_hash(&row.provider, &refresh_plain);
            let previous = row
                .previous_refresh_token
                .as_deref()
                .map(|s| reseal(Field::PreviousRefreshToken, s))
                .transpose()?;
            let access = row
                .access_token
                .as_deref()
                .map(|s| reseal(Field::AccessToken, s))
                .transpose()?;
            sqlx::query(
                "UPDATE grants SET refresh_token = $1, refresh_token_hash = $2,
                     previous_refresh_token = $3, access_token = $4, generation = generation + 1,
                     updated_at = $5, change_seq = $6
                 WHERE id = $7",
            )
            .bind(refresh)
            .bind(hash)
            .bind(previous)
            .bind(access)
            .bind(now)
            .bind(seq)
            .bind(row.id)
            .execute(&mut *tx)
            .await?;
            count += 1;
        }
        write_key_check(&mut tx, &new).await?;
        tx.commit().await?;
        Ok(count)
    }
}
