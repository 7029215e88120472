//! The embedded engine: the task table of the in-memory storage, with every transition of
//! DESIGN.md §2 applied atomically (one method call = one state change, as one Lua script is for Redis).
//!
//! Tasks live in a slab addressed by `u32` slots; the ready queues, the lease table and the DAG all hold
//! slots, never strings, which keeps a queued task near 300 bytes. Every method takes `now` (epoch ms):
//! the engine never reads a clock.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use crate::dag::{Admission, Dag, Outcome, Trigger};
use crate::error::{CoreError, CoreResult};
use crate::hash::FxHashSet;
use crate::leases::LeaseTable;
use crate::ready_queue::{Entry, LazyQueue, Liveness};
use crate::schedules::{ScheduleSpec, ScheduleTable, ScheduleView};
use crate::task::{Claim, Finish, Status, TaskFilter, TaskSpec, TaskView};
use crate::validate;

const NO_SCHEDULE: u32 = u32::MAX;
/// While a task with a key is live, its key never expires.
const LIVE: i64 = i64::MAX;

#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub max_payload_bytes: usize,
    /// How long an idempotency key is remembered after its task ends.
    pub key_ttl_ms: i64,
    /// Lease losses after which a task goes dead (a crash loop), apart from ordinary failures.
    pub max_lease_losses: u32,
    /// Seeds generated task ids, so two engines do not make the same ones.
    pub id_seed: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_payload_bytes: 1 << 20,
            key_ttl_ms: 24 * 3600 * 1000,
            max_lease_losses: 3,
            id_seed: 0,
        }
    }
}

/// Fields most tasks never need, boxed so a plain queued task stays small.
#[derive(Debug, Default)]
struct Extra {
    key: Option<Box<str>>,
    error: Option<Box<str>>,
    traceback: Option<Box<str>>,
    result: Option<Box<[u8]>>,
    parents: Box<[(Arc<str>, Trigger)]>,
}

#[derive(Debug)]
struct Task {
    id: Arc<str>,
    payload: Box<[u8]>,
    extra: Option<Box<Extra>>,
    created_ms: i64,
    ready_ms: i64,
    started_ms: i64,
    finished_ms: i64,
    seq: u64,
    timeout_ms: u64,
    priority: i32,
    attempts: u32,
    max_retries: u32,
    name: u32,
    pool: u32,
    schedule: u32,
    lease_losses: u32,
    progress: f32,
    status: Status,
}

impl Task {
    fn extra_mut(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Default::default)
    }

    fn key(&self) -> Option<&str> {
        self.extra.as_ref().and_then(|e| e.key.as_deref())
    }
}

/// Strings that repeat across tasks (job and pool names), stored once.
#[derive(Debug, Default)]
struct Interner {
    names: Vec<Arc<str>>,
    index: HashMap<Arc<str>, u32>,
}

impl Interner {
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let arc: Arc<str> = Arc::from(s);
        let i = self.names.len() as u32;
        self.names.push(arc.clone());
        self.index.insert(arc, i);
        i
    }

    fn get(&self, s: &str) -> Option<u32> {
        self.index.get(s).copied()
    }

    fn name(&self, i: u32) -> &Arc<str> {
        &self.names[i as usize]
    }
}

#[derive(Debug)]
struct KeyHold {
    task_id: Arc<str>,
    expires_ms: i64,
}

/// Whether a submit made a new task or found one holding the same idempotency key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submitted {
    pub id: String,
    pub created: bool,
}

/// What a cancel did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cancelled {
    /// The task will never run (again). `running` is the lease it held, so the worker can stop it.
    Now { running: Option<(u32, u64)> },
    /// It had already ended; nothing changed.
    AlreadyFinished(Status),
}

/// A lease that ran out: the task went back to the queue, or dead after too many losses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reaped {
    pub slot: u32,
    pub token: u64,
    pub id: String,
    pub now_dead: bool,
}

/// A page of a listing; `next_cursor` continues after the last task shown.
#[derive(Clone, Debug, PartialEq)]
pub struct Page {
    pub tasks: Vec<TaskView>,
    pub next_cursor: Option<u64>,
}

