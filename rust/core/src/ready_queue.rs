//! The ready queue: higher priority first, then earlier ready time, then push order (`seq`), and
//! entries that only become eligible at a given time (delays, retry backoff).
//!
//! # Layout, and why
//!
//! [`LazyQueue`] holds the entries; it never looks anything up by key. It has two parts:
//!
//! - **ready**: one [`Level`] per priority, in an ordered map (highest first). Within a level the
//!   order is `(ready_at, seq)`. Nearly every entry arrives in that order (time moves forward, seqs
//!   grow), so a level keeps those in a FIFO (`VecDeque`: O(1) push and pop, sequential memory) and
//!   only the few that arrive out of order (an entry promoted from `delayed` with an older ready time,
//!   a caller whose clock went back) in a small binary heap beside it; a pop takes the smaller of
//!   the two heads. A binary heap of all ready entries was measured first: at a million entries its
//!   pops cost 150-400 ns each in cache misses, against ~10 ns for the FIFO.
//! - **delayed**: a binary min-heap on `(ready_at, seq)`, drained into the levels as time passes.
//!
//! Removal is lazy: the owner of the queue keeps, for each live key, the `seq` of its one live
//! entry (or can tell otherwise, see [`Liveness`]), and an entry whose key was removed or pushed again
//! is simply left in place, *stale*, and dropped when it surfaces. Removal is O(1) plus the
//! amortised cost of that later drop; when stale entries outnumber live ones, the queue is compacted
//! in O(n), so they never hold more than about half of the memory. The owner reports each entry it
//! makes stale ([`LazyQueue::forget`]) so lengths stay exact without scanning.
//!
//! The top of `delayed` is always live (stale tops are dropped as soon as they appear), so
//! [`LazyQueue::next_ready_at`] needs no lookup.
//!
//! [`ReadyQueue`] is that queue plus an index from key to live `seq`, for callers that address
//! entries by key (the Python `ReadyQueue`). The engine uses [`LazyQueue`] directly: its task table
//! already records each task's seq and status, so it needs no second per-task index (that index was
//! ~80 bytes per queued task before).

use std::cmp::Reverse;
use std::collections::{BTreeMap, VecDeque};
use std::hash::Hash;

use crate::hash::FxHashMap;

/// One queued entry: its key and where it sorts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<K> {
    pub ready_at: i64,
    pub seq: u64,
    pub key: K,
    pub priority: i32,
}

/// An entry inside a level, whose priority is the level's: 24 bytes for an `i64` key instead of
/// 32, which is a quarter less memory to fill (and fault in) on a large `push_many`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot<K> {
    ready_at: i64,
    seq: u64,
    key: K,
}

impl<K: Copy> Slot<K> {
    #[inline]
    fn of(entry: &Entry<K>) -> Self {
        Slot {
            ready_at: entry.ready_at,
            seq: entry.seq,
            key: entry.key,
        }
    }

    #[inline]
    fn entry(self, priority: i32) -> Entry<K> {
        Entry {
            ready_at: self.ready_at,
            seq: self.seq,
            key: self.key,
            priority,
        }
    }
}

/// What the heaps and levels order by: `(ready_at, seq)`.
trait Timed: Copy {
    fn time(&self) -> (i64, u64);
}

impl<K: Copy> Timed for Entry<K> {
    #[inline]
    fn time(&self) -> (i64, u64) {
        (self.ready_at, self.seq)
    }
}

impl<K: Copy> Timed for Slot<K> {
    #[inline]
    fn time(&self) -> (i64, u64) {
        (self.ready_at, self.seq)
    }
}

/// Within a priority and in `delayed`: earlier ready time first, then lower seq.
#[inline]
fn earlier<T: Timed>(a: &T, b: &T) -> bool {
    a.time() < b.time()
}

// ----- a binary min-heap on `earlier`, over a plain Vec ------------------------------------------

fn sift_up<T: Timed>(heap: &mut [T], mut i: usize) {
    let entry = heap[i];
    while i > 0 {
        let parent = (i - 1) / 2;
        if !earlier(&entry, &heap[parent]) {
            break;
        }
        heap[i] = heap[parent];
        i = parent;
    }
    heap[i] = entry;
}

fn sift_down<T: Timed>(heap: &mut [T], mut i: usize) {
    let len = heap.len();
    let entry = heap[i];
    loop {
        let mut child = 2 * i + 1;
        if child >= len {
            break;
        }
        if child + 1 < len && earlier(&heap[child + 1], &heap[child]) {
            child += 1;
        }
        if !earlier(&heap[child], &entry) {
            break;
        }
        heap[i] = heap[child];
        i = child;
    }
    heap[i] = entry;
}

fn heap_push<T: Timed>(heap: &mut Vec<T>, entry: T) {
    heap.push(entry);
    let last = heap.len() - 1;
    sift_up(heap, last);
}

fn heap_pop<T: Timed>(heap: &mut Vec<T>) -> Option<T> {
    let last = heap.pop()?;
    if heap.is_empty() {
        return Some(last);
    }
    let top = std::mem::replace(&mut heap[0], last);
    sift_down(heap, 0);
    Some(top)
}

fn heapify<T: Timed>(heap: &mut [T]) {
    for i in (0..heap.len() / 2).rev() {
        sift_down(heap, i);
    }
}

