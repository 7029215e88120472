//! Task dependency graph: decides when a child task may run.
//!
//! A child waits on edges `(parent, trigger)`. When a parent reaches a terminal outcome, each
//! edge to it is either met (the edge is dropped) or can never be met (the child is skipped).
//! A child whose last edge is met becomes ready. A skipped child is itself a finished parent,
//! with outcome [`Outcome::Skipped`], so skips cascade down the graph; the cascade is a worklist,
//! not recursion, so chains of any depth are safe.
//!
//! Only what is still undecided is stored: for each live parent the list of its waiting
//! children, and for each waiting child the number of edges still pending. Edges to parents that
//! already finished are evaluated when the child is added and never stored.
//!
//! Handles are opaque and are never checked for reuse. Entries for a child that was skipped or
//! forgotten may remain in the lists of its other, still live parents until those resolve (they
//! are ignored then). A handle must therefore not be reused for a new waiting child while such
//! a parent is live; a handle that carries a generation avoids the question. (Internally such an
//! entry is ignored once the child's node has been freed, see [`Dag`]; it still counts while the
//! child is itself a live parent.)

use std::collections::VecDeque;
use std::hash::Hash;

use crate::hash::FxHashMap;

/// The condition an edge waits for on its parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Trigger {
    OnSuccess,
    OnFailure,
    OnComplete,
}

/// The terminal outcomes of a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    Succeeded,
    Dead,
    Cancelled,
    Skipped,
}

impl Trigger {
    /// OnSuccess holds for Succeeded; OnFailure for Dead (the parent ran out of attempts);
    /// OnComplete for every terminal outcome (Succeeded, Dead, Cancelled, Skipped): it is a
    /// `finally`.
    pub fn is_met_by(self, outcome: Outcome) -> bool {
        match self {
            Trigger::OnSuccess => outcome == Outcome::Succeeded,
            Trigger::OnFailure => outcome == Outcome::Dead,
            Trigger::OnComplete => true,
        }
    }
}

/// What became of a child when it was added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Every edge is already met: the child may run now.
    Ready,
    /// Some parents are still live; the child is stored until they resolve.
    Waiting,
    /// An edge to a finished parent can never be met; nothing was stored.
    Skipped,
}

/// The children decided by one [`Dag::resolve`], each listed once.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Resolution<K> {
    /// Every edge is met: these may run now.
    pub ready: Vec<K>,
    /// An edge can never be met: these never run. Their own children were already resolved.
    pub skipped: Vec<K>,
}

/// No edge / no slot.
const NIL: u32 = u32::MAX;
/// Edges carry their child's slot generation in the high 30 bits and the trigger in the low 2.
const GENERATION_MASK: u32 = u32::MAX >> 2;

fn trigger_bits(trigger: Trigger) -> u32 {
    match trigger {
        Trigger::OnSuccess => 0,
        Trigger::OnFailure => 1,
        Trigger::OnComplete => 2,
    }
}

fn trigger_of(tagged: u32) -> Trigger {
    match tagged & 3 {
        0 => Trigger::OnSuccess,
        1 => Trigger::OnFailure,
        _ => Trigger::OnComplete,
    }
}

/// A node that is waiting, or a live parent with waiting children (or both).
struct Slot<K> {
    key: K,
    /// Bumped each time the slot is freed, so edges to its previous occupant are recognised as stale.
    generation: u32,
    /// Edges of this node (as a child) not yet met; 0 if it is not waiting.
    pending: u32,
    /// First and last of this node's edges to its waiting children (indexes into `Dag::edges`),
    /// in the order they were added; NIL if none.
    head: u32,
    tail: u32,
    /// False while the slot is on the free list.
    live: bool,
}

/// One edge parent -> child, in the parent's singly linked list.
#[derive(Clone, Copy)]
struct Edge {
    child: u32,
    /// `generation << 2 | trigger` of the child's slot when the edge was added.
    tagged: u32,
    next: u32,
}

/// The waiting children and their live parents.
///
/// Each node is interned once, at `add_child` (and looked up once at `resolve`), to a dense slot
/// index: everything else, in particular the whole cascade of a `resolve`, runs on slot indexes and
/// never hashes. Edges live in one arena as per-parent linked lists. Slots and edges of decided
/// nodes go to free lists and are reused, so memory stays bounded by the peak number of live nodes
/// and edges; an edge left behind by a freed child is recognised by the slot's generation.
pub struct Dag<K> {
    /// Key -> slot. Entries of freed slots stay until the slot is reused (so freeing never
    /// hashes); `find` checks the slot still holds the key.
    index: FxHashMap<K, u32>,
    slots: Vec<Slot<K>>,
    free_slots: Vec<u32>,
    edges: Vec<Edge>,
    /// Head of the free edge list (chained through `next`).
    free_edges: u32,
    waiting: usize,
}

