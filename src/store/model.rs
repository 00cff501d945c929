//! The records the store reads and writes.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::clock::UnixMillis;

/// The provider's extra fields (Cronofy: `account_id`, `sub`, `linking_profile`, ...).
pub type Extras = serde_json::Map<String, serde_json::Value>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct GrantId(pub i64);

impl std::fmt::Display for GrantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Active,
    /// The provider said the grant is dead (`invalid_grant`); a person must re-authorize.
    NeedsReauth,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::NeedsReauth => "needs_reauth",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "active" => Some(Status::Active),
            "needs_reauth" => Some(Status::NeedsReauth),
            _ => None,
        }
    }
}

/// An access token and what is known of its life.
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub token: SecretString,
    /// Lower-cased (`bearer`), whatever case the provider sent.
    pub token_type: String,
    pub expires_at: UnixMillis,
    /// `expires_in` as issued (or `refresh.max_lifetime_secs` when the provider
    /// sent none): the due-time formula works on it.
    pub lifetime_secs: i64,
}

/// A credential arriving with a refresh token: import, code exchange or
/// application calendar.
#[derive(Debug)]
pub struct NewCredential<'a> {
    pub id: &'a str,
    pub provider: &'a str,
    pub refresh_token: &'a SecretString,
    pub access: Option<&'a AccessToken>,
    pub scope: Option<&'a str>,
    pub extras: &'a Extras,
    pub application_calendar_id: Option<&'a str>,
    /// When the refresher should look at the grant next.
    pub next_refresh_at: Option<UnixMillis>,
    /// When the provider issued the access token, if it just did (not for a
    /// caller-supplied one): starts the forced-refresh window.
    pub last_refresh_at: Option<UnixMillis>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOutcome {
    /// No credential had this id before.
    pub created: bool,
    pub grant_id: GrantId,
    /// The refresh token was already held by this grant (Cronofy linked accounts).
    pub linked: bool,
    /// The credential used to point at this grant, which no credential uses any more
    /// and which was therefore deleted.
    pub orphaned_grant: Option<GrantId>,
}

/// A credential of a grant with the extras it sees.
#[derive(Debug, Clone, PartialEq)]
pub struct CredentialExtras {
    pub id: String,
    pub extras: Extras,
}

/// A grant without its refresh tokens: what the in-memory cache holds.
#[derive(Debug, Clone)]
pub struct GrantState {
    pub id: GrantId,
    pub provider: String,
    pub status: Status,
    pub access: Option<AccessToken>,
    pub scope: Option<String>,
    pub application_calendar_id: Option<String>,
    pub generation: i64,
    pub last_refresh_at: Option<UnixMillis>,
    pub next_refresh_at: Option<UnixMillis>,
    pub consecutive_failures: i64,
    pub last_error: Option<String>,
    pub credentials: Vec<CredentialExtras>,
}

/// A grant with its refresh tokens opened: what a refresh works on. Read
/// fresh from the database under the grant's lease, never kept around.
#[derive(Debug, Clone)]
pub struct Grant {
    pub state: GrantState,
    pub refresh_token: SecretString,
    pub previous_refresh_token: Option<SecretString>,
}

/// What `GET /v1/credentials` shows: never a token.
#[derive(Debug, Clone, PartialEq)]
pub struct CredentialView {
    pub id: String,
    pub grant_id: GrantId,
    pub provider: String,
    pub status: Status,
    pub scope: Option<String>,
    pub expires_at: Option<UnixMillis>,
    pub last_refresh_at: Option<UnixMillis>,
    pub next_refresh_at: Option<UnixMillis>,
    pub consecutive_failures: i64,
    pub last_error: Option<String>,
    pub extras: Extras,
    pub created_at: UnixMillis,
}

/// Filters and paging of a credential listing (id order).
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<Status>,
    pub provider: Option<String>,
    /// Only ids after this one: the last id of the previous page.
    pub after: Option<String>,
    pub limit: u32,
}

/// A successful refresh, to be written with compare-and-set.
#[derive(Debug)]
pub struct RefreshWrite<'a> {
    /// The refresh token the provider sent back, if it sent one; without it
    /// the grant keeps its refresh token.
    pub refresh_token: Option<&'a SecretString>,
    pub access: &'a AccessToken,
    pub scope: Option<&'a str>,
    /// Merged over every credential's extras, field by field.
    pub extras: &'a Extras,
    pub next_refresh_at: UnixMillis,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CasOutcome {
    /// Written; the grant is now at `generation` and its credentials see these extras.
    Written {
        generation: i64,
        credentials: Vec<CredentialExtras>,
    },
    /// Someone else wrote the grant first (or deleted it); nothing was written.
    Conflict,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseOutcome {
    Acquired,
    HeldUntil(UnixMillis),
    /// The grant no longer exists.
    Gone,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteOutcome {
    pub grant_id: GrantId,
    /// The last credential of its grant went, and the grant with it.
    pub grant_deleted: bool,
}

/// Rows changed since a change number, for a cache to catch up with other processes.
#[derive(Debug, Default)]
pub struct Changes {
    pub seq: i64,
    pub grants: Vec<GrantState>,
    pub deleted_credentials: Vec<String>,
}

/// `[A-Za-z0-9._:@-]{1,128}`: the credential ids SPEC §1 allows.
pub fn valid_credential_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'@' | b'-'))
}

/// Merges `update` over `base`, field by field: a field absent from `update` is kept.
pub fn merge_extras(base: &mut Extras, update: &Extras) {
    for (k, v) in update {
        base.insert(k.clone(), v.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_ids() {
        assert!(valid_credential_id("user-42@example.com"));
        assert!(valid_credential_id("a:b.c_d"));
        assert!(valid_credential_id(&"x".repeat(128)));
        assert!(!valid_credential_id(""));
        assert!(!valid_credential_id(&"x".repeat(129)));
        assert!(!valid_credential_id("a/b"));
        assert!(!valid_credential_id("a b"));
        assert!(!valid_credential_id("é"));
    }

    #[test]
    fn merge_keeps_absent_fields() {
        let mut base: Extras =
            serde_json::from_str(r#"{"sub":"acc_1","account_id":"a","linking_profile":{"p":1}}"#)
                .unwrap();
        let update: Extras = serde_json::from_str(r#"{"linking_profile":{"p":2}}"#).unwrap();
        merge_extras(&mut base, &update);
        assert_eq!(base["sub"], "acc_1");
        assert_eq!(base["linking_profile"]["p"], 2);
    }
}
