//! The vocabulary of the store seam: what callers hand a [`Backend`] and
//! what it answers. Plain data, the same for every backend.
//!
//! [`Backend`]: super::Backend

use secrecy::SecretString;

use crate::clock::UnixMillis;
use crate::model::{AccessToken, CredentialExtras, Extras, Grant, GrantId, GrantState, Status};

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
    /// caller-supplied one): the credential view's `last_refresh_at`.
    pub last_refresh_at: Option<UnixMillis>,
    /// The first refresh was tried and failed for a reason that says nothing
    /// against the refresh token (the provider was down): stored with the
    /// grant as one failure with this error, retried at `next_refresh_at`.
    pub failure: Option<&'a str>,
}

impl NewCredential<'_> {
    /// The grant a new credential creates, as written: the same for every
    /// backend.
    pub fn initial_state(&self, id: GrantId) -> GrantState {
        GrantState {
            id,
            provider: self.provider.to_owned(),
            status: Status::Active,
            access: self.access.cloned(),
            scope: self.scope.map(str::to_owned),
            application_calendar_id: self.application_calendar_id.map(str::to_owned),
            generation: 0,
            last_refresh_at: self.last_refresh_at,
            next_refresh_at: self.next_refresh_at,
            consecutive_failures: i64::from(self.failure.is_some()),
            last_error: self.failure.map(str::to_owned),
            credentials: vec![CredentialExtras {
                id: self.id.to_owned(),
                extras: self.extras.clone(),
            }],
        }
    }
}

#[derive(Debug, Clone)]
pub struct PutOutcome {
    /// No credential had this id before.
    pub created: bool,
    /// The refresh token was already held by this grant (Cronofy linked accounts).
    pub linked: bool,
    /// The credential used to point at this grant, which no credential uses any more
    /// and which was therefore deleted.
    pub orphaned_grant: Option<GrantId>,
    /// The grant the credential now points at, as written (every credential
    /// of it included): what the cache publishes.
    pub state: GrantState,
}

impl PutOutcome {
    pub fn grant_id(&self) -> GrantId {
        self.state.id
    }
}

/// A successful refresh, to be written with compare-and-set.
#[derive(Debug, Clone)]
pub struct TokenCommit {
    pub grant_id: GrantId,
    /// The generation the refresh read; the write happens only if the grant
    /// is still at it.
    pub expected_generation: i64,
    /// The refresh token the provider sent back (or the one that was used);
    /// `None` keeps the grant's refresh token.
    pub refresh_token: Option<SecretString>,
    pub access: AccessToken,
    /// `None` keeps the grant's scope.
    pub scope: Option<String>,
    /// Merged over every credential's extras, field by field.
    pub extras: Extras,
    pub next_refresh_at: UnixMillis,
}

// The large variant is the common one: boxing it would allocate on every
// commit to save stack space in the rare conflict.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum CommitOutcome {
    /// Written: the grant as it now stands (new generation, credentials
    /// with their merged extras), ready to publish.
    Written(GrantState),
    /// Someone else wrote the grant first (or deleted it); nothing was written.
    Conflict,
}

/// A refresh lease: the right to call the provider for one grant until it
/// expires. See [`super::Backend::claim`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub grant_id: GrantId,
    /// The fencing generation: the grant's generation when the lease was
    /// taken. Writes made under the lease apply only while the grant is
    /// still at it.
    pub generation: i64,
}

// As for `CommitOutcome`: the large variant is the common one.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Claim {
    /// The lease is ours; `grant` was read after it was taken, so its
    /// generation is the lease's.
    Acquired { lease: Lease, grant: Grant },
    /// Another owner holds an unexpired lease.
    Held { until: UnixMillis },
    /// The grant no longer exists.
    Gone,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteOutcome {
    pub grant_id: GrantId,
    /// The last credential of its grant went, and the grant with it.
    pub grant_deleted: bool,
}

/// Rows changed since a change number, for a cache to catch up with other writers.
#[derive(Debug, Default)]
pub struct Changes {
    /// The change number these changes bring the reader up to.
    pub seq: i64,
    /// Every grant written since (tokens, status, credentials added, moved
    /// or changed), whole.
    pub grants: Vec<GrantState>,
    pub deleted_credentials: Vec<String>,
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

/// A grant as stored, tokens still sealed: what `copy-store` moves between
/// databases. Sealed values open in the target because both use the same
/// key and the associated data is the grant id and column, not the backend.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SealedGrant {
    pub id: i64,
    pub provider: String,
    pub status: String,
    pub refresh_token: Vec<u8>,
    pub refresh_token_hash: Vec<u8>,
    pub previous_refresh_token: Option<Vec<u8>>,
    pub access_token: Option<Vec<u8>>,
    pub token_type: String,
    pub scope: Option<String>,
    pub expires_at: Option<i64>,
    pub lifetime_secs: Option<i64>,
    pub application_calendar_id: Option<String>,
    pub generation: i64,
    pub last_refresh_at: Option<i64>,
    pub next_refresh_at: Option<i64>,
    pub consecutive_failures: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// In id order.
    #[sqlx(skip)]
    pub credentials: Vec<SealedCredential>,
}

/// A credential as stored (extras as their JSON text).
#[derive(Debug, Clone)]
pub struct SealedCredential {
    pub id: String,
    pub extras: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The columns of a [`SealedGrant`], for a query that reads one.
pub(super) const SEALED_GRANT_COLUMNS: &str = "id, provider, status, refresh_token, \
     refresh_token_hash, previous_refresh_token, access_token, token_type, scope, expires_at, \
     lifetime_secs, application_calendar_id, generation, last_refresh_at, next_refresh_at, \
     consecutive_failures, last_error, created_at, updated_at";

/// Puts each credential row `(id, grant_id, extras, created_at, updated_at)`
/// (in id order) into its grant.
pub(super) fn attach_credentials(
    grants: &mut [SealedGrant],
    rows: Vec<(String, i64, String, i64, i64)>,
) {
    let index: std::collections::HashMap<i64, usize> =
        grants.iter().enumerate().map(|(i, g)| (g.id, i)).collect();
    for (id, grant_id, extras, created_at, updated_at) in rows {
        if let Some(&i) = index.get(&grant_id) {
            grants[i].credentials.push(SealedCredential {
                id,
                extras,
                created_at,
                updated_at,
            });
        }
    }
}
