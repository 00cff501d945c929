//! The whole database, read once at start to fill the cache.
//!
//! One joined query streams the grants in id order with their credentials,
//! reading only the columns the cache needs (never a refresh token), and
//! each grant is handed to the caller as soon as it is complete: memory
//! stays that of one grant however many the database holds, and the access
//! tokens are opened on the caller's thread while SQLite's thread reads on.

use futures::TryStreamExt;

use super::crypto::Field;
use super::write::parse_extras;
use super::{Store, StoreError};
use crate::store::model::*;

/// A grant row joined with one of its credentials (none: a grant left
/// without credentials, which the cache drops from the schedule).
struct CacheRow {
    id: i64,
    provider: String,
    status: String,
    access_token: Option<Vec<u8>>,
    token_type: String,
    scope: Option<String>,
    expires_at: Option<i64>,
    lifetime_secs: Option<i64>,
    application_calendar_id: Option<String>,
    generation: i64,
    last_refresh_at: Option<i64>,
    next_refresh_at: Option<i64>,
    consecutive_failures: i64,
    last_error: Option<String>,
    credential_id: Option<String>,
    extras: Option<String>,
}

impl Store {
    /// Calls `each` with every grant (access token opened, refresh tokens
    /// left out, credentials in id order), in grant id order, streaming;
    /// returns the change number they reflect (read in the same transaction).
    pub async fn load_each(&self, mut each: impl FnMut(GrantState)) -> Result<i64, StoreError> {
        let mut tx = self.pool().begin().await?;
        let seq = sqlx::query_scalar!("SELECT seq FROM change_counter WHERE id = 0")
            .fetch_one(&mut *tx)
            .await?;
        {
            let mut rows = sqlx::query_as!(
                CacheRow,
                r#"SELECT g.id, g.provider, g.status, g.access_token, g.token_type, g.scope,
                          g.expires_at, g.lifetime_secs, g.application_calendar_id, g.generation,
                          g.last_refresh_at, g.next_refresh_at, g.consecutive_failures,
                          g.last_error, c.id AS "credential_id?", c.extras AS "extras?"
                   FROM grants g LEFT JOIN credentials c ON c.grant_id = g.id
                   ORDER BY g.id, c.id"#
            )
            .fetch(&mut *tx);
            let mut current: Option<GrantState> = None;
            while let Some(row) = rows.try_next().await? {
                if let Some(done) = current.take_if(|g| g.id.0 != row.id) {
                    each(done);
                }
                let credential = match (&row.credential_id, &row.extras) {
                    (Some(id), Some(extras)) => Some(CredentialExtras {
                        id: id.clone(),
                        extras: parse_extras(extras)?,
                    }),
                    _ => None,
                };
                let grant = match &mut current {
                    Some(g) => g,
                    None => current.insert(self.cache_state(row)?),
                };
                grant.credentials.extend(credential);
            }
            if let Some(done) = current {
                each(done);
            }
        }
        tx.commit().await?;
        Ok(seq)
    }

    /// Every grant at once: [`Store::load_each`] collected (tests, tools).
    pub async fn load_all(&self) -> Result<(i64, Vec<GrantState>), StoreError> {
        let mut grants = Vec::new();
        let seq = self.load_each(|g| grants.push(g)).await?;
        Ok((seq, grants))
    }

    fn cache_state(&self, row: CacheRow) -> Result<GrantState, StoreError> {
        let access = match (row.access_token, row.expires_at) {
            (Some(sealed), Some(expires_at)) => Some(AccessToken {
                token: self
                    .cipher()
                    .open_secret(row.id, Field::AccessToken, &sealed)?,
                token_type: row.token_type,
                expires_at,
                lifetime_secs: row.lifetime_secs.unwrap_or(0),
            }),
            _ => None,
        };
        let status = Status::parse(&row.status)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown status {:?}", row.status)))?;
        Ok(GrantState {
            id: GrantId(row.id),
            status,
            provider: row.provider,
            access,
            scope: row.scope,
            application_calendar_id: row.application_calendar_id,
            generation: row.generation,
            last_refresh_at: row.last_refresh_at,
            next_refresh_at: row.next_refresh_at,
            consecutive_failures: row.consecutive_failures,
            last_error: row.last_error,
            credentials: Vec::with_capacity(1),
        })
    }
}
