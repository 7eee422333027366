//! The endpoint's timer heap: one entry per owner (transaction or call) at its soonest
//! deadline.
//!
//! Owners compute their own deadlines; the heap only says when to look. An entry whose instant
//! no longer matches the owner's scheduled instant is stale and skipped, so rescheduling never
//! searches the heap.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Instant;

use super::types::CallRef;

/// Identifies a transaction inside the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId(pub u64);

/// Whose deadline a heap entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    /// A transaction.
    Tx(TxId),
    /// A call's own timers (2xx retransmission, session timer, answer delay, ...).
    Call(CallRef),
}

/// Deadlines of every owner.
#[derive(Debug, Default)]
pub struct Schedule {
    heap: BinaryHeap<Reverse<(Instant, Owner)>>,
    scheduled: HashMap<Owner, Instant>,
}

impl Schedule {
    /// Sets `owner`'s next deadline; `None` clears it.
    pub fn set(&mut self, owner: Owner, at: Option<Instant>) {
        match at {
            Some(at) => {
                if self.scheduled.insert(owner, at) != Some(at) {
                    self.heap.push(Reverse((at, owner)));
                }
            }
            None => {
                self.scheduled.remove(&owner);
            }
        }
    }

    /// Returns the soonest live deadline.
    pub fn next(&mut self) -> Option<Instant> {
        self.drop_stale();
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Removes and returns an owner whose deadline is at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<Owner> {
        self.drop_stale();
        let Reverse((at, owner)) = *self.heap.peek()?;
        if at > now {
            return None;
        }
        self.heap.pop();
        self.scheduled.remove(&owner);
        Some(owner)
    }

    fn drop_stale(&mut self) {
        while let Some(Reverse((at, owner))) = self.heap.peek() {
            if self.scheduled.get(owner) == Some(at) {
                return;
            }
            self.heap.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rescheduling_skips_stale_entries() {
        let start = Instant::now();
        let a = Owner::Tx(TxId(1));
        let b = Owner::Call(CallRef(2));
        let mut schedule = Schedule::default();
        schedule.set(a, Some(start + Duration::from_secs(1)));
        schedule.set(b, Some(start + Duration::from_secs(2)));
        schedule.set(a, Some(start + Duration::from_secs(3)));
        assert_eq!(schedule.next(), Some(start + Duration::from_secs(2)));
        assert_eq!(schedule.pop_due(start + Duration::from_secs(1)), None);
        assert_eq!(schedule.pop_due(start + Duration::from_secs(5)), Some(b));
        assert_eq!(schedule.pop_due(start + Duration::from_secs(5)), Some(a));
        assert_eq!(schedule.next(), None);
    }

    #[test]
    fn cleared_owner_never_fires() {
        let start = Instant::now();
        let a = Owner::Tx(TxId(1));
        let mut schedule = Schedule::default();
        schedule.set(a, Some(start));
        schedule.set(a, None);
        assert_eq!(schedule.pop_due(start), None);
        assert_eq!(schedule.next(), None);
    }
}
