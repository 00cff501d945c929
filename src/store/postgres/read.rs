//! Reads: grants with tokens opened, credential views, listings.

use sqlx::PgConnection;

use super::PgStore;
use super::rows::{
    CredentialRow, GrantRow, VIEW_COLUMNS, ViewRow, credentials_of, grant_columns, like_pattern,
    view_of,
};
use crate::model::{CredentialView, Grant, GrantId, GrantState};
use crate::store::crypto::Field;
use crate::store::{ListFilter, StoreError};

impl PgStore {
    /// See [`crate::store::Backend::get_grant`].
    pub(super) async fn grant(&self, id: GrantId) -> Result<Option<Grant>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let Some((row, credentials)) = rows_of(&mut conn, id).await? else {
            return Ok(None);
        };
        drop(conn);
        self.grant_of_rows(row, credentials).map(Some)
    }

    /// A grant with its refresh tokens opened, from its rows.
    pub(super) fn grant_of_rows(
        &self,
        row: GrantRow,
        credentials: Vec<CredentialRow>,
    ) -> Result<Grant, StoreError> {
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
        Ok(Grant {
            state,
            refresh_token,
            previous_refresh_token,
        })
    }

    /// The grant as `conn` sees it (inside a write, as written), access token
    /// opened, refresh tokens left sealed.
    pub(super) async fn state_in(
        &self,
        conn: &mut PgConnection,
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
        let id: Option<i64> = sqlx::query_scalar("SELECT grant_id FROM credentials WHERE id = $1")
            .bind(credential_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(id.map(GrantId))
    }

    /// See [`crate::store::Backend::get_credential`].
    pub(super) async fn view(&self, id: &str) -> Result<Option<CredentialView>, StoreError> {
        let sql = format!(
            "SELECT {VIEW_COLUMNS} FROM credentials c JOIN grants g ON g.id = c.grant_id WHERE c.id = $1"
        );
        let row: Option<ViewRow> = sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(view_of).transpose()
    }

    /// See [`crate::store::Backend::list_credentials`].
    pub(super) async fn list(
        &self,
        filter: &ListFilter,
        patterns: &[String],
    ) -> Result<Vec<CredentialView>, StoreError> {
        let status = filter.status.map(|s| s.as_str());
        let patterns: Vec<String> = patterns.iter().map(|p| like_pattern(p)).collect();
        let sql = format!(
            "SELECT {VIEW_COLUMNS}
             FROM credentials c JOIN grants g ON g.id = c.grant_id
             WHERE ($1::text IS NULL OR g.status = $1)
               AND ($2::text IS NULL OR g.provider = $2)
               AND ($3::text IS NULL OR c.id > $3)
               AND c.id LIKE ANY ($4::text[])
             ORDER BY c.id
             LIMIT $5"
        );
        let rows: Vec<ViewRow> = sqlx::query_as(&sql)
            .bind(status)
            .bind(filter.provider.as_deref())
            .bind(filter.after.as_deref())
            .bind(&patterns)
            .bind(i64::from(filter.limit))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(view_of).collect()
    }

    /// See [`crate::store::Backend::grant_by_refresh_token`].
    pub(super) async fn grant_holding(
        &self,
        provider: &str,
        refresh_token: &secrecy::SecretString,
    ) -> Result<Option<GrantId>, StoreError> {
        let hash = self.cipher.lookup_hash(provider, refresh_token);
        let id: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM grants WHERE provider = $1 AND refresh_token_hash = $2",
        )
        .bind(provider)
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(id.map(GrantId))
    }
}

/// The grant's row and its credentials' rows, as `conn` sees them.
pub(super) async fn rows_of(
    conn: &mut PgConnection,
    id: GrantId,
) -> Result<Option<(GrantRow, Vec<CredentialRow>)>, StoreError> {
    let row: Option<GrantRow> = sqlx::query_as(concat!(
        "SELECT ",
        grant_columns!(),
        " FROM grants WHERE id = $1"
    ))
    .bind(id.0)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let credentials = credentials_of_grant(conn, id).await?;
    Ok(Some((row, credentials)))
}

pub(super) async fn credentials_of_grant(
    conn: &mut PgConnection,
    id: GrantId,
) -> Result<Vec<CredentialRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, grant_id, extras FROM credentials WHERE grant_id = $1 ORDER BY id",
    )
    .bind(id.0)
    .fetch_all(&mut *conn)
    .await?)
}