/// A [`Dag::resolve`] in progress: see [`Dag::start_resolve`].
pub struct Cascade<K> {
    finished: VecDeque<(u32, Outcome)>,
    resolution: Resolution<K>,
}

impl<K> Cascade<K> {
    /// Whether every decided node has been processed.
    pub fn is_done(&self) -> bool {
        self.finished.is_empty()
    }

    pub fn into_resolution(self) -> Resolution<K> {
        debug_assert!(self.is_done(), "cascade not run to the end");
        self.resolution
    }
}

impl<K: Copy + Eq + Hash> Default for Dag<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Copy + Eq + Hash> Dag<K> {
    pub fn new() -> Self {
        Dag {
            index: FxHashMap::default(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            edges: Vec::new(),
            free_edges: NIL,
            waiting: 0,
        }
    }

    /// The live slot holding `key`.
    #[inline]
    fn find(&self, key: K) -> Option<u32> {
        let &slot = self.index.get(&key)?;
        let s = &self.slots[slot as usize];
        (s.live && s.key == key).then_some(slot)
    }

    /// The live slot holding `key`, taking a free one (or a new one) if there is none.
    fn intern(&mut self, key: K) -> u32 {
        if let Some(slot) = self.find(key) {
            return slot;
        }
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                let s = &mut self.slots[slot as usize];
                let old_key = std::mem::replace(&mut s.key, key);
                s.live = true;
                debug_assert!(s.pending == 0 && s.head == NIL);
                if old_key != key && self.index.get(&old_key) == Some(&slot) {
                    self.index.remove(&old_key);
                }
                slot
            }
            None => {
                let slot = u32::try_from(self.slots.len())
                    .ok()
                    .filter(|&slot| slot != NIL)
                    .expect("fewer than 2^32 - 1 live nodes");
                self.slots.push(Slot {
                    key,
                    generation: 0,
                    pending: 0,
                    head: NIL,
                    tail: NIL,
                    live: true,
                });
                slot
            }
        };
        self.index.insert(key, slot);
        slot
    }

    /// Frees `slot` if it is neither waiting nor a parent with waiting children.
    #[inline]
    fn release_if_unused(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        if s.pending == 0 && s.head == NIL && s.live {
            s.live = false;
            s.generation = s.generation.wrapping_add(1) & GENERATION_MASK;
            self.free_slots.push(slot);
        }
    }

    fn push_edge(&mut self, parent: u32, child: u32, trigger: Trigger) {
        let edge = Edge {
            child,
            tagged: self.slots[child as usize].generation << 2 | trigger_bits(trigger),
            next: NIL,
        };
        let index = if self.free_edges != NIL {
            let index = self.free_edges;
            self.free_edges = self.edges[index as usize].next;
            self.edges[index as usize] = edge;
            index
        } else {
            let index = u32::try_from(self.edges.len())
                .ok()
                .filter(|&index| index != NIL)
                .expect("fewer than 2^32 - 1 live edges");
            self.edges.push(edge);
            index
        };
        let p = &mut self.slots[parent as usize];
        if p.tail == NIL {
            p.head = index;
        } else {
            self.edges[p.tail as usize].next = index;
        }
        self.slots[parent as usize].tail = index;
    }

    /// Registers a new `child` with its `edges` (parent, trigger). `outcome_of(parent)` is
    /// Some(outcome) for a parent that already finished, None for one still live (the caller has
    /// already checked every parent exists).
    ///
    /// Edges to finished parents are evaluated now: one that can never hold makes the child
    /// Skipped (nothing is stored); ones that hold are dropped. If edges to live parents remain,
    /// the child is stored as Waiting; else it is Ready.
    pub fn add_child(
        &mut self,
        child: K,
        edges: &[(K, Trigger)],
        outcome_of: impl Fn(K) -> Option<Outcome>,
    ) -> Admission {
        debug_assert!(!self.is_waiting(child), "child added twice");
        let mut live_edges = Vec::with_capacity(edges.len());
        for &(parent, trigger) in edges {
            match outcome_of(parent) {
                Some(outcome) if !trigger.is_met_by(outcome) => return Admission::Skipped,
                Some(_) => {}
                None => live_edges.push((parent, trigger)),
            }
        }
        if live_edges.is_empty() {
            return Admission::Ready;
        }
        let pending = u32::try_from(live_edges.len()).expect("fewer than 2^32 edges per child");
        let child_slot = self.intern(child);
        self.slots[child_slot as usize].pending = pending;
        self.waiting += 1;
        for (parent, trigger) in live_edges {
            let parent_slot = self.intern(parent);
            self.push_edge(parent_slot, child_slot, trigger);
        }
        Admission::Waiting
    }

    /// A parent reached a terminal outcome. Children whose last pending edge is now met are
    /// `ready`; a child with an edge that can no longer hold is `skipped`, and is in turn
    /// resolved with [`Outcome::Skipped`] for its own children. Children that were forgotten or
    /// already decided are ignored. The parent's child list is dropped.
    pub fn resolve(&mut self, parent: K, outcome: Outcome) -> Resolution<K> {
        let mut cascade = self.start_resolve(parent, outcome);
        self.run_cascade(&mut cascade, usize::MAX);
        cascade.into_resolution()
    }

    /// [`Dag::resolve`] in steps, for a caller that wants to bound the work done at once: run
    /// [`Dag::run_cascade`] until it returns true, touching the `Dag` in no other way meanwhile,
    /// then take [`Cascade::into_resolution`].
    pub fn start_resolve(&mut self, parent: K, outcome: Outcome) -> Cascade<K> {
        let mut finished = VecDeque::new();
        if let Some(slot) = self.find(parent) {
            finished.push_back((slot, outcome));
        }
        Cascade {
            finished,
            resolution: Resolution {
                ready: Vec::new(),
                skipped: Vec::new(),
            },
        }
    }

    /// Continues `cascade`, stopping after the node during which `max_edges` edges have been
    /// visited in this call (so at least one node is processed). Returns whether it is done.
    pub fn run_cascade(&mut self, cascade: &mut Cascade<K>, max_edges: usize) -> bool {
        let mut visited = 0usize;
        while visited < max_edges {
            let Some((parent, outcome)) = cascade.finished.pop_front() else {
                break;
            };
            let p = &mut self.slots[parent as usize];
            let (head, tail) = (p.head, p.tail);
            p.head = NIL;
            p.tail = NIL;
            let mut edge_index = head;
            while edge_index != NIL {
                let edge = self.edges[edge_index as usize];
                edge_index = edge.next;
                visited += 1;
                let child = &mut self.slots[edge.child as usize];
                // Stale (the child's slot was freed since), forgotten, or already decided.
                if child.generation != edge.tagged >> 2 || child.pending == 0 {
                    continue;
                }
                if trigger_of(edge.tagged).is_met_by(outcome) {
                    child.pending -= 1;
                    if child.pending != 0 {
                        continue;
                    }
                    cascade.resolution.ready.push(child.key);
                } else {
                    child.pending = 0;
                    cascade.resolution.skipped.push(child.key);
                    if child.head != NIL {
                        cascade.finished.push_back((edge.child, Outcome::Skipped));
                    }
                }
                self.waiting -= 1;
                self.release_if_unused(edge.child);
            }
            if head != NIL {
                self.edges[tail as usize].next = self.free_edges;
                self.free_edges = head;
            }
            self.release_if_unused(parent);
        }
        cascade.is_done()
    }

    /// Removes a waiting child (it was cancelled). Returns whether it was waiting. Later
    /// resolutions of its parents ignore it. The caller then resolves the child itself with
    /// [`Outcome::Cancelled`] for its own children.
    pub fn forget(&mut self, child: K) -> bool {
        let Some(slot) = self.find(child) else {
            return false;
        };
        let s = &mut self.slots[slot as usize];
        if s.pending == 0 {
            return false;
        }
        s.pending = 0;
        self.waiting -= 1;
        self.release_if_unused(slot);
        true
    }

    pub fn is_waiting(&self, child: K) -> bool {
        self.pending_edges(child) != 0
    }

    /// Edges of `child` not yet met; 0 if it is not waiting.
    pub fn pending_edges(&self, child: K) -> usize {
        self.find(child)
            .map_or(0, |slot| self.slots[slot as usize].pending as usize)
    }

    /// Number of waiting children.
    pub fn waiting_len(&self) -> usize {
        self.waiting
    }

    /// Whether nothing is stored: no waiting child and no parent with children (every slot free).
    pub fn is_empty(&self) -> bool {
        self.free_slots.len() == self.slots.len()
    }
}

