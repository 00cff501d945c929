//! Grants: one refresh token at one provider, shared by the credentials
//! that point at it, and the access token it last yielded.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::CredentialExtras;
use crate::clock::UnixMillis;

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
    /// sent none; for a token a caller imported, what was left of it): the
    /// due-time formula works on it.
    pub lifetime_secs: i64,
    /// The provider issued `lifetime_secs` (`expires_in` of an exchange or a
    /// refresh). Only such a lifetime bounds `min_ttl`: an imported token's
    /// remaining time or a configured maximum says nothing of what the
    /// provider issues next.
    pub lifetime_issued: bool,
}

impl AccessToken {
    /// `lifetime_secs` as a store keeps it, in one integer column: negative
    /// when the provider did not issue it.
    pub fn stored_lifetime(&self) -> i64 {
        if self.lifetime_issued {
            self.lifetime_secs
        } else {
            -self.lifetime_secs
        }
    }

    /// `(lifetime_secs, lifetime_issued)` from [`AccessToken::stored_lifetime`].
    /// Rows written before the sign meant anything read as issued.
    pub fn lifetime_from_stored(stored: i64) -> (i64, bool) {
        (stored.saturating_abs(), stored >= 0)
    }
}

/// A grant without its refresh tokens: what the in-memory cache holds and
/// what every write reports back as written.
#[derive(Debug, Clone)]
pub struct GrantState {
    pub id: GrantId,
    pub provider: String,
    pub status: Status,
    pub access: Option<AccessToken>,
    pub scope: Option<String>,
    pub application_calendar_id: Option<String>,
    /// Bumped by every write of the grant's tokens: a writer that read
    /// generation `g` writes only if the grant is still at `g`.
    pub generation: i64,
    pub last_refresh_at: Option<UnixMillis>,
    pub next_refresh_at: Option<UnixMillis>,
    pub consecutive_failures: i64,
    pub last_error: Option<String>,
    /// In credential id order.
    pub credentials: Vec<CredentialExtras>,
}

/// A grant with its refresh tokens opened: what a refresh works on. Read
/// fresh from the store under the grant's lease, never kept around.
#[derive(Debug, Clone)]
pub struct Grant {
    pub state: GrantState,
    pub refresh_token: SecretString,
    pub previous_refresh_token: Option<SecretString>,
}
