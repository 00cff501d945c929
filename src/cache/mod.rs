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
//! Memory matters at a million credentials (bench/README.md has the
//! profile). An entry is two allocations: the entry (80 bytes) and its
//! text, which holds the response's values without their field names
//! (`render`) and starts with the credential id, so the map is a set of
//! entries keyed by that slice (no copy of the id), with the few fields
//! that are counted over all entries beside each key (24 bytes; `slot`).
//! Provider names are interned, and what only a failing grant has (failure
//! count, error, retry time) sits behind one pointer. There is no index from
//! grants to credentials: the refresher always holds the grant it publishes,
//! credential ids included, and what is counted per grant (metrics) is
//! counted from the entries.

mod entry;
mod render;
mod slot;
mod usage;

use std::collections::HashSet;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use crate::clock::UnixMillis;
use crate::model::{GrantId, GrantState, Status};
use entry::Health;
pub use entry::{CachedAccess, TokenEntry};
use render::{Rendered, render};
use slot::{Hashing, Key, Meta, REFRESHING};
pub use usage::Usage;

#[derive(Default)]
pub struct Cache {
    entries: DashMap<Key, Meta, Hashing>,
    /// The time a hand-out records, in Unix seconds: set every few seconds
    /// by the refresh budget's bookkeeping, so the hand-out path reads no clock.
    now_secs: AtomicU32,
    /// Provider names, indexed by [`TokenEntry::provider`]. A std mutex:
    /// held for a short search of a handful of names.
    providers: Mutex<Vec<Arc<str>>>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl Cache {
    pub fn new() -> Self {
        Self::default()
    }

    /// A cache with room for `credentials` entries from the start: the load
    /// then fills tables that never grow (each growth rehashes a shard,
    /// reading every entry's id from memory, and holds the old table and
    /// the new one at once).
    pub fn with_capacity(credentials: usize) -> Self {
        Cache {
            entries: DashMap::with_capacity_and_hasher(credentials, Hashing::default()),
            ..Self::default()
        }
    }

    pub fn get(&self, credential_id: &str) -> Option<Arc<TokenEntry>> {
        self.entries
            .get(credential_id)
            .map(|e| Arc::clone(&e.key().0))
    }

    /// The entry, and whether a refresh of its grant is calling the
    /// provider now: both read under one lock of the map's shard, so an
    /// entry read as not refreshing is never one a finished refresh has
    /// already replaced (the publish clears the flag with the swap).
    /// Recorded as handed out, like [`Cache::hand_out`].
    pub fn get_settled(&self, credential_id: &str) -> Option<(Arc<TokenEntry>, bool)> {
        let e = self.entries.get(credential_id)?;
        e.value().record_hand_out(&self.now_secs);
        Some((Arc::clone(&e.key().0), e.value().refreshing()))
    }

    /// Marks (or unmarks) the grant's entries as being refreshed: set
    /// before the provider call is sent, cleared by the publish of its
    /// result (or here, when the refresh ends otherwise). Hand-outs of a
    /// marked entry wait for the refresh: some servers revoke the old
    /// access token the moment they issue the new one.
    pub fn set_refreshing(&self, grant: &GrantState, on: bool) {
        for cred in &grant.credentials {
            if let Some(mut e) = self.entries.get_mut(cred.id.as_str())
                && e.key().0.grant_id == grant.id
            {
                let meta = e.value_mut();
                meta.flags = if on {
                    meta.flags | REFRESHING
                } else {
                    meta.flags & !REFRESHING
                };
            }
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The provider an entry's grant belongs to.
    pub fn provider_of(&self, entry: &TokenEntry) -> Arc<str> {
        let known = self.providers.lock().unwrap_or_else(|e| e.into_inner());
        known
            .get(usize::from(entry.provider))
            .map_or_else(|| Arc::from(""), Arc::clone)
    }

    /// Publishes a grant as the database now holds it: every credential of
    /// the grant gets a new entry. A credential that left the grant either
    /// moved to another grant, whose publication replaces its entry, or was
    /// deleted, which [`Cache::remove_credential`] handles.
    pub fn publish(&self, grant: &GrantState) {
        let provider = self.provider(&grant.provider);
        let health = Health::of(grant);
        for cred in &grant.credentials {
            let Rendered {
                text,
                id_end,
                access,
                ends,
            } = render(
                &cred.id,
                grant.access.as_ref(),
                grant.scope.as_deref(),
                &cred.extras,
            );
            self.put(TokenEntry {
                text,
                grant_id: grant.id,
                generation: grant.generation,
                access,
                health: health.clone(),
                ends,
                id_end,
                provider,
                status: grant.status,
                linked: grant.credentials.len() > 1,
                lifetime_issued: grant.access.as_ref().is_some_and(|a| a.lifetime_issued),
            });
        }
    }

    /// Updates the health of a grant's entries (failures, error, next
    /// attempt, status) without touching the token.
    pub fn set_health(&self, grant: &GrantState) {
        let health = Health::of(grant);
        for cred in &grant.credentials {
            let Some(old) = self.get(&cred.id).filter(|e| e.grant_id == grant.id) else {
                continue;
            };
            self.put(TokenEntry {
                text: old.text.clone(),
                grant_id: old.grant_id,
                generation: old.generation,
                access: old.access,
                health: health.clone(),
                ends: old.ends,
                id_end: old.id_end,
                provider: old.provider,
                status: grant.status,
                linked: old.linked,
                lifetime_issued: old.lifetime_issued,
            });
        }
    }

    /// Inserts or replaces (key and value together, under the shard's lock).
    fn put(&self, entry: TokenEntry) {
        let entry = Arc::new(entry);
        match self.entries.entry(Key(Arc::clone(&entry))) {
            Entry::Occupied(o) => {
                let meta = Meta::of(&entry, Some(o.get()));
                drop(o.replace_entry(meta));
            }
            Entry::Vacant(v) => drop(v.insert(Meta::of(&entry, None))),
        }
    }

    pub fn remove_credential(&self, credential_id: &str) {
        self.entries.remove(credential_id);
    }

    /// Drops every entry of a grant that no longer exists. A walk over all
    /// entries: grants vanish only when another process deletes them.
    pub fn remove_grant(&self, grant_id: GrantId) {
        self.entries.retain(|k, _| k.0.grant_id != grant_id);
    }

    /// The soonest expiry of any active access token (for metrics).
    pub fn earliest_expiry(&self) -> Option<UnixMillis> {
        self.entries
            .iter()
            .filter(|e| e.value().status() == Status::Active)
            .map(|e| e.value().expires_at)
            .filter(|&t| t != UnixMillis::MAX)
            .min()
    }

    /// Grants by status (for STATUS= and metrics), each counted once
    /// however many credentials share it.
    pub fn grant_counts(&self, failing_after: i64) -> GrantCounts {
        let mut counts = GrantCounts::default();
        let mut linked = HashSet::new();
        for e in self.entries.iter() {
            let m = e.value();
            if m.linked() && !linked.insert(e.key().0.grant_id) {
                continue;
            }
            match m.status() {
                Status::NeedsReauth => counts.needs_reauth += 1,
                Status::Active if i64::from(m.failures) >= failing_after => counts.failing += 1,
                Status::Active => counts.active += 1,
            }
        }
        counts
    }

    /// The index of a provider's name, added when new.
    fn provider(&self, name: &str) -> u16 {
        let mut known = self.providers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = known.iter().position(|p| p.as_ref() == name) {
            return i as u16;
        }
        known.push(Arc::from(name));
        (known.len() - 1) as u16
    }
}

impl Health {
    /// `None` for a healthy grant, which is almost every grant.
    fn of(grant: &GrantState) -> Option<Box<Health>> {
        let healthy = grant.status == Status::Active
            && grant.consecutive_failures == 0
            && grant.last_error.is_none();
        (!healthy).then(|| {
            Box::new(Health {
                consecutive_failures: grant.consecutive_failures,
                last_error: grant.last_error.as_deref().map(Box::from),
                next_refresh_at: grant.next_refresh_at,
            })
        })
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