pub struct Engine {
    config: EngineConfig,
    slots: Vec<Option<Task>>,
    free_slots: Vec<u32>,
    by_id: HashMap<Arc<str>, u32>,
    by_seq: BTreeMap<u64, u32>,
    next_seq: u64,
    names: Interner,
    pools: Interner,
    /// One per pool. The queues keep no index of their own: an entry is live while its slot holds
    /// the task with the entry's seq in a queued state (see [`QueuedTasks`]), so a cancel leaves the
    /// entry in place to be dropped when it surfaces.
    queues: Vec<LazyQueue<u32>>,
    counts: Vec<[u64; 9]>,
    leases: LeaseTable<u32>,
    /// Keyed by task `seq`, never by slot: a slot is reused after a purge, a seq never is, and a
    /// forgotten child can linger in the child list of a parent that is still running.
    dag: Dag<u64>,
    keys: HashMap<Box<str>, KeyHold>,
    key_expiry: BTreeSet<(i64, Box<str>)>,
    /// Ended tasks other than dead ones, oldest first: what retention purges.
    ended: BTreeSet<(i64, u32)>,
    /// Dead tasks, oldest death first: what a dead letter queue retention purges (`sweep_dead`).
    dead: BTreeSet<(i64, u32)>,
    watched: FxHashSet<u32>,
    finished_watched: Vec<String>,
    schedules: ScheduleTable,
    next_generated_id: u64,
    /// Ids a batch being submitted names explicitly (empty between calls).
    reserved_ids: HashSet<String>,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Self {
        Engine {
            config,
            slots: Vec::new(),
            free_slots: Vec::new(),
            by_id: HashMap::new(),
            by_seq: BTreeMap::new(),
            next_seq: 1,
            names: Interner::default(),
            pools: Interner::default(),
            queues: Vec::new(),
            counts: Vec::new(),
            leases: LeaseTable::new(),
            dag: Dag::new(),
            keys: HashMap::new(),
            key_expiry: BTreeSet::new(),
            ended: BTreeSet::new(),
            dead: BTreeSet::new(),
            watched: FxHashSet::default(),
            finished_watched: Vec::new(),
            schedules: ScheduleTable::default(),
            next_generated_id: 0,
            reserved_ids: HashSet::new(),
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    // ----- submit -------------------------------------------------------------------------------

    /// Submits one task. With a live (or recently ended) idempotency key, returns the holder's id.
    pub fn submit(&mut self, spec: TaskSpec, now: i64) -> CoreResult<Submitted> {
        self.validate(&spec)?;
        if let Some(id) = spec.id.as_deref() {
            if self.by_id.contains_key(id) {
                return Err(duplicate(id));
            }
        }
        self.check_parents_exist(&spec, &HashSet::new())?;
        Ok(self.insert(spec, now, NO_SCHEDULE))
    }

    /// Submits a batch atomically: every task is checked first, and nothing is stored if one fails.
    /// Tasks may name earlier or later tasks of the same batch as parents (by id); cycles are refused.
    pub fn submit_many(&mut self, specs: Vec<TaskSpec>, now: i64) -> CoreResult<Vec<Submitted>> {
        let mut batch_ids: HashMap<&str, usize> = HashMap::new();
        for (i, spec) in specs.iter().enumerate() {
            self.validate(spec)?;
            if let Some(id) = spec.id.as_deref() {
                if self.by_id.contains_key(id) || batch_ids.insert(id, i).is_some() {
                    return Err(duplicate(id));
                }
            }
        }
        let in_batch: HashSet<&str> = batch_ids.keys().copied().collect();
        for spec in &specs {
            self.check_parents_exist(spec, &in_batch)?;
        }
        let parents: Vec<Vec<usize>> = specs
            .iter()
            .map(|s| {
                s.parents
                    .iter()
                    .filter_map(|(p, _)| batch_ids.get(p.as_str()).copied())
                    .collect()
            })
            .collect();
        let order = crate::dag::topological_order(&parents).map_err(|i| {
            CoreError::Cycle(format!(
                "task {:?} is part of a dependency cycle: a task cannot (indirectly) wait for itself",
                specs[i].id.as_deref().unwrap_or("?")
            ))
        })?;
        // Generated ids must not take an id the batch names explicitly.
        self.reserved_ids = batch_ids.keys().map(|id| id.to_string()).collect();
        let mut slots: Vec<Option<TaskSpec>> = specs.into_iter().map(Some).collect();
        let mut out: Vec<Option<Submitted>> = vec![None; slots.len()];
        // A batch task whose idempotency key is taken becomes the holder: its children follow it there.
        let mut actual_id: HashMap<String, String> = HashMap::new();
        for i in order {
            let Some(mut spec) = slots[i].take() else {
                continue;
            };
            for (parent, _) in &mut spec.parents {
                if let Some(id) = actual_id.get(parent.as_str()) {
                    parent.clone_from(id);
                }
            }
            let given = spec.id.clone();
            let submitted = self.insert(spec, now, NO_SCHEDULE);
            if let Some(given) = given {
                actual_id.insert(given, submitted.id.clone());
            }
            out[i] = Some(submitted);
        }
        self.reserved_ids.clear();
        Ok(out.into_iter().flatten().collect())
    }

    fn validate(&self, spec: &TaskSpec) -> CoreResult<()> {
        validate::name("job name", &spec.name)?;
        validate::name("pool name", &spec.pool)?;
        if let Some(id) = &spec.id {
            validate::name("task id", id)?;
        }
        if let Some(key) = &spec.key {
            validate::key(key)?;
        }
        validate::priority(spec.priority)?;
        validate::max_retries(spec.max_retries)?;
        validate::payload(spec.payload.len(), self.config.max_payload_bytes)?;
        for (parent, _) in &spec.parents {
            validate::name("parent task id", parent)?;
            if spec.id.as_deref() == Some(parent.as_str()) {
                return Err(CoreError::Cycle(format!(
                    "task {parent:?} names itself as a parent"
                )));
            }
        }
        Ok(())
    }

    fn check_parents_exist(&self, spec: &TaskSpec, in_batch: &HashSet<&str>) -> CoreResult<()> {
        for (parent, _) in &spec.parents {
            if !self.by_id.contains_key(parent.as_str()) && !in_batch.contains(parent.as_str()) {
                return Err(CoreError::UnknownParent(format!(
                    "parent task {parent:?} does not exist (or has been purged after its retention period): submit the parent first"
                )));
            }
        }
        Ok(())
    }

    /// Stores a validated task. Parents are known to exist.
    fn insert(&mut self, spec: TaskSpec, now: i64, schedule: u32) -> Submitted {
        if let Some(key) = spec.key.as_deref() {
            if let Some(id) = self.key_holder(key, now) {
                return Submitted { id, created: false };
            }
        }
        let id: Arc<str> = match spec.id {
            Some(id) => Arc::from(id),
            None => self.generate_id(),
        };
        let pool = self.pool_index(&spec.pool);
        let name = self.names.intern(&spec.name);
        let parent_edges: Vec<(u64, Trigger)> = spec
            .parents
            .iter()
            .map(|(p, t)| (self.slot_task(self.by_id[p.as_str()]).seq, *t))
            .collect();
        let extra = if spec.key.is_some() || !spec.parents.is_empty() {
            Some(Box::new(Extra {
                key: spec.key.as_deref().map(Box::from),
                parents: spec
                    .parents
                    .iter()
                    .map(|(p, t)| (self.slot_task(self.by_id[p.as_str()]).id.clone(), *t))
                    .collect(),
                ..Default::default()
            }))
        } else {
            None
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        let task = Task {
            id: id.clone(),
            payload: spec.payload.into_boxed_slice(),
            extra,
            created_ms: now,
            ready_ms: spec.run_at_ms.unwrap_or(now).max(now),
            started_ms: 0,
            finished_ms: 0,
            seq,
            timeout_ms: spec.timeout_ms,
            priority: spec.priority,
            attempts: 0,
            max_retries: spec.max_retries,
            name,
            pool,
            schedule,
            lease_losses: 0,
            progress: 0.0,
            status: Status::Waiting,
        };
        let slot = match self.free_slots.pop() {
            Some(s) => {
                self.slots[s as usize] = Some(task);
                s
            }
            None => {
                self.slots.push(Some(task));
                (self.slots.len() - 1) as u32
            }
        };
        self.by_id.insert(id.clone(), slot);
        self.by_seq.insert(seq, slot);
        self.counts[pool as usize][Status::Waiting as usize] += 1;
        if let Some(key) = spec.key {
            self.hold_key(key.into_boxed_str(), id.clone());
        }
        let admission = if parent_edges.is_empty() {
            Admission::Ready
        } else {
            let (slots, by_seq) = (&self.slots, &self.by_seq);
            self.dag.add_child(seq, &parent_edges, |parent_seq| {
                let slot = *by_seq.get(&parent_seq)?;
                slots[slot as usize]
                    .as_ref()
                    .and_then(|t| outcome_of(t.status))
            })
        };
        match admission {
            Admission::Ready => self.make_ready(slot, now),
            Admission::Waiting => {}
            Admission::Skipped => self.end(slot, Status::Skipped, now),
        }
        Submitted {
            id: id.to_string(),
            created: true,
        }
    }

    fn key_holder(&mut self, key: &str, now: i64) -> Option<String> {
        let hold = self.keys.get(key)?;
        if hold.expires_ms > now {
            return Some(hold.task_id.to_string());
        }
        let expires = hold.expires_ms;
        self.key_expiry.remove(&(expires, Box::from(key)));
        self.keys.remove(key);
        None
    }

    fn hold_key(&mut self, key: Box<str>, task_id: Arc<str>) {
        self.keys.insert(
            key,
            KeyHold {
                task_id,
                expires_ms: LIVE,
            },
        );
    }

    /// Starts (or restarts, with `until = LIVE`) the remembered window of a task's key.
    fn set_key_window(&mut self, slot: u32, until: i64) {
        let Some(key) = self.slot_task(slot).key().map(Box::<str>::from) else {
            return;
        };
        let task_id = self.slot_task(slot).id.clone();
        let Some(hold) = self.keys.get_mut(&key) else {
            return;
        };
        if hold.task_id != task_id {
            return;
        }
        if hold.expires_ms != LIVE {
            self.key_expiry.remove(&(hold.expires_ms, key.clone()));
        }
        hold.expires_ms = until;
        if until != LIVE {
            self.key_expiry.insert((until, key));
        }
    }

    /// A resubmitted task holds its key again: live, even if its window had passed meanwhile. If a
    /// newer task took the key since, that one keeps it.
    fn reclaim_key(&mut self, slot: u32, now: i64) {
        let Some(key) = self.slot_task(slot).key().map(Box::<str>::from) else {
            return;
        };
        if self.key_holder(&key, now).is_none() {
            let task_id = self.slot_task(slot).id.clone();
            self.hold_key(key, task_id);
        } else {
            self.set_key_window(slot, LIVE);
        }
    }

    fn generate_id(&mut self) -> Arc<str> {
        loop {
            let n = self.next_generated_id;
            self.next_generated_id += 1;
            // splitmix64 is a bijection, so distinct counters give distinct ids.
            let id = format!("{:016x}", splitmix64(n ^ self.config.id_seed));
            if !self.by_id.contains_key(id.as_str()) && !self.reserved_ids.contains(&id) {
                return Arc::from(id);
            }
        }
    }

    fn pool_index(&mut self, pool: &str) -> u32 {
        let i = self.pools.intern(pool);
        while self.queues.len() <= i as usize {
            self.queues.push(LazyQueue::new());
            self.counts.push([0; 9]);
        }
        i
    }

    // ----- transitions --------------------------------------------------------------------------

    fn slot_task(&self, slot: u32) -> &Task {
        self.slots[slot as usize]
            .as_ref()
            .expect("slot refers to a live task")
    }

    fn slot_task_mut(&mut self, slot: u32) -> &mut Task {
        self.slots[slot as usize]
            .as_mut()
            .expect("slot refers to a live task")
    }

    /// The single place a status changes, so the count table is always right.
    fn set_status(&mut self, slot: u32, status: Status) {
        let task = self.slots[slot as usize]
            .as_mut()
            .expect("slot refers to a live task");
        let counts = &mut self.counts[task.pool as usize];
        counts[task.status as usize] -= 1;
        counts[status as usize] += 1;
        task.status = status;
    }

    /// Puts a task whose conditions hold into its pool's queue, as `queued` or `scheduled`.
    fn make_ready(&mut self, slot: u32, now: i64) {
        let task = self.slot_task(slot);
        let (pool, priority, ready_ms) = (task.pool, task.priority, task.ready_ms.max(now));
        let task = self.slot_task_mut(slot);
        task.ready_ms = ready_ms;
        let seq = task.seq;
        self.queues[pool as usize].push(queue_entry(slot, priority, ready_ms, seq), now);
        let status = if ready_ms > now {
            Status::Scheduled
        } else {
            Status::Queued
        };
        self.set_status(slot, status);
    }

    /// Moves a task into a terminal state and applies everything that follows: the key window,
    /// retention, waiters, and the DAG (children become ready or are skipped, cascading).
    fn end(&mut self, slot: u32, status: Status, now: i64) {
        let mut pending = vec![(slot, status)];
        while let Some((slot, status)) = pending.pop() {
            self.set_status(slot, status);
            let task = self.slot_task_mut(slot);
            task.finished_ms = now;
            if status == Status::Skipped {
                task.extra_mut().error =
                    Some("skipped: a DAG condition of this task can no longer be met".into());
            }
            if status == Status::Dead {
                self.dead.insert((now, slot));
            } else {
                self.ended.insert((now, slot));
            }
            self.set_key_window(slot, now.saturating_add(self.config.key_ttl_ms));
            if self.watched.remove(&slot) {
                self.finished_watched
                    .push(self.slot_task(slot).id.to_string());
            }
            let outcome = outcome_of(status).expect("terminal status");
            let seq = self.slot_task(slot).seq;
            let resolution = self.dag.resolve(seq, outcome);
            for child in resolution.ready {
                self.make_ready(self.by_seq[&child], now);
            }
            // The DAG cascades by itself: every skipped descendant is listed here, and resolving it
            // again on its turn in this loop finds no children left.
            for child in resolution.skipped {
                pending.push((self.by_seq[&child], Status::Skipped));
            }
        }
    }

    /// Brings `scheduled` and `retrying` tasks whose time has come to `queued`.
    fn promote(&mut self, now: i64) {
        for pool in 0..self.queues.len() {
            if self.queues[pool].next_ready_at().is_none_or(|at| at > now) {
                continue;
            }
            let mut live = QueuedTasks {
                slots: &self.slots,
                promoted: Vec::new(),
            };
            self.queues[pool].promote_due(now, &mut live);
            for slot in live.promoted {
                self.set_status(slot, Status::Queued);
            }
        }
    }

    // ----- workers ------------------------------------------------------------------------------

    /// Claims up to `max` tasks of `pool` for `owner`, each under a lease of `lease_ms`.
    pub fn claim(
        &mut self,
        pool: &str,
        max: usize,
        owner: u32,
        lease_ms: i64,
        now: i64,
    ) -> Vec<Claim> {
        let Some(pool) = self.pools.get(pool) else {
            return Vec::new();
        };
        self.promote(now);
        let mut slots = Vec::new();
        let mut live = QueuedTasks {
            slots: &self.slots,
            promoted: Vec::new(),
        };
        self.queues[pool as usize].pop_many_into(max, now, &mut live, &mut slots);
        debug_assert!(live.promoted.is_empty(), "promoted just before");
        let mut claims = Vec::with_capacity(slots.len());
        for slot in slots {
            self.set_status(slot, Status::Running);
            let token = self.leases.grant(slot, owner, now, lease_ms);
            let task = self.slots[slot as usize]
                .as_mut()
                .expect("slot refers to a live task");
            task.attempts += 1;
            task.started_ms = now;
            task.progress = 0.0;
            claims.push(Claim {
                slot,
                token,
                id: task.id.to_string(),
                name: self.names.name(task.name).to_string(),
                payload: task.payload.to_vec(),
                attempt: task.attempts,
                priority: task.priority,
                timeout_ms: task.timeout_ms,
            });
        }
        claims
    }

    /// Records how an attempt ended. Refused (false) when `token` no longer holds the task.
    pub fn finish(&mut self, slot: u32, token: u64, finish: Finish, now: i64) -> bool {
        if !self.leases.release(slot, token) {
            return false;
        }
        match finish {
            Finish::Succeeded { result } => {
                let task = self.slot_task_mut(slot);
                task.progress = 1.0;
                if result.is_some() || task.extra.is_some() {
                    let extra = task.extra_mut();
                    extra.result = result.map(Vec::into_boxed_slice);
                    extra.error = None;
                    extra.traceback = None;
                }
                self.end(slot, Status::Succeeded, now);
            }
            Finish::Failed {
                error,
                traceback,
                retry_delay_ms,
            } => {
                let task = self.slot_task_mut(slot);
                let extra = task.extra_mut();
                extra.error = Some(error.into_boxed_str());
                extra.traceback = Some(traceback.into_boxed_str());
                let retry = retry_delay_ms.filter(|_| task.attempts <= task.max_retries);
                match retry {
                    Some(delay) => {
                        let (pool, priority, seq) = (task.pool, task.priority, task.seq);
                        let at = now.saturating_add(i64::try_from(delay).unwrap_or(i64::MAX));
                        task.ready_ms = at;
                        self.queues[pool as usize].push(queue_entry(slot, priority, at, seq), now);
                        let status = if at > now {
                            Status::Retrying
                        } else {
                            Status::Queued
                        };
                        self.set_status(slot, status);
                    }
                    None => self.end(slot, Status::Dead, now),
                }
            }
            Finish::HandBack => self.requeue_unstarted(slot, now),
        }
        true
    }

    /// Returns a running task to its queue without counting the attempt, keeping its place in line.
    fn requeue_unstarted(&mut self, slot: u32, now: i64) {
        let task = self.slot_task_mut(slot);
        task.attempts = task.attempts.saturating_sub(1);
        task.started_ms = 0;
        let (pool, priority, ready_ms, seq) = (task.pool, task.priority, task.ready_ms, task.seq);
        let entry = queue_entry(slot, priority, ready_ms.min(now), seq);
        self.queues[pool as usize].push(entry, now);
        self.set_status(slot, Status::Queued);
    }

    /// Renews the leases a worker still holds. Returns the ones it has lost (their jobs must stop).
    pub fn renew(&mut self, held: &[(u32, u64)], lease_ms: i64, now: i64) -> Vec<(u32, u64)> {
        held.iter()
            .copied()
            .filter(|&(slot, token)| !self.leases.renew(slot, token, now, lease_ms))
            .collect()
    }

    /// Returns tasks whose lease ran out to their queue; a task that lost its lease
    /// `max_lease_losses` times goes dead instead (a crash loop).
    pub fn reap(&mut self, now: i64) -> Vec<Reaped> {
        let expired = self.leases.expire_due(now);
        let mut reaped = Vec::with_capacity(expired.len());
        for (slot, lease) in expired {
            let limit = self.config.max_lease_losses;
            let task = self.slot_task_mut(slot);
            task.lease_losses += 1;
            let losses = task.lease_losses;
            let now_dead = losses >= limit;
            reaped.push(Reaped {
                slot,
                token: lease.token,
                id: task.id.to_string(),
                now_dead,
            });
            if now_dead {
                task.extra_mut().error = Some(
                    format!("lost its lease {losses} times: the worker running it crashed or stalled each time")
                        .into_boxed_str(),
                );
                self.end(slot, Status::Dead, now);
            } else {
                self.requeue_unstarted(slot, now);
            }
        }
        reaped
    }

    /// Every lease `owner` holds, for a shutdown that must hand them back.
    pub fn leases_of(&self, owner: u32) -> Vec<(u32, u64)> {
        self.leases
            .owned_by(owner)
            .into_iter()
            .map(|(slot, lease)| (slot, lease.token))
            .collect()
    }

    pub fn set_progress(&mut self, slot: u32, token: u64, progress: f32) -> bool {
        if !self.leases.holds(slot, token) || progress.is_nan() {
            return false;
        }
        self.slot_task_mut(slot).progress = progress.clamp(0.0, 1.0);
        true
    }

    /// When the next `scheduled`/`retrying` task of `pool` becomes due, if any.
    pub fn next_due(&self, pool: &str) -> Option<i64> {
        let pool = self.pools.get(pool)?;
        self.queues[pool as usize].next_ready_at()
    }

    /// Tasks of `pool` that could be claimed at `now`.
    pub fn claimable(&self, pool: &str, now: i64) -> usize {
        let live = QueuedTasks {
            slots: &self.slots,
            promoted: Vec::new(),
        };
        self.pools
            .get(pool)
            .map_or(0, |p| self.queues[p as usize].eligible_len(now, &live))
    }

    /// When the next lease runs out, if any (for the reaper's timer).
    pub fn next_lease_deadline(&self) -> Option<i64> {
        self.leases.next_deadline()
    }

    // ----- operator actions ---------------------------------------------------------------------

    fn slot_of(&self, id: &str) -> CoreResult<u32> {
        self.by_id
            .get(id)
            .copied()
            .ok_or_else(|| CoreError::TaskNotFound(format!("no task with id {id:?}")))
    }

    /// Cancels a waiting, scheduled, queued, retrying or running task.
    pub fn cancel(&mut self, id: &str, now: i64) -> CoreResult<Cancelled> {
        let slot = self.slot_of(id)?;
        let task = self.slot_task(slot);
        let (status, pool) = (task.status, task.pool);
        if status.is_terminal() {
            return Ok(Cancelled::AlreadyFinished(status));
        }
        let mut running = None;
        match status {
            Status::Waiting => {
                self.dag.forget(task.seq);
            }
            Status::Running => {
                running = self.leases.revoke(slot).map(|l| (slot, l.token));
            }
            // Queued, Scheduled or Retrying: its queue entry goes stale once the status is
            // Cancelled, and is told to the queue below.
            _ => {}
        }
        let task = self.slot_task_mut(slot);
        task.extra_mut().error = Some("cancelled".into());
        self.end(slot, Status::Cancelled, now);
        if matches!(
            status,
            Status::Queued | Status::Scheduled | Status::Retrying
        ) {
            // Scheduled and Retrying tasks sit in the delayed part until promoted (to Queued).
            let was_delayed = status != Status::Queued;
            let live = QueuedTasks {
                slots: &self.slots,
                promoted: Vec::new(),
            };
            self.queues[pool as usize].forget(was_delayed, &live);
        }
        Ok(Cancelled::Now { running })
    }

    /// Runs a dead task again from a fresh attempt budget.
    pub fn resubmit(&mut self, id: &str, now: i64) -> CoreResult<()> {
        let slot = self.slot_of(id)?;
        let status = self.slot_task(slot).status;
        if status != Status::Dead {
            return Err(CoreError::InvalidState(format!(
                "task {id:?} is {}: only dead tasks can be resubmitted",
                status.as_str()
            )));
        }
        self.dead.remove(&(self.slot_task(slot).finished_ms, slot));
        let task = self.slot_task_mut(slot);
        task.attempts = 0;
        task.lease_losses = 0;
        task.finished_ms = 0;
        task.started_ms = 0;
        task.ready_ms = now;
        self.reclaim_key(slot, now);
        self.make_ready(slot, now);
        Ok(())
    }

    /// Resubmits up to `limit` dead tasks matching `filter`, oldest first. Returns their ids.
    pub fn resubmit_dead(&mut self, filter: &TaskFilter, limit: usize, now: i64) -> Vec<String> {
        let ids = self.dead_matching(filter, limit);
        for id in &ids {
            self.resubmit(id, now).expect("matched a dead task");
        }
        ids
    }

    /// Deletes a task that has ended (a dead task leaves the DLQ).
    pub fn purge(&mut self, id: &str) -> CoreResult<()> {
        let slot = self.slot_of(id)?;
        let status = self.slot_task(slot).status;
        if !status.is_terminal() {
            return Err(CoreError::InvalidState(format!(
                "task {id:?} is {}: cancel it before purging",
                status.as_str()
            )));
        }
        self.release_key(slot);
        self.remove(slot);
        Ok(())
    }

    /// Drops the idempotency key a task holds, so the key is free for a new task at once.
    fn release_key(&mut self, slot: u32) {
        let task = self.slot_task(slot);
        let Some(key) = task.key().map(Box::<str>::from) else {
            return;
        };
        let held_by_it = self
            .keys
            .get(&key)
            .map(|h| (h.task_id == task.id, h.expires_ms));
        if let Some((true, expires_ms)) = held_by_it {
            self.key_expiry.remove(&(expires_ms, key.clone()));
            self.keys.remove(&key);
        }
    }

    /// Purges up to `limit` dead tasks matching `filter`. Returns their ids.
    pub fn purge_dead(&mut self, filter: &TaskFilter, limit: usize) -> Vec<String> {
        let ids = self.dead_matching(filter, limit);
        for id in &ids {
            self.purge(id).expect("matched a dead task");
        }
        ids
    }

    fn dead_matching(&self, filter: &TaskFilter, limit: usize) -> Vec<String> {
        let filter = TaskFilter {
            statuses: Status::Dead.bit(),
            ..filter.clone()
        };
        self.by_seq
            .values()
            .map(|&slot| self.slot_task(slot))
            .filter(|t| self.matches(t, &filter))
            .take(limit)
            .map(|t| t.id.to_string())
            .collect()
    }

    fn remove(&mut self, slot: u32) {
        let task = self.slots[slot as usize].take().expect("live slot");
        self.counts[task.pool as usize][task.status as usize] -= 1;
        self.by_id.remove(&task.id);
        self.by_seq.remove(&task.seq);
        self.ended.remove(&(task.finished_ms, slot));
        self.dead.remove(&(task.finished_ms, slot));
        self.watched.remove(&slot);
        self.free_slots.push(slot);
    }

    /// Forgets dead tasks that died before `before_ms` (a dead letter queue with a retention period);
    /// their idempotency keys keep the rest of their window. Returns how many tasks went.
    pub fn sweep_dead(&mut self, before_ms: i64) -> usize {
        self.remove_ended_before(true, before_ms)
    }

    /// Removes the tasks of `dead` (else `ended`) that ended before `before_ms`, oldest first.
    fn remove_ended_before(&mut self, dead: bool, before_ms: i64) -> usize {
        let mut purged = 0;
        loop {
            let set = if dead { &self.dead } else { &self.ended };
            match set.first() {
                Some(&(ended_ms, slot)) if ended_ms < before_ms => {
                    self.remove(slot);
                    purged += 1;
                }
                _ => return purged,
            }
        }
    }

    /// Forgets ended tasks (not dead ones: those wait in the DLQ) that ended before `before_ms`,
    /// and idempotency keys whose window has passed. Returns how many tasks went.
    pub fn sweep(&mut self, before_ms: i64, now: i64) -> usize {
        let purged = self.remove_ended_before(false, before_ms);
        while let Some((expires, _)) = self.key_expiry.first() {
            if *expires > now {
                break;
            }
            let (_, key) = self.key_expiry.pop_first().expect("checked");
            self.keys.remove(&key);
        }
        purged
    }

    // ----- reading ------------------------------------------------------------------------------

    pub fn get(&mut self, id: &str, now: i64) -> CoreResult<TaskView> {
        self.promote(now);
        let slot = self.slot_of(id)?;
        Ok(self.view(self.slot_task(slot)))
    }

    /// Lists tasks newest first, after `cursor` (exclusive) when given.
    pub fn list(
        &mut self,
        filter: &TaskFilter,
        limit: usize,
        cursor: Option<u64>,
        now: i64,
    ) -> Page {
        self.promote(now);
        let upper = cursor.unwrap_or(u64::MAX);
        let mut tasks = Vec::new();
        let mut last_seq = None;
        let mut more = false;
        for (&seq, &slot) in self.by_seq.range(..upper).rev() {
            let task = self.slot_task(slot);
            if !self.matches(task, filter) {
                continue;
            }
            if tasks.len() == limit {
                more = true;
                break;
            }
            tasks.push(self.view(task));
            last_seq = Some(seq);
        }
        Page {
            tasks,
            next_cursor: if more { last_seq } else { None },
        }
    }

    fn matches(&self, task: &Task, filter: &TaskFilter) -> bool {
        if filter.statuses != 0 && filter.statuses & task.status.bit() == 0 {
            return false;
        }
        if let Some(name) = &filter.name {
            if self.names.name(task.name).as_ref() != name {
                return false;
            }
        }
        if let Some(pool) = &filter.pool {
            if self.pools.name(task.pool).as_ref() != pool {
                return false;
            }
        }
        if let Some(query) = &filter.query {
            let q = query.to_lowercase();
            let hit = |s: &str| s.to_lowercase().contains(&q);
            let extra = task.extra.as_deref();
            return hit(&task.id)
                || hit(self.names.name(task.name))
                || extra.and_then(|e| e.key.as_deref()).is_some_and(hit)
                || extra.and_then(|e| e.error.as_deref()).is_some_and(hit);
        }
        true
    }

    fn view(&self, task: &Task) -> TaskView {
        let extra = task.extra.as_deref();
        TaskView {
            id: task.id.to_string(),
            name: self.names.name(task.name).to_string(),
            pool: self.pools.name(task.pool).to_string(),
            status: task.status,
            priority: task.priority,
            attempts: task.attempts,
            max_retries: task.max_retries,
            lease_losses: task.lease_losses,
            timeout_ms: task.timeout_ms,
            progress: task.progress,
            created_ms: task.created_ms,
            ready_ms: task.ready_ms,
            started_ms: task.started_ms,
            finished_ms: task.finished_ms,
            key: extra.and_then(|e| e.key.as_deref()).map(str::to_string),
            error: extra.and_then(|e| e.error.as_deref()).map(str::to_string),
            traceback: extra
                .and_then(|e| e.traceback.as_deref())
                .map(str::to_string),
            result: extra.and_then(|e| e.result.as_deref()).map(<[u8]>::to_vec),
            payload: task.payload.to_vec(),
            parents: extra.map_or_else(Vec::new, |e| {
                e.parents.iter().map(|(p, t)| (p.to_string(), *t)).collect()
            }),
            schedule: (task.schedule != NO_SCHEDULE)
                .then(|| self.schedules.id_of(task.schedule).to_string()),
            seq: task.seq,
        }
    }

    /// Task counts per pool and status, after promoting what is due.
    pub fn counts(&mut self, now: i64) -> Vec<(String, [u64; 9])> {
        self.promote(now);
        self.pools
            .names
            .iter()
            .zip(&self.counts)
            .map(|(name, counts)| (name.to_string(), *counts))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    // ----- waiting for an outcome -----------------------------------------------------------------

    /// Asks to hear (through `drain_finished`) when the task ends. Returns false if it already has.
    pub fn watch(&mut self, id: &str) -> CoreResult<bool> {
        let slot = self.slot_of(id)?;
        if self.slot_task(slot).status.is_terminal() {
            return Ok(false);
        }
        self.watched.insert(slot);
        Ok(true)
    }

    /// Ids of watched tasks that ended since the last call.
    pub fn drain_finished(&mut self) -> Vec<String> {
        std::mem::take(&mut self.finished_watched)
    }

    // ----- schedules ----------------------------------------------------------------------------

    /// Stores a recurring schedule (replacing one with the same id). Its first tick is computed from `now`.
    pub fn add_schedule(&mut self, spec: ScheduleSpec, now: i64) -> CoreResult<i64> {
        validate::name("schedule id", &spec.id)?;
        self.validate(&spec.template)?;
        if let crate::schedules::Every::Interval { every_ms } = spec.every {
            if every_ms <= 0 {
                return Err(CoreError::InvalidOption(format!(
                    "schedule interval of {every_ms} ms: use a positive interval"
                )));
            }
        }
        if spec.template.id.is_some()
            || spec.template.key.is_some()
            || !spec.template.parents.is_empty()
        {
            return Err(CoreError::InvalidOption(
                "a schedule's task cannot have an id, an idempotency key or parents: every tick creates a new task".into(),
            ));
        }
        Ok(self.schedules.insert(spec, now))
    }

    pub fn remove_schedule(&mut self, id: &str) -> CoreResult<()> {
        if self.schedules.remove(id) {
            Ok(())
        } else {
            Err(CoreError::ScheduleNotFound(format!(
                "no schedule with id {id:?}"
            )))
        }
    }

    pub fn schedules(&self) -> Vec<ScheduleView> {
        self.schedules.views()
    }

    pub fn next_schedule_due(&self) -> Option<i64> {
        self.schedules.next_due()
    }

    /// Fires every schedule whose tick has come: one task per schedule, however many ticks were
    /// missed. A schedule whose previous task has not ended skips the tick when asked to.
    /// Returns the ids of the tasks created.
    pub fn fire_schedules(&mut self, now: i64) -> Vec<String> {
        let mut created = Vec::new();
        for index in self.schedules.due(now) {
            let last_live = self
                .schedules
                .last_task(index)
                .and_then(|id| self.by_id.get(id))
                .is_some_and(|&slot| !self.slot_task(slot).status.is_terminal());
            if last_live && self.schedules.skips_if_running(index) {
                self.schedules.record_skip(index, now);
                continue;
            }
            let template = self.schedules.template(index).clone();
            let submitted = self.insert(template, now, index);
            self.schedules.record_fire(index, &submitted.id, now);
            created.push(submitted.id);
        }
        created
    }
}

fn duplicate(id: &str) -> CoreError {
    CoreError::DuplicateTask(format!(
        "a task with id {id:?} already exists: choose another id or leave it out"
    ))
}

fn queue_entry(slot: u32, priority: i32, ready_at: i64, seq: u64) -> Entry<u32> {
    Entry {
        ready_at,
        seq,
        key: slot,
        priority,
    }
}

/// Tells a pool's queue which entries are live, from the task table: the slot still holds the task
/// the entry was pushed for (same seq: a slot is reused after a purge, a seq never is) and that task
/// is still waiting in a queue. A task has at most one entry that passes: it is pushed only when it
/// enters a queued state, the entry leaves the queue when the task is claimed, and the only other
/// way out of the queued states is a cancel, which is terminal.
struct QueuedTasks<'a> {
    slots: &'a [Option<Task>],
    /// Slots promoted from delayed to ready, whose status the engine then sets to Queued.
    promoted: Vec<u32>,
}

impl Liveness<u32> for QueuedTasks<'_> {
    #[inline]
    fn is_live(&self, entry: &Entry<u32>) -> bool {
        self.slots
            .get(entry.key as usize)
            .and_then(Option::as_ref)
            .is_some_and(|t| {
                t.seq == entry.seq
                    && matches!(
                        t.status,
                        Status::Queued | Status::Scheduled | Status::Retrying
                    )
            })
    }

    fn promoted(&mut self, entry: &Entry<u32>) {
        self.promoted.push(entry.key);
    }
}

/// The DAG outcome of a terminal status.
fn outcome_of(status: Status) -> Option<Outcome> {
    match status {
        Status::Succeeded => Some(Outcome::Succeeded),
        Status::Dead => Some(Outcome::Dead),
        Status::Cancelled => Some(Outcome::Cancelled),
        Status::Skipped => Some(Outcome::Skipped),
        _ => None,
    }
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
