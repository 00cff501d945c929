//! The in-memory token cache the API serves from.
//!
//! Only the refresher publishes into it, and only after the database write
//! that made a token durable. Each credential's entry is immutable and
//! replaced whole (an `Arc` swap in a sharded map), so a reader never sees
//! half an update and never waits on a refresh. The JSON body of the token
//! response is rendered at publish time, up to the one field that changes
//! with the clock (`expires_in`), so handing a token out is a map lookup
//! and a few byte copies.
//!
//! Memory matters at a million credentials: an entry is one allocation with
//! its access token inline, the body holds the token (no second copy), ids
//! are shared between the map and the grant's member list, provider names
//! are interned, and a grant's single member needs no list of its own.

mod render;

use std::sync::{Arc, Mutex};

use dashmap::DashMap;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::clock::UnixMillis;
use crate::store::{GrantId, GrantState, Status};
use render::{json_str, render};

/// A credential as the API sees it. Never mutated: replaced whole.
#[derive(Debug)]
pub struct TokenEntry {
    pub grant_id: GrantId,
    pub provider: Arc<str>,
    pub status: Status,
    pub generation: i64,
    pub access: Option<CachedAccess>,
    pub last_refresh_at: Option<UnixMillis>,
    pub next_refresh_at: Option<UnixMillis>,
    pub consecutive_failures: i64,
    pub last_error: Option<Box<str>>,
}

/// The access token with its response body ready to send.
#[derive(Clone)]
pub struct CachedAccess {
    pub expires_at: UnixMillis,
    pub lifetime_secs: i64,
    /// `{"credential_id":...,"access_token":...,...extras` without the closing
    /// brace: the handler appends `expires_in` (and `warnings`) and `}`.
    body_prefix: SecretString,
    /// Where the token (as a JSON string, quotes included) sits in the body.
    token_at: (u32, u32),
}

impl std::fmt::Debug for CachedAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedAccess")
            .field("token", &"[REDACTED]")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl CachedAccess {
    pub fn body_prefix(&self) -> &str {
        self.body_prefix.expose_secret()
    }

    /// Milliseconds left at `now` (negative once expired).
    pub fn remaining_ms(&self, now: UnixMillis) -> i64 {
        self.expires_at - now
    }

    /// Is `candidate` this access token? Compared in constant time (for a
    /// given length), on the JSON forms, which are equal exactly when the
    /// tokens are.
    pub fn is_token(&self, candidate: &str) -> bool {
        let (start, end) = (self.token_at.0 as usize, self.token_at.1 as usize);
        let ours = &self.body_prefix().as_bytes()[start..end];
        let theirs = zeroize::Zeroizing::new(json_str(candidate));
        bool::from(ours.ct_eq(theirs.as_bytes()))
    }
}

#[derive(Debug, Default)]
pub struct Cache {
    entries: DashMap<Arc<str>, Arc<TokenEntry>>,
    /// The credentials of each grant, to publish a refresh to all of them.
    members: DashMap<GrantId, Members>,
    /// Provider names, shared by every entry of a provider. A std mutex:
    /// held for a short search of a handful of names.
    providers: Mutex<Vec<Arc<str>>>,
}

/// A grant's credential ids; almost always one, which needs no list.
#[derive(Debug, Clone)]
enum Members {
    One(Arc<str>),
    Many(Vec<Arc<str>>),
}

impl Members {
    fn ids(&self) -> &[Arc<str>] {
        match self {
            Members::One(id) => std::slice::from_ref(id),
            Members::Many(ids) => ids,
        }
    }
}

impl Cache {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, credential_id: &str) -> Option<Arc<TokenEntry>> {
        self.entries
            .get(credential_id)
            .map(|e| Arc::clone(e.value()))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The grant's credentials as last published.
    pub fn members(&self, grant_id: GrantId) -> Vec<Arc<str>> {
        self.members
            .get(&grant_id)
            .map(|m| m.value().ids().to_vec())
            .unwrap_or_default()
    }