/// Restores the heap after entries were appended from `start` on: sift each one up, or rebuild the
/// whole heap in O(n) when that is cheaper (many appended at once).
fn heap_fix_tail<T: Timed>(heap: &mut [T], start: usize) {
    let added = heap.len() - start;
    let depth = (usize::BITS - heap.len().leading_zeros()) as usize;
    if added * depth > 2 * heap.len() {
        heapify(heap);
    } else {
        for i in start..heap.len() {
            sift_up(heap, i);
        }
    }
}

// ----- one priority level ------------------------------------------------------------------------

/// The ready entries of one priority, ordered by `(ready_at, seq)`.
#[derive(Debug, Clone)]
struct Level<K> {
    /// Entries that arrived in order (each after the last one here): O(1) at both ends.
    fifo: VecDeque<Slot<K>>,
    /// Entries that arrived out of order: a min-heap.
    late: Vec<Slot<K>>,
}

impl<K> Default for Level<K> {
    fn default() -> Self {
        Level {
            fifo: VecDeque::new(),
            late: Vec::new(),
        }
    }
}

impl<K: Copy> Level<K> {
    fn len(&self) -> usize {
        self.fifo.len() + self.late.len()
    }

    fn is_empty(&self) -> bool {
        self.fifo.is_empty() && self.late.is_empty()
    }

    fn capacity(&self) -> usize {
        self.fifo.capacity() + self.late.capacity()
    }

    #[inline(always)]
    fn push(&mut self, entry: &Entry<K>) {
        let entry = Slot::of(entry);
        match self.fifo.back() {
            Some(back) if earlier(&entry, back) => self.push_late(entry),
            _ => self.fifo.push_back(entry),
        }
    }

    #[cold]
    #[inline(never)]
    fn push_late(&mut self, entry: Slot<K>) {
        heap_push(&mut self.late, entry);
    }

    #[inline]
    fn pop(&mut self) -> Option<Slot<K>> {
        match (self.fifo.front(), self.late.first()) {
            (Some(first), Some(late)) if earlier(late, first) => heap_pop(&mut self.late),
            (Some(_), _) => self.fifo.pop_front(),
            (None, _) => heap_pop(&mut self.late),
        }
    }

    fn retain(&mut self, mut keep: impl FnMut(&Slot<K>) -> bool) {
        self.fifo.retain(&mut keep);
        self.late.retain(&mut keep);
        heapify(&mut self.late);
    }

    fn clear(&mut self) {
        self.fifo.clear();
        self.late.clear();
    }
}

// ----- the queue -----------------------------------------------------------------------------------

/// What a [`LazyQueue`] asks its owner, who alone knows which entries are still live. An entry is
/// live while it is the one entry its owner means for that key; once stale it must never become live
/// again (owners compare a seq that is never given twice to the same key, or a terminal status).
pub trait Liveness<K> {
    fn is_live(&self, entry: &Entry<K>) -> bool;

    /// A (live) delayed entry has just been moved to the ready part.
    fn promoted(&mut self, _entry: &Entry<K>) {}

    /// The best ready entry is being taken: returns whether it is live, and if so the owner may
    /// drop its record of it in the same lookup.
    fn take(&mut self, entry: &Entry<K>) -> bool {
        self.is_live(entry)
    }
}

/// Compaction waits for at least this many stale entries (and for them to outnumber live ones).
const COMPACT_MIN: usize = 64;
/// An emptied level keeps its buffers for the next new level only up to this many entries.
const SPARE_MAX: usize = 4096;

/// The entries of a ready queue, with lazy removal (see the module doc). Every method that may meet
/// stale entries takes the owner's [`Liveness`].
///
/// The levels live in a slab found through a hash map by priority (a push costs one ~2 ns lookup; a
/// `BTreeMap` search cost ~10 ns, mostly mispredicted branches, when priorities vary); an ordered
/// map of the non-empty levels gives the highest one to pops and changes only when a level appears
/// or empties. An emptied level stays in the slab with its (small) buffers for the next new level,
/// so a queue going between empty and one entry does not allocate each time.
#[derive(Debug, Clone)]
pub struct LazyQueue<K> {
    levels: Vec<Level<K>>,
    /// Priority -> index in `levels`, for the non-empty levels.
    level_of: FxHashMap<i32, u32>,
    /// The same, highest priority first.
    order: BTreeMap<Reverse<i32>, u32>,
    /// Indexes of empty levels in `levels`.
    free_levels: Vec<u32>,
    /// Min-heap on `(ready_at, seq)`; its top is always live.
    delayed: Vec<Entry<K>>,
    /// Entries in `levels`, stale ones included.
    ready_len: usize,
    stale_ready: usize,
    stale_delayed: usize,
}

impl<K: Copy> Default for LazyQueue<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Copy> LazyQueue<K> {
    pub fn new() -> Self {
        LazyQueue {
            levels: Vec::new(),
            level_of: FxHashMap::default(),
            order: BTreeMap::new(),
            free_levels: Vec::new(),
            delayed: Vec::new(),
            ready_len: 0,
            stale_ready: 0,
            stale_delayed: 0,
        }
    }

