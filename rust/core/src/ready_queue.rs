//! The ready queue: higher priority first, first-come first-served within a priority, and entries
//! that only become eligible at a given time (delays, retry backoff).
//!
//! Two ordered maps carry the work: `ready` is keyed by `(priority desc, ready_at, seq)`, so an entry
//! that became ready earlier stays ahead of a later one of the same priority even when it was promoted
//! from `delayed` late; `delayed` is keyed by `(ready_at, seq)` and drained into `ready` by `pop`. An
//! index from key to position makes removal (cancel) O(log n).

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

type ReadyKey = (Reverse<i32>, i64, u64);
type DelayedKey = (i64, u64);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Position {
    priority: i32,
    ready_at: i64,
    seq: u64,
    delayed: bool,
}

/// A priority queue of keys `K` (task handles), each with a priority and the time it becomes ready.
#[derive(Debug, Clone)]
pub struct ReadyQueue<K> {
    ready: BTreeMap<ReadyKey, K>,
    delayed: BTreeMap<DelayedKey, K>,
    index: HashMap<K, Position>,
    next_seq: u64,
}

impl<K: Copy + Eq + Hash> Default for ReadyQueue<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Copy + Eq + Hash> ReadyQueue<K> {
    pub fn new() -> Self {
        ReadyQueue {
            ready: BTreeMap::new(),
            delayed: BTreeMap::new(),
            index: HashMap::new(),
            next_seq: 0,
        }
    }

