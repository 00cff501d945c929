//! What the refresh budget needs from the cache: when each credential was
//! last handed out, recorded by the hand-out path with one relaxed atomic
//! store (and only when the second moved on, so a hot entry's cache line
//! stays shared between cores), and a walk over every entry that reads it
//! and marks grants lapsed (not kept warm).

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use super::{Cache, Meta, TokenEntry};
use crate::clock::UnixMillis;
use crate::model::{GrantId, Status};

impl Meta {
    /// Records a hand-out at `now_secs`: one relaxed store, and only when
    /// the second moved on.
    pub(super) fn record_hand_out(&self, now_secs: &std::sync::atomic::AtomicU32) {
        let now = now_secs.load(Relaxed);
        if self.handed_out.load(Relaxed) < now {
            self.handed_out.store(now, Relaxed);
        }
    }
}

impl Cache {
    /// The entry of `credential_id`, recorded as handed out now.
    pub fn hand_out(&self, credential_id: &str) -> Option<Arc<TokenEntry>> {
        let e = self.entries.get(credential_id)?;
        e.value().record_hand_out(&self.now_secs);
        Some(Arc::clone(&e.key().0))
    }

    /// The time [`Cache::hand_out`] records from now on (Unix seconds).
    pub fn set_now(&self, unix_secs: u32) {
        self.now_secs.store(unix_secs, Relaxed);
    }

    /// A hand-out recorded before (a restart): kept unless a later one is.
    pub fn restore_hand_out(&self, credential_id: &str, unix_secs: u32) {
        if let Some(e) = self.entries.get(credential_id) {
            e.value().handed_out.fetch_max(unix_secs, Relaxed);
        }
    }

    /// Whether the budget lets this credential's grant lapse.
    pub fn is_lapsed(&self, credential_id: &str) -> bool {
        self.entries
            .get(credential_id)
            .is_some_and(|e| e.value().lapsed.load(Relaxed))
    }

    /// The provider names [`Usage::provider`] indexes.
    pub fn provider_names(&self) -> Vec<Arc<str>> {
        self.providers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Calls `each` with every entry, in table order (no pointer is followed
    /// unless `each` asks for what only the entry holds).
    pub fn usage(&self, mut each: impl FnMut(Usage<'_>)) {
        for e in self.entries.iter() {
            each(Usage {
                entry: &e.key().0,
                meta: e.value(),
            });
        }
    }
}

/// One credential as the refresh budget sees it.
#[derive(Debug)]
pub struct Usage<'a> {
    entry: &'a Arc<TokenEntry>,
    meta: &'a Meta,
}

impl Usage<'_> {
    /// Index into [`Cache::provider_names`].
    pub fn provider(&self) -> usize {
        usize::from(self.meta.provider)
    }

    /// Active (refreshed in the background), failing or not.
    pub fn is_active(&self) -> bool {
        self.meta.status() == Status::Active
    }

    /// The grant has other credentials: count it once.
    pub fn is_linked(&self) -> bool {
        self.meta.linked()
    }

    /// Unix seconds; 0 when never handed out.
    pub fn handed_out(&self) -> u32 {
        self.meta.handed_out.load(Relaxed)
    }

    /// The token's lifetime; 0 without a token.
    pub fn lifetime_secs(&self) -> u32 {
        self.meta.lifetime_secs
    }

    pub fn expires_at(&self) -> Option<UnixMillis> {
        Some(self.meta.expires_at).filter(|&t| t != UnixMillis::MAX)
    }

    pub fn is_lapsed(&self) -> bool {
        self.meta.lapsed.load(Relaxed)
    }

    /// Marks the entry lapsed or warm; returns whether that changed it.
    pub fn set_lapsed(&self, lapsed: bool) -> bool {
        self.meta.lapsed.swap(lapsed, Relaxed) != lapsed
    }

    pub fn grant_id(&self) -> GrantId {
        self.entry.grant_id
    }

    pub fn credential_id(&self) -> &str {
        self.entry.id()
    }

    /// When refreshes failing with a retry scheduled are tried next.
    pub fn next_refresh_at(&self) -> Option<UnixMillis> {
        self.entry.next_refresh_at()
    }
}
