//! The map's slot: the key an entry is found by (its credential id), and
//! beside it the few fields counted over all entries (`Meta`).

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use super::TokenEntry;
use crate::clock::UnixMillis;
use crate::model::Status;

/// The map's key: an entry, hashed and compared by its credential id, so a
/// lookup by `&str` finds it.
pub(super) struct Key(pub(super) Arc<TokenEntry>);

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.id().hash(state)
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.0.id() == other.0.id()
    }
}

impl Eq for Key {}

impl Borrow<str> for Key {
    fn borrow(&self) -> &str {
        self.0.id()
    }
}

/// foldhash: seeded per process and several times faster than SipHash on
/// short ids; credential ids are chosen by trusted (`manage`) clients only.
pub(super) type Hashing = foldhash::fast::RandomState;

/// What is counted over all entries (STATUS=, metrics, the refresh
/// budget), kept in the map's slot beside the key: a count walks the table
/// in order instead of following a million pointers to scattered entries
/// (170 ms → a few ms). 24 bytes (a slot with its key: 32).
#[derive(Debug)]
pub(super) struct Meta {
    /// `i64::MAX` without a token.
    pub(super) expires_at: UnixMillis,
    pub(super) failures: u32,
    /// When the credential was last handed out, in Unix seconds (0: never).
    /// The hand-out path's one write (`usage`).
    pub(super) handed_out: AtomicU32,
    /// The token's lifetime (what one refresh buys), 0 without a token.
    pub(super) lifetime_secs: u32,
    /// Index into [`Cache::providers`](super::Cache::providers), as in the
    /// entry (kept here for scans).
    pub(super) provider: u8,
    /// [`NEEDS_REAUTH`], [`LINKED`], [`REFRESHING`]: three flags in one
    /// byte keep the slot at 32 bytes.
    pub(super) flags: u8,
    /// The refresh budget does not keep this credential's grant warm.
    pub(super) lapsed: AtomicBool,
}

/// [`Meta::flags`]: the grant's status is [`Status::NeedsReauth`].
pub(super) const NEEDS_REAUTH: u8 = 1;
/// [`Meta::flags`]: the grant has other credentials.
pub(super) const LINKED: u8 = 2;
/// [`Meta::flags`]: a provider call of the grant's refresh is under way in
/// this process
/// ([`Cache::set_refreshing`](super::Cache::set_refreshing)); the next
/// publish of the entry clears it.
pub(super) const REFRESHING: u8 = 4;

impl Meta {
    /// The meta of a new entry; what the budget recorded carries over from
    /// the entry it replaces.
    pub(super) fn of(e: &TokenEntry, old: Option<&Meta>) -> Meta {
        let relaxed = |a: &AtomicU32| a.load(Ordering::Relaxed);
        Meta {
            expires_at: e.access.map_or(UnixMillis::MAX, |a| a.expires_at),
            failures: e.consecutive_failures().clamp(0, i64::from(u32::MAX)) as u32,
            handed_out: AtomicU32::new(old.map_or(0, |m| relaxed(&m.handed_out))),
            lifetime_secs: e.access.map_or(0, |a| a.lifetime_secs),
            provider: u8::try_from(e.provider).unwrap_or(u8::MAX),
            flags: if e.status == Status::NeedsReauth {
                NEEDS_REAUTH
            } else {
                0
            } | if e.linked { LINKED } else { 0 },
            lapsed: AtomicBool::new(old.is_some_and(|m| m.lapsed.load(Ordering::Relaxed))),
        }
    }

    pub(super) fn status(&self) -> Status {
        if self.flags & NEEDS_REAUTH != 0 {
            Status::NeedsReauth
        } else {
            Status::Active
        }
    }

    pub(super) fn linked(&self) -> bool {
        self.flags & LINKED != 0
    }

    pub(super) fn refreshing(&self) -> bool {
        self.flags & REFRESHING != 0
    }
}