/// Order for submitting a batch of new nodes that may name each other as parents. `parents[i]`
/// lists node i's parents given as indexes into the batch (the caller drops parents outside the
/// batch). Returns an order in which every node comes after its parents, or Err(i) with a node i
/// that lies on a cycle (self-loops included).
///
/// Panics if a parent index is not below `parents.len()`.
pub fn topological_order(parents: &[Vec<usize>]) -> Result<Vec<usize>, usize> {
    let node_count = parents.len();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); node_count];
    for (node, node_parents) in parents.iter().enumerate() {
        for &parent in node_parents {
            children[parent].push(node);
        }
    }

    // Kahn's algorithm: emit a node once all of its parents are emitted.
    let mut unplaced_parents: Vec<usize> = parents.iter().map(Vec::len).collect();
    let mut order: Vec<usize> = (0..node_count)
        .filter(|&node| unplaced_parents[node] == 0)
        .collect();
    let mut next = 0;
    while next < order.len() {
        let node = order[next];
        next += 1;
        for &child in &children[node] {
            unplaced_parents[child] -= 1;
            if unplaced_parents[child] == 0 {
                order.push(child);
            }
        }
    }
    if order.len() == node_count {
        return Ok(order);
    }

    // Every unplaced node has an unplaced parent, so walking from one unplaced node to an
    // unplaced parent must revisit a node, and the first node revisited lies on a cycle.
    let mut placed = vec![false; node_count];
    for &node in &order {
        placed[node] = true;
    }
    let mut visited = vec![false; node_count];
    let mut node = (0..node_count)
        .find(|&node| !placed[node])
        .expect("an unplaced node exists");
    while !visited[node] {
        visited[node] = true;
        node = *parents[node]
            .iter()
            .find(|&&parent| !placed[parent])
            .expect("an unplaced node has an unplaced parent");
    }
    Err(node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{HashMap, HashSet};

    use Outcome::{Cancelled, Dead, Skipped, Succeeded};
    use Trigger::{OnComplete, OnFailure, OnSuccess};

    const ALL_TRIGGERS: [Trigger; 3] = [OnSuccess, OnFailure, OnComplete];
    const ALL_OUTCOMES: [Outcome; 4] = [Succeeded, Dead, Cancelled, Skipped];

    fn all_live(_: u32) -> Option<Outcome> {
        None
    }

    fn ready(ids: &[u32]) -> Resolution<u32> {
        Resolution {
            ready: ids.to_vec(),
            skipped: vec![],
        }
    }

    fn skipped(ids: &[u32]) -> Resolution<u32> {
        Resolution {
            ready: vec![],
            skipped: ids.to_vec(),
        }
    }

    #[test]
    fn trigger_truth_table() {
        for trigger in ALL_TRIGGERS {
            for outcome in ALL_OUTCOMES {
                let expected = match trigger {
                    OnSuccess => outcome == Succeeded,
                    OnFailure => outcome == Dead,
                    OnComplete => true,
                };
                assert_eq!(
                    trigger.is_met_by(outcome),
                    expected,
                    "{trigger:?} {outcome:?}"
                );
            }
        }
    }

    #[test]
    fn single_edge_of_each_trigger_against_each_outcome() {
        for trigger in ALL_TRIGGERS {
            for outcome in ALL_OUTCOMES {
                let mut dag = Dag::new();
                assert_eq!(
                    dag.add_child(1, &[(0, trigger)], all_live),
                    Admission::Waiting
                );
                assert_eq!(dag.pending_edges(1), 1);
                let expected = if trigger.is_met_by(outcome) {
                    ready(&[1])
                } else {
                    skipped(&[1])
                };
                assert_eq!(dag.resolve(0, outcome), expected, "{trigger:?} {outcome:?}");
                assert_eq!(dag.waiting_len(), 0);
                assert!(dag.is_empty());
            }
        }
    }

    #[test]
    fn child_without_edges_is_ready() {
        let mut dag = Dag::<u32>::new();
        assert_eq!(dag.add_child(1, &[], all_live), Admission::Ready);
        assert_eq!(dag.waiting_len(), 0);
    }

    #[test]
    fn join_is_ready_only_after_the_last_parent() {
        let mut dag = Dag::new();
        let edges = [(0, OnSuccess), (1, OnFailure), (2, OnComplete)];
        assert_eq!(dag.add_child(9, &edges, all_live), Admission::Waiting);
        assert_eq!(dag.pending_edges(9), 3);
        assert_eq!(dag.resolve(1, Dead), Resolution::default());
        assert_eq!(dag.pending_edges(9), 2);
        assert_eq!(dag.resolve(0, Succeeded), Resolution::default());
        assert!(dag.is_waiting(9));
        assert_eq!(dag.resolve(2, Cancelled), ready(&[9]));
        assert!(!dag.is_waiting(9));
        assert_eq!(dag.pending_edges(9), 0);
    }

    #[test]
    fn failed_join_cascades_skips_but_runs_finally_grandchild() {
        let mut dag = Dag::new();
        dag.add_child(2, &[(0, OnSuccess), (1, OnSuccess)], all_live);
        dag.add_child(3, &[(2, OnSuccess)], all_live);
        dag.add_child(4, &[(3, OnFailure)], all_live);
        dag.add_child(5, &[(2, OnComplete)], all_live);
        dag.add_child(6, &[(5, OnSuccess)], all_live);

        let resolution = dag.resolve(0, Dead);
        assert_eq!(resolution.skipped, vec![2, 3, 4]);
        assert_eq!(resolution.ready, vec![5]);
        assert!(dag.is_waiting(6), "waits for the finally task to run");
        assert_eq!(dag.resolve(1, Succeeded), Resolution::default());
        assert_eq!(dag.resolve(5, Succeeded), ready(&[6]));
        assert_eq!(dag.waiting_len(), 0);
    }

    #[test]
    fn child_added_after_its_parent_finished() {
        let finished = |parent: u32| (parent == 0).then_some(Succeeded);
        let mut dag = Dag::new();
        assert_eq!(
            dag.add_child(1, &[(0, OnSuccess)], finished),
            Admission::Ready
        );
        assert_eq!(
            dag.add_child(2, &[(0, OnFailure)], finished),
            Admission::Skipped
        );
        assert_eq!(
            dag.add_child(3, &[(0, OnComplete)], finished),
            Admission::Ready
        );
        assert_eq!(dag.waiting_len(), 0);

        // A met edge to a finished parent is dropped; the live one remains.
        let edges = [(0, OnSuccess), (7, OnSuccess)];
        assert_eq!(dag.add_child(4, &edges, finished), Admission::Waiting);
        assert_eq!(dag.pending_edges(4), 1);
        assert_eq!(dag.resolve(7, Succeeded), ready(&[4]));

        // An unmet edge to a finished parent stores nothing, not even the live edges.
        let edges = [(8, OnSuccess), (0, OnFailure)];
        assert_eq!(dag.add_child(5, &edges, finished), Admission::Skipped);
        assert!(dag.is_empty());
        assert_eq!(dag.resolve(8, Succeeded), Resolution::default());
    }

    #[test]
    fn forgotten_child_is_ignored_when_its_parent_resolves() {
        let mut dag = Dag::new();
        dag.add_child(1, &[(0, OnSuccess)], all_live);
        dag.add_child(2, &[(1, OnComplete)], all_live);
        assert!(dag.forget(1));
        assert!(!dag.forget(1), "no longer waiting");
        assert_eq!(dag.resolve(0, Succeeded), Resolution::default());
        // The caller resolves the cancelled child for its own children.
        assert_eq!(dag.resolve(1, Cancelled), ready(&[2]));
        assert_eq!(dag.waiting_len(), 0);
        assert!(dag.is_empty());
    }

    #[test]
    fn two_edges_to_one_parent_that_cannot_both_hold() {
        for outcome in ALL_OUTCOMES {
            for edges in [
                [(0, OnSuccess), (0, OnFailure)],
                [(0, OnFailure), (0, OnSuccess)],
            ] {
                let mut dag = Dag::new();
                dag.add_child(1, &edges, all_live);
                assert_eq!(dag.pending_edges(1), 2);
                assert_eq!(
                    dag.resolve(0, outcome),
                    skipped(&[1]),
                    "{edges:?} {outcome:?}"
                );
            }
        }
    }

    #[test]
    fn two_edges_to_one_parent_that_both_hold() {
        let mut dag = Dag::new();
        dag.add_child(1, &[(0, OnSuccess), (0, OnComplete)], all_live);
        assert_eq!(dag.resolve(0, Succeeded), ready(&[1]));
    }

    #[test]
    fn diamond() {
        let mut dag = Dag::new();
        dag.add_child(1, &[(0, OnSuccess)], all_live);
        dag.add_child(2, &[(0, OnSuccess)], all_live);
        dag.add_child(3, &[(1, OnSuccess), (2, OnSuccess)], all_live);
        assert_eq!(dag.resolve(0, Succeeded), ready(&[1, 2]));
        assert_eq!(dag.resolve(2, Succeeded), Resolution::default());
        assert_eq!(dag.resolve(1, Succeeded), ready(&[3]));

        // Both sides skipped: the join is skipped once, not twice.
        dag.add_child(11, &[(10, OnSuccess)], all_live);
        dag.add_child(12, &[(10, OnSuccess)], all_live);
        dag.add_child(13, &[(11, OnComplete), (12, OnSuccess)], all_live);
        assert_eq!(dag.resolve(10, Dead), skipped(&[11, 12, 13]));
        assert_eq!(dag.waiting_len(), 0);
    }

    #[test]
    fn stale_edge_to_a_freed_child_does_not_touch_the_slot_reused_after_it() {
        let mut dag = Dag::new();
        dag.add_child(2, &[(0, OnSuccess), (1, OnSuccess)], all_live);
        // 2 is skipped and freed; its edge from live parent 1 stays behind.
        assert_eq!(dag.resolve(0, Dead), skipped(&[2]));
        // Whichever freed slots these take, the stale edge must not count for them.
        dag.add_child(3, &[(1, OnSuccess)], all_live);
        dag.add_child(4, &[(1, OnSuccess), (5, OnSuccess)], all_live);
        dag.add_child(6, &[(1, OnSuccess)], all_live);
        assert_eq!(dag.resolve(1, Succeeded), ready(&[3, 6]));
        assert_eq!(dag.pending_edges(4), 1);
        assert_eq!(dag.resolve(5, Succeeded), ready(&[4]));
        assert!(dag.is_empty());
    }

    #[test]
    fn slots_and_edges_are_reused() {
        let mut dag = Dag::new();
        for round in 0..1000u32 {
            let base = round * 10;
            dag.add_child(base + 1, &[(base, OnSuccess)], all_live);
            dag.add_child(
                base + 2,
                &[(base, OnSuccess), (base + 1, OnSuccess)],
                all_live,
            );
            assert_eq!(dag.resolve(base, Succeeded), ready(&[base + 1]));
            assert_eq!(dag.resolve(base + 1, Succeeded), ready(&[base + 2]));
            assert!(dag.is_empty());
        }
        assert!(dag.slots.len() <= 3 && dag.edges.len() <= 3);
        assert!(dag.index.len() <= 3);
    }

    #[test]
    fn cascade_in_steps_matches_one_call() {
        let build = || {
            let mut dag = Dag::new();
            for node in 1..100u32 {
                dag.add_child(node, &[(node / 2, OnSuccess)], all_live);
            }
            dag
        };
        let expected = build().resolve(0, Dead);
        let mut dag = build();
        let mut cascade = dag.start_resolve(0, Dead);
        let mut steps = 0;
        while !dag.run_cascade(&mut cascade, 3) {
            steps += 1;
        }
        assert!(steps > 10, "{steps}");
        assert_eq!(cascade.into_resolution(), expected);
        assert!(dag.is_empty());
    }

    /// Rust-only cost of the benchmark's cascades (`benches/core_vs_python.py`, "root dead" rows):
    /// `cargo test --release -p skedulr-core -- --ignored --nocapture cascade_timing`.
    #[test]
    #[ignore = "timing, not a check"]
    fn cascade_timing() {
        const N: u64 = 100_000;
        type ParentsOf = fn(u64) -> Vec<u64>;
        let shapes: [(&str, ParentsOf); 2] = [
            ("tree/4", |i| vec![(i - 1) / 4]),
            ("layered/1000x2", |i| {
                let (layer, j) = ((i - 1) / 1000, (i - 1) % 1000);
                if layer == 0 {
                    vec![0]
                } else {
                    let above = 1 + (layer - 1) * 1000;
                    vec![above + j, above + (j + 1) % 1000]
                }
            }),
        ];
        for (name, parents) in shapes {
            let mut best = f64::INFINITY;
            for _ in 0..5 {
                let mut dag = Dag::new();
                for i in 1..N {
                    let edges: Vec<_> = parents(i).into_iter().map(|p| (p, OnSuccess)).collect();
                    dag.add_child(i, &edges, |_| None);
                }
                let start = std::time::Instant::now();
                let resolution = dag.resolve(0, Dead);
                best = best.min(start.elapsed().as_secs_f64());
                assert_eq!(resolution.skipped.len() as u64, N - 1);
            }
            println!(
                "{name}: resolve(root, Dead) of {N} nodes: {:.2} ns/node",
                best * 1e9 / N as f64
            );
        }
    }

    #[test]
    fn deep_chain_is_skipped_without_recursion() {
        const LENGTH: u32 = 200_000;
        let mut dag = Dag::new();
        for node in 1..LENGTH {
            dag.add_child(node, &[(node - 1, OnSuccess)], all_live);
        }
        assert_eq!(dag.waiting_len(), LENGTH as usize - 1);
        let resolution = dag.resolve(0, Dead);
        assert!(resolution.ready.is_empty());
        assert_eq!(resolution.skipped, (1..LENGTH).collect::<Vec<_>>());
        assert_eq!(dag.waiting_len(), 0);
        assert!(dag.is_empty());
    }

    fn assert_valid_order(parents: &[Vec<usize>], order: &[usize]) {
        let mut position = vec![usize::MAX; parents.len()];
        for (index, &node) in order.iter().enumerate() {
            assert_eq!(position[node], usize::MAX, "node {node} listed twice");
            position[node] = index;
        }
        assert_eq!(order.len(), parents.len());
        for (node, node_parents) in parents.iter().enumerate() {
            for &parent in node_parents {
                assert!(position[parent] < position[node], "{parent} after {node}");
            }
        }
    }

    /// Whether `node` can reach itself by following parent links.
    fn lies_on_cycle(parents: &[Vec<usize>], node: usize) -> bool {
        let mut seen = vec![false; parents.len()];
        let mut stack = parents[node].clone();
        while let Some(current) = stack.pop() {
            if current == node {
                return true;
            }
            if !std::mem::replace(&mut seen[current], true) {
                stack.extend(&parents[current]);
            }
        }
        false
    }

    #[test]
    fn topological_order_of_valid_batches() {
        let empty: Vec<Vec<usize>> = vec![];
        assert_eq!(topological_order(&empty), Ok(vec![]));
        let batch = vec![vec![2], vec![], vec![1], vec![0, 2, 2]];
        assert_eq!(topological_order(&batch), Ok(vec![1, 2, 0, 3]));
        let diamond = vec![vec![1, 2], vec![3], vec![3], vec![]];
        assert_valid_order(&diamond, &topological_order(&diamond).unwrap());
    }

    #[test]
    fn topological_order_reports_a_node_on_the_cycle() {
        // 0 -> 1 -> 2 -> 1, and 3 hangs below the cycle: only 1 or 2 may be reported.
        let batch = vec![vec![], vec![0, 2], vec![1], vec![2]];
        let node = topological_order(&batch).unwrap_err();
        assert!(node == 1 || node == 2, "{node}");
        assert_eq!(topological_order(&[vec![1], vec![0]]), Err(0));
    }

    #[test]
    fn topological_order_reports_a_self_loop() {
        assert_eq!(topological_order(&[vec![], vec![1]]), Err(1));
        assert_eq!(topological_order(&[vec![0]]), Err(0));
    }

    /// The final outcome of every node, computed straight from the definitions: roots take
    /// their given outcome, cancelled nodes are Cancelled, and any other node runs (and
    /// succeeds) if all its edges are met, else it is Skipped. Parents have lower indexes.
    fn reference_outcomes(
        edges: &[Vec<(usize, Trigger)>],
        root_outcomes: &[Outcome],
        cancelled: &HashSet<usize>,
    ) -> Vec<Outcome> {
        let mut outcomes: Vec<Outcome> = Vec::with_capacity(edges.len());
        for (node, node_edges) in edges.iter().enumerate() {
            let outcome = if cancelled.contains(&node) {
                Cancelled
            } else if node_edges.is_empty() {
                root_outcomes[node]
            } else if node_edges
                .iter()
                .all(|&(parent, trigger)| trigger.is_met_by(outcomes[parent]))
            {
                Succeeded
            } else {
                Skipped
            };
            outcomes.push(outcome);
        }
        outcomes
    }

    fn trigger_strategy() -> impl Strategy<Value = Trigger> {
        prop::sample::select(ALL_TRIGGERS.to_vec())
    }

    fn outcome_strategy() -> impl Strategy<Value = Outcome> {
        prop::sample::select(ALL_OUTCOMES.to_vec())
    }

    /// Edges of node i, each as (parent < i, trigger); duplicates allowed.
    fn dag_strategy() -> impl Strategy<Value = Vec<Vec<(usize, Trigger)>>> {
        (1usize..40).prop_flat_map(|node_count| {
            (0..node_count)
                .map(|node| {
                    if node == 0 {
                        Just(vec![]).boxed()
                    } else {
                        prop::collection::vec((0..node, trigger_strategy()), 0..4).boxed()
                    }
                })
                .collect::<Vec<_>>()
        })
    }

    /// What the test driver does next.
    #[derive(Debug, Clone, Copy)]
    enum Step {
        /// Submit the next node; its parents are all submitted already.
        Submit,
        /// Finish the oldest node that may run.
        FinishOne,
        /// Cancel the waiting node at this position among the waiting ones, if any.
        Cancel(usize),
    }

    fn step_strategy() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => Just(Step::Submit),
            4 => Just(Step::FinishOne),
            1 => any::<usize>().prop_map(Step::Cancel),
        ]
    }

    /// The caller's view of the graph, used to drive a [`Dag`] like the scheduler does.
    struct Driver<'a> {
        dag: Dag<usize>,
        edges: &'a [Vec<(usize, Trigger)>],
        root_outcomes: &'a [Outcome],
        submitted: usize,
        waiting: Vec<usize>,
        runnable: VecDeque<usize>,
        finished: HashMap<usize, Outcome>,
        cancelled: HashSet<usize>,
    }

    impl Driver<'_> {
        /// Records a node's final outcome; each node is decided exactly once.
        fn finish(&mut self, node: usize, outcome: Outcome) {
            assert_eq!(
                self.finished.insert(node, outcome),
                None,
                "{node} decided twice"
            );
        }

        fn apply(&mut self, resolution: Resolution<usize>) {
            for node in resolution.ready {
                assert!(self.waiting.contains(&node), "{node} was not waiting");
                self.waiting.retain(|&waiting| waiting != node);
                self.runnable.push_back(node);
            }
            for node in resolution.skipped {
                assert!(self.waiting.contains(&node), "{node} was not waiting");
                self.waiting.retain(|&waiting| waiting != node);
                self.finish(node, Skipped);
            }
        }

        fn submit(&mut self) {
            let node = self.submitted;
            self.submitted += 1;
            let finished = &self.finished;
            let admission = self.dag.add_child(node, &self.edges[node], |parent| {
                finished.get(&parent).copied()
            });
            match admission {
                Admission::Ready => self.runnable.push_back(node),
                Admission::Waiting => self.waiting.push(node),
                Admission::Skipped => {
                    self.finish(node, Skipped);
                    let resolution = self.dag.resolve(node, Skipped);
                    assert_eq!(resolution, Resolution::default(), "no children yet");
                }
            }
        }

        fn finish_one(&mut self) {
            let Some(node) = self.runnable.pop_front() else {
                return;
            };
            let outcome = if self.edges[node].is_empty() {
                self.root_outcomes[node]
            } else {
                Succeeded
            };
            self.finish(node, outcome);
            let resolution = self.dag.resolve(node, outcome);
            self.apply(resolution);
        }

        fn cancel(&mut self, position: usize) {
            if self.waiting.is_empty() {
                return;
            }
            let node = self.waiting.remove(position % self.waiting.len());
            assert!(self.dag.forget(node));
            self.cancelled.insert(node);
            self.finish(node, Cancelled);
            let resolution = self.dag.resolve(node, Cancelled);
            self.apply(resolution);
        }
    }

    proptest! {
        #[test]
        fn resolution_matches_reference(
            edges in dag_strategy(),
            root_outcomes in prop::collection::vec(outcome_strategy(), 40),
            steps in prop::collection::vec(step_strategy(), 0..120),
        ) {
            let mut driver = Driver {
                dag: Dag::new(),
                edges: &edges,
                root_outcomes: &root_outcomes,
                submitted: 0,
                waiting: Vec::new(),
                runnable: VecDeque::new(),
                finished: HashMap::new(),
                cancelled: HashSet::new(),
            };
            for step in steps {
                match step {
                    Step::Submit if driver.submitted < edges.len() => driver.submit(),
                    Step::Submit => {}
                    Step::FinishOne => driver.finish_one(),
                    Step::Cancel(position) => driver.cancel(position),
                }
                prop_assert_eq!(driver.dag.waiting_len(), driver.waiting.len());
                for &node in &driver.waiting {
                    prop_assert!(driver.dag.is_waiting(node));
                    prop_assert!(driver.dag.pending_edges(node) >= 1);
                }
            }
            while driver.submitted < edges.len() {
                driver.submit();
            }
            while !driver.runnable.is_empty() {
                driver.finish_one();
            }

            prop_assert!(driver.waiting.is_empty(), "never decided: {:?}", driver.waiting);
            prop_assert_eq!(driver.dag.waiting_len(), 0);
            prop_assert!(driver.dag.is_empty());
            let expected = reference_outcomes(&edges, &root_outcomes, &driver.cancelled);
            for (node, &outcome) in expected.iter().enumerate() {
                prop_assert_eq!(driver.finished.get(&node), Some(&outcome), "node {}", node);
            }
        }

        #[test]
        fn topological_order_is_valid_or_names_a_cycle(
            parents in (1usize..30).prop_flat_map(|node_count| {
                prop::collection::vec(prop::collection::vec(0..node_count, 0..3), node_count)
            })
        ) {
            match topological_order(&parents) {
                Ok(order) => assert_valid_order(&parents, &order),
                Err(node) => prop_assert!(lies_on_cycle(&parents, node), "{} not on a cycle", node),
            }
        }

        #[test]
        fn topological_order_accepts_every_acyclic_batch(edges in dag_strategy()) {
            // Reverse the node numbering so the order is not simply the identity.
            let node_count = edges.len();
            let parents: Vec<Vec<usize>> = edges
                .iter()
                .rev()
                .map(|node_edges| {
                    node_edges.iter().map(|&(parent, _)| node_count - 1 - parent).collect()
                })
                .collect();
            let order = topological_order(&parents).expect("acyclic");
            assert_valid_order(&parents, &order);
        }
    }
}