    /// Adds a live entry: to the ready part if `entry.ready_at <= now`, else to `delayed`.
    #[inline]
    pub fn push(&mut self, entry: Entry<K>, now: i64) {
        if entry.ready_at > now {
            heap_push(&mut self.delayed, entry);
        } else {
            self.push_ready(entry);
        }
    }

    /// Adds many live entries; consecutive ones of the same priority share one level lookup, and
    /// delayed ones are heapified at once when that is cheaper than one push each.
    pub fn extend(&mut self, entries: impl IntoIterator<Item = Entry<K>>, now: i64) {
        let delayed_start = self.delayed.len();
        let mut current: Option<(i32, u32)> = None; // the level of the previous entry
        for entry in entries {
            if entry.ready_at > now {
                self.delayed.push(entry);
                continue;
            }
            let i = match current {
                Some((priority, i)) if priority == entry.priority => i,
                _ => {
                    let i = self.level_index(entry.priority);
                    current = Some((entry.priority, i));
                    i
                }
            };
            self.levels[i as usize].push(&entry);
            self.ready_len += 1;
        }
        if self.delayed.len() > delayed_start {
            heap_fix_tail(&mut self.delayed, delayed_start);
        }
    }

    #[inline]
    fn push_ready(&mut self, entry: Entry<K>) {
        self.ready_len += 1;
        self.level_mut(entry.priority).push(&entry);
    }

    #[inline]
    fn level_mut(&mut self, priority: i32) -> &mut Level<K> {
        let i = self.level_index(priority);
        &mut self.levels[i as usize]
    }

    #[inline]
    fn level_index(&mut self, priority: i32) -> u32 {
        match self.level_of.get(&priority) {
            Some(&i) => i,
            None => self.new_level(priority),
        }
    }

    #[cold]
    fn new_level(&mut self, priority: i32) -> u32 {
        let i = self.free_levels.pop().unwrap_or_else(|| {
            self.levels.push(Level::default());
            (self.levels.len() - 1) as u32
        });
        self.level_of.insert(priority, i);
        self.order.insert(Reverse(priority), i);
        i
    }

    /// Makes room for `additional` more entries of `priority`, creating the level if need be. A
    /// level created here is listed while still empty: the caller pushes entries of that priority
    /// before anything else touches the queue (`ReadyQueue::push_many_at` does).
    fn reserve_level(&mut self, priority: i32, additional: usize) {
        self.level_mut(priority).fifo.reserve(additional);
    }

    /// The level at `i` (of `priority`) is empty: off the maps, into the free list.
    fn release_level(&mut self, priority: i32, i: u32) {
        let level = &mut self.levels[i as usize];
        if level.capacity() > SPARE_MAX {
            *level = Level::default();
        }
        self.release_level_keeping_buffers(priority, i);
    }

    fn release_level_keeping_buffers(&mut self, priority: i32, i: u32) {
        self.level_of.remove(&priority);
        self.order.remove(&Reverse(priority));
        self.levels[i as usize].clear();
        self.free_levels.push(i);
    }

    /// The highest non-empty level: (priority, index).
    #[inline]
    fn first_level(&self) -> Option<(i32, u32)> {
        self.order.first_key_value().map(|(p, &i)| (p.0, i))
    }

    /// Moves every delayed entry whose time has come into the ready part, telling the owner
    /// ([`Liveness::promoted`]) about each.
    pub fn promote_due(&mut self, now: i64, live: &mut impl Liveness<K>) {
        while self.delayed.first().is_some_and(|top| top.ready_at <= now) {
            let entry = heap_pop(&mut self.delayed).expect("checked");
            live.promoted(&entry);
            self.push_ready(entry);
            self.prune_delayed(live);
        }
    }

    /// Drops stale entries from the top of `delayed`, so its top is live again.
    fn prune_delayed(&mut self, live: &impl Liveness<K>) {
        while let Some(top) = self.delayed.first() {
            if live.is_live(top) {
                break;
            }
            heap_pop(&mut self.delayed);
            debug_assert!(self.stale_delayed > 0, "a stale entry nobody forgot");
            self.stale_delayed = self.stale_delayed.saturating_sub(1);
        }
    }

    /// Takes the best eligible entry at `now`.
    pub fn pop(&mut self, now: i64, live: &mut impl Liveness<K>) -> Option<Entry<K>> {
        self.promote_due(now, live);
        loop {
            let (priority, i) = self.first_level()?;
            let level = &mut self.levels[i as usize];
            let entry = level
                .pop()
                .expect("listed levels are not empty")
                .entry(priority);
            self.ready_len -= 1;
            if level.is_empty() {
                self.release_level(priority, i);
            }
            if live.take(&entry) {
                return Some(entry);
            }
            debug_assert!(self.stale_ready > 0, "a stale entry nobody forgot");
            self.stale_ready = self.stale_ready.saturating_sub(1);
        }
    }

    /// Takes up to `max` eligible entries at `now`, best first, appending their keys to `out`.
    pub fn pop_many_into(
        &mut self,
        max: usize,
        now: i64,
        live: &mut impl Liveness<K>,
        out: &mut Vec<K>,
    ) {
        self.promote_due(now, live);
        let mut taken = 0;
        while taken < max {
            let Some((priority, i)) = self.first_level() else {
                break;
            };
            let level = &mut self.levels[i as usize];
            while taken < max {
                let Some(slot) = level.pop() else {
                    break;
                };
                let entry = slot.entry(priority);
                self.ready_len -= 1;
                if live.take(&entry) {
                    out.push(entry.key);
                    taken += 1;
                } else {
                    debug_assert!(self.stale_ready > 0, "a stale entry nobody forgot");
                    self.stale_ready = self.stale_ready.saturating_sub(1);
                }
            }
            if level.is_empty() {
                self.release_level(priority, i);
            }
        }
    }

