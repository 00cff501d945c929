//! A cache entry: one credential's token response, kept as its values
//! (see `render`), and what the API reads from it.

use std::num::NonZeroU32;

use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use super::render::{NAMES, NAMES_LEN, json_str};
use crate::clock::UnixMillis;
use crate::model::{GrantId, Status};

/// A credential as the API sees it. Never mutated: replaced whole.
pub struct TokenEntry {
    /// See [`super::render::render`]: the response's values up to `expires_in`, the
    /// credential id first.
    pub(super) text: SecretString,
    pub grant_id: GrantId,
    pub generation: i64,
    pub access: Option<CachedAccess>,
    pub(super) health: Option<Box<Health>>,
    /// Where the token type and the expiry end in `text` (the scope and
    /// the extras follow the expiry up to the end).
    pub(super) ends: [u32; 2],
    pub(super) id_end: u16,
    /// Index into [`super::Cache`]'s `providers`.
    pub(super) provider: u16,
    pub status: Status,
    /// The grant has other credentials (counted once per grant).
    pub(super) linked: bool,
    /// The provider issued the access token's lifetime (see
    /// [`crate::model::AccessToken::lifetime_issued`]).
    pub(super) lifetime_issued: bool,
}

/// What only a grant whose refreshes fail (or that needs re-authorization)
/// has.
#[derive(Debug, Clone)]
pub(super) struct Health {
    pub(super) consecutive_failures: i64,
    pub(super) last_error: Option<Box<str>>,
    pub(super) next_refresh_at: Option<UnixMillis>,
}

/// When the access token expires, and where it ends in the entry's text.
#[derive(Debug, Clone, Copy)]
pub struct CachedAccess {
    pub expires_at: UnixMillis,
    /// The token's lifetime (`u32::MAX` at most).
    pub(super) lifetime_secs: u32,
    /// The token as a JSON string, quotes included, runs from the end of the
    /// id to here (never zero, so an `Option` of this costs nothing more).
    pub(super) token_end: NonZeroU32,
}

impl CachedAccess {
    /// Milliseconds left at `now` (negative once expired).
    pub fn remaining_ms(&self, now: UnixMillis) -> i64 {
        self.expires_at - now
    }

    pub fn lifetime_secs(&self) -> i64 {
        i64::from(self.lifetime_secs)
    }
}

impl std::fmt::Debug for TokenEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenEntry")
            .field("id", &self.id())
            .field("grant_id", &self.grant_id)
            .field("status", &self.status)
            .field("generation", &self.generation)
            .field("access", &self.access)
            .field("health", &self.health)
            .finish_non_exhaustive()
    }
}

impl TokenEntry {
    pub fn id(&self) -> &str {
        &self.text.expose_secret()[1..usize::from(self.id_end) - 1]
    }

    /// The length of what [`TokenEntry::push_body_prefix`] appends.
    pub fn body_prefix_len(&self) -> usize {
        self.text.expose_secret().len() + NAMES_LEN
    }

    /// Appends `{"credential_id":...,"access_token":...,...extras` without
    /// the closing brace: the handler appends `expires_in` (and `warnings`)
    /// and `}`. Only meaningful when [`TokenEntry::access`] is set.
    pub fn push_body_prefix(&self, out: &mut Vec<u8>) {
        let text = self.text.expose_secret().as_bytes();
        let Some(access) = &self.access else {
            return;
        };
        let [type_end, expires_end] = self.ends.map(|e| e as usize);
        let id_end = usize::from(self.id_end);
        let token_end = access.token_end.get() as usize;
        // Written out rather than a loop: each name is then a copy of known
        // length (this runs on every hand-out).
        out.extend_from_slice(NAMES[0]);
        out.extend_from_slice(&text[..id_end]);
        out.extend_from_slice(NAMES[1]);
        out.extend_from_slice(&text[id_end..token_end]);
        out.extend_from_slice(NAMES[2]);
        out.extend_from_slice(&text[token_end..type_end]);
        out.extend_from_slice(NAMES[3]);
        out.extend_from_slice(&text[type_end..expires_end]);
        out.extend_from_slice(NAMES[4]);
        out.extend_from_slice(&text[expires_end..]);
    }

    /// [`TokenEntry::push_body_prefix`] as a string of its own.
    pub fn body_prefix(&self) -> String {
        let mut out = Vec::with_capacity(self.body_prefix_len());
        self.push_body_prefix(&mut out);
        String::from_utf8(out).expect("the text and the names are UTF-8")
    }

    /// The token as a JSON string, quotes included.
    fn token_json(&self) -> Option<&str> {
        let access = self.access.as_ref()?;
        let text = self.text.expose_secret();
        Some(&text[usize::from(self.id_end)..access.token_end.get() as usize])
    }

    /// Is `candidate` this entry's access token? Compared in constant time
    /// (for a given length), on the JSON forms, which are equal exactly when
    /// the tokens are.
    pub fn is_token(&self, candidate: &str) -> bool {
        let Some(ours) = self.token_json() else {
            return false;
        };
        let theirs = zeroize::Zeroizing::new(json_str(candidate));
        bool::from(ours.as_bytes().ct_eq(theirs.as_bytes()))
    }

    /// The access token's lifetime, if the provider issued it: the longest
    /// `min_ttl` that can be met is known only then.
    pub fn issued_lifetime_secs(&self) -> Option<i64> {
        self.access
            .filter(|_| self.lifetime_issued)
            .map(|a| a.lifetime_secs())
    }

    /// The access token itself, for the proxy's `Authorization` header.
    pub fn access_token(&self) -> Option<SecretString> {
        serde_json::from_str::<String>(self.token_json()?)
            .ok()
            .map(SecretString::from)
    }

    pub fn consecutive_failures(&self) -> i64 {
        self.health.as_ref().map_or(0, |h| h.consecutive_failures)
    }

    pub fn last_error(&self) -> Option<&str> {
        self.health.as_ref()?.last_error.as_deref()
    }

    /// When the refresher tries again; known while refreshes fail.
    pub fn next_refresh_at(&self) -> Option<UnixMillis> {
        self.health.as_ref()?.next_refresh_at
    }
}
