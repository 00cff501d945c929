//! The change feed a member follows, and the full load at start. Both read
//! in one `REPEATABLE READ` snapshot, so the change number they return is
//! exactly what the rows they return reflect.

use std::collections::HashMap;

use sqlx::postgres::PgPool;
use sqlx::{FromRow, Postgres, Transaction};

use super::PgStore;
use super::rows::{
    CredentialRow, GrantRow, credentials_of, grant_columns, parse_extras, parse_status,
};
use crate::model::{AccessToken, CredentialExtras, GrantId, GrantState};
use crate::store::crypto::Field;
use crate::store::{Changes, StoreError};

/// Grants per page of the full load.
pub(super) const PAGE: i64 = 4096;

/// One credential of a grant (none: a grant without credentials), with the
/// grant's columns the cache needs (never a refresh token).
#[derive(FromRow)]
struct LoadRow {
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

async fn snapshot(pool: &PgPool) -> Result<(Transaction<'static, Postgres>, i64), StoreError> {
    let mut tx = pool
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    let seq: i64 = sqlx::query_scalar("SELECT seq FROM change_counter WHERE id = 0")
        .fetch_one(&mut *tx)
        .await?;
    Ok((tx, seq))
}

impl PgStore {
    /// See [`crate::store::Backend::changes_since`].
    pub(super) async fn changes(&self, since: i64) -> Result<Changes, StoreError> {
        let (mut tx, seq) = snapshot(&self.pool).await?;
        if seq == since {
            tx.commit().await?;
            return Ok(Changes {
                seq,
                ..Changes::default()
            });
        }
        let grants: Vec<GrantRow> = sqlx::query_as(concat!(
            "SELECT ",
            grant_columns!(),
            " FROM grants
             WHERE change_seq > $1
                OR id IN (SELECT grant_id FROM credentials WHERE change_seq > $1)"
        ))
        .bind(since)
        .fetch_all(&mut *tx)
        .await?;
        let ids: Vec<i64> = grants.iter().map(|g| g.id).collect();
        let credentials: Vec<CredentialRow> = sqlx::query_as(
            "SELECT id, grant_id, extras FROM credentials WHERE grant_id = ANY($1) ORDER BY id",
        )
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
        let deleted_credentials: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM deleted_credentials WHERE change_seq > $1 ORDER BY id",
        )
        .bind(since)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut by_grant: HashMap<i64, Vec<CredentialRow>> = HashMap::with_capacity(grants.len());
        for c in credentials {
            by_grant.entry(c.grant_id).or_default().push(c);
        }
        let grants = grants
            .into_iter()
            .map(|row| {
                let creds = by_grant.remove(&row.id).unwrap_or_default();
                let mut state = self.grant_state(row)?;
                state.credentials = credentials_of(creds)?;
                Ok(state)
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Changes {
            seq,
            grants,
            deleted_credentials,
        })
    }

    /// [`crate::store::Backend::load_each`], `page_size` grants to a query.
    pub(super) async fn load_pages(
        &self,
        page_size: i64,
        each: &mut (dyn FnMut(GrantState) + Send),
    ) -> Result<i64, StoreError> {
        let (mut tx, seq) = snapshot(&self.pool).await?;
        let mut after = i64::MIN;
        loop {
            let rows: Vec<LoadRow> = sqlx::query_as(
                "SELECT g.id, g.provider, g.status, g.access_token, g.token_type, g.scope,
                        g.expires_at, g.lifetime_secs, g.application_calendar_id, g.generation,
                        g.last_refresh_at, g.next_refresh_at, g.consecutive_failures, g.last_error,
                        c.id AS credential_id, c.extras
                 FROM (SELECT * FROM grants WHERE id > $1 ORDER BY id LIMIT $2) g
                 LEFT JOIN credentials c ON c.grant_id = g.id
                 ORDER BY g.id, c.id",
            )
            .bind(after)
            .bind(page_size)
            .fetch_all(&mut *tx)
            .await?;
            let Some(last) = rows.last() else { break };
            after = last.id;
            let mut current: Option<GrantState> = None;
            for r in rows {
                if let Some(done) = current.take_if(|g| g.id.0 != r.id) {
                    each(done);
                }
                let credential = match (&r.credential_id, &r.extras) {
                    (Some(id), Some(extras)) => Some(CredentialExtras {
                        id: id.clone(),
                        extras: parse_extras(extras)?,
                    }),
                    _ => None,
                };
                let grant = match &mut current {
                    Some(g) => g,
                    None => current.insert(self.cache_state(r)?),
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

    /// How many grants there are (to size what the load fills).
    pub(super) async fn count(&self) -> Result<usize, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM grants")
            .fetch_one(&self.pool)
            .await?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    fn cache_state(&self, r: LoadRow) -> Result<GrantState, StoreError> {
        let access = match (r.access_token, r.expires_at) {
            (Some(sealed), Some(expires_at)) => {
                let (lifetime_secs, lifetime_issued) =
                    AccessToken::lifetime_from_stored(r.lifetime_secs.unwrap_or(0));
                Some(AccessToken {
                    token: self.cipher.open_secret(r.id, Field::AccessToken, &sealed)?,
                    token_type: r.token_type,
                    expires_at,
                    lifetime_secs,
                    lifetime_issued,
                })
            }
            _ => None,
        };
        Ok(GrantState {
            id: GrantId(r.id),
            status: parse_status(&r.status)?,
            provider: r.provider,
            access,
            scope: r.scope,
            application_calendar_id: r.application_calendar_id,
            generation: r.generation,
            last_refresh_at: r.last_refresh_at,
            next_refresh_at: r.next_refresh_at,
            consecutive_failures: r.consecutive_failures,
            last_error: r.last_error,
            credentials: Vec::with_capacity(1),
        })
    }
}
