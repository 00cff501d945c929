//! The grants waiting for their due time, earliest first.
//!
//! A binary heap of `(due, expires_at, grant)` and a map of each queued
//! grant's due time. Moving or removing a grant touches only the map; the
//! heap entry it leaves behind no longer matches the map and is dropped when
//! it reaches the top (or in a rebuild, should such entries pile up). That
//! is 24 bytes a grant in the heap and 16 in the map: at a million grants a
//! third of what an ordered set with an index beside it took.
//!
//! [`Queues`] keeps one queue per provider, so that a provider whose
//! refresh budget is spent holds up none of the others.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use crate::clock::UnixMillis;
use crate::model::GrantId;

/// Among grants due at the same instant (everything overdue after a restart
/// is due "now"), the one whose token expires first goes first.
#[derive(Debug, Default)]
pub struct Queue {
    heap: BinaryHeap<Reverse<(UnixMillis, UnixMillis, GrantId)>>,
    due: HashMap<GrantId, UnixMillis, foldhash::fast::RandomState>,
}

impl Queue {
    /// A queue with room for `n` grants, so that filling it at start never
    /// holds an old and a new table at once.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            heap: BinaryHeap::with_capacity(n),
            due: HashMap::with_capacity_and_hasher(n, Default::default()),
        }
    }

    /// Queues `grant` at `due` (moving it if it was queued). Already queued
    /// at that very time, it keeps its place.
    pub fn set(&mut self, grant: GrantId, due: UnixMillis, expires_at: UnixMillis) {
        if self.due.insert(grant, due) == Some(due) {
            return;
        }
        self.heap.push(Reverse((due, expires_at, grant)));
        self.compact();
    }

    pub fn remove(&mut self, grant: GrantId) {
        if self.due.remove(&grant).is_some() {
            self.compact();
        }
    }

    pub fn contains(&self, grant: GrantId) -> bool {
        self.due.contains_key(&grant)
    }

    /// Drops stale heap entries once they outnumber the live ones (many
    /// grants moved or removed: e.g. lapsed all at once).
    fn compact(&mut self) {
        if self.heap.len() > 2 * self.due.len() + 1024 {
            let live = &self.due;
            self.heap
                .retain(|Reverse((d, _, g))| live.get(g) == Some(d));
        }
    }

    /// The earliest grant and when it is due.
    pub fn peek(&mut self) -> Option<(UnixMillis, GrantId)> {
        while let Some(Reverse((due, _, grant))) = self.heap.peek() {
            if self.due.get(grant) == Some(due) {
                return Some((*due, *grant));
            }
            self.heap.pop();
        }
        None
    }

    pub fn pop(&mut self) -> Option<GrantId> {
        let (_, grant) = self.peek()?;
        self.heap.pop();
        self.due.remove(&grant);
        Some(grant)
    }

    pub fn len(&self) -> usize {
        self.due.len()
    }

    #[cfg(test)]
    pub fn due_of(&self, grant: GrantId) -> Option<UnixMillis> {
        self.due.get(&grant).copied()
    }
}

/// The queue of grants whose provider is not known where they were
/// queued (a retry after a database error): no budget applies.
pub const UNKNOWN_PROVIDER: u16 = u16::MAX;

/// One [`Queue`] per provider (by the budget's provider index).
#[derive(Debug, Default)]
pub struct Queues {
    by_provider: Vec<Queue>,
    unknown: Queue,
    /// Room for the first provider's queue (see [`Queue::with_capacity`]).
    capacity: usize,
}

impl Queues {
    /// Queues with room for `n` grants in the first provider's queue: most
    /// deployments have one provider that holds nearly every grant.
    pub fn with_capacity(n: usize) -> Self {
        Queues {
            capacity: n,
            ..Queues::default()
        }
    }

    pub fn set(&mut self, provider: u16, grant: GrantId, due: UnixMillis, expires_at: UnixMillis) {
        if provider == UNKNOWN_PROVIDER {
            self.unknown.set(grant, due, expires_at);
            return;
        }
        self.unknown.remove(grant);
        let i = usize::from(provider);
        while self.by_provider.len() <= i {
            let capacity = std::mem::take(&mut self.capacity);
            self.by_provider.push(Queue::with_capacity(capacity));
        }
        self.by_provider[i].set(grant, due, expires_at);
    }