    /// The owner made one of its entries stale (removed its key, or pushed the key again): the
    /// entry stays until it surfaces or the queue is compacted. `was_delayed`: whether that entry
    /// sits in `delayed` (not promoted yet). Call it after the owner's record changed.
    pub fn forget(&mut self, was_delayed: bool, live: &impl Liveness<K>) {
        if was_delayed {
            self.forget_many(0, 1, live);
        } else {
            self.forget_many(1, 0, live);
        }
    }

    /// `forget` for `ready` entries of the ready part and `delayed` ones of `delayed` at once.
    pub fn forget_many(&mut self, ready: usize, delayed: usize, live: &impl Liveness<K>) {
        self.stale_ready += ready;
        if delayed > 0 {
            self.stale_delayed += delayed;
            self.prune_delayed(live);
        }
        let stale = self.stale_ready + self.stale_delayed;
        if stale >= COMPACT_MIN && stale > self.len() {
            self.compact(live);
        }
    }

    /// Drops every stale entry: O(n).
    pub fn compact(&mut self, live: &impl Liveness<K>) {
        let mut emptied = Vec::new();
        self.ready_len = 0;
        for (&priority, &i) in &self.level_of {
            let level = &mut self.levels[i as usize];
            level.retain(|slot| live.is_live(&slot.entry(priority)));
            self.ready_len += level.len();
            if level.is_empty() {
                emptied.push((priority, i));
            }
        }
        for (priority, i) in emptied {
            self.release_level(priority, i);
        }
        self.delayed.retain(|e| live.is_live(e));
        heapify(&mut self.delayed);
        self.stale_ready = 0;
        self.stale_delayed = 0;
    }

    /// When the earliest delayed entry becomes eligible, if any.
    pub fn next_ready_at(&self) -> Option<i64> {
        self.delayed.first().map(|e| e.ready_at)
    }

    /// Entries eligible at `now`, without promoting anything. The due delayed entries form a subtree
    /// at the top of the heap (a parent is never later than its children), so this visits only
    /// those and their direct children.
    pub fn eligible_len(&self, now: i64, live: &impl Liveness<K>) -> usize {
        let mut count = self.ready_len - self.stale_ready;
        let heap = &self.delayed;
        let mut stack = Vec::new();
        if heap.first().is_some_and(|top| top.ready_at <= now) {
            stack.push(0);
        }
        while let Some(i) = stack.pop() {
            if live.is_live(&heap[i]) {
                count += 1;
            }
            for child in [2 * i + 1, 2 * i + 2] {
                if child < heap.len() && heap[child].ready_at <= now {
                    stack.push(child);
                }
            }
        }
        count
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        self.ready_len + self.delayed.len() - self.stale_ready - self.stale_delayed
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Live entries not yet promoted.
    pub fn delayed_len(&self) -> usize {
        self.delayed.len() - self.stale_delayed
    }

    /// Entries held, stale ones included (for tests and memory accounting).
    pub fn stored_len(&self) -> usize {
        self.ready_len + self.delayed.len()
    }
}

// ----- keyed queue ---------------------------------------------------------------------------------

/// Keys a [`ReadyQueue`] can index: small non-negative integers (task handles, slots) go to a
/// direct array, anything else to a hash map.
pub trait QueueKey: Copy + Eq + Hash {
    /// The key's position in the direct array, if it can have one.
    fn dense_slot(self) -> Option<usize>;
}

macro_rules! queue_key {
    ($($t:ty),*) => {$(
        impl QueueKey for $t {
            #[inline]
            fn dense_slot(self) -> Option<usize> {
                usize::try_from(self).ok()
            }
        }
    )*};
}

queue_key!(u32, u64, usize, i32, i64);

/// No entry for this key.
const ABSENT: u64 = u64::MAX;

/// The index value of a live entry: its seq, and whether it is still in `delayed`.
#[inline]
fn code(seq: u64, delayed: bool) -> u64 {
    (seq << 1) | u64::from(delayed)
}

/// Key -> code of its live entry. Keys `0..dense.len()` live in `dense` (one u64 each, no hashing,
/// and neighbouring keys share cache lines); the others in `sparse`. `dense` only grows to cover a
/// key below twice the number of live keys (plus a little), so it stays proportional to the queue.
/// Measured at a million sequential keys: ~3 ns per insert against ~50 ns for a hash map, which is
/// a cache miss per key.
#[derive(Debug, Clone)]
struct KeyIndex<K> {
    dense: Vec<u64>,
    sparse: FxHashMap<K, u64>,
    len: usize,
}

impl<K: QueueKey> KeyIndex<K> {
    fn new() -> Self {
        KeyIndex {
            dense: Vec::new(),
            sparse: FxHashMap::default(),
            len: 0,
        }
    }