    /// Publishes a grant as the database now holds it: every credential of
    /// the grant gets a new entry, and credentials that left it lose theirs
    /// (unless they already moved to another grant).
    pub fn publish(&self, grant: &GrantState) {
        let provider = self.provider(&grant.provider);
        let ids: Vec<Arc<str>> = grant
            .credentials
            .iter()
            .map(|c| match self.entries.get(c.id.as_str()) {
                Some(existing) => Arc::clone(existing.key()),
                None => Arc::from(c.id.as_str()),
            })
            .collect();
        for (id, cred) in ids.iter().zip(&grant.credentials) {
            let entry = TokenEntry {
                grant_id: grant.id,
                provider: Arc::clone(&provider),
                status: grant.status,
                generation: grant.generation,
                access: grant
                    .access
                    .as_ref()
                    .map(|a| render(&cred.id, a, grant.scope.as_deref(), &cred.extras)),
                last_refresh_at: grant.last_refresh_at,
                next_refresh_at: grant.next_refresh_at,
                consecutive_failures: grant.consecutive_failures,
                last_error: grant.last_error.as_deref().map(Box::from),
            };
            self.entries.insert(Arc::clone(id), Arc::new(entry));
        }
        let members = match <[Arc<str>; 1]>::try_from(ids) {
            Ok([one]) => Members::One(one),
            Err(ids) => Members::Many(ids),
        };
        let current = members.clone();
        let previous = self.members.insert(grant.id, members);
        for gone in previous.iter().flat_map(Members::ids) {
            if !current.ids().contains(gone) {
                self.entries.remove_if(gone, |_, e| e.grant_id == grant.id);
            }
        }
    }

    /// Updates the health of a grant's entries (failures, error, next attempt,
    /// status) without touching the token.
    pub fn set_health(
        &self,
        grant_id: GrantId,
        status: Status,
        consecutive_failures: i64,
        last_error: Option<&str>,
        next_refresh_at: Option<UnixMillis>,
    ) {
        for id in self.members(grant_id) {
            let Some(old) = self.get(&id) else { continue };
            let entry = TokenEntry {
                grant_id: old.grant_id,
                provider: Arc::clone(&old.provider),
                status,
                generation: old.generation,
                access: old.access.clone(),
                last_refresh_at: old.last_refresh_at,
                next_refresh_at,
                consecutive_failures,
                last_error: last_error.map(Box::from),
            };
            self.entries.insert(id, Arc::new(entry));
        }
    }

    pub fn remove_credential(&self, credential_id: &str) {
        let Some((_, entry)) = self.entries.remove(credential_id) else {
            return;
        };
        let mut emptied = false;
        if let Some(mut m) = self.members.get_mut(&entry.grant_id) {
            let mut ids = m.ids().to_vec();
            ids.retain(|id| id.as_ref() != credential_id);
            emptied = ids.is_empty();
            *m = Members::Many(ids);
        }
        if emptied {
            self.members
                .remove_if(&entry.grant_id, |_, m| m.ids().is_empty());
        }
    }

    pub fn remove_grant(&self, grant_id: GrantId) {
        if let Some((_, ids)) = self.members.remove(&grant_id) {
            for id in ids.ids() {
                self.entries.remove_if(id, |_, e| e.grant_id == grant_id);
            }
        }
    }

    /// The soonest expiry of any active access token (for metrics).
    pub fn earliest_expiry(&self) -> Option<UnixMillis> {
        self.entries
            .iter()
            .filter(|e| e.status == Status::Active)
            .filter_map(|e| e.access.as_ref().map(|a| a.expires_at))
            .min()
    }

    /// Entries by status, counted per grant (for STATUS= and metrics).
    pub fn grant_counts(&self, failing_after: i64) -> GrantCounts {
        let mut counts = GrantCounts::default();
        for m in self.members.iter() {
            let Some(id) = m.value().ids().first() else {
                continue;
            };
            let Some(e) = self.get(id) else { continue };
            match e.status {
                Status::NeedsReauth => counts.needs_reauth += 1,
                Status::Active if e.consecutive_failures >= failing_after => counts.failing += 1,
                Status::Active => counts.active += 1,
            }
        }
        counts
    }

    /// The one shared copy of a provider's name.
    fn provider(&self, name: &str) -> Arc<str> {
        let mut known = self.providers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = known.iter().find(|p| p.as_ref() == name) {
            return Arc::clone(p);
        }
        let p: Arc<str> = Arc::from(name);
        known.push(Arc::clone(&p));
        p
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GrantCounts {
    pub active: u64,
    pub failing: u64,
    pub needs_reauth: u64,
}

#[cfg(test)]
mod tests;