    /// [`Queues::set`] unless the grant is queued already (it keeps its place).
    pub fn set_if_absent(
        &mut self,
        provider: u16,
        grant: GrantId,
        due: UnixMillis,
        expires_at: UnixMillis,
    ) {
        let queued = self.unknown.contains(grant)
            || self
                .by_provider
                .get(usize::from(provider))
                .is_some_and(|q| q.contains(grant));
        if !queued {
            self.set(provider, grant, due, expires_at);
        }
    }

    pub fn remove(&mut self, grant: GrantId) {
        self.unknown.remove(grant);
        for q in &mut self.by_provider {
            q.remove(grant);
        }
    }

    /// Each provider's queue (the unknown one last, as [`UNKNOWN_PROVIDER`]).
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (u16, &mut Queue)> {
        let unknown = std::iter::once((UNKNOWN_PROVIDER, &mut self.unknown));
        (0u16..).zip(self.by_provider.iter_mut()).chain(unknown)
    }

    pub fn get_mut(&mut self, provider: u16) -> Option<&mut Queue> {
        if provider == UNKNOWN_PROVIDER {
            return Some(&mut self.unknown);
        }
        self.by_provider.get_mut(usize::from(provider))
    }

    pub fn len(&self) -> usize {
        self.unknown.len() + self.by_provider.iter().map(Queue::len).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_by_due_then_expiry() {
        let mut q = Queue::default();
        q.set(GrantId(1), 100, 900);
        q.set(GrantId(2), 100, 500);
        q.set(GrantId(3), 50, 5_000);
        q.set(GrantId(1), 10, 900); // moved earlier
        assert_eq!(q.len(), 3);
        assert_eq!(q.pop(), Some(GrantId(1)));
        assert_eq!(q.pop(), Some(GrantId(3)));
        q.remove(GrantId(3));
        assert_eq!(q.peek(), Some((100, GrantId(2))));
        assert_eq!(q.pop(), Some(GrantId(2)));
        assert_eq!(q.len(), 0);
        assert_eq!((q.peek(), q.pop()), (None, None), "stale entries are gone");
    }

    #[test]
    fn moved_and_removed_grants_come_out_once_at_their_latest_time() {
        let mut q = Queue::default();
        q.set(GrantId(1), 10, 0);
        q.set(GrantId(1), 30, 0); // moved later: the entry at 10 is stale
        q.set(GrantId(2), 20, 0);
        q.set(GrantId(3), 5, 0);
        q.remove(GrantId(3));
        q.set(GrantId(2), 20, 0); // the same time again: one entry
        assert_eq!(q.peek(), Some((20, GrantId(2))));
        assert_eq!(q.due_of(GrantId(1)), Some(30));
        assert_eq!(q.pop(), Some(GrantId(2)));
        assert_eq!(q.pop(), Some(GrantId(1)));
        assert_eq!(q.pop(), None);
        // Popped, then queued again: it comes out again.
        q.set(GrantId(1), 40, 0);
        assert_eq!(q.pop(), Some(GrantId(1)));
        assert!(q.len() == 0 && q.due_of(GrantId(1)).is_none());
    }

    #[test]
    fn rescheduling_over_and_over_does_not_grow_the_heap() {
        let mut q = Queue::with_capacity(4);
        for round in 0..10_000 {
            q.set(GrantId(1), 1_000 + round, 0);
            q.set(GrantId(2), 5_000 - round, 0);
        }
        assert!(q.heap.len() <= 2 * q.len() + 1024, "{}", q.heap.len());
        assert_eq!(q.pop(), Some(GrantId(2)));
        assert_eq!(q.due_of(GrantId(1)), Some(10_999));
        assert_eq!(q.pop(), Some(GrantId(1)));
        assert!(q.pop().is_none());
    }
}