    #[inline]
    fn get(&self, key: K) -> Option<u64> {
        match key.dense_slot() {
            Some(i) if i < self.dense.len() => Some(self.dense[i]).filter(|&c| c != ABSENT),
            _ => self.sparse.get(&key).copied(),
        }
    }

    fn dense_limit(&self) -> usize {
        2 * (self.len + 64)
    }

    /// Before inserting `batch` keys whose largest array position is `max_slot`: grows the array
    /// once to cover them all, if it may (the limit counts the batch as live keys).
    fn reserve_dense(&mut self, max_slot: usize, batch: usize) {
        if max_slot >= self.dense.len() && max_slot < 2 * (self.len + batch + 64) {
            self.grow(max_slot + 1);
        }
    }

    fn grow(&mut self, min_len: usize) {
        let new_len = min_len.max((2 * self.dense.len()).min(self.dense_limit()));
        self.dense.resize(new_len, ABSENT);
        if !self.sparse.is_empty() {
            let dense = &mut self.dense;
            self.sparse.retain(|key, c| match key.dense_slot() {
                Some(i) if i < dense.len() => {
                    dense[i] = *c;
                    false
                }
                _ => true,
            });
        }
    }

    /// Sets the key's code; returns the one it replaces.
    #[inline]
    fn insert(&mut self, key: K, c: u64) -> Option<u64> {
        if let Some(i) = key.dense_slot() {
            if i >= self.dense.len() && i < self.dense_limit() {
                self.grow(i + 1);
            }
            if let Some(slot) = self.dense.get_mut(i) {
                let old = std::mem::replace(slot, c);
                if old == ABSENT {
                    self.len += 1;
                    return None;
                }
                return Some(old);
            }
        }
        let old = self.sparse.insert(key, c);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Removes the key if `pred` accepts its code; returns the code removed.
    #[inline]
    fn remove_if(&mut self, key: K, pred: impl FnOnce(u64) -> bool) -> Option<u64> {
        let removed = match key.dense_slot() {
            Some(i) if i < self.dense.len() => {
                let c = self.dense[i];
                (c != ABSENT && pred(c)).then(|| std::mem::replace(&mut self.dense[i], ABSENT))
            }
            _ => match self.sparse.entry(key) {
                std::collections::hash_map::Entry::Occupied(o) if pred(*o.get()) => {
                    Some(o.remove())
                }
                _ => None,
            },
        };
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    #[inline]
    fn is_current(&self, entry: &Entry<K>) -> bool {
        self.get(entry.key).is_some_and(|c| c >> 1 == entry.seq)
    }
}

impl<K: QueueKey> Liveness<K> for KeyIndex<K> {
    #[inline]
    fn is_live(&self, entry: &Entry<K>) -> bool {
        self.is_current(entry)
    }

    fn promoted(&mut self, entry: &Entry<K>) {
        self.insert(entry.key, code(entry.seq, false));
    }

    #[inline]
    fn take(&mut self, entry: &Entry<K>) -> bool {
        self.remove_if(entry.key, |c| c >> 1 == entry.seq).is_some()
    }
}

/// [`KeyIndex`] that also tells a callback about promotions.
struct Notifying<'a, K, F> {
    index: &'a mut KeyIndex<K>,
    on_promote: F,
}

impl<K: QueueKey, F: FnMut(K)> Liveness<K> for Notifying<'_, K, F> {
    fn is_live(&self, entry: &Entry<K>) -> bool {
        self.index.is_live(entry)
    }

    fn promoted(&mut self, entry: &Entry<K>) {
        self.index.promoted(entry);
        (self.on_promote)(entry.key);
    }

    fn take(&mut self, entry: &Entry<K>) -> bool {
        self.index.take(entry)
    }
}

/// What [`ReadyQueue::push_planned`] needs to know of a batch before pushing it: its size, the
/// largest index-array position of its keys, and how many entries each priority gets.
#[derive(Debug, Clone, Default)]
pub struct BatchPlan {
    len: usize,
    max_slot: Option<usize>,
    /// Counts of priorities `-WINDOW/2 .. WINDOW/2` (the usual ones), by offset.
    window: Vec<usize>,
    /// Counts of the others.
    others: FxHashMap<i32, usize>,
}

const WINDOW: usize = 2048;

impl BatchPlan {
    #[inline]
    pub fn add<K: QueueKey>(&mut self, key: K, priority: i32) {
        self.len += 1;
        if let Some(slot) = key.dense_slot() {
            self.max_slot = Some(self.max_slot.map_or(slot, |m| m.max(slot)));
        }
        let offset = i64::from(priority) + (WINDOW / 2) as i64;
        if (0..WINDOW as i64).contains(&offset) {
            if self.window.is_empty() {
                self.window = vec![0; WINDOW];
            }
            self.window[offset as usize] += 1;
        } else {
            *self.others.entry(priority).or_default() += 1;
        }
    }

    /// Items added.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// (priority, count) of every priority present.
    fn counts(&self) -> impl Iterator<Item = (i32, usize)> + '_ {
        let window = self
            .window
            .iter()
            .enumerate()
            .filter(|(_, &count)| count > 0)
            .map(|(offset, &count)| ((offset as i64 - (WINDOW / 2) as i64) as i32, count));
        window.chain(self.others.iter().map(|(&p, &c)| (p, c)))
    }
}