    /// Adds `key`, eligible from `ready_at` (ms). A key already present is moved to its new place.
    /// Ties (same priority and ready time) go in push order.
    pub fn push(&mut self, key: K, priority: i32, ready_at: i64, now: i64) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.push_with_seq(key, priority, ready_at, seq, now);
    }

    /// Like `push`, with the tie-break given by the caller: a task handed back keeps its submission
    /// order this way. `seq` must be unique within the queue, and unrelated to `push`'s own counter
    /// (use one or the other on a queue).
    pub fn push_with_seq(&mut self, key: K, priority: i32, ready_at: i64, seq: u64, now: i64) {
        self.remove(key);
        let delayed = ready_at > now;
        if delayed {
            self.delayed.insert((ready_at, seq), key);
        } else {
            self.ready.insert((Reverse(priority), ready_at, seq), key);
        }
        self.index.insert(
            key,
            Position {
                priority,
                ready_at,
                seq,
                delayed,
            },
        );
    }

    /// Removes `key` wherever it sits. Returns whether it was queued.
    pub fn remove(&mut self, key: K) -> bool {
        let Some(pos) = self.index.remove(&key) else {
            return false;
        };
        if pos.delayed {
            self.delayed.remove(&(pos.ready_at, pos.seq));
        } else {
            self.ready
                .remove(&(Reverse(pos.priority), pos.ready_at, pos.seq));
        }
        true
    }

    /// Takes the best eligible entry at `now`.
    pub fn pop(&mut self, now: i64) -> Option<K> {
        self.promote_due(now, |_| {});
        let (_, key) = self.ready.pop_first()?;
        self.index.remove(&key);
        Some(key)
    }

    /// Takes up to `max` eligible entries at `now`, best first.
    pub fn pop_many(&mut self, max: usize, now: i64) -> Vec<K> {
        self.promote_due(now, |_| {});
        let mut out = Vec::with_capacity(max.min(self.ready.len()));
        while out.len() < max {
            let Some((_, key)) = self.ready.pop_first() else {
                break;
            };
            self.index.remove(&key);
            out.push(key);
        }
        out
    }

    /// Moves every delayed entry whose time has come into the ready map, telling `on_promote` about
    /// each (the engine uses it to turn `scheduled`/`retrying` tasks into `queued` ones).
    pub fn promote_due(&mut self, now: i64, mut on_promote: impl FnMut(K)) {
        while let Some(entry) = self.delayed.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let ((ready_at, seq), key) = entry.remove_entry();
            if let Some(pos) = self.index.get_mut(&key) {
                pos.delayed = false;
                self.ready
                    .insert((Reverse(pos.priority), ready_at, seq), key);
                on_promote(key);
            }
        }
    }

    pub fn contains(&self, key: K) -> bool {
        self.index.contains_key(&key)
    }

    /// When the earliest delayed entry becomes eligible, if any.
    pub fn next_ready_at(&self) -> Option<i64> {
        self.delayed.first_key_value().map(|((at, _), _)| *at)
    }

    /// Entries eligible at `now`, without promoting anything.
    pub fn eligible_len(&self, now: i64) -> usize {
        self.ready.len() + self.delayed.range(..(now + 1, 0)).count()
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn delayed_len(&self) -> usize {
        self.delayed.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn higher_priority_first_then_fifo() {
        let mut q = ReadyQueue::new();
        q.push(1u32, 0, 0, 0);
        q.push(2, 5, 0, 0);
        q.push(3, 0, 0, 0);
        q.push(4, 5, 0, 0);
        q.push(5, -3, 0, 0);
        assert_eq!(q.pop_many(10, 0), vec![2, 4, 1, 3, 5]);
        assert!(q.is_empty());
    }

    #[test]
    fn delayed_entries_wait_for_their_time() {
        let mut q = ReadyQueue::new();
        q.push(1u32, 9, 100, 0);
        q.push(2, 0, 0, 0);
        assert_eq!(q.next_ready_at(), Some(100));
        assert_eq!(q.pop(50), Some(2));
        assert_eq!(q.pop(99), None);
        assert_eq!(q.eligible_len(100), 1);
        assert_eq!(q.pop(100), Some(1));
        assert_eq!(q.next_ready_at(), None);
    }

    #[test]
    fn a_late_promoted_entry_keeps_its_place_by_ready_time() {
        let mut q = ReadyQueue::new();
        q.push(1u32, 0, 10, 0); // ready at 10, promoted only at the pop at 30
        q.push(2, 0, 20, 20); // ready at 20, pushed directly
        assert_eq!(q.pop_many(2, 30), vec![1, 2]);
    }

    #[test]
    fn remove_from_either_map() {
        let mut q = ReadyQueue::new();
        q.push(1u32, 0, 0, 0);
        q.push(2, 0, 50, 0);
        assert!(q.remove(1));
        assert!(q.remove(2));
        assert!(!q.remove(2));
        assert_eq!(q.pop(100), None);
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn pushing_a_present_key_moves_it() {
        let mut q = ReadyQueue::new();
        q.push(1u32, 0, 0, 0);
        q.push(2, 1, 0, 0);
        q.push(1, 5, 0, 0);
        assert_eq!(q.len(), 2);
        assert_eq!(q.pop_many(5, 0), vec![1, 2]);
    }

    /// Reference: sort eligible entries by (priority desc, ready_at, push order).
    fn reference_order(entries: &[(i32, i64)], removed: &[bool], now: i64) -> Vec<u32> {
        let mut live: Vec<(i32, i64, usize)> = entries
            .iter()
            .enumerate()
            .filter(|(i, (_, at))| !removed[*i] && *at <= now)
            .map(|(i, (p, at))| (*p, *at, i))
            .collect();
        live.sort_by_key(|(p, at, i)| (Reverse(*p), *at, *i));
        live.into_iter().map(|(_, _, i)| i as u32).collect()
    }

    proptest! {
        #[test]
        fn pops_match_a_sorted_reference(
            entries in proptest::collection::vec((-5i32..5, 0i64..20), 0..200),
            removals in proptest::collection::vec(any::<prop::sample::Index>(), 0..30),
            now in 0i64..25,
        ) {
            let mut q = ReadyQueue::new();
            for (i, (p, at)) in entries.iter().enumerate() {
                // entries pushed at time 0 in index order, so the reference's tie-break is push order
                q.push(i as u32, *p, *at, 0);
            }
            let mut removed = vec![false; entries.len()];
            if !entries.is_empty() {
                for r in &removals {
                    let i = r.index(entries.len());
                    prop_assert_eq!(q.remove(i as u32), !removed[i]);
                    removed[i] = true;
                }
            }
            let expected = reference_order(&entries, &removed, now);
            let got = q.pop_many(usize::MAX, now);
            prop_assert_eq!(got, expected);
            let left = entries.iter().enumerate().filter(|(i, (_, at))| !removed[*i] && *at > now).count();
            prop_assert_eq!(q.len(), left);
        }
    }
}
