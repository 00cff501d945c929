//! The columns PostgreSQL reads the shared rows ([`crate::store::rows`])
//! with, and `LIKE` patterns.

use super::PgStore;
use crate::model::GrantState;
use crate::store::StoreError;
pub(super) use crate::store::rows::{
    CredentialRow, GrantRow, ViewRow, credentials_of, parse_extras, parse_status, view_of,
};

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
#[derive(sqlx::FromRow)]
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

/// The columns a [`ViewRow`] reads, `c` the credential and `g` its grant.
pub(super) const VIEW_COLUMNS: &str = "c.id, c.grant_id, g.provider, g.status, g.scope, \
     g.expires_at, g.last_refresh_at, g.next_refresh_at, g.consecutive_failures, g.last_error, \
     c.extras, c.created_at";

impl PgStore {
    /// Opens the access token; the refresh tokens stay sealed.
    pub(super) fn grant_state(&self, row: GrantRow) -> Result<GrantState, StoreError> {
        crate::store::rows::grant_state(&self.cipher, row)
    }
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