/// A priority queue of keys `K` (task handles), each with a priority and the time it becomes ready:
/// a [`LazyQueue`] plus an index from key to the seq of its live entry.
#[derive(Debug, Clone)]
pub struct ReadyQueue<K> {
    queue: LazyQueue<K>,
    index: KeyIndex<K>,
    next_seq: u64,
}

impl<K: QueueKey> Default for ReadyQueue<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: QueueKey> ReadyQueue<K> {
    pub fn new() -> Self {
        ReadyQueue {
            queue: LazyQueue::new(),
            index: KeyIndex::new(),
            next_seq: 0,
        }
    }

    /// Adds `key`, eligible from `ready_at` (ms). A key already present is moved to its new place.
    /// Ties (same priority and ready time) go in push order.
    pub fn push(&mut self, key: K, priority: i32, ready_at: i64, now: i64) {
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(old) = self.index.insert(key, code(seq, ready_at > now)) {
            self.queue.forget(old & 1 == 1, &self.index);
        }
        self.queue.push(
            Entry {
                ready_at,
                seq,
                key,
                priority,
            },
            now,
        );
    }

    /// Adds `(key, priority)` pairs, all eligible now, in order (as `push` one by one would).
    pub fn push_many(&mut self, items: &[(K, i32)]) {
        self.push_many_at(items, 0, 0);
    }

    /// `push_many` with the pairs eligible from `ready_at` (ms), at `now`.
    pub fn push_many_at(&mut self, items: &[(K, i32)], ready_at: i64, now: i64) {
        let mut plan = BatchPlan::default();
        for &(key, priority) in items {
            plan.add(key, priority);
        }
        self.push_planned(&plan, items.iter().copied(), ready_at, now);
    }

    /// Pushes `items` (all eligible from `ready_at`, at `now`), whose [`BatchPlan`] the caller
    /// made over exactly these items (a caller reading them from elsewhere plans while checking
    /// them, and then needs no buffer between the two passes).
    ///
    /// Built for large batches: the index array is grown once to cover the batch, and each level
    /// reserves its share up front, so nothing is reallocated and copied half-way (at a million
    /// entries the page faults of that memory are most of the cost). Entries of keys that were
    /// already queued (or repeat within the batch) go stale on the way and are reported to the
    /// queue at the end, in one go.
    pub fn push_planned(
        &mut self,
        plan: &BatchPlan,
        items: impl IntoIterator<Item = (K, i32)>,
        ready_at: i64,
        now: i64,
    ) {
        let delayed = ready_at > now;
        if let Some(max_slot) = plan.max_slot {
            self.index.reserve_dense(max_slot, plan.len);
        }
        if !delayed {
            for (priority, count) in plan.counts() {
                self.queue.reserve_level(priority, count);
            }
        }
        let first_seq = self.next_seq;
        let (queue, index) = (&mut self.queue, &mut self.index);
        let (mut stale_ready, mut stale_delayed, mut pushed) = (0usize, 0usize, 0u64);
        let entries = items.into_iter().map(|(key, priority)| {
            let seq = first_seq + pushed;
            pushed += 1;
            if let Some(old) = index.insert(key, code(seq, delayed)) {
                if old & 1 == 1 {
                    stale_delayed += 1;
                } else {
                    stale_ready += 1;
                }
            }
            Entry {
                ready_at,
                seq,
                key,
                priority,
            }
        });
        queue.extend(entries, now);
        self.next_seq = first_seq + pushed;
        self.queue
            .forget_many(stale_ready, stale_delayed, &self.index);
    }

    /// Removes `key` wherever it sits. Returns whether it was queued.
    pub fn remove(&mut self, key: K) -> bool {
        match self.index.remove_if(key, |_| true) {
            Some(old) => {
                self.queue.forget(old & 1 == 1, &self.index);
                true
            }
            None => false,
        }
    }

    /// Takes the best eligible entry at `now`.
    pub fn pop(&mut self, now: i64) -> Option<K> {
        self.queue.pop(now, &mut self.index).map(|e| e.key)
    }

    /// Takes up to `max` eligible entries at `now`, best first.
    pub fn pop_many(&mut self, max: usize, now: i64) -> Vec<K> {
        let mut out = Vec::with_capacity(max.min(self.len()));
        self.pop_many_into(max, now, &mut out);
        out
    }

    /// `pop_many`, appending to `out`.
    pub fn pop_many_into(&mut self, max: usize, now: i64, out: &mut Vec<K>) {
        self.queue.pop_many_into(max, now, &mut self.index, out);
    }

    /// Moves every delayed entry whose time has come into the ready part, telling `on_promote` about
    /// each.
    pub fn promote_due(&mut self, now: i64, on_promote: impl FnMut(K)) {
        let mut live = Notifying {
            index: &mut self.index,
            on_promote,
        };
        self.queue.promote_due(now, &mut live);
    }

    pub fn contains(&self, key: K) -> bool {
        self.index.get(key).is_some()
    }

    /// When the earliest delayed entry becomes eligible, if any.
    pub fn next_ready_at(&self) -> Option<i64> {
        self.queue.next_ready_at()
    }

    /// Entries eligible at `now`, without promoting anything.
    pub fn eligible_len(&self, now: i64) -> usize {
        self.queue.eligible_len(now, &self.index)
    }

    pub fn len(&self) -> usize {
        self.index.len
    }

