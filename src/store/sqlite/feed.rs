//! The change feed a cache uses to follow other processes: every write
//! stamps what it touches with the next change number.

use std::collections::HashMap;

use super::SqliteStore;
use super::read::{CredentialRow, GrantRow, credentials_of};
use crate::model::GrantState;
use crate::store::{Changes, StoreError};

impl SqliteStore {
    /// See [`crate::store::Backend::changes_since`].
    pub(super) async fn changes(&self, since: i64) -> Result<Changes, StoreError> {
        let mut tx = self.pool.begin().await?;
        let seq = sqlx::query_scalar!("SELECT seq FROM change_counter WHERE id = 0")
            .fetch_one(&mut *tx)
            .await?;
        if seq == since {
            return Ok(Changes {
                seq,
                ..Changes::default()
            });
        }
        let grants = sqlx::query_as!(
            GrantRow,
            "SELECT id, provider, status, refresh_token, previous_refresh_token, access_token,
                    token_type, scope, expires_at, lifetime_secs, application_calendar_id,
                    generation, last_refresh_at, next_refresh_at, consecutive_failures, last_error
             FROM grants
             WHERE change_seq > ?1
                OR id IN (SELECT grant_id FROM credentials WHERE change_seq > ?1)",
            since
        )
        .fetch_all(&mut *tx)
        .await?;
        let credentials = sqlx::query_as!(
            CredentialRow,
            "SELECT id, grant_id, extras FROM credentials
             WHERE grant_id IN (SELECT id FROM grants WHERE change_seq > ?1)
                OR grant_id IN (SELECT grant_id FROM credentials WHERE change_seq > ?1)
             ORDER BY id",
            since
        )
        .fetch_all(&mut *tx)
        .await?;
        let deleted_credentials = sqlx::query_scalar!(
            "SELECT id FROM deleted_credentials WHERE change_seq > ?1 ORDER BY id",
            since
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Changes {
            seq,
            grants: self.assemble(grants, credentials)?,
            deleted_credentials,
        })
    }

    fn assemble(
        &self,
        grants: Vec<GrantRow>,
        credentials: Vec<CredentialRow>,
    ) -> Result<Vec<GrantState>, StoreError> {
        let mut by_grant: HashMap<i64, Vec<CredentialRow>> = HashMap::with_capacity(grants.len());
        for c in credentials {
            by_grant.entry(c.grant_id).or_default().push(c);
        }
        grants
            .into_iter()
            .map(|row| {
                let creds = by_grant.remove(&row.id).unwrap_or_default();
                let mut state = self.grant_state(row)?;
                state.credentials = credentials_of(creds)?;
                Ok(state)
            })
            .collect()
    }
}
