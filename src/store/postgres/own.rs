//! The refresh results this store committed, kept by change number until
//! the change feed has gone past them, so that the feed does not read back
//! from the database what this member has just written.
//!
//! Every commit notifies every member, its writer included, whose follower
//! then reads the feed. In a refresh storm that read-back was a snapshot
//! transaction of five statements per commit batch, a third of the
//! backends' work after the claims and commits themselves, and tokend
//! opened each access token it had just sealed. When every change number
//! between the follower's and the database's is one of this store's group
//! commits, what the feed would read is exactly what those commits wrote (a
//! grant's row at the last number is its last write here: no other writer
//! took a number in between), and it is answered from here.
//!
//! Only group commits are kept: they are the writes whose result is known
//! whole (`GrantState` as written, credentials included). Any other number
//! in the range (another member's write, a failure, a new credential, a
//! number whose commit is not recorded yet) sends the feed to the database.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crate::model::GrantState;

/// Change numbers kept at most. Past it (a process whose follower does not
/// run, such as a CLI command) they are dropped, and the feed reads.
const MAX_KEPT: usize = 1024;

/// See the module documentation.
#[derive(Debug, Default)]
pub(super) struct OwnCommits {
    /// The grants written at each change number. A std mutex: held for a
    /// map operation, never across an await.
    by_seq: Mutex<BTreeMap<i64, Vec<GrantState>>>,
}

impl OwnCommits {
    /// This store committed `written` as change number `seq`.
    pub(super) fn record(&self, seq: i64, written: Vec<GrantState>) {
        let mut by_seq = self.lock();
        if by_seq.len() >= MAX_KEPT {
            by_seq.clear();
        }
        by_seq.insert(seq, written);
    }

    /// The grants written after `since` up to `seq`, the latest state of
    /// each, when every number in between is a commit of this store
    /// (`None`: read the feed). Forgets every number up to `seq` either way:
    /// the follower is past them.
    pub(super) fn take(&self, since: i64, seq: i64) -> Option<Vec<GrantState>> {
        let mut by_seq = self.lock();
        let later = by_seq.split_off(&seq.saturating_add(1));
        let upto = std::mem::replace(&mut *by_seq, later);
        let mine = upto.range(since.saturating_add(1)..);
        if i64::try_from(mine.clone().count()).ok() != Some(seq - since) {
            return None;
        }
        let mut last: HashMap<i64, GrantState> = HashMap::new();
        for state in mine.flat_map(|(_, written)| written) {
            last.insert(state.id.0, state.clone());
        }
        Some(last.into_values().collect())
    }

    /// The feed read the database up to `seq`: numbers up to it are past.
    pub(super) fn forget(&self, seq: i64) {
        let mut by_seq = self.lock();
        let later = by_seq.split_off(&seq.saturating_add(1));
        *by_seq = later;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<i64, Vec<GrantState>>> {
        self.by_seq.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{GrantId, Status};

    fn state(id: i64, generation: i64) -> GrantState {
        GrantState {
            id: GrantId(id),
            provider: "p".into(),
            status: Status::Active,
            access: None,
            scope: None,
            application_calendar_id: None,
            generation,
            last_refresh_at: None,
            next_refresh_at: None,
            consecutive_failures: 0,
            last_error: None,
            credentials: Vec::new(),
        }
    }

    fn generations(mut states: Vec<GrantState>) -> Vec<(i64, i64)> {
        states.sort_by_key(|s| s.id.0);
        states.iter().map(|s| (s.id.0, s.generation)).collect()
    }

    #[test]
    fn a_range_of_own_commits_is_answered_with_the_last_state_of_each_grant() {
        let own = OwnCommits::default();
        own.record(5, vec![state(1, 1), state(2, 1)]);
        own.record(6, vec![state(1, 2)]);
        let got = own.take(4, 6).expect("5 and 6 are both own");
        assert_eq!(generations(got), [(1, 2), (2, 1)]);
        // Forgotten once taken.
        assert!(own.take(4, 6).is_none());
    }

    #[test]
    fn a_number_this_store_did_not_commit_sends_the_feed_to_the_database() {
        let own = OwnCommits::default();
        own.record(5, vec![state(1, 1)]);
        own.record(7, vec![state(2, 1)]);
        // 6 is someone else's: read, and forget up to 7.
        assert!(own.take(4, 7).is_none());
        own.record(8, vec![state(3, 1)]);
        assert_eq!(generations(own.take(7, 8).unwrap()), [(3, 1)]);
        // Not recorded yet when the feed looks: read.
        assert!(own.take(8, 9).is_none());
        // Recorded after the feed read past it: never used.
        own.record(9, vec![state(4, 1)]);
        own.record(10, vec![state(5, 1)]);
        own.forget(9);
        assert_eq!(generations(own.take(9, 10).unwrap()), [(5, 1)]);
    }

    #[test]
    fn numbers_kept_are_bounded() {
        let own = OwnCommits::default();
        for seq in 1..=(MAX_KEPT as i64 + 1) {
            own.record(seq, vec![state(seq, 1)]);
        }
        assert!(own.take(0, MAX_KEPT as i64 + 1).is_none());
        assert!(own.lock().is_empty());
    }
}
