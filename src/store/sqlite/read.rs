//! Reads: grants with tokens opened, credential views, listings.

use sqlx::SqliteConnection;

use super::SqliteStore;
use crate::model::{CredentialView, Grant, GrantId, GrantState, Status};
use crate::store::crypto::Field;
pub(super) use crate::store::rows::{
    CredentialRow, GrantRow, ViewRow, credentials_of, parse_extras, view_of,
};
use crate::store::{ListFilter, StoreError};

impl SqliteStore {
    /// See [`crate::store::Backend::get_grant`].
    pub(super) async fn grant(&self, id: GrantId) -> Result<Option<Grant>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let Some((row, credentials)) = rows_of(&mut conn, id).await? else {
            return Ok(None);
        };
        drop(conn);
        let refresh_token =
            self.cipher
                .open_secret(row.id, Field::RefreshToken, &row.refresh_token)?;
        let previous_refresh_token = row
            .previous_refresh_token
            .as_deref()
            .map(|sealed| {
                self.cipher
                    .open_secret(row.id, Field::PreviousRefreshToken, sealed)
            })
            .transpose()?;
        let mut state = self.grant_state(row)?;
        state.credentials = credentials_of(credentials)?;
        Ok(Some(Grant {
            state,
            refresh_token,
            previous_refresh_token,
        }))
    }

    /// The grant as `conn` sees it (inside a write, as written), access token
    /// opened, refresh tokens left sealed.
    pub(super) async fn state_in(
        &self,
        conn: &mut SqliteConnection,
        id: GrantId,
    ) -> Result<Option<GrantState>, StoreError> {
        let Some((row, credentials)) = rows_of(conn, id).await? else {
            return Ok(None);
        };
        let mut state = self.grant_state(row)?;
        state.credentials = credentials_of(credentials)?;
        Ok(Some(state))
    }

    /// See [`crate::store::Backend::grant_id_of`].
    pub(super) async fn grant_of(
        &self,
        credential_id: &str,
    ) -> Result<Option<GrantId>, StoreError> {
        Ok(sqlx::query_scalar!(
            "SELECT grant_id FROM credentials WHERE id = ?1",
            credential_id
        )
        .fetch_optional(&self.pool)
        .await?
        .map(GrantId))
    }

    /// See [`crate::store::Backend::get_credential`].
    pub(super) async fn view(&self, id: &str) -> Result<Option<CredentialView>, StoreError> {
        let row = sqlx::query_as!(
            ViewRow,
            "SELECT c.id, c.grant_id, g.provider, g.status, g.scope, g.expires_at, g.last_refresh_at,
                    g.next_refresh_at, g.consecutive_failures, g.last_error, c.extras, c.created_at
             FROM credentials c JOIN grants g ON g.id = c.grant_id
             WHERE c.id = ?1",
            id
        )
        .fetch_optional(&self.pool)
        .await?;
        row.map(view_of).transpose()
    }

    /// See [`crate::store::Backend::list_credentials`]: the patterns are
    /// matched with SQLite's GLOB.
    pub(super) async fn list(
        &self,
        filter: &ListFilter,
        patterns: &[String],
    ) -> Result<Vec<CredentialView>, StoreError> {
        let status = filter.status.map(Status::as_str);
        let patterns = serde_json::to_string(patterns).expect("strings serialize");
        let limit = i64::from(filter.limit);
        let rows = sqlx::query_as!(
            ViewRow,
            "SELECT c.id, c.grant_id, g.provider, g.status, g.scope, g.expires_at, g.last_refresh_at,
                    g.next_refresh_at, g.consecutive_failures, g.last_error, c.extras, c.created_at
             FROM credentials c JOIN grants g ON g.id = c.grant_id
             WHERE (?1 IS NULL OR g.status = ?1)
               AND (?2 IS NULL OR g.provider = ?2)
               AND (?3 IS NULL OR c.id > ?3)
               AND EXISTS (SELECT 1 FROM json_each(?4) p WHERE c.id GLOB p.value)
             ORDER BY c.id
             LIMIT ?5",
            status,
            filter.provider,
            filter.after,
            patterns,
            limit
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(view_of).collect()
    }

    /// Opens the access token; the refresh tokens stay sealed.
    pub(super) fn grant_state(&self, row: GrantRow) -> Result<GrantState, StoreError> {
        crate::store::rows::grant_state(&self.cipher, row)
    }
}

/// The grant's row and its credentials' rows, as `conn` sees them.
async fn rows_of(
    conn: &mut SqliteConnection,
    id: GrantId,
) -> Result<Option<(GrantRow, Vec<CredentialRow>)>, StoreError> {
    let row = sqlx::query_as!(
        GrantRow,
        "SELECT id, provider, status, refresh_token, previous_refresh_token, access_token,
                token_type, scope, expires_at, lifetime_secs, application_calendar_id,
                generation, last_refresh_at, next_refresh_at, consecutive_failures, last_error
         FROM grants WHERE id = ?1",
        id.0
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let credentials = sqlx::query_as!(
        CredentialRow,
        "SELECT id, grant_id, extras FROM credentials WHERE grant_id = ?1 ORDER BY id",
        id.0
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(Some((row, credentials)))
}

impl SqliteStore {
    /// See [`crate::store::Backend::grant_by_refresh_token`].
    pub(super) async fn grant_holding(
        &self,
        provider: &str,
        refresh_token: &secrecy::SecretString,
    ) -> Result<Option<GrantId>, StoreError> {
        let hash = self.cipher.lookup_hash(provider, refresh_token);
        Ok(sqlx::query_scalar!(
            r#"SELECT id AS "id!" FROM grants WHERE provider = ?1 AND refresh_token_hash = ?2"#,
            provider,
            hash
        )
        .fetch_optional(&self.pool)
        .await?
        .map(GrantId))
    }
}