    pub fn is_empty(&self) -> bool {
        self.index.len == 0
    }

    pub fn delayed_len(&self) -> usize {
        self.queue.delayed_len()
    }

    /// Entries held, stale ones included.
    pub fn stored_len(&self) -> usize {
        self.queue.stored_len()
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
    fn remove_from_either_part() {
        let mut q = ReadyQueue::new();
        q.push(1u32, 0, 0, 0);
        q.push(2, 0, 50, 0);
        assert!(q.remove(1));
        assert!(q.remove(2));
        assert!(!q.remove(2));
        assert_eq!(
            q.next_ready_at(),
            None,
            "a removed delayed top is dropped at once"
        );
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
        // and from delayed to ready, and back
        q.push(3, 0, 100, 0);
        q.push(3, 0, 0, 0);
        assert_eq!(q.next_ready_at(), None);
        q.push(3, 0, 100, 0);
        assert_eq!(q.eligible_len(0), 0);
        assert_eq!(q.pop(0), None);
        assert_eq!(q.pop(100), Some(3));
        assert!(q.is_empty());
    }

    #[test]
    fn out_of_order_arrivals_within_a_level() {
        // A caller whose clock goes back pushes entries with earlier ready times after later ones.
        let mut q = ReadyQueue::new();
        q.push(1u32, 0, 50, 50);
        q.push(2, 0, 40, 40);
        q.push(3, 0, 60, 60);
        q.push(4, 0, 10, 10);
        assert_eq!(q.pop_many(10, 60), vec![4, 2, 1, 3]);
    }

    #[test]
    fn stale_entries_are_compacted_away() {
        let mut q = ReadyQueue::new();
        for k in 0..1000u32 {
            q.push(k, (k % 7) as i32, i64::from(k % 3) * 10, 0);
        }
        for k in 0..900u32 {
            assert!(q.remove(k));
        }
        assert_eq!(q.len(), 100);
        assert!(q.stored_len() < 2 * 100 + COMPACT_MIN, "{}", q.stored_len());
        let mut expected: Vec<u32> = (900..1000).collect();
        expected.sort_by_key(|&k| (Reverse(k % 7), i64::from(k % 3) * 10, k));
        assert_eq!(q.pop_many(usize::MAX, 100), expected);
    }

    #[test]
    fn push_many_matches_pushes_one_by_one() {
        let items: Vec<(i64, i32)> = (0..500).map(|k| (k % 300, (k * 7 % 5) as i32)).collect();
        let mut a = ReadyQueue::new();
        let mut b = ReadyQueue::new();
        a.push_many(&items);
        for &(k, p) in &items {
            b.push(k, p, 0, 0);
        }
        assert_eq!(a.len(), 300);
        assert_eq!(a.pop_many(usize::MAX, 0), b.pop_many(usize::MAX, 0));
    }

    #[test]
    fn push_many_plans_priorities_outside_the_window() {
        let items = [
            (1i64, 5000),
            (2, -5000),
            (3, 0),
            (4, 5000),
            (5, i32::MIN),
            (6, i32::MAX),
        ];
        let mut q = ReadyQueue::new();
        q.push_many(&items);
        assert_eq!(q.pop_many(10, 0), vec![6, 1, 4, 3, 2, 5]);
    }

    #[test]
    fn push_many_can_be_delayed() {
        let mut q = ReadyQueue::new();
        q.push_many_at(&[(1i64, 0), (2, 3)], 50, 0);
        assert_eq!(q.next_ready_at(), Some(50));
        assert_eq!(q.eligible_len(49), 0);
        assert_eq!(q.pop_many(10, 50), vec![2, 1]);
    }

    #[test]
    fn negative_and_huge_keys_use_the_map() {
        let mut q = ReadyQueue::new();
        q.push(-5i64, 0, 0, 0);
        q.push(i64::MAX, 0, 0, 0);
        q.push(3, 0, 0, 0);
        q.push(1 << 40, 1, 0, 0);
        assert!(q.contains(-5) && q.contains(i64::MAX) && q.contains(1 << 40));
        assert!(!q.contains(4));
        assert_eq!(q.pop_many(10, 0), vec![1 << 40, -5, i64::MAX, 3]);
    }

    #[test]
    fn sparse_keys_move_to_the_array_as_it_grows() {
        let mut q = ReadyQueue::new();
        q.push(1000i64, 0, 0, 0); // beyond the array at first
        for k in 0..1000 {
            q.push(k, 0, 0, 0);
        }
        assert!(q.index.sparse.is_empty(), "{:?}", q.index.sparse);
        assert!(q.remove(1000));
        assert!(!q.contains(1000));
        assert_eq!(q.len(), 1000);
    }

    #[test]
    fn promote_due_reports_each_promotion() {
        let mut q = ReadyQueue::new();
        q.push(1u32, 0, 10, 0);
        q.push(2, 0, 20, 0);
        q.push(3, 0, 30, 0);
        q.remove(2);
        let mut promoted = Vec::new();
        q.promote_due(25, |k| promoted.push(k));
        assert_eq!(promoted, vec![1]);
        assert_eq!(q.delayed_len(), 1);
        assert_eq!(q.next_ready_at(), Some(30));
        assert_eq!(q.eligible_len(25), 1);
        assert_eq!(q.eligible_len(30), 2);
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

    /// A model of the queue: key -> (priority, ready_at, push number); order by priority desc,
    /// ready_at, push number. `waiting` holds the keys not promoted yet (pushed with a future ready
    /// time, and no pop or promotion since that time came).
    #[derive(Default)]
    struct Model {
        entries: std::collections::HashMap<i64, (i32, i64, u64)>,
        waiting: std::collections::HashSet<i64>,
        pushes: u64,
    }

    impl Model {
        fn push(&mut self, key: i64, priority: i32, ready_at: i64, now: i64) {
            self.entries.insert(key, (priority, ready_at, self.pushes));
            self.pushes += 1;
            if ready_at > now {
                self.waiting.insert(key);
            } else {
                self.waiting.remove(&key);
            }
        }

        fn promote(&mut self, now: i64) {
            let entries = &self.entries;
            self.waiting.retain(|k| entries[k].1 > now);
        }

        fn next_ready_at(&self) -> Option<i64> {
            self.waiting.iter().map(|k| self.entries[k].1).min()
        }

        fn sorted_eligible(&self, now: i64) -> Vec<i64> {
            let mut due: Vec<(Reverse<i32>, i64, u64, i64)> = self
                .entries
                .iter()
                .filter(|(_, (_, at, _))| *at <= now)
                .map(|(k, (p, at, n))| (Reverse(*p), *at, *n, *k))
                .collect();
            due.sort();
            due.into_iter().map(|(_, _, _, k)| k).collect()
        }

        fn pop_many(&mut self, max: usize, now: i64) -> Vec<i64> {
            self.promote(now);
            let out: Vec<i64> = self.sorted_eligible(now).into_iter().take(max).collect();
            for k in &out {
                self.entries.remove(k);
            }
            out
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(i64, i32, i64),
        PushMany(Vec<(i64, i32)>),
        Remove(i64),
        Pop,
        PopMany(usize),
        Tick(i64),
        Promote,
    }

    fn key_strategy() -> impl Strategy<Value = i64> {
        prop_oneof![
            8 => 0i64..40,
            1 => -5i64..0,
            1 => (1i64 << 40)..(1i64 << 40) + 5,
        ]
    }

    fn op_strategy() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (key_strategy(), -3i32..3, -5i64..30).prop_map(|(k, p, d)| Op::Push(k, p, d)),
            1 => prop::collection::vec((key_strategy(), -3i32..3), 0..20).prop_map(Op::PushMany),
            3 => key_strategy().prop_map(Op::Remove),
            2 => Just(Op::Pop),
            1 => (0usize..8).prop_map(Op::PopMany),
            2 => (0i64..15).prop_map(Op::Tick),
            1 => Just(Op::Promote),
        ]
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

        /// Any interleaving of pushes (new and repeated keys, ready or delayed, clock going back
        /// too), removals, pops and promotions behaves like the model.
        #[test]
        fn interleaved_operations_match_a_model(ops in prop::collection::vec(op_strategy(), 0..300)) {
            let mut q: ReadyQueue<i64> = ReadyQueue::new();
            let mut model = Model::default();
            let mut now = 100i64;
            let mut peak = 0;
            for op in ops {
                match op {
                    Op::Push(k, p, d) => {
                        q.push(k, p, now + d, now);
                        model.push(k, p, now + d, now);
                    }
                    Op::PushMany(items) => {
                        q.push_many_at(&items, now, now);
                        for (k, p) in items {
                            model.push(k, p, now, now);
                        }
                    }
                    Op::Remove(k) => {
                        model.waiting.remove(&k);
                        prop_assert_eq!(q.remove(k), model.entries.remove(&k).is_some());
                    }
                    Op::Pop => {
                        prop_assert_eq!(q.pop(now), model.pop_many(1, now).first().copied());
                    }
                    Op::PopMany(max) => {
                        prop_assert_eq!(q.pop_many(max, now), model.pop_many(max, now));
                    }
                    Op::Tick(d) => now += d,
                    Op::Promote => {
                        let mut promoted = Vec::new();
                        q.promote_due(now, |k| promoted.push(k));
                        let mut expected: Vec<i64> = model
                            .waiting
                            .iter()
                            .copied()
                            .filter(|k| model.entries[k].1 <= now)
                            .collect();
                        expected.sort_by_key(|k| (model.entries[k].1, model.entries[k].2));
                        prop_assert_eq!(promoted, expected, "promoted in (ready_at, push) order");
                        model.promote(now);
                    }
                }
                prop_assert_eq!(q.len(), model.entries.len());
                prop_assert_eq!(q.eligible_len(now), model.sorted_eligible(now).len());
                prop_assert_eq!(q.next_ready_at(), model.next_ready_at());
                prop_assert_eq!(q.delayed_len(), model.waiting.len());
                for k in [-5i64, 0, 1, 39, 1 << 40] {
                    prop_assert_eq!(q.contains(k), model.entries.contains_key(&k));
                }
                peak = peak.max(q.len());
                prop_assert!(q.stored_len() - q.len() <= peak.max(COMPACT_MIN));
            }
            let rest = model.pop_many(usize::MAX, i64::MAX);
            prop_assert_eq!(q.pop_many(usize::MAX, i64::MAX), rest);
            prop_assert!(q.is_empty());
        }
    }
}
