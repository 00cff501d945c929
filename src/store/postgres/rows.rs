//! Rows as PostgreSQL returns them (tokens still sealed), and turning them
//! into the model: the access token opened, refresh tokens left sealed
//! unless a refresh needs them.

use sqlx::FromRow;

use super::PgStore;
use crate::model::{
    AccessToken, CredentialExtras, CredentialView, Extras, GrantId, GrantState, Status,
};
use crate::store::StoreError;
use crate::store::crypto::Field;

/// The `grants` columns a [`GrantRow`] reads, in its order.
macro_rules! grant_columns {
    () => {
        "id, provider, status, refresh_token, previous_refresh_token, access_token, \
         token_type, scope, expires_at, lifetime_secs, application_calendar_id, \
         generation, last_refresh_at, next_refresh_at, consecutive_failures, last_error"
    };
}
pub(super) use grant_columns;

/// A grant's credentials as two arrays in id order (ids, extras), for a
/// query that reads `grants` as `g`: a grant and its credentials in one
/// row, so one round trip.
macro_rules! credential_arrays {
    () => {
        "ARRAY(SELECT c.id FROM credentials c WHERE c.grant_id = g.id ORDER BY c.id) \
             AS credential_ids, \
         ARRAY(SELECT c.extras FROM credentials c WHERE c.grant_id = g.id ORDER BY c.id) \
             AS credential_extras"
    };
}
pub(super) use credential_arrays;

/// A [`GrantRow`] with its credentials ([`credential_arrays`]).
#[derive(FromRow)]
pub(super) struct GrantWithCredentials {
    #[sqlx(flatten)]
    pub(super) grant: GrantRow,
    pub(super) credential_ids: Vec<String>,
    pub(super) credential_extras: Vec<String>,
}

impl GrantWithCredentials {
    /// The credentials as [`CredentialRow`]s.
    pub(super) fn split(self) -> (GrantRow, Vec<CredentialRow>) {
        let grant_id = self.grant.id;
        let credentials = self
            .credential_ids
            .into_iter()
            .zip(self.credential_extras)
            .map(|(id, extras)| CredentialRow {
                id,
                grant_id,
                extras,
            })
            .collect();
        (self.grant, credentials)
    }
}

/// A `grants` row as stored (tokens still sealed).
#[derive(FromRow)]
pub(super) struct GrantRow {
    pub(super) id: i64,
    pub(super) provider: String,
    pub(super) status: String,
    pub(super) refresh_token: Vec<u8>,
    pub(super) previous_refresh_token: Option<Vec<u8>>,
    pub(super) access_token: Option<Vec<u8>>,
    pub(super) token_type: String,
    pub(super) scope: Option<String>,
    pub(super) expires_at: Option<i64>,
    pub(super) lifetime_secs: Option<i64>,
    pub(super) application_calendar_id: Option<String>,
    pub(super) generation: i64,
    pub(super) last_refresh_at: Option<i64>,
    pub(super) next_refresh_at: Option<i64>,
    pub(super) consecutive_failures: i64,
    pub(super) last_error: Option<String>,
}

#[derive(FromRow)]
pub(super) struct CredentialRow {
    pub(super) id: String,
    pub(super) grant_id: i64,
    pub(super) extras: String,
}

/// A credential joined with its grant: what the API shows of it.
#[derive(FromRow)]
pub(super) struct ViewRow {
    id: String,
    grant_id: i64,
    provider: String,
    status: String,
    scope: Option<String>,
    expires_at: Option<i64>,
    last_refresh_at: Option<i64>,
    next_refresh_at: Option<i64>,
    consecutive_failures: i64,
    last_error: Option<String>,
    extras: String,
    created_at: i64,
}

/// The columns a [`ViewRow`] reads, `c` the credential and `g` its grant.
pub(super) const VIEW_COLUMNS: &str = "c.id, c.grant_id, g.provider, g.status, g.scope, \
     g.expires_at, g.last_refresh_at, g.next_refresh_at, g.consecutive_failures, g.last_error, \
     c.extras, c.created_at";

impl PgStore {
    /// Opens the access token; the refresh tokens stay sealed.
    pub(super) fn grant_state(&self, row: GrantRow) -> Result<GrantState, StoreError> {
        let access = match (row.access_token, row.expires_at) {
            (Some(sealed), Some(expires_at)) => {
                let (lifetime_secs, lifetime_issued) =
                    AccessToken::lifetime_from_stored(row.lifetime_secs.unwrap_or(0));
                Some(AccessToken {
                    token: self
                        .cipher
                        .open_secret(row.id, Field::AccessToken, &sealed)?,
                    token_type: row.token_type,
                    expires_at,
                    lifetime_secs,
                    lifetime_issued,
                })
            }
            _ => None,
        };
        Ok(GrantState {
            id: GrantId(row.id),
            status: parse_status(&row.status)?,
            provider: row.provider,
            access,
            scope: row.scope,
            application_calendar_id: row.application_calendar_id,
            generation: row.generation,
            last_refresh_at: row.last_refresh_at,
            next_refresh_at: row.next_refresh_at,
            consecutive_failures: row.consecutive_failures,
            last_error: row.last_error,
            credentials: Vec::new(),
        })
    }
}

pub(super) fn credentials_of(
    rows: Vec<CredentialRow>,
) -> Result<Vec<CredentialExtras>, StoreError> {
    rows.into_iter()
        .map(|c| {
            Ok(CredentialExtras {
                extras: parse_extras(&c.extras)?,
                id: c.id,
            })
        })
        .collect()
}

pub(super) fn parse_extras(text: &str) -> Result<Extras, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("credential extras: {e}")))
}

pub(super) fn parse_status(s: &str) -> Result<Status, StoreError> {
    Status::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown status {s:?}")))
}

pub(super) fn view_of(row: ViewRow) -> Result<CredentialView, StoreError> {
    Ok(CredentialView {
        status: parse_status(&row.status)?,
        extras: parse_extras(&row.extras)?,
        id: row.id,
        grant_id: GrantId(row.grant_id),
        provider: row.provider,
        scope: row.scope,
        expires_at: row.expires_at,
        last_refresh_at: row.last_refresh_at,
        next_refresh_at: row.next_refresh_at,
        consecutive_failures: row.consecutive_failures,
        last_error: row.last_error,
        created_at: row.created_at,
    })
}

/// A shell pattern (`*` any run, `?` one character; ids hold no other
/// special characters) as a `LIKE` pattern with `\` escaping.
pub(super) fn like_pattern(glob: &str) -> String {
    let mut out = String::with_capacity(glob.len() + 4);
    for c in glob.chars() {
        match c {
            '*' => out.push('%'),
            '?' => out.push('_'),
            '%' | '_' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn globs_become_like_patterns_with_literal_underscores() {
        assert_eq!(super::like_pattern("team_a.*"), "team\\_a.%");
        assert_eq!(super::like_pattern("a?b%"), "a_b\\%");
    }
}
