//! Integration tests of the embedded engine (`skedulr_core::engine`): every transition of
//! DESIGN.md §2 driven through the public API with explicit time, plus a state-machine proptest
//! that checks the engine's invariants after every step.

use std::collections::{BTreeMap, HashMap, HashSet};

use proptest::prelude::*;
use proptest::sample::Index;

use skedulr_core::cron::{parse_time_zone, CronSchedule};
use skedulr_core::dag::Trigger;
use skedulr_core::engine::{Cancelled, Engine, EngineConfig, Submitted};
use skedulr_core::schedules::{Every, ScheduleSpec};
use skedulr_core::task::{Claim, Finish, Status, TaskFilter, TaskSpec, TaskView};
use skedulr_core::CoreError;

use Trigger::{OnComplete, OnFailure, OnSuccess};

const LEASE: i64 = 1_000;
const POOL: &str = "default";
/// 2026-01-01T00:00:00Z.
const JAN_1_2026: i64 = 1_767_225_600_000;
const MINUTE: i64 = 60_000;

// ----- helpers --------------------------------------------------------------------------------

fn engine() -> Engine {
    Engine::new(EngineConfig::default())
}

fn engine_with(f: impl FnOnce(&mut EngineConfig)) -> Engine {
    let mut config = EngineConfig::default();
    f(&mut config);
    Engine::new(config)
}

fn spec(name: &str) -> TaskSpec {
    TaskSpec {
        name: name.to_string(),
        pool: POOL.to_string(),
        ..Default::default()
    }
}

/// Builder methods for `TaskSpec`, so a test reads as the spec it submits.
trait SpecExt: Sized {
    fn id(self, id: &str) -> Self;
    fn pool(self, pool: &str) -> Self;
    fn priority(self, priority: i32) -> Self;
    fn retries(self, max_retries: u32) -> Self;
    fn key(self, key: &str) -> Self;
    fn at(self, run_at_ms: i64) -> Self;
    fn parent(self, parent: &str, trigger: Trigger) -> Self;
    fn payload(self, payload: &[u8]) -> Self;
}

impl SpecExt for TaskSpec {
    fn id(mut self, id: &str) -> Self {
        self.id = Some(id.to_string());
        self
    }
    fn pool(mut self, pool: &str) -> Self {
        self.pool = pool.to_string();
        self
    }
    fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }
    fn retries(mut self, max_retries: u32) -> Self {
        self.max_retries = max_retries;
        self
    }
    fn key(mut self, key: &str) -> Self {
        self.key = Some(key.to_string());
        self
    }
    fn at(mut self, run_at_ms: i64) -> Self {
        self.run_at_ms = Some(run_at_ms);
        self
    }
    fn parent(mut self, parent: &str, trigger: Trigger) -> Self {
        self.parents.push((parent.to_string(), trigger));
        self
    }
    fn payload(mut self, payload: &[u8]) -> Self {
        self.payload = payload.to_vec();
        self
    }
}

fn submit(e: &mut Engine, spec: TaskSpec, now: i64) -> String {
    let submitted = e.submit(spec, now).expect("submit");
    assert!(submitted.created, "expected a new task, got {submitted:?}");
    submitted.id
}

fn get(e: &mut Engine, id: &str, now: i64) -> TaskView {
    e.get(id, now).expect("task exists")
}

fn status(e: &mut Engine, id: &str, now: i64) -> Status {
    get(e, id, now).status
}

fn claim(e: &mut Engine, pool: &str, max: usize, now: i64) -> Vec<Claim> {
    e.claim(pool, max, 1, LEASE, now)
}

fn claim_ids(e: &mut Engine, pool: &str, max: usize, now: i64) -> Vec<String> {
    claim(e, pool, max, now).into_iter().map(|c| c.id).collect()
}

fn claim_one(e: &mut Engine, now: i64) -> Claim {
    let mut claims = claim(e, POOL, 1, now);
    assert_eq!(claims.len(), 1, "expected one claimable task at {now}");
    claims.pop().unwrap()
}

fn succeed(e: &mut Engine, c: &Claim, now: i64) {
    assert!(e.finish(c.slot, c.token, Finish::Succeeded { result: None }, now));
}

fn failed(error: &str, retry_delay_ms: Option<u64>) -> Finish {
    Finish::Failed {
        error: error.to_string(),
        traceback: format!("Traceback: {error}"),
        retry_delay_ms,
    }
}

fn fail(e: &mut Engine, c: &Claim, retry_delay_ms: Option<u64>, now: i64) {
    assert!(e.finish(c.slot, c.token, failed("boom", retry_delay_ms), now));
}

/// Claims the task `id` (which must be the next one of its pool) and finishes it.
fn run(e: &mut Engine, id: &str, outcome: Finish, now: i64) {
    let pool = get(e, id, now).pool;
    let c = e.claim(&pool, 1, 1, LEASE, now);
    assert_eq!(c.len(), 1, "{id} not claimable");
    assert_eq!(c[0].id, id, "another task came first");
    assert!(e.finish(c[0].slot, c[0].token, outcome, now));
}

fn ok() -> Finish {
    Finish::Succeeded { result: None }
}

fn die() -> Finish {
    failed("fatal", None)
}

fn all_tasks(e: &mut Engine, now: i64) -> Vec<TaskView> {
    let page = e.list(&TaskFilter::default(), usize::MAX, None, now);
    assert_eq!(page.next_cursor, None);
    page.tasks
}

fn list_ids(e: &mut Engine, filter: &TaskFilter, now: i64) -> Vec<String> {
    e.list(filter, usize::MAX, None, now)
        .tasks
        .into_iter()
        .map(|t| t.id)
        .collect()
}

/// The engine's count table equals a recount from a full listing, pool by pool.
fn assert_counts_match(e: &mut Engine, now: i64) {
    let tasks = all_tasks(e, now);
    let mut recount: HashMap<String, [u64; 9]> = HashMap::new();
    for t in &tasks {
        recount.entry(t.pool.clone()).or_insert([0; 9])[t.status as usize] += 1;
    }
    let counts = e.counts(now);
    let pools: HashSet<&String> = counts.iter().map(|(p, _)| p).collect();
    for pool in recount.keys() {
        assert!(pools.contains(pool), "pool {pool} missing from counts");
    }
    for (pool, row) in &counts {
        let expected = recount.get(pool).copied().unwrap_or([0; 9]);
        assert_eq!(*row, expected, "counts of pool {pool}");
    }
    assert_eq!(e.len(), tasks.len());
}

/// Tells whether an error is of the expected variant.
type IsExpected = fn(&CoreError) -> bool;

fn filter() -> TaskFilter {
    TaskFilter::default()
}

fn name_filter(name: &str) -> TaskFilter {
    TaskFilter {
        name: Some(name.to_string()),
        ..Default::default()
    }
}

fn interval(id: &str, every_ms: i64, template: TaskSpec, skip_if_running: bool) -> ScheduleSpec {
    ScheduleSpec {
        id: id.to_string(),
        every: Every::Interval { every_ms },
        template,
        skip_if_running,
    }
}

// ----- submit ---------------------------------------------------------------------------------

#[test]
fn generated_ids_are_unique_and_valid() {
    let mut e = engine();
    let ids: Vec<String> = (0..2_000).map(|_| submit(&mut e, spec("job"), 0)).collect();
    let distinct: HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len());
    for id in &ids {
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()), "{id}");
        assert_eq!(get(&mut e, id, 0).id, *id);
    }
    assert_eq!(e.len(), 2_000);

    // A different seed makes different ids.
    let mut other = engine_with(|c| c.id_seed = 12345);
    let other_first = submit(&mut other, spec("job"), 0);
    assert_ne!(other_first, ids[0]);
}

#[test]
fn custom_ids_are_kept() {
    let mut e = engine();
    let s = e.submit(spec("job").id("order-17:a@b.c_d"), 5).unwrap();
    assert_eq!(
        s,
        Submitted {
            id: "order-17:a@b.c_d".into(),
            created: true
        }
    );
    let v = get(&mut e, "order-17:a@b.c_d", 5);
    assert_eq!(v.name, "job");
    assert_eq!(v.pool, POOL);
    assert_eq!(v.created_ms, 5);
    assert_eq!(v.status, Status::Queued);
}

#[test]
fn a_generated_id_never_takes_a_custom_one() {
    let mut probe = engine();
    let first = submit(&mut probe, spec("job"), 0);
    let mut e = engine();
    submit(&mut e, spec("job").id(&first), 0);
    let generated = submit(&mut e, spec("job"), 0);
    assert_ne!(generated, first);
    assert_eq!(e.len(), 2);
}

#[test]
fn duplicate_id_is_refused() {
    let mut e = engine();
    submit(&mut e, spec("job").id("a"), 0);
    let err = e.submit(spec("other").id("a"), 1).unwrap_err();
    assert!(matches!(err, CoreError::DuplicateTask(_)), "{err:?}");
    assert_eq!(e.len(), 1);
    assert_eq!(get(&mut e, "a", 1).name, "job");

    // Still refused once the first one has ended.
    run(&mut e, "a", ok(), 2);
    let err = e.submit(spec("job").id("a"), 3).unwrap_err();
    assert!(matches!(err, CoreError::DuplicateTask(_)), "{err:?}");
}

#[test]
fn validation_errors_map_to_their_variants() {
    let mut e = engine_with(|c| c.max_payload_bytes = 16);
    let long = "x".repeat(129);
    let cases: Vec<(&str, TaskSpec, IsExpected)> = vec![
        ("name with space", spec("has space"), |e| {
            matches!(e, CoreError::InvalidName(_))
        }),
        ("empty name", spec(""), |e| {
            matches!(e, CoreError::InvalidName(_))
        }),
        ("non-ascii name", spec("ünï"), |e| {
            matches!(e, CoreError::InvalidName(_))
        }),
        ("long name", spec(&long), |e| {
            matches!(e, CoreError::InvalidName(_))
        }),
        ("bad pool", spec("job").pool("a/b"), |e| {
            matches!(e, CoreError::InvalidName(_))
        }),
        ("empty pool", spec("job").pool(""), |e| {
            matches!(e, CoreError::InvalidName(_))
        }),
        ("bad id", spec("job").id("no spaces"), |e| {
            matches!(e, CoreError::InvalidName(_))
        }),
        ("bad key", spec("job").key("k y"), |e| {
            matches!(e, CoreError::InvalidName(_))
        }),
        ("long key", spec("job").key(&"k".repeat(257)), |e| {
            matches!(e, CoreError::InvalidName(_))
        }),
        ("bad parent id", spec("job").parent("p p", OnSuccess), |e| {
            matches!(e, CoreError::InvalidName(_))
        }),
        ("priority too high", spec("job").priority(1001), |e| {
            matches!(e, CoreError::InvalidOption(_))
        }),
        ("priority too low", spec("job").priority(-1001), |e| {
            matches!(e, CoreError::InvalidOption(_))
        }),
        ("payload over cap", spec("job").payload(&[0; 17]), |e| {
            matches!(e, CoreError::InvalidOption(_))
        }),
        ("max_retries over cap", spec("job").retries(1001), |e| {
            matches!(e, CoreError::InvalidOption(_))
        }),
    ];
    for (what, bad, is_expected) in cases {
        let err = e.submit(bad, 0).unwrap_err();
        assert!(is_expected(&err), "{what}: {err:?}");
        assert!(!err.to_string().is_empty(), "{what}: empty message");
    }
    assert_eq!(e.len(), 0, "nothing stored by a refused submit");
    assert!(e
        .counts(0)
        .iter()
        .all(|(_, row)| row.iter().all(|&n| n == 0)));

    // The edges of every range are accepted.
    for good in [
        spec("job").priority(1000),
        spec("job").priority(-1000),
        spec("job").payload(&[0; 16]),
        spec("job").retries(1000),
        spec(&"n".repeat(128)),
        spec("job").key(&"k".repeat(256)),
        spec("a.b:c-d@e_1").pool("p.q:r-s@t_2"),
    ] {
        e.submit(good, 0).unwrap();
    }
    assert_eq!(e.len(), 7);
}

#[test]
fn unknown_parent_and_self_parent_are_refused() {
    let mut e = engine();
    let err = e
        .submit(spec("job").parent("ghost", OnSuccess), 0)
        .unwrap_err();
    assert!(matches!(err, CoreError::UnknownParent(_)), "{err:?}");
    let err = e
        .submit(spec("job").id("me").parent("me", OnSuccess), 0)
        .unwrap_err();
    assert!(matches!(err, CoreError::Cycle(_)), "{err:?}");
    assert_eq!(e.len(), 0);
}

#[test]
fn idempotency_key_returns_the_holder_while_live() {
    let mut e = engine();
    let a = submit(&mut e, spec("job").key("order-1"), 0);
    let again = e.submit(spec("other").key("order-1"), 1).unwrap();
    assert_eq!(
        again,
        Submitted {
            id: a.clone(),
            created: false
        }
    );
    // Also while it runs, and with a custom id asked for.
    let c = claim_one(&mut e, 2);
    let again = e.submit(spec("job").id("fresh").key("order-1"), 3).unwrap();
    assert_eq!(again.id, a);
    assert!(!again.created);
    assert!(e.get("fresh", 3).is_err());
    // A delay far in the future does not matter either.
    let again = e
        .submit(spec("job").key("order-1").at(i64::MAX / 2), 4)
        .unwrap();
    assert_eq!(again.id, a);
    assert_eq!(e.len(), 1);
    succeed(&mut e, &c, 5);
    // A different key makes a different task.
    let b = submit(&mut e, spec("job").key("order-2"), 6);
    assert_ne!(a, b);
}

#[test]
fn idempotency_key_is_remembered_for_key_ttl_after_the_end() {
    let mut e = engine_with(|c| c.key_ttl_ms = 1_000);
    let a = submit(&mut e, spec("job").key("k"), 0);
    run(&mut e, &a, ok(), 100);
    for now in [100, 500, 1_099] {
        let s = e.submit(spec("job").key("k"), now).unwrap();
        assert_eq!(s.id, a, "at {now}");
        assert!(!s.created);
    }
    // A sweep before the window ends keeps the key.
    e.sweep(0, 1_099);
    assert_eq!(e.submit(spec("job").key("k"), 1_099).unwrap().id, a);
    // From key_ttl_ms after the end, the key is free again.
    let b = e.submit(spec("job").key("k"), 1_100).unwrap();
    assert!(b.created);
    assert_ne!(b.id, a);
    // And the new task holds the key from then on.
    let c = e.submit(spec("job").key("k"), 1_000_000).unwrap();
    assert_eq!(c.id, b.id);
    assert!(!c.created);
}

#[test]
fn idempotency_key_is_freed_by_a_sweep_after_the_window() {
    let mut e = engine_with(|c| c.key_ttl_ms = 1_000);
    let a = submit(&mut e, spec("job").key("k"), 0);
    run(&mut e, &a, ok(), 100);
    // The sweep forgets both the task (ended before 200) and the key (window ended at 1100).
    assert_eq!(e.sweep(200, 1_100), 1);
    assert!(matches!(e.get(&a, 1_100), Err(CoreError::TaskNotFound(_))));
    let b = e.submit(spec("job").key("k"), 1_100).unwrap();
    assert!(b.created);
}

#[test]
fn idempotency_key_window_of_a_dead_task_starts_at_its_death() {
    let mut e = engine_with(|c| c.key_ttl_ms = 1_000);
    let a = submit(&mut e, spec("job").key("k"), 0);
    run(&mut e, &a, die(), 500);
    assert_eq!(status(&mut e, &a, 500), Status::Dead);
    assert_eq!(e.submit(spec("job").key("k"), 1_499).unwrap().id, a);
    assert!(e.submit(spec("job").key("k"), 1_500).unwrap().created);
}

#[test]
fn idempotency_key_window_restarts_while_a_dead_task_is_resubmitted() {
    let mut e = engine_with(|c| c.key_ttl_ms = 1_000);
    let a = submit(&mut e, spec("job").key("k"), 0);
    run(&mut e, &a, die(), 10);
    e.resubmit(&a, 20).unwrap();
    // Live again: the key does not lapse at 1010.
    let s = e.submit(spec("job").key("k"), 5_000).unwrap();
    assert_eq!(s.id, a);
    assert!(!s.created);
}

#[test]
fn idempotency_key_is_held_again_by_a_resubmitted_task_after_its_window() {
    let mut e = engine_with(|c| c.key_ttl_ms = 1_000);
    let a = submit(&mut e, spec("job").key("k"), 0);
    run(&mut e, &a, die(), 10);
    e.sweep(0, 2_000); // the window (until 1010) has passed: the key is forgotten
    e.resubmit(&a, 2_000).unwrap();
    assert_eq!(status(&mut e, &a, 2_000), Status::Queued);
    // `a` is live with key "k": the same key must return it.
    let s = e.submit(spec("job").key("k"), 2_001).unwrap();
    assert_eq!(s.id, a, "a second live task with key k was created");
}

#[test]
fn purging_frees_a_key_but_retention_does_not() {
    let mut e = engine_with(|c| c.key_ttl_ms = 1_000_000);
    let a = submit(&mut e, spec("job").key("k"), 0);
    run(&mut e, &a, die(), 10);
    assert_eq!(e.purge_dead(&filter(), 10), vec![a.clone()]);
    let s = e.submit(spec("job").key("k"), 20).unwrap();
    assert!(
        e.get(&s.id, 20).is_ok(),
        "submit returned {s:?}, an id that no longer exists"
    );

    // Retention is another matter: a swept task's key keeps deduplicating for its whole window
    // (running the work twice is worse than answering with an id that can no longer be read).
    run(&mut e, &s.id, ok(), 25);
    let b = submit(&mut e, spec("job").key("k2"), 30);
    run(&mut e, &b, ok(), 40);
    e.sweep(50, 60);
    let s = e.submit(spec("job").key("k2"), 70).unwrap();
    assert_eq!(
        s,
        Submitted {
            id: b,
            created: false
        }
    );
}

#[test]
fn submit_many_is_atomic() {
    let mut e = engine();
    submit(&mut e, spec("job").id("existing"), 0);
    let bad_batches: Vec<(Vec<TaskSpec>, IsExpected)> = vec![
        (
            vec![
                spec("job").id("a"),
                spec("job").id("b"),
                spec("job").priority(5_000),
            ],
            |e| matches!(e, CoreError::InvalidOption(_)),
        ),
        (vec![spec("job").id("a"), spec("bad name")], |e| {
            matches!(e, CoreError::InvalidName(_))
        }),
        (vec![spec("job").id("a"), spec("job").id("a")], |e| {
            matches!(e, CoreError::DuplicateTask(_))
        }),
        (vec![spec("job").id("a"), spec("job").id("existing")], |e| {
            matches!(e, CoreError::DuplicateTask(_))
        }),
        (
            vec![spec("job").id("a"), spec("job").parent("ghost", OnSuccess)],
            |e| matches!(e, CoreError::UnknownParent(_)),
        ),
        (
            vec![
                spec("job").id("a").parent("b", OnSuccess),
                spec("job").id("b").parent("a", OnSuccess),
            ],
            |e| matches!(e, CoreError::Cycle(_)),
        ),
    ];
    for (batch, is_expected) in bad_batches {
        let err = e.submit_many(batch.clone(), 1).unwrap_err();
        assert!(is_expected(&err), "{batch:?}: {err:?}");
        assert_eq!(e.len(), 1, "nothing of {batch:?} stored");
        assert!(e.get("a", 1).is_err());
        assert!(e.get("b", 1).is_err());
        assert_counts_match(&mut e, 1);
    }
    // The ids are still free.
    let ok = e
        .submit_many(vec![spec("job").id("a"), spec("job").id("b")], 2)
        .unwrap();
    assert_eq!(ok.len(), 2);
}

#[test]
fn submit_many_accepts_intra_batch_parents_in_any_order() {
    let mut e = engine();
    submit(&mut e, spec("job").id("outside"), 0);
    let out = e
        .submit_many(
            vec![
                spec("join")
                    .id("c")
                    .parent("a", OnSuccess)
                    .parent("b", OnSuccess),
                spec("mid").id("b").parent("a", OnSuccess),
                spec("root").id("a").parent("outside", OnComplete),
                spec("free"),
            ],
            1,
        )
        .unwrap();
    let ids: Vec<&str> = out.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(&ids[..3], &["c", "b", "a"], "results in input order");
    assert!(out.iter().all(|s| s.created));
    assert_eq!(status(&mut e, "a", 1), Status::Waiting);
    assert_eq!(status(&mut e, "b", 1), Status::Waiting);
    assert_eq!(status(&mut e, "c", 1), Status::Waiting);
    assert_eq!(status(&mut e, &out[3].id, 1), Status::Queued);
    assert_eq!(
        get(&mut e, "c", 1).parents,
        vec![("a".to_string(), OnSuccess), ("b".to_string(), OnSuccess)]
    );

    run(&mut e, "outside", ok(), 2);
    assert_eq!(status(&mut e, "a", 2), Status::Queued);
    run(&mut e, &out[3].id, ok(), 3);
    run(&mut e, "a", ok(), 4);
    assert_eq!(status(&mut e, "b", 4), Status::Queued);
    assert_eq!(status(&mut e, "c", 4), Status::Waiting);
    run(&mut e, "b", ok(), 5);
    assert_eq!(status(&mut e, "c", 5), Status::Queued);
    assert_counts_match(&mut e, 5);
}

#[test]
fn submit_many_of_nothing_is_nothing() {
    let mut e = engine();
    assert_eq!(e.submit_many(Vec::new(), 0).unwrap(), Vec::new());
    assert!(e.is_empty());
}

#[test]
fn submit_many_generates_unique_ids_and_keeps_input_order() {
    let mut e = engine();
    let out = e
        .submit_many((0..20).map(|i| spec("job").priority(i % 3)).collect(), 0)
        .unwrap();
    let ids: HashSet<&String> = out.iter().map(|s| &s.id).collect();
    assert_eq!(ids.len(), 20);
    for (i, s) in out.iter().enumerate() {
        assert_eq!(get(&mut e, &s.id, 0).priority, i as i32 % 3);
    }
}

#[test]
fn submit_many_rejects_cycles_and_self_parents() {
    let mut e = engine();
    let three_cycle = vec![
        spec("job").id("x").parent("z", OnSuccess),
        spec("job").id("y").parent("x", OnSuccess),
        spec("job").id("z").parent("y", OnComplete),
        spec("job").id("free"),
    ];
    let err = e.submit_many(three_cycle, 0).unwrap_err();
    assert!(matches!(err, CoreError::Cycle(_)), "{err:?}");
    let self_parent = vec![
        spec("job").id("free"),
        spec("job").id("s").parent("s", OnFailure),
    ];
    let err = e.submit_many(self_parent, 0).unwrap_err();
    assert!(matches!(err, CoreError::Cycle(_)), "{err:?}");
    assert!(e.is_empty());
    assert!(e.get("free", 0).is_err());
}

#[test]
fn submit_many_with_an_idempotency_key_inside_the_batch() {
    let mut e = engine();
    let out = e
        .submit_many(
            vec![spec("job").key("k"), spec("job").key("k"), spec("job")],
            0,
        )
        .unwrap();
    assert!(out[0].created);
    assert_eq!(out[1].id, out[0].id);
    assert!(!out[1].created);
    assert!(out[2].created);
    assert_eq!(e.len(), 2);
}

#[test]
fn submit_many_with_a_deduplicated_parent_does_not_panic() {
    let mut e = engine();
    let old = submit(&mut e, spec("job").key("k"), 0);
    // "p" is not created (its key is held by `old`), yet "c" names it as a parent.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        e.submit_many(
            vec![
                spec("job").id("p").key("k"),
                spec("job").id("c").parent("p", OnSuccess),
            ],
            1,
        )
    }));
    let result = result.expect("submit_many panicked");
    // Either refused, or the child attached to the task that holds the key.
    match result {
        Err(_) => assert_eq!(e.len(), 1),
        Ok(out) => {
            assert_eq!(out[0].id, old);
            assert_eq!(get(&mut e, "c", 1).parents[0].0, old);
        }
    }
}

#[test]
fn submit_many_generated_id_does_not_collide_with_a_custom_id_in_the_batch() {
    let mut probe = engine();
    let first_generated = submit(&mut probe, spec("job"), 0);
    let mut e = engine();
    let result = e.submit_many(vec![spec("job"), spec("job").id(&first_generated)], 0);
    match result {
        Err(err) => assert!(matches!(err, CoreError::DuplicateTask(_)), "{err:?}"),
        Ok(out) => {
            assert_ne!(out[0].id, out[1].id, "two tasks share one id");
            assert_eq!(e.len(), 2);
        }
    }
    assert_counts_match(&mut e, 0);
}

// ----- claim ----------------------------------------------------------------------------------

#[test]
fn claim_takes_strictly_higher_priority_first() {
    let mut e = engine();
    let a = submit(&mut e, spec("a").priority(0), 0);
    let b = submit(&mut e, spec("b").priority(5), 1);
    let c = submit(&mut e, spec("c").priority(-3), 2);
    let d = submit(&mut e, spec("d").priority(5), 3);
    let x = submit(&mut e, spec("x").priority(1000), 4);
    let y = submit(&mut e, spec("y").priority(-1000), 5);
    let f = submit(&mut e, spec("f").priority(0), 6);
    let claims = claim(&mut e, POOL, 10, 10);
    let ids: Vec<&str> = claims.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, vec![&x, &b, &d, &a, &f, &c, &y]);
    let priorities: Vec<i32> = claims.iter().map(|c| c.priority).collect();
    assert_eq!(priorities, vec![1000, 5, 5, 0, 0, -3, -1000]);
}

#[test]
fn claim_is_fifo_within_a_priority_even_in_one_millisecond() {
    let mut e = engine();
    let ids: Vec<String> = (0..50).map(|_| submit(&mut e, spec("job"), 7)).collect();
    let mut got = Vec::new();
    for _ in 0..10 {
        got.extend(claim_ids(&mut e, POOL, 5, 8));
    }
    assert_eq!(got, ids);
}

#[test]
fn claim_respects_max() {
    let mut e = engine();
    for _ in 0..5 {
        submit(&mut e, spec("job"), 0);
    }
    assert_eq!(claim(&mut e, POOL, 0, 1).len(), 0);
    assert_eq!(claim(&mut e, POOL, 2, 1).len(), 2);
    assert_eq!(e.claimable(POOL, 1), 3);
    assert_eq!(claim(&mut e, POOL, 2, 1).len(), 2);
    assert_eq!(claim(&mut e, POOL, 2, 1).len(), 1);
    assert_eq!(claim(&mut e, POOL, 2, 1).len(), 0);
    assert_eq!(e.claimable(POOL, 1), 0);
}

#[test]
fn delayed_tasks_are_claimed_only_from_their_time() {
    let mut e = engine();
    let later = submit(&mut e, spec("later").priority(10).at(1_000), 0);
    let now_task = submit(&mut e, spec("now"), 0);
    let past = submit(&mut e, spec("past").at(-50), 0);
    assert_eq!(status(&mut e, &later, 0), Status::Scheduled);
    assert_eq!(get(&mut e, &later, 0).ready_ms, 1_000);
    assert_eq!(
        status(&mut e, &past, 0),
        Status::Queued,
        "a past run_at is now"
    );
    assert_eq!(e.next_due(POOL), Some(1_000));
    assert_eq!(e.claimable(POOL, 999), 2);
    assert_eq!(e.claimable(POOL, 1_000), 3);

    assert_eq!(claim_ids(&mut e, POOL, 10, 500), vec![now_task, past]);
    assert!(claim(&mut e, POOL, 10, 999).is_empty());
    assert_eq!(status(&mut e, &later, 999), Status::Scheduled);
    // Promotion is visible through get alone.
    assert_eq!(status(&mut e, &later, 1_000), Status::Queued);
    assert_counts_match(&mut e, 1_000);
    assert_eq!(e.next_due(POOL), None);
    assert_eq!(claim_ids(&mut e, POOL, 10, 1_000), vec![later]);
}

#[test]
fn delayed_task_promoted_by_list_and_counts() {
    let mut e = engine();
    let t = submit(&mut e, spec("job").at(100), 0);
    let queued = TaskFilter {
        statuses: Status::Queued.bit(),
        ..Default::default()
    };
    assert!(list_ids(&mut e, &queued, 99).is_empty());
    assert_eq!(list_ids(&mut e, &queued, 100), vec![t]);
    let mut e = engine();
    submit(&mut e, spec("job").at(100), 0);
    let counts = e.counts(100);
    assert_eq!(counts[0].1[Status::Queued as usize], 1);
    assert_eq!(counts[0].1[Status::Scheduled as usize], 0);
}

#[test]
fn delayed_tasks_keep_priority_and_ready_time_order() {
    let mut e = engine();
    let late = submit(&mut e, spec("late").at(300), 0);
    let early = submit(&mut e, spec("early").at(100), 0);
    let plain = submit(&mut e, spec("plain"), 200);
    let high = submit(&mut e, spec("high").priority(1).at(400), 0);
    assert_eq!(
        claim_ids(&mut e, POOL, 10, 500),
        vec![high, early, plain, late]
    );
}

#[test]
fn pools_are_isolated() {
    let mut e = engine();
    let a: Vec<String> = (0..3)
        .map(|_| submit(&mut e, spec("job").pool("a").priority(100), 0))
        .collect();
    let b = submit(&mut e, spec("job").pool("b").priority(-100), 0);
    assert!(claim(&mut e, "nope", 10, 0).is_empty());
    assert_eq!(e.claimable("nope", 0), 0);
    assert_eq!(e.next_due("nope"), None);
    assert_eq!(claim_ids(&mut e, "b", 10, 0), vec![b.clone()]);
    assert!(claim(&mut e, "b", 10, 0).is_empty());
    let claims = e.claim("a", 10, 1, LEASE, 0);
    assert_eq!(claims.iter().map(|c| c.id.clone()).collect::<Vec<_>>(), a);
    let counts: HashMap<String, [u64; 9]> = e.counts(0).into_iter().collect();
    assert_eq!(counts["a"][Status::Running as usize], 3);
    assert_eq!(counts["b"][Status::Running as usize], 1);
    assert_eq!(get(&mut e, &b, 0).pool, "b");
}

#[test]
fn claim_counts_attempts_and_gives_distinct_tokens() {
    let mut e = engine();
    let ids: Vec<String> = (0..50)
        .map(|i| submit(&mut e, spec("job").retries(3).payload(&[i as u8]), 0))
        .collect();
    let claims = e.claim(POOL, 100, 7, LEASE, 10);
    assert_eq!(claims.len(), 50);
    let tokens: HashSet<u64> = claims.iter().map(|c| c.token).collect();
    assert_eq!(tokens.len(), 50);
    let slots: HashSet<u32> = claims.iter().map(|c| c.slot).collect();
    assert_eq!(slots.len(), 50);
    for (i, c) in claims.iter().enumerate() {
        assert_eq!(c.id, ids[i]);
        assert_eq!(c.attempt, 1);
        assert_eq!(c.name, "job");
        assert_eq!(c.payload, vec![i as u8]);
        let v = get(&mut e, &c.id, 10);
        assert_eq!(v.status, Status::Running);
        assert_eq!(v.attempts, 1);
        assert_eq!(v.started_ms, 10);
    }
    let mut owned = e.leases_of(7);
    owned.sort();
    let mut expected: Vec<(u32, u64)> = claims.iter().map(|c| (c.slot, c.token)).collect();
    expected.sort();
    assert_eq!(owned, expected);
    assert!(e.leases_of(8).is_empty());
    assert_eq!(e.next_lease_deadline(), Some(10 + LEASE));

    // A retry gets attempt 2 and a token never seen before.
    let c = &claims[0];
    fail(&mut e, c, Some(0), 20);
    let again = claim(&mut e, POOL, 1, 20);
    assert_eq!(again[0].id, c.id);
    assert_eq!(again[0].attempt, 2);
    assert!(!tokens.contains(&again[0].token));
}

#[test]
fn claim_carries_timeout_and_priority() {
    let mut e = engine();
    let mut s = spec("job").priority(3);
    s.timeout_ms = 2_500;
    submit(&mut e, s, 0);
    let c = claim_one(&mut e, 0);
    assert_eq!(c.timeout_ms, 2_500);
    assert_eq!(c.priority, 3);
}

// ----- finish ---------------------------------------------------------------------------------

#[test]
fn success_stores_the_result() {
    let mut e = engine();
    let id = submit(&mut e, spec("job"), 0);
    let c = claim_one(&mut e, 10);
    assert!(e.set_progress(c.slot, c.token, 0.25));
    assert_eq!(get(&mut e, &id, 10).progress, 0.25);
    assert!(e.finish(
        c.slot,
        c.token,
        Finish::Succeeded {
            result: Some(b"42".to_vec())
        },
        20
    ));
    let v = get(&mut e, &id, 20);
    assert_eq!(v.status, Status::Succeeded);
    assert_eq!(v.result.as_deref(), Some(&b"42"[..]));
    assert_eq!(v.finished_ms, 20);
    assert_eq!(v.started_ms, 10);
    assert_eq!(v.attempts, 1);
    assert_eq!(v.progress, 1.0);
    assert_eq!(v.error, None);
    // The same token cannot finish it twice.
    assert!(!e.finish(c.slot, c.token, die(), 30));
    assert_eq!(status(&mut e, &id, 30), Status::Succeeded);
    assert!(!e.set_progress(c.slot, c.token, 0.5));
}

#[test]
fn progress_is_clamped() {
    let mut e = engine();
    let id = submit(&mut e, spec("job"), 0);
    let c = claim_one(&mut e, 0);
    assert!(e.set_progress(c.slot, c.token, 7.0));
    assert_eq!(get(&mut e, &id, 0).progress, 1.0);
    assert!(e.set_progress(c.slot, c.token, -2.0));
    assert_eq!(get(&mut e, &id, 0).progress, 0.0);
}

#[test]
fn progress_nan_is_not_stored() {
    let mut e = engine();
    let id = submit(&mut e, spec("job"), 0);
    let c = claim_one(&mut e, 0);
    e.set_progress(c.slot, c.token, 0.5);
    e.set_progress(c.slot, c.token, f32::NAN);
    let progress = get(&mut e, &id, 0).progress;
    assert!((0.0..=1.0).contains(&progress), "progress is {progress}");
}

#[test]
fn success_after_a_failed_attempt_clears_the_error() {
    let mut e = engine();
    let id = submit(&mut e, spec("job").retries(1), 0);
    let c = claim_one(&mut e, 0);
    fail(&mut e, &c, Some(0), 1);
    assert_eq!(get(&mut e, &id, 1).error.as_deref(), Some("boom"));
    let c = claim_one(&mut e, 2);
    succeed(&mut e, &c, 3);
    let v = get(&mut e, &id, 3);
    assert_eq!(v.status, Status::Succeeded);
    assert_eq!(v.error, None);
    assert_eq!(v.traceback, None);
    assert_eq!(v.result, None);
}

#[test]
fn a_stale_token_is_refused_and_changes_nothing() {
    let mut e = engine();
    let id = submit(&mut e, spec("job").retries(2), 0);
    let other = submit(&mut e, spec("job"), 0);
    let c = claim_one(&mut e, 1);
    let d = claim_one(&mut e, 1);
    let before = all_tasks(&mut e, 2);
    for (slot, token) in [
        (c.slot, c.token + 1_000),
        (c.slot, d.token),
        (d.slot, c.token),
        (u32::MAX, c.token),
    ] {
        for outcome in [ok(), die(), failed("x", Some(1)), Finish::HandBack] {
            assert!(!e.finish(slot, token, outcome, 2));
        }
        assert!(!e.set_progress(slot, token, 0.9));
    }
    assert_eq!(all_tasks(&mut e, 2), before);
    succeed(&mut e, &c, 3);
    succeed(&mut e, &d, 3);
    assert_eq!(status(&mut e, &id, 3), Status::Succeeded);
    assert_eq!(status(&mut e, &other, 3), Status::Succeeded);
}

#[test]
fn failure_with_a_retry_delay_is_retrying_until_due() {
    let mut e = engine();
    let id = submit(&mut e, spec("job").retries(2), 0);
    let c = claim_one(&mut e, 0);
    fail(&mut e, &c, Some(100), 10);
    let v = get(&mut e, &id, 10);
    assert_eq!(v.status, Status::Retrying);
    assert_eq!(v.ready_ms, 110);
    assert_eq!(v.attempts, 1);
    assert_eq!(v.error.as_deref(), Some("boom"));
    assert_eq!(v.traceback.as_deref(), Some("Traceback: boom"));
    assert_eq!(e.next_due(POOL), Some(110));
    assert!(claim(&mut e, POOL, 1, 109).is_empty());
    assert_eq!(status(&mut e, &id, 109), Status::Retrying);
    assert_counts_match(&mut e, 109);
    assert_eq!(status(&mut e, &id, 110), Status::Queued);
    let c = claim_one(&mut e, 110);
    assert_eq!(c.id, id);
    assert_eq!(c.attempt, 2);
}

#[test]
fn failure_with_zero_delay_is_queued_at_once() {
    let mut e = engine();
    let id = submit(&mut e, spec("job").retries(1), 0);
    let c = claim_one(&mut e, 0);
    fail(&mut e, &c, Some(0), 10);
    assert_eq!(status(&mut e, &id, 10), Status::Queued);
    assert_eq!(claim_one(&mut e, 10).id, id);
}

#[test]
fn out_of_attempts_goes_dead_with_error_and_traceback() {
    let mut e = engine();
    let id = submit(&mut e, spec("job").retries(2), 0);
    for attempt in 1..=3u32 {
        let c = claim_one(&mut e, attempt as i64 * 100);
        assert_eq!(c.attempt, attempt);
        assert!(e.finish(
            c.slot,
            c.token,
            failed(&format!("error {attempt}"), Some(1)),
            attempt as i64 * 100 + 10
        ));
        let expected = if attempt <= 2 {
            Status::Retrying
        } else {
            Status::Dead
        };
        assert_eq!(status(&mut e, &id, attempt as i64 * 100 + 10), expected);
    }
    let v = get(&mut e, &id, 1_000);
    assert_eq!(v.status, Status::Dead);
    assert_eq!(v.attempts, 3);
    assert_eq!(v.error.as_deref(), Some("error 3"));
    assert_eq!(v.traceback.as_deref(), Some("Traceback: error 3"));
    assert_eq!(v.finished_ms, 310);
    assert!(claim(&mut e, POOL, 1, 10_000).is_empty());
}

#[test]
fn a_huge_retry_delay_does_not_wrap_around() {
    let mut e = engine();
    let id = submit(&mut e, spec("job").retries(3), 1_000);
    let c = claim_one(&mut e, 1_000);
    fail(&mut e, &c, Some(u64::MAX), 1_000);
    let v = get(&mut e, &id, 1_000);
    assert_eq!(v.status, Status::Retrying, "{v:?}");
    assert!(v.ready_ms > 1_000, "{v:?}");
    assert!(claim(&mut e, POOL, 1, 1_000).is_empty());
}

#[test]
fn zero_retries_means_one_attempt() {
    let mut e = engine();
    let id = submit(&mut e, spec("job"), 0);
    let c = claim_one(&mut e, 0);
    fail(&mut e, &c, Some(5), 1);
    assert_eq!(status(&mut e, &id, 1), Status::Dead);
}

#[test]
fn a_permanent_error_is_dead_at_once() {
    let mut e = engine();
    let id = submit(&mut e, spec("job").retries(5), 0);
    let c = claim_one(&mut e, 0);
    assert!(e.finish(c.slot, c.token, failed("bad input", None), 1));
    let v = get(&mut e, &id, 1);
    assert_eq!(v.status, Status::Dead);
    assert_eq!(v.attempts, 1);
    assert_eq!(v.error.as_deref(), Some("bad input"));
    assert!(claim(&mut e, POOL, 1, 1_000_000).is_empty());
}

#[test]
fn hand_back_requeues_without_counting_an_attempt() {
    let mut e = engine();
    let a = submit(&mut e, spec("job"), 0);
    let b = submit(&mut e, spec("job"), 1);
    let c = claim_one(&mut e, 10);
    assert_eq!(c.id, a);
    assert!(e.finish(c.slot, c.token, Finish::HandBack, 20));
    let v = get(&mut e, &a, 20);
    assert_eq!(v.status, Status::Queued);
    assert_eq!(v.attempts, 0);
    assert_eq!(v.started_ms, 0);
    // It keeps its place ahead of b, submitted later with the same priority.
    let again = claim_one(&mut e, 30);
    assert_eq!(again.id, a);
    assert_eq!(again.attempt, 1);
    assert!(!e.finish(c.slot, c.token, ok(), 31), "old token is dead");
    assert_eq!(claim_one(&mut e, 40).id, b);
    // A higher priority submitted later still goes first.
    succeed(&mut e, &again, 50);
    let d = submit(&mut e, spec("job"), 60);
    let c = claim_one(&mut e, 61);
    assert_eq!(c.id, d);
    let high = submit(&mut e, spec("job").priority(1), 62);
    assert!(e.finish(c.slot, c.token, Finish::HandBack, 63));
    assert_eq!(claim_ids(&mut e, POOL, 2, 64), vec![high, d]);
}

#[test]
fn hand_back_keeps_its_place_within_one_millisecond() {
    let mut e = engine();
    let a = submit(&mut e, spec("job"), 0);
    let b = submit(&mut e, spec("job"), 0);
    let c = claim_one(&mut e, 10);
    assert_eq!(c.id, a);
    assert!(e.finish(c.slot, c.token, Finish::HandBack, 20));
    assert_eq!(claim_ids(&mut e, POOL, 2, 30), vec![a, b]);
}

#[test]
fn reaped_task_keeps_its_place_within_one_millisecond() {
    let mut e = engine();
    let a = submit(&mut e, spec("job"), 0);
    let b = submit(&mut e, spec("job"), 0);
    let c = claim_one(&mut e, 10);
    assert_eq!(c.id, a);
    assert_eq!(e.reap(10 + LEASE).len(), 1);
    assert_eq!(claim_ids(&mut e, POOL, 2, 10 + LEASE), vec![a, b]);
}

#[test]
fn hand_back_of_a_retry_keeps_its_attempt_count() {
    let mut e = engine();
    let id = submit(&mut e, spec("job").retries(3), 0);
    let c = claim_one(&mut e, 0);
    fail(&mut e, &c, Some(0), 1);
    let c = claim_one(&mut e, 2);
    assert_eq!(c.attempt, 2);
    assert!(e.finish(c.slot, c.token, Finish::HandBack, 3));
    assert_eq!(get(&mut e, &id, 3).attempts, 1);
    assert_eq!(claim_one(&mut e, 4).attempt, 2);
}

// ----- leases ---------------------------------------------------------------------------------

#[test]
fn renew_keeps_a_lease_alive_past_its_first_deadline() {
    let mut e = engine();
    let id = submit(&mut e, spec("job"), 0);
    let c = e.claim(POOL, 1, 1, 100, 0).pop().unwrap();
    assert_eq!(e.next_lease_deadline(), Some(100));
    assert!(e.renew(&[(c.slot, c.token)], 100, 90).is_empty());
    assert_eq!(e.next_lease_deadline(), Some(190));
    assert!(e.reap(150).is_empty());
    assert_eq!(status(&mut e, &id, 150), Status::Running);
    assert!(e.renew(&[(c.slot, c.token)], 100, 180).is_empty());
    assert!(e.reap(279).is_empty());
    succeed(&mut e, &c, 279);
    assert_eq!(status(&mut e, &id, 279), Status::Succeeded);
    // A renew after the end reports the lease lost.
    assert_eq!(
        e.renew(&[(c.slot, c.token)], 100, 300),
        vec![(c.slot, c.token)]
    );
}

#[test]
fn renew_reports_only_the_lost_leases() {
    let mut e = engine();
    submit(&mut e, spec("job"), 0);
    submit(&mut e, spec("job"), 0);
    let claims = e.claim(POOL, 2, 1, 100, 0);
    let held = [
        (claims[0].slot, claims[0].token),
        (claims[1].slot, claims[1].token + 77),
    ];
    assert_eq!(e.renew(&held, 100, 50), vec![held[1]]);
}

#[test]
fn reap_requeues_expired_leases_without_counting_an_attempt() {
    let mut e = engine_with(|c| c.max_lease_losses = 3);
    let id = submit(&mut e, spec("job").retries(0), 0);
    let c = e.claim(POOL, 1, 4, 100, 0).pop().unwrap();
    assert!(e.reap(99).is_empty());
    let reaped = e.reap(100);
    assert_eq!(reaped.len(), 1);
    assert_eq!(reaped[0].id, id);
    assert_eq!(reaped[0].slot, c.slot);
    assert_eq!(reaped[0].token, c.token);
    assert!(!reaped[0].now_dead);
    let v = get(&mut e, &id, 100);
    assert_eq!(v.status, Status::Queued);
    assert_eq!(v.attempts, 0);
    assert_eq!(v.lease_losses, 1);
    assert!(e.leases_of(4).is_empty());
    // The reaped worker's later finish is refused; its progress too.
    assert!(!e.finish(c.slot, c.token, ok(), 101));
    assert!(!e.set_progress(c.slot, c.token, 0.5));
    assert_eq!(status(&mut e, &id, 101), Status::Queued);
    // Another worker gets it, with attempt 1 (max_retries 0 still allows this one).
    let again = e.claim(POOL, 1, 5, 100, 102).pop().unwrap();
    assert_eq!(again.attempt, 1);
    assert_ne!(again.token, c.token);
    assert!(!e.finish(c.slot, c.token, ok(), 103));
    assert_eq!(status(&mut e, &id, 103), Status::Running);
    succeed(&mut e, &again, 104);
    assert_counts_match(&mut e, 104);
}

#[test]
fn reap_makes_the_task_dead_after_max_lease_losses() {
    let mut e = engine_with(|c| c.max_lease_losses = 2);
    let id = submit(&mut e, spec("job").retries(10), 0);
    e.claim(POOL, 1, 1, 100, 0);
    let first = e.reap(100);
    assert!(!first[0].now_dead);
    let c = e.claim(POOL, 1, 1, 100, 200).pop().unwrap();
    let second = e.reap(300);
    assert_eq!(second.len(), 1);
    assert!(second[0].now_dead);
    let v = get(&mut e, &id, 300);
    assert_eq!(v.status, Status::Dead);
    assert_eq!(v.lease_losses, 2);
    assert!(
        v.error.as_deref().unwrap().contains("lost its lease"),
        "{v:?}"
    );
    assert_eq!(v.finished_ms, 300);
    assert!(claim(&mut e, POOL, 1, 1_000).is_empty());
    assert!(!e.finish(c.slot, c.token, ok(), 301));
    // Resubmitting resets the lease-loss budget.
    e.resubmit(&id, 400).unwrap();
    let v = get(&mut e, &id, 400);
    assert_eq!(v.lease_losses, 0);
    assert_eq!(v.status, Status::Queued);
}

#[test]
fn reap_takes_exactly_the_late_leases() {
    let mut e = engine();
    for _ in 0..3 {
        submit(&mut e, spec("job"), 0);
    }
    let a = e.claim(POOL, 1, 1, 100, 0).pop().unwrap();
    let b = e.claim(POOL, 1, 1, 200, 0).pop().unwrap();
    let c = e.claim(POOL, 1, 1, 300, 0).pop().unwrap();
    let reaped: Vec<String> = e.reap(200).into_iter().map(|r| r.id).collect();
    assert_eq!(reaped, vec![a.id, b.id]);
    assert_eq!(e.next_lease_deadline(), Some(300));
    succeed(&mut e, &c, 250);
    assert!(e.reap(10_000).is_empty());
}

// ----- DAG ------------------------------------------------------------------------------------

/// Submits a parent "p" and children for each trigger; returns the engine.
fn family() -> Engine {
    let mut e = engine();
    submit(&mut e, spec("parent").id("p"), 0);
    submit(&mut e, spec("child").id("s").parent("p", OnSuccess), 0);
    submit(&mut e, spec("child").id("f").parent("p", OnFailure), 0);
    submit(&mut e, spec("child").id("c").parent("p", OnComplete), 0);
    for id in ["s", "f", "c"] {
        assert_eq!(status(&mut e, id, 0), Status::Waiting);
    }
    e
}

#[test]
fn dag_triggers_after_success() {
    let mut e = family();
    run(&mut e, "p", ok(), 1);
    assert_eq!(status(&mut e, "s", 1), Status::Queued);
    assert_eq!(status(&mut e, "f", 1), Status::Skipped);
    assert_eq!(status(&mut e, "c", 1), Status::Queued);
    assert_counts_match(&mut e, 1);
}

#[test]
fn dag_triggers_after_death() {
    let mut e = family();
    run(&mut e, "p", die(), 1);
    assert_eq!(status(&mut e, "s", 1), Status::Skipped);
    assert_eq!(status(&mut e, "f", 1), Status::Queued);
    assert_eq!(status(&mut e, "c", 1), Status::Queued);
}

#[test]
fn dag_a_retry_is_not_a_failure() {
    let mut e = engine();
    submit(&mut e, spec("parent").id("p").retries(1), 0);
    submit(&mut e, spec("child").id("f").parent("p", OnFailure), 0);
    let c = claim_one(&mut e, 1);
    fail(&mut e, &c, Some(0), 2);
    assert_eq!(status(&mut e, "f", 2), Status::Waiting);
    let c = claim_one(&mut e, 3);
    assert_eq!(c.id, "p");
    fail(&mut e, &c, Some(0), 4);
    assert_eq!(status(&mut e, "p", 4), Status::Dead);
    assert_eq!(status(&mut e, "f", 4), Status::Queued);
}

#[test]
fn dag_triggers_after_cancel() {
    let mut e = family();
    e.cancel("p", 1).unwrap();
    assert_eq!(status(&mut e, "s", 1), Status::Skipped);
    assert_eq!(status(&mut e, "f", 1), Status::Skipped);
    assert_eq!(status(&mut e, "c", 1), Status::Queued);
}

#[test]
fn dag_multi_parent_join() {
    let mut e = engine();
    submit(&mut e, spec("job").id("a"), 0);
    submit(&mut e, spec("job").id("b"), 0);
    submit(&mut e, spec("job").id("z"), 0);
    submit(
        &mut e,
        spec("join")
            .id("j")
            .parent("a", OnSuccess)
            .parent("b", OnFailure)
            .parent("z", OnComplete),
        0,
    );
    run(&mut e, "a", ok(), 1);
    assert_eq!(status(&mut e, "j", 1), Status::Waiting);
    run(&mut e, "b", die(), 2);
    assert_eq!(status(&mut e, "j", 2), Status::Waiting);
    e.cancel("z", 3).unwrap();
    assert_eq!(status(&mut e, "j", 3), Status::Queued);
    assert_eq!(claim_one(&mut e, 4).id, "j");
}

#[test]
fn dag_join_is_skipped_as_soon_as_one_condition_fails() {
    let mut e = engine();
    submit(&mut e, spec("job").id("a"), 0);
    submit(&mut e, spec("job").id("b").at(1_000), 0);
    submit(
        &mut e,
        spec("join")
            .id("j")
            .parent("a", OnSuccess)
            .parent("b", OnSuccess),
        0,
    );
    run(&mut e, "a", die(), 1);
    assert_eq!(status(&mut e, "j", 1), Status::Skipped);
    // b finishing later changes nothing.
    run(&mut e, "b", ok(), 1_000);
    assert_eq!(status(&mut e, "j", 1_000), Status::Skipped);
    assert_counts_match(&mut e, 1_000);
}

#[test]
fn dag_skip_cascades_with_its_error_text() {
    let mut e = engine();
    submit(&mut e, spec("job").id("a"), 0);
    submit(&mut e, spec("job").id("b").parent("a", OnSuccess), 0);
    submit(&mut e, spec("job").id("c").parent("b", OnSuccess), 0);
    submit(&mut e, spec("job").id("d").parent("c", OnFailure), 0);
    submit(&mut e, spec("job").id("fin").parent("c", OnComplete), 0);
    submit(&mut e, spec("job").id("after").parent("fin", OnSuccess), 0);
    assert!(e.watch("d").unwrap());
    run(&mut e, "a", die(), 5);
    for id in ["b", "c", "d"] {
        let v = get(&mut e, id, 5);
        assert_eq!(v.status, Status::Skipped, "{id}");
        assert!(
            v.error.as_deref().unwrap().contains("skipped"),
            "{id}: {:?}",
            v.error
        );
        assert_eq!(v.finished_ms, 5);
        assert_eq!(v.attempts, 0);
    }
    assert_eq!(status(&mut e, "fin", 5), Status::Queued);
    assert_eq!(status(&mut e, "after", 5), Status::Waiting);
    assert_eq!(e.drain_finished(), vec!["d".to_string()]);
    run(&mut e, "fin", ok(), 6);
    assert_eq!(status(&mut e, "after", 6), Status::Queued);
    assert_counts_match(&mut e, 6);
}

#[test]
fn dag_long_chain_skip_cascade() {
    let mut e = engine();
    submit(&mut e, spec("job").id("n0"), 0);
    for i in 1..2_000 {
        submit(
            &mut e,
            spec("job")
                .id(&format!("n{i}"))
                .parent(&format!("n{}", i - 1), OnSuccess),
            0,
        );
    }
    e.cancel("n0", 1).unwrap();
    let counts = e.counts(1);
    assert_eq!(counts[0].1[Status::Skipped as usize], 1_999);
    assert_eq!(counts[0].1[Status::Cancelled as usize], 1);
}

#[test]
fn dag_child_submitted_after_the_parent_finished() {
    let mut e = engine();
    submit(&mut e, spec("job").id("p"), 0);
    submit(&mut e, spec("job").id("q"), 0);
    run(&mut e, "p", ok(), 1);
    run(&mut e, "q", die(), 2);
    let on_success = submit(&mut e, spec("job").parent("p", OnSuccess), 3);
    assert_eq!(status(&mut e, &on_success, 3), Status::Queued);
    let on_complete = submit(&mut e, spec("job").parent("q", OnComplete), 3);
    assert_eq!(status(&mut e, &on_complete, 3), Status::Queued);
    let on_failure = submit(&mut e, spec("job").parent("q", OnFailure), 3);
    assert_eq!(status(&mut e, &on_failure, 3), Status::Queued);

    // An edge that can never hold skips the child at once (it is still created).
    let s = e
        .submit(spec("job").id("never").parent("p", OnFailure), 4)
        .unwrap();
    assert!(s.created);
    let v = get(&mut e, "never", 4);
    assert_eq!(v.status, Status::Skipped);
    assert!(v.error.as_deref().unwrap().contains("skipped"));
    assert_eq!(v.finished_ms, 4);
    // Mixed: a met edge to a finished parent and an edge to a live one.
    submit(&mut e, spec("job").id("live"), 5);
    submit(
        &mut e,
        spec("job")
            .id("mixed")
            .parent("p", OnSuccess)
            .parent("live", OnSuccess),
        5,
    );
    assert_eq!(status(&mut e, "mixed", 5), Status::Waiting);
    // A delayed child with finished parents is scheduled, not queued.
    let delayed = submit(&mut e, spec("job").parent("p", OnSuccess).at(100), 5);
    assert_eq!(status(&mut e, &delayed, 5), Status::Scheduled);
    // A child of a skipped task, submitted later.
    let under_skipped = submit(&mut e, spec("job").parent("never", OnSuccess), 6);
    assert_eq!(status(&mut e, &under_skipped, 6), Status::Skipped);
    let finally = submit(&mut e, spec("job").parent("never", OnComplete), 6);
    assert_eq!(status(&mut e, &finally, 6), Status::Queued);
    assert_counts_match(&mut e, 6);
}

#[test]
fn dag_delayed_child_waits_for_its_time_after_the_parent() {
    let mut e = engine();
    submit(&mut e, spec("job").id("p"), 0);
    submit(
        &mut e,
        spec("job").id("c").parent("p", OnSuccess).at(500),
        0,
    );
    run(&mut e, "p", ok(), 100);
    assert_eq!(status(&mut e, "c", 100), Status::Scheduled);
    assert_eq!(status(&mut e, "c", 500), Status::Queued);
    // After its time has passed, a child is queued at once.
    submit(&mut e, spec("job").id("p2"), 600);
    submit(
        &mut e,
        spec("job").id("c2").parent("p2", OnSuccess).at(650),
        600,
    );
    claim_ids(&mut e, POOL, 1, 600); // "c"
    run(&mut e, "p2", ok(), 700);
    assert_eq!(status(&mut e, "c2", 700), Status::Queued);
}

#[test]
fn dag_cancel_of_a_waiting_child_cascades_cancelled() {
    let mut e = engine();
    submit(&mut e, spec("job").id("p"), 0);
    submit(&mut e, spec("job").id("c").parent("p", OnSuccess), 0);
    submit(&mut e, spec("job").id("gc_fin").parent("c", OnComplete), 0);
    submit(&mut e, spec("job").id("gc_ok").parent("c", OnSuccess), 0);
    submit(&mut e, spec("job").id("gc_fail").parent("c", OnFailure), 0);
    assert_eq!(e.cancel("c", 1).unwrap(), Cancelled::Now { running: None });
    let v = get(&mut e, "c", 1);
    assert_eq!(v.status, Status::Cancelled);
    assert_eq!(v.error.as_deref(), Some("cancelled"));
    assert_eq!(status(&mut e, "gc_fin", 1), Status::Queued);
    assert_eq!(status(&mut e, "gc_ok", 1), Status::Skipped);
    assert_eq!(status(&mut e, "gc_fail", 1), Status::Skipped);
    // The parent finishing later does not wake the cancelled child.
    run(&mut e, "p", ok(), 2);
    assert_eq!(status(&mut e, "c", 2), Status::Cancelled);
    assert_eq!(claim_ids(&mut e, POOL, 10, 3), vec!["gc_fin".to_string()]);
    assert_counts_match(&mut e, 3);
}

#[test]
fn dag_is_not_confused_by_purged_and_reused_slots() {
    let mut e = engine();
    // A child "c" waits on "p" (live) and on "r"; "r" dies, so "c" is skipped while "p" still
    // lists it among its children.
    submit(&mut e, spec("job").id("p").at(1_000), 0);
    submit(&mut e, spec("job").id("r"), 0);
    submit(
        &mut e,
        spec("job")
            .id("c")
            .parent("p", OnSuccess)
            .parent("r", OnSuccess),
        0,
    );
    // A cancelled waiting child "w" of "p" (forgotten by the DAG, still in p's child list).
    submit(&mut e, spec("job").id("w").parent("p", OnSuccess), 0);
    run(&mut e, "r", die(), 1);
    assert_eq!(status(&mut e, "c", 1), Status::Skipped);
    e.cancel("w", 1).unwrap();
    // Some finished task "old" that later children named as a parent.
    submit(&mut e, spec("job").id("old"), 1);
    run(&mut e, "old", die(), 2);

    // Purge them all so their slots are free, then fill the slots with new tasks.
    for id in ["c", "w", "r", "old"] {
        e.purge(id).unwrap();
    }
    assert_eq!(e.len(), 1);
    // New waiting children of p with the opposite trigger reuse the freed slots.
    submit(&mut e, spec("job").id("n1").parent("p", OnFailure), 3);
    submit(&mut e, spec("job").id("n2").parent("p", OnFailure), 3);
    // A new live parent in a reused slot, with a child that must wait for it even though the
    // slot's previous task ended.
    submit(&mut e, spec("job").id("np").at(5_000), 3);
    submit(&mut e, spec("job").id("nc").parent("np", OnSuccess), 3);
    submit(&mut e, spec("job").id("nf").parent("np", OnFailure), 3);
    assert_eq!(status(&mut e, "nc", 3), Status::Waiting);
    assert_eq!(status(&mut e, "nf", 3), Status::Waiting);
    // A purged parent is unknown, whatever lives in its slot now.
    let err = e
        .submit(spec("job").parent("old", OnFailure), 3)
        .unwrap_err();
    assert!(matches!(err, CoreError::UnknownParent(_)), "{err:?}");

    // p succeeds: n1 and n2 (on_failure) are skipped; the stale entries of c and w wake nobody.
    run(&mut e, "p", ok(), 1_000);
    assert_eq!(status(&mut e, "n1", 1_000), Status::Skipped);
    assert_eq!(status(&mut e, "n2", 1_000), Status::Skipped);
    assert_eq!(status(&mut e, "np", 1_000), Status::Scheduled);
    assert_eq!(status(&mut e, "nc", 1_000), Status::Waiting);
    assert_eq!(status(&mut e, "nf", 1_000), Status::Waiting);
    assert!(claim(&mut e, POOL, 10, 1_000).is_empty());
    run(&mut e, "np", ok(), 5_000);
    assert_eq!(status(&mut e, "nc", 5_000), Status::Queued);
    assert_eq!(status(&mut e, "nf", 5_000), Status::Skipped);
    assert_counts_match(&mut e, 5_000);
}

#[test]
fn dag_slot_reuse_with_a_child_purged_while_its_parent_lives() {
    let mut e = engine();
    submit(&mut e, spec("job").id("p").at(100), 0);
    // Children that end (cancelled) and get purged while p is live, many times, so their slots
    // are reused by new waiting children of p with different triggers.
    for round in 0..20 {
        let id = format!("x{round}");
        submit(&mut e, spec("job").id(&id).parent("p", OnSuccess), 0);
        e.cancel(&id, 0).unwrap();
        e.purge(&id).unwrap();
    }
    submit(&mut e, spec("job").id("keep").parent("p", OnFailure), 0);
    submit(&mut e, spec("job").id("fin").parent("p", OnComplete), 0);
    run(&mut e, "p", ok(), 100);
    assert_eq!(status(&mut e, "keep", 100), Status::Skipped);
    assert_eq!(status(&mut e, "fin", 100), Status::Queued);
    assert_eq!(e.len(), 3);
    assert_counts_match(&mut e, 100);
}

// ----- cancel ---------------------------------------------------------------------------------

#[test]
fn cancel_of_non_running_tasks() {
    let mut e = engine();
    let queued = submit(&mut e, spec("job"), 0);
    let scheduled = submit(&mut e, spec("job").at(500), 0);
    let retrying = submit(&mut e, spec("job").id("r").retries(3), 0);
    let waiting = submit(&mut e, spec("job").parent(&scheduled, OnComplete), 0);
    let c = claim(&mut e, POOL, 2, 0);
    assert_eq!(c[1].id, retrying);
    succeed(&mut e, &c[0], 1);
    let queued2 = submit(&mut e, spec("job"), 1);
    fail(&mut e, &c[1], Some(200), 1);
    assert_eq!(status(&mut e, &retrying, 1), Status::Retrying);
    let _ = queued;

    for (id, before) in [
        (&queued2, Status::Queued),
        (&waiting, Status::Waiting),
        (&scheduled, Status::Scheduled),
        (&retrying, Status::Retrying),
    ] {
        assert_eq!(status(&mut e, id, 2), before);
        assert_eq!(
            e.cancel(id, 2).unwrap(),
            Cancelled::Now { running: None },
            "{before:?}"
        );
        let v = get(&mut e, id, 2);
        assert_eq!(v.status, Status::Cancelled);
        assert_eq!(v.finished_ms, 2);
    }
    assert!(claim(&mut e, POOL, 10, 1_000_000).is_empty());
    assert_eq!(e.next_due(POOL), None);
    assert_eq!(e.claimable(POOL, 1_000_000), 0);
    assert_counts_match(&mut e, 1_000_000);
}

#[test]
fn cancel_of_a_running_task_returns_its_lease() {
    let mut e = engine();
    let id = submit(&mut e, spec("job").retries(3), 0);
    let c = e.claim(POOL, 1, 9, LEASE, 0).pop().unwrap();
    assert_eq!(
        e.cancel(&id, 5).unwrap(),
        Cancelled::Now {
            running: Some((c.slot, c.token))
        }
    );
    assert_eq!(status(&mut e, &id, 5), Status::Cancelled);
    assert!(e.leases_of(9).is_empty());
    assert_eq!(e.next_lease_deadline(), None);
    for outcome in [ok(), failed("x", Some(0)), Finish::HandBack] {
        assert!(!e.finish(c.slot, c.token, outcome, 6));
    }
    assert_eq!(
        e.renew(&[(c.slot, c.token)], LEASE, 6),
        vec![(c.slot, c.token)]
    );
    assert!(e.reap(10 * LEASE).is_empty());
    let v = get(&mut e, &id, 10 * LEASE);
    assert_eq!(v.status, Status::Cancelled);
    assert_eq!(v.attempts, 1);
    assert!(claim(&mut e, POOL, 1, 10 * LEASE).is_empty());
}

#[test]
fn cancel_of_a_finished_task_changes_nothing() {
    let mut e = engine();
    let a = submit(&mut e, spec("job"), 0);
    let b = submit(&mut e, spec("job"), 0);
    let c = submit(&mut e, spec("job"), 0);
    run(&mut e, &a, ok(), 1);
    run(&mut e, &b, die(), 2);
    e.cancel(&c, 3).unwrap();
    assert_eq!(
        e.cancel(&a, 4).unwrap(),
        Cancelled::AlreadyFinished(Status::Succeeded)
    );
    assert_eq!(
        e.cancel(&b, 4).unwrap(),
        Cancelled::AlreadyFinished(Status::Dead)
    );
    assert_eq!(
        e.cancel(&c, 4).unwrap(),
        Cancelled::AlreadyFinished(Status::Cancelled)
    );
    assert_eq!(get(&mut e, &a, 4).finished_ms, 1);
    assert_eq!(get(&mut e, &b, 4).error.as_deref(), Some("fatal"));
    assert_eq!(get(&mut e, &c, 4).finished_ms, 3);
    let err = e.cancel("ghost", 4).unwrap_err();
    assert!(matches!(err, CoreError::TaskNotFound(_)), "{err:?}");
}

// ----- resubmit / purge -----------------------------------------------------------------------

#[test]
fn resubmit_runs_a_dead_task_again_from_a_fresh_budget() {
    let mut e = engine();
    let id = submit(&mut e, spec("job").retries(1).priority(3), 0);
    let c = claim_one(&mut e, 0);
    fail(&mut e, &c, Some(0), 1);
    let c = claim_one(&mut e, 2);
    fail(&mut e, &c, Some(0), 3);
    assert_eq!(status(&mut e, &id, 3), Status::Dead);
    e.resubmit(&id, 10).unwrap();
    let v = get(&mut e, &id, 10);
    assert_eq!(v.status, Status::Queued);
    assert_eq!(v.attempts, 0);
    assert_eq!(v.finished_ms, 0);
    assert_eq!(v.started_ms, 0);
    assert_eq!(v.ready_ms, 10);
    assert_eq!(v.priority, 3);
    let c = claim_one(&mut e, 11);
    assert_eq!(c.id, id);
    assert_eq!(c.attempt, 1);
    // Full budget again: one retry before it dies.
    fail(&mut e, &c, Some(0), 12);
    assert_eq!(status(&mut e, &id, 12), Status::Queued);
    assert_counts_match(&mut e, 12);
}

#[test]
fn resubmit_of_a_non_dead_task_is_invalid_state() {
    let mut e = engine();
    let queued = submit(&mut e, spec("job"), 0);
    let done = submit(&mut e, spec("job"), 0);
    let cancelled = submit(&mut e, spec("job"), 0);
    let waiting = submit(&mut e, spec("job").parent(&queued, OnSuccess), 0);
    let skipped = submit(&mut e, spec("job").parent(&cancelled, OnSuccess), 0);
    e.cancel(&cancelled, 0).unwrap();
    let running = claim_one(&mut e, 1);
    assert_eq!(running.id, queued);
    run(&mut e, &done, ok(), 2);
    for id in [&queued, &done, &cancelled, &waiting, &skipped] {
        let before = status(&mut e, id, 3);
        let err = e.resubmit(id, 3).unwrap_err();
        assert!(
            matches!(err, CoreError::InvalidState(_)),
            "{before:?}: {err:?}"
        );
        assert_eq!(status(&mut e, id, 3), before);
    }
    let err = e.resubmit("ghost", 3).unwrap_err();
    assert!(matches!(err, CoreError::TaskNotFound(_)), "{err:?}");
}

#[test]
fn resubmit_dead_by_filter() {
    let mut e = engine();
    let mut x = Vec::new();
    for i in 0..4 {
        x.push(submit(&mut e, spec("x"), i));
    }
    let y = submit(&mut e, spec("y"), 10);
    let x_ok = submit(&mut e, spec("x"), 11);
    for id in x.iter().chain([&y]) {
        run(&mut e, id, die(), 20);
    }
    run(&mut e, &x_ok, ok(), 21);
    // Limited, oldest first.
    let first = e.resubmit_dead(&name_filter("x"), 3, 30);
    assert_eq!(first, x[..3].to_vec());
    for id in &x[..3] {
        assert_eq!(status(&mut e, id, 30), Status::Queued);
    }
    assert_eq!(status(&mut e, &x[3], 30), Status::Dead);
    assert_eq!(status(&mut e, &y, 30), Status::Dead);
    assert_eq!(status(&mut e, &x_ok, 30), Status::Succeeded);
    let rest = e.resubmit_dead(&name_filter("x"), 100, 31);
    assert_eq!(rest, vec![x[3].clone()]);
    assert!(e.resubmit_dead(&name_filter("x"), 100, 32).is_empty());
    // A status filter in the argument does not widen the set beyond dead tasks.
    let everything = TaskFilter {
        statuses: u16::MAX,
        ..Default::default()
    };
    assert_eq!(e.resubmit_dead(&everything, 100, 33), vec![y.clone()]);
    assert_counts_match(&mut e, 33);
}

#[test]
fn purge_forgets_ended_tasks_only() {
    let mut e = engine();
    let done = submit(&mut e, spec("job"), 0);
    let live = submit(&mut e, spec("job"), 0);
    let waiting = submit(&mut e, spec("job").parent(&live, OnSuccess), 0);
    run(&mut e, &done, ok(), 1);
    e.purge(&done).unwrap();
    assert!(matches!(e.get(&done, 1), Err(CoreError::TaskNotFound(_))));
    assert!(matches!(e.purge(&done), Err(CoreError::TaskNotFound(_))));
    assert_eq!(e.len(), 2);
    for id in [&live, &waiting] {
        let err = e.purge(id).unwrap_err();
        assert!(matches!(err, CoreError::InvalidState(_)), "{err:?}");
    }
    let c = claim_one(&mut e, 2);
    assert!(matches!(e.purge(&live), Err(CoreError::InvalidState(_))));
    succeed(&mut e, &c, 3);
    e.purge(&live).unwrap();
    assert_eq!(status(&mut e, &waiting, 3), Status::Queued);
    assert_counts_match(&mut e, 3);
    // A purged id can be used again.
    submit(&mut e, spec("job").id("again").priority(1), 4);
    run(&mut e, "again", ok(), 5);
    e.purge("again").unwrap();
    submit(&mut e, spec("job").id("again"), 6);
    assert_eq!(status(&mut e, "again", 6), Status::Queued);
}

#[test]
fn purge_dead_by_filter() {
    let mut e = engine();
    let dead_x: Vec<String> = (0..3).map(|i| submit(&mut e, spec("x"), i)).collect();
    let dead_y = submit(&mut e, spec("y"), 5);
    let ok_x = submit(&mut e, spec("x"), 6);
    for id in dead_x.iter().chain([&dead_y]) {
        run(&mut e, id, die(), 10);
    }
    run(&mut e, &ok_x, ok(), 11);
    assert_eq!(e.purge_dead(&name_filter("x"), 2), dead_x[..2].to_vec());
    assert_eq!(e.purge_dead(&name_filter("x"), 10), vec![dead_x[2].clone()]);
    assert!(e.purge_dead(&name_filter("x"), 10).is_empty());
    assert_eq!(status(&mut e, &ok_x, 12), Status::Succeeded);
    assert_eq!(status(&mut e, &dead_y, 12), Status::Dead);
    assert_eq!(e.len(), 2);
    let by_query = TaskFilter {
        query: Some("FATAL".into()),
        ..Default::default()
    };
    assert_eq!(e.purge_dead(&by_query, 10), vec![dead_y]);
    assert_eq!(e.len(), 1);
    assert_counts_match(&mut e, 12);
}

// ----- list -----------------------------------------------------------------------------------

#[test]
fn list_is_newest_first() {
    let mut e = engine();
    let ids: Vec<String> = (0..5).map(|i| submit(&mut e, spec("job"), i)).collect();
    let listed = list_ids(&mut e, &filter(), 10);
    let mut expected = ids.clone();
    expected.reverse();
    assert_eq!(listed, expected);
    // Same millisecond: still by submission.
    let mut e = engine();
    let ids: Vec<String> = (0..5).map(|_| submit(&mut e, spec("job"), 0)).collect();
    let listed = list_ids(&mut e, &filter(), 0);
    assert_eq!(listed, ids.into_iter().rev().collect::<Vec<_>>());
    // The seq numbers are strictly decreasing.
    let seqs: Vec<u64> = all_tasks(&mut e, 0).iter().map(|t| t.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "{seqs:?}");
}

#[test]
fn list_filters() {
    let mut e = engine();
    let a = submit(&mut e, spec("email_send").id("Task-A").pool("mail"), 0);
    let b = submit(&mut e, spec("resize").id("task-b").key("User-42-Avatar"), 0);
    let c = submit(&mut e, spec("resize").id("c3").priority(1), 0);
    let d = submit(&mut e, spec("report").id("d4").at(1_000), 0);
    run(&mut e, &c, failed("Connection REFUSED by host", None), 1);
    let check = |e: &mut Engine, f: TaskFilter, expected: &[&String]| {
        let got = list_ids(e, &f, 2);
        let expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        assert_eq!(got, expected, "{f:?}");
    };
    check(&mut e, filter(), &[&d, &c, &b, &a]);
    let bits = |s: &[Status]| s.iter().fold(0u16, |acc, s| acc | s.bit());
    check(
        &mut e,
        TaskFilter {
            statuses: bits(&[Status::Queued]),
            ..filter()
        },
        &[&b, &a],
    );
    check(
        &mut e,
        TaskFilter {
            statuses: bits(&[Status::Dead, Status::Scheduled]),
            ..filter()
        },
        &[&d, &c],
    );
    check(
        &mut e,
        TaskFilter {
            statuses: bits(&[Status::Retrying, Status::Dead]),
            ..filter()
        },
        &[&c],
    );
    check(
        &mut e,
        TaskFilter {
            statuses: bits(&[Status::Running]),
            ..filter()
        },
        &[],
    );
    check(&mut e, name_filter("resize"), &[&c, &b]);
    check(&mut e, name_filter("resiz"), &[]);
    check(
        &mut e,
        TaskFilter {
            pool: Some("mail".into()),
            ..filter()
        },
        &[&a],
    );
    check(
        &mut e,
        TaskFilter {
            pool: Some(POOL.into()),
            ..filter()
        },
        &[&d, &c, &b],
    );
    let query = |q: &str| TaskFilter {
        query: Some(q.into()),
        ..filter()
    };
    check(&mut e, query("TASK-"), &[&b, &a]); // id, case-insensitive
    check(&mut e, query("EMAIL"), &[&a]); // name
    check(&mut e, query("user-42"), &[&b]); // key
    check(&mut e, query("refused"), &[&c]); // error
    check(&mut e, query("rEpOrT"), &[&d]);
    check(&mut e, query("nothing-matches"), &[]);
    // Filters combine.
    check(
        &mut e,
        TaskFilter {
            name: Some("resize".into()),
            statuses: bits(&[Status::Queued]),
            query: Some("avatar".into()),
            ..filter()
        },
        &[&b],
    );
    check(
        &mut e,
        TaskFilter {
            pool: Some("mail".into()),
            query: Some("avatar".into()),
            ..filter()
        },
        &[],
    );
}

#[test]
fn list_cursor_pagination_covers_everything_once() {
    let mut e = engine();
    let mut ids = Vec::new();
    for i in 0..53 {
        let name = if i % 3 == 0 { "three" } else { "other" };
        ids.push(submit(&mut e, spec(name), i / 10));
    }
    for (f, page_size) in [
        (filter(), 7),
        (filter(), 1),
        (filter(), 53),
        (filter(), 52),
        (name_filter("three"), 4),
        (name_filter("three"), 18),
    ] {
        let expected = list_ids(&mut e, &f, 100);
        let mut got = Vec::new();
        let mut cursor = None;
        let mut pages = 0;
        loop {
            let page = e.list(&f, page_size, cursor, 100);
            assert!(page.tasks.len() <= page_size);
            got.extend(page.tasks.into_iter().map(|t| t.id));
            pages += 1;
            assert!(pages <= 60, "pagination does not end");
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(got, expected, "{f:?} / {page_size}");
    }
    assert_eq!(list_ids(&mut e, &filter(), 100).len(), 53);
    // A cursor past the first task lists nothing.
    let oldest = all_tasks(&mut e, 100).last().unwrap().seq;
    assert!(e.list(&filter(), 10, Some(oldest), 100).tasks.is_empty());
}

#[test]
fn list_pagination_survives_changes_between_pages() {
    let mut e = engine();
    let ids: Vec<String> = (0..10).map(|_| submit(&mut e, spec("job"), 0)).collect();
    let page = e.list(&filter(), 4, None, 0);
    // New tasks and purged ones between pages: the rest of the old ones still come once.
    submit(&mut e, spec("job"), 1);
    run(&mut e, &ids[0], ok(), 1);
    e.purge(&ids[0]).unwrap();
    let mut got: Vec<String> = page.tasks.into_iter().map(|t| t.id).collect();
    let mut cursor = page.next_cursor;
    while let Some(c) = cursor {
        let page = e.list(&filter(), 4, Some(c), 1);
        got.extend(page.tasks.into_iter().map(|t| t.id));
        cursor = page.next_cursor;
    }
    let expected: Vec<String> = ids[1..].iter().rev().cloned().collect();
    assert_eq!(got, expected);
}

#[test]
fn counts_equal_a_recount_through_a_mixed_history() {
    let mut e = engine();
    assert!(e.counts(0).is_empty());
    for i in 0..30 {
        let pool = if i % 2 == 0 { "even" } else { "odd" };
        let mut s = spec("job").pool(pool).retries(1).priority(i % 5);
        if i % 4 == 0 {
            s = s.at(500);
        }
        submit(&mut e, s, 0);
        assert_counts_match(&mut e, 0);
    }
    let all = all_tasks(&mut e, 0);
    submit(
        &mut e,
        spec("job").pool("odd").parent(&all[0].id, OnSuccess),
        0,
    );
    let mut claims = e.claim("even", 4, 1, 100, 1);
    claims.extend(e.claim("odd", 4, 1, 100, 1));
    assert_counts_match(&mut e, 1);
    succeed(&mut e, &claims[0], 2);
    fail(&mut e, &claims[1], Some(50), 2);
    fail(&mut e, &claims[2], None, 2);
    assert!(e.finish(claims[3].slot, claims[3].token, Finish::HandBack, 2));
    e.cancel(&claims[4].id, 2).unwrap();
    assert_counts_match(&mut e, 2);
    e.cancel(&all[1].id, 3).unwrap();
    assert_counts_match(&mut e, 3);
    e.reap(200);
    assert_counts_match(&mut e, 200);
    assert_counts_match(&mut e, 600); // promotions of scheduled and retrying
    e.sweep(100, 600);
    assert_counts_match(&mut e, 600);
}

// ----- sweep ----------------------------------------------------------------------------------

#[test]
fn sweep_forgets_old_ended_tasks_but_keeps_dead_ones() {
    let mut e = engine();
    let succeeded = submit(&mut e, spec("job"), 0);
    let cancelled = submit(&mut e, spec("job"), 0);
    let skipped = submit(&mut e, spec("job").parent(&cancelled, OnSuccess), 0);
    let dead = submit(&mut e, spec("job"), 0);
    let recent = submit(&mut e, spec("job"), 0);
    let live = submit(&mut e, spec("job").at(10_000), 0);
    run(&mut e, &succeeded, ok(), 10);
    e.cancel(&cancelled, 20).unwrap();
    run(&mut e, &dead, die(), 5);
    run(&mut e, &recent, ok(), 100);
    assert_eq!(status(&mut e, &skipped, 20), Status::Skipped);
    // Nothing ended before 10.
    assert_eq!(e.sweep(10, 200), 0);
    assert_eq!(e.sweep(50, 200), 3);
    for gone in [&succeeded, &cancelled, &skipped] {
        assert!(matches!(e.get(gone, 200), Err(CoreError::TaskNotFound(_))));
    }
    assert_eq!(status(&mut e, &dead, 200), Status::Dead);
    assert_eq!(status(&mut e, &recent, 200), Status::Succeeded);
    assert_eq!(status(&mut e, &live, 200), Status::Scheduled);
    assert_eq!(e.len(), 3);
    assert_counts_match(&mut e, 200);
    // The cutoff is exclusive.
    assert_eq!(e.sweep(100, 300), 0);
    assert_eq!(e.sweep(101, 300), 1);
    assert_eq!(e.sweep(i64::MAX, 300), 0, "dead tasks stay in the DLQ");
    assert_eq!(status(&mut e, &dead, 300), Status::Dead);
}

#[test]
fn sweep_forgets_a_resubmitted_dead_task_once_it_ends() {
    let mut e = engine();
    let id = submit(&mut e, spec("job"), 0);
    run(&mut e, &id, die(), 1);
    e.resubmit(&id, 2).unwrap();
    run(&mut e, &id, ok(), 3);
    assert_eq!(e.sweep(4, 4), 1);
    assert!(e.get(&id, 4).is_err());
}

#[test]
fn sweep_dead_forgets_tasks_that_died_before_the_cutoff_and_nothing_else() {
    let mut e = engine();
    let early = submit(&mut e, spec("job"), 0);
    let resubmitted = submit(&mut e, spec("job"), 0);
    let purged = submit(&mut e, spec("job"), 0);
    let succeeded = submit(&mut e, spec("job"), 0);
    let late = submit(&mut e, spec("job"), 0);
    run(&mut e, &early, die(), 10);
    run(&mut e, &resubmitted, die(), 20);
    run(&mut e, &purged, die(), 25);
    run(&mut e, &succeeded, ok(), 30);
    run(&mut e, &late, die(), 100);
    e.resubmit(&resubmitted, 40).unwrap(); // out of the DLQ: queued again
    e.purge(&purged).unwrap();
    assert_eq!(e.sweep_dead(10), 0, "the cutoff is exclusive");
    assert_eq!(e.sweep_dead(50), 1);
    assert!(matches!(e.get(&early, 50), Err(CoreError::TaskNotFound(_))));
    assert_eq!(status(&mut e, &resubmitted, 50), Status::Queued);
    assert_eq!(status(&mut e, &succeeded, 50), Status::Succeeded);
    assert_eq!(status(&mut e, &late, 50), Status::Dead);
    assert_counts_match(&mut e, 50);
    // the resubmitted task dies again later: it goes by its new death, not its first
    run(&mut e, &resubmitted, die(), 200);
    assert_eq!(e.sweep_dead(150), 1);
    assert_eq!(status(&mut e, &resubmitted, 150), Status::Dead);
    assert_eq!(e.sweep_dead(201), 1);
    assert_eq!(e.len(), 1);
}

// ----- watch ----------------------------------------------------------------------------------

#[test]
fn watch_reports_each_end_once() {
    let mut e = engine();
    let a = submit(&mut e, spec("job"), 0);
    let b = submit(&mut e, spec("job"), 0);
    let c = submit(&mut e, spec("job").at(100), 0);
    let d = submit(&mut e, spec("job"), 1);
    assert!(e.watch(&a).unwrap());
    assert!(e.watch(&a).unwrap(), "watching twice is harmless");
    assert!(e.watch(&b).unwrap());
    assert!(e.watch(&c).unwrap());
    assert!(e.drain_finished().is_empty());
    run(&mut e, &a, ok(), 1);
    assert_eq!(e.drain_finished(), vec![a.clone()]);
    assert!(e.drain_finished().is_empty());
    // Retries are not ends; death is.
    let claim_b = claim_one(&mut e, 2);
    assert_eq!(claim_b.id, b);
    assert!(e.finish(claim_b.slot, claim_b.token, Finish::HandBack, 3));
    assert!(e.drain_finished().is_empty());
    run(&mut e, &b, die(), 4);
    e.cancel(&c, 5).unwrap();
    assert_eq!(e.drain_finished(), vec![b.clone(), c.clone()]);
    // Unwatched tasks are not reported.
    run(&mut e, &d, ok(), 6);
    assert!(e.drain_finished().is_empty());
    assert!(!e.watch(&a).unwrap(), "already ended");
    assert!(matches!(e.watch("ghost"), Err(CoreError::TaskNotFound(_))));
}

#[test]
fn watch_reports_skips_and_lease_deaths() {
    let mut e = engine_with(|c| c.max_lease_losses = 1);
    let p = submit(&mut e, spec("job"), 0);
    let child = submit(&mut e, spec("job").parent(&p, OnSuccess), 0);
    assert!(e.watch(&child).unwrap());
    assert!(e.watch(&p).unwrap());
    e.claim(POOL, 1, 1, 10, 0);
    let reaped = e.reap(10);
    assert!(reaped[0].now_dead);
    let mut finished = e.drain_finished();
    finished.sort();
    let mut expected = vec![p, child];
    expected.sort();
    assert_eq!(finished, expected);
}

// ----- schedules ------------------------------------------------------------------------------

#[test]
fn interval_schedule_fires_once_per_tick() {
    let mut e = engine();
    let first = e
        .add_schedule(
            interval("every100", 100, spec("tick").priority(2), false),
            0,
        )
        .unwrap();
    assert_eq!(first, 100);
    assert_eq!(e.next_schedule_due(), Some(100));
    assert!(e.fire_schedules(99).is_empty());
    let fired = e.fire_schedules(100);
    assert_eq!(fired.len(), 1);
    assert!(e.fire_schedules(100).is_empty(), "once per tick");
    assert!(e.fire_schedules(199).is_empty());
    let second = e.fire_schedules(200);
    assert_eq!(second.len(), 1);
    assert_ne!(second[0], fired[0]);
    let v = get(&mut e, &fired[0], 200);
    assert_eq!(v.name, "tick");
    assert_eq!(v.priority, 2);
    assert_eq!(v.schedule.as_deref(), Some("every100"));
    assert_eq!(v.created_ms, 100);
    let views = e.schedules();
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].fired, 2);
    assert_eq!(views[0].last_task.as_deref(), Some(second[0].as_str()));
    assert_eq!(views[0].last_fire_ms, Some(200));
    assert_eq!(views[0].next_fire_ms, Some(300));
}

#[test]
fn interval_schedule_coalesces_missed_ticks() {
    let mut e = engine();
    e.add_schedule(interval("s", 100, spec("tick"), false), 0)
        .unwrap();
    let fired = e.fire_schedules(1_050);
    assert_eq!(fired.len(), 1, "ten missed ticks give one task");
    assert_eq!(e.next_schedule_due(), Some(1_100));
    assert!(e.fire_schedules(1_099).is_empty());
    assert_eq!(e.fire_schedules(1_100).len(), 1);
    assert_eq!(e.len(), 2);
}

#[test]
fn skip_if_running_skips_while_the_last_task_is_live() {
    let mut e = engine();
    e.add_schedule(interval("s", 100, spec("tick"), true), 0)
        .unwrap();
    let t1 = e.fire_schedules(100);
    assert_eq!(t1.len(), 1);
    assert!(e.fire_schedules(200).is_empty(), "t1 is queued");
    let c = claim_one(&mut e, 250);
    assert!(e.fire_schedules(300).is_empty(), "t1 is running");
    let views = e.schedules();
    assert_eq!(views[0].skipped, 2);
    assert_eq!(views[0].fired, 1);
    assert_eq!(views[0].next_fire_ms, Some(400));
    succeed(&mut e, &c, 350);
    let t2 = e.fire_schedules(400);
    assert_eq!(t2.len(), 1);
    assert_ne!(t2, t1);
    // A retrying task is live too.
    let c = claim_one(&mut e, 400);
    assert_eq!(c.id, t2[0]);
    e.cancel(&t2[0], 401).unwrap();
    assert_eq!(e.fire_schedules(500).len(), 1);
}

#[test]
fn without_skip_if_running_ticks_pile_up() {
    let mut e = engine();
    e.add_schedule(interval("s", 100, spec("tick"), false), 0)
        .unwrap();
    for t in [100, 200, 300] {
        assert_eq!(e.fire_schedules(t).len(), 1);
    }
    assert_eq!(e.claimable(POOL, 300), 3);
}

#[test]
fn cron_schedule_fires_at_the_right_minutes() {
    let mut e = engine();
    let start = JAN_1_2026 + 2 * MINUTE + 30_000; // 00:02:30 UTC
    let cron = Every::Cron {
        schedule: CronSchedule::parse("*/5 * * * *").unwrap(),
        tz: parse_time_zone("UTC").unwrap(),
    };
    let first = e
        .add_schedule(
            ScheduleSpec {
                id: "five".into(),
                every: cron,
                template: spec("cron_job"),
                skip_if_running: false,
            },
            start,
        )
        .unwrap();
    assert_eq!(first, JAN_1_2026 + 5 * MINUTE);
    assert!(e.fire_schedules(JAN_1_2026 + 5 * MINUTE - 1).is_empty());
    let fired = e.fire_schedules(JAN_1_2026 + 5 * MINUTE);
    assert_eq!(fired.len(), 1);
    assert_eq!(e.next_schedule_due(), Some(JAN_1_2026 + 10 * MINUTE));
    assert!(e.fire_schedules(JAN_1_2026 + 9 * MINUTE).is_empty());
    assert_eq!(e.fire_schedules(JAN_1_2026 + 10 * MINUTE + 1).len(), 1);
    assert_eq!(e.next_schedule_due(), Some(JAN_1_2026 + 15 * MINUTE));
    // Missed minutes coalesce; the next tick is the first one after now.
    assert_eq!(e.fire_schedules(JAN_1_2026 + 27 * MINUTE).len(), 1);
    assert_eq!(e.next_schedule_due(), Some(JAN_1_2026 + 30 * MINUTE));
    // A tick exactly on a boundary: the next one is 5 minutes on.
    assert_eq!(e.fire_schedules(JAN_1_2026 + 30 * MINUTE).len(), 1);
    assert_eq!(e.next_schedule_due(), Some(JAN_1_2026 + 35 * MINUTE));
    assert_eq!(e.len(), 4);
    let v = get(&mut e, &fired[0], JAN_1_2026 + 30 * MINUTE);
    assert_eq!(v.schedule.as_deref(), Some("five"));
    assert_eq!(v.name, "cron_job");
}

#[test]
fn schedules_with_invalid_templates_are_refused() {
    let mut e = engine();
    submit(&mut e, spec("job").id("p"), 0);
    for (template, what) in [
        (spec("job").id("fixed"), "id"),
        (spec("job").key("k"), "key"),
        (spec("job").parent("p", OnSuccess), "parents"),
        (spec("job").priority(2_000), "priority"),
    ] {
        let err = e
            .add_schedule(interval("s", 100, template, false), 0)
            .unwrap_err();
        assert!(
            matches!(err, CoreError::InvalidOption(_)),
            "{what}: {err:?}"
        );
    }
    for (schedule, what) in [
        (interval("s", 100, spec("bad name"), false), "name"),
        (interval("bad id", 100, spec("job"), false), "schedule id"),
    ] {
        let err = e.add_schedule(schedule, 0).unwrap_err();
        assert!(matches!(err, CoreError::InvalidName(_)), "{what}: {err:?}");
    }
    for every_ms in [0, -5] {
        let err = e
            .add_schedule(interval("s", every_ms, spec("job"), false), 0)
            .unwrap_err();
        assert!(matches!(err, CoreError::InvalidOption(_)), "{err:?}");
    }
    assert!(e.schedules().is_empty());
    assert_eq!(e.next_schedule_due(), None);
    assert!(e.fire_schedules(1_000_000).is_empty());
}

#[test]
fn remove_schedule_stops_it() {
    let mut e = engine();
    e.add_schedule(interval("a", 100, spec("job"), false), 0)
        .unwrap();
    e.add_schedule(interval("b", 150, spec("job"), false), 0)
        .unwrap();
    e.remove_schedule("a").unwrap();
    assert!(matches!(
        e.remove_schedule("a"),
        Err(CoreError::ScheduleNotFound(_))
    ));
    assert!(matches!(
        e.remove_schedule("zzz"),
        Err(CoreError::ScheduleNotFound(_))
    ));
    assert_eq!(e.next_schedule_due(), Some(150));
    let ids: Vec<String> = e.schedules().into_iter().map(|s| s.id).collect();
    assert_eq!(ids, vec!["b".to_string()]);
    assert_eq!(e.fire_schedules(1_000).len(), 1, "only b fires");
    // The same id can be added again.
    e.add_schedule(interval("a", 100, spec("job"), false), 1_000)
        .unwrap();
    let b_tick = e.fire_schedules(1_050);
    assert_eq!(
        get(&mut e, &b_tick[0], 1_050).schedule.as_deref(),
        Some("b")
    );
    let a_tick = e.fire_schedules(1_100);
    assert_eq!(a_tick.len(), 1);
    assert_eq!(
        get(&mut e, &a_tick[0], 1_100).schedule.as_deref(),
        Some("a")
    );
}

#[test]
fn adding_a_schedule_again_replaces_it() {
    let mut e = engine();
    e.add_schedule(interval("s", 100, spec("one"), false), 0)
        .unwrap();
    e.add_schedule(interval("s", 1_000, spec("two"), false), 0)
        .unwrap();
    assert_eq!(e.schedules().len(), 1);
    assert!(e.fire_schedules(500).is_empty());
    let fired = e.fire_schedules(1_000);
    assert_eq!(get(&mut e, &fired[0], 1_000).name, "two");
}

// ----- state machine --------------------------------------------------------------------------

const POOLS: [&str; 2] = ["p0", "p1"];

#[derive(Clone, Debug)]
enum Op {
    Submit {
        pool: usize,
        priority: i32,
        delay: Option<i64>,
        retries: u32,
        parents: Vec<(Index, Trigger)>,
    },
    Claim {
        pool: usize,
        max: usize,
        lease_ms: i64,
    },
    Succeed(Index),
    Fail(Index, Option<u64>),
    HandBack(Index),
    Cancel(Index),
    Advance(i64),
    Resubmit(Index),
    Purge(Index),
    StaleFinish(Index),
}

fn trigger_strategy() -> impl Strategy<Value = Trigger> {
    prop::sample::select(vec![OnSuccess, OnFailure, OnComplete])
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (
            0..2usize,
            -2..3i32,
            prop::option::weighted(0.3, 1..150i64),
            0..3u32,
            prop::collection::vec((any::<Index>(), trigger_strategy()), 0..3),
        )
            .prop_map(|(pool, priority, delay, retries, parents)| Op::Submit {
                pool,
                priority,
                delay,
                retries,
                parents,
            }),
        5 => (0..2usize, 1..4usize, 10..200i64)
            .prop_map(|(pool, max, lease_ms)| Op::Claim { pool, max, lease_ms }),
        3 => any::<Index>().prop_map(Op::Succeed),
        3 => (any::<Index>(), prop::option::of(0..80u64)).prop_map(|(i, d)| Op::Fail(i, d)),
        1 => any::<Index>().prop_map(Op::HandBack),
        1 => any::<Index>().prop_map(Op::Cancel),
        3 => (0..120i64).prop_map(Op::Advance),
        3 => any::<Index>().prop_map(Op::Resubmit),
        1 => any::<Index>().prop_map(Op::Purge),
        1 => any::<Index>().prop_map(Op::StaleFinish),
    ]
}

struct Model {
    e: Engine,
    now: i64,
    /// Every id submitted and not purged, in submission order.
    ids: Vec<String>,
    purged: HashSet<String>,
    /// Leases the test holds: id -> (slot, token).
    held: BTreeMap<String, (u32, u64)>,
    /// Leases that ended (finished, reaped, revoked): their tokens must stay refused.
    stale: Vec<(u32, u64)>,
    last_status: HashMap<String, Status>,
    parents_of: HashMap<String, Vec<String>>,
}

impl Model {
    fn new() -> Self {
        Model {
            e: Engine::new(EngineConfig {
                max_lease_losses: 2,
                key_ttl_ms: 1_000,
                ..Default::default()
            }),
            now: 0,
            ids: Vec::new(),
            purged: HashSet::new(),
            held: BTreeMap::new(),
            stale: Vec::new(),
            last_status: HashMap::new(),
            parents_of: HashMap::new(),
        }
    }

    fn view(&mut self, id: &str) -> TaskView {
        self.e.get(id, self.now).expect("task is get-able")
    }

    fn pick_held(&self, i: &Index) -> Option<(String, u32, u64)> {
        if self.held.is_empty() {
            return None;
        }
        let (id, &(slot, token)) = self.held.iter().nth(i.index(self.held.len()))?;
        Some((id.clone(), slot, token))
    }

    fn pick_id(&self, i: &Index) -> Option<String> {
        (!self.ids.is_empty()).then(|| self.ids[i.index(self.ids.len())].clone())
    }

    fn release(&mut self, id: &str) {
        let lease = self.held.remove(id).expect("held");
        self.stale.push(lease);
    }

    /// Applies one op; returns the id it resubmitted, if any (the one allowed dead -> live move).
    fn apply(&mut self, op: &Op) -> Result<Option<String>, TestCaseError> {
        let now = self.now;
        match op {
            Op::Submit {
                pool,
                priority,
                delay,
                retries,
                parents,
            } => {
                let mut s = TaskSpec {
                    name: format!("job{}", *priority + 2),
                    pool: POOLS[*pool].to_string(),
                    priority: *priority,
                    max_retries: *retries,
                    run_at_ms: delay.map(|d| now + d),
                    ..Default::default()
                };
                let mut parent_ids = Vec::new();
                if !self.ids.is_empty() {
                    for (i, trigger) in parents {
                        let p = self.ids[i.index(self.ids.len())].clone();
                        s.parents.push((p.clone(), *trigger));
                        parent_ids.push(p);
                    }
                }
                let submitted = self.e.submit(s, now).expect("valid submit");
                prop_assert!(submitted.created);
                prop_assert!(!self.purged.contains(&submitted.id), "id reused");
                prop_assert!(!self.ids.contains(&submitted.id), "duplicate id");
                let st = self.view(&submitted.id).status;
                prop_assert!(
                    matches!(
                        st,
                        Status::Waiting | Status::Scheduled | Status::Queued | Status::Skipped
                    ),
                    "new task is {:?}",
                    st
                );
                if parent_ids.is_empty() {
                    prop_assert!(matches!(st, Status::Scheduled | Status::Queued));
                }
                self.parents_of.insert(submitted.id.clone(), parent_ids);
                self.ids.push(submitted.id);
            }
            Op::Claim {
                pool,
                max,
                lease_ms,
            } => {
                let pool_name = POOLS[*pool];
                let before: HashMap<String, TaskView> = all_tasks(&mut self.e, now)
                    .into_iter()
                    .map(|t| (t.id.clone(), t))
                    .collect();
                let queued_before = before
                    .values()
                    .filter(|t| t.pool == pool_name && t.status == Status::Queued)
                    .count();
                prop_assert_eq!(self.e.claimable(pool_name, now), queued_before);
                let claims = self.e.claim(pool_name, *max, 3, *lease_ms, now);
                prop_assert_eq!(claims.len(), queued_before.min(*max));
                for w in claims.windows(2) {
                    prop_assert!(w[0].priority >= w[1].priority, "priority order");
                }
                for c in &claims {
                    prop_assert!(
                        !self.held.contains_key(&c.id),
                        "{} claimed while its lease is outstanding",
                        c.id
                    );
                    let was = &before[&c.id];
                    prop_assert_eq!(was.status, Status::Queued);
                    prop_assert_eq!(was.pool.as_str(), pool_name);
                    prop_assert_eq!(c.attempt, was.attempts + 1);
                    prop_assert!(
                        !self.stale.iter().any(|&(_, t)| t == c.token),
                        "token reused"
                    );
                    self.held.insert(c.id.clone(), (c.slot, c.token));
                }
                // Whatever stays queued in the pool ranks no higher than what was claimed.
                if let Some(lowest) = claims.iter().map(|c| c.priority).min() {
                    let claimed: HashSet<&String> = claims.iter().map(|c| &c.id).collect();
                    for t in before.values() {
                        if t.pool == pool_name
                            && t.status == Status::Queued
                            && !claimed.contains(&t.id)
                        {
                            prop_assert!(t.priority <= lowest, "{} skipped over", t.id);
                        }
                    }
                }
            }
            Op::Succeed(i) => {
                if let Some((id, slot, token)) = self.pick_held(i) {
                    prop_assert!(self.e.finish(slot, token, ok(), now));
                    self.release(&id);
                    prop_assert_eq!(self.view(&id).status, Status::Succeeded);
                }
            }
            Op::Fail(i, delay) => {
                if let Some((id, slot, token)) = self.pick_held(i) {
                    let v = self.view(&id);
                    prop_assert!(self.e.finish(slot, token, failed("err", *delay), now));
                    self.release(&id);
                    let after = self.view(&id);
                    let expected = match delay {
                        Some(_) if v.attempts > v.max_retries => Status::Dead,
                        None => Status::Dead,
                        Some(0) => Status::Queued,
                        Some(_) => Status::Retrying,
                    };
                    prop_assert_eq!(after.status, expected);
                    prop_assert_eq!(after.attempts, v.attempts);
                    prop_assert_eq!(after.error.as_deref(), Some("err"));
                }
            }
            Op::HandBack(i) => {
                if let Some((id, slot, token)) = self.pick_held(i) {
                    let v = self.view(&id);
                    prop_assert!(self.e.finish(slot, token, Finish::HandBack, now));
                    self.release(&id);
                    let after = self.view(&id);
                    prop_assert_eq!(after.status, Status::Queued);
                    prop_assert_eq!(after.attempts + 1, v.attempts);
                }
            }
            Op::Cancel(i) => {
                if let Some(id) = self.pick_id(i) {
                    let before = self.view(&id).status;
                    let result = self.e.cancel(&id, now).expect("exists");
                    if before.is_terminal() {
                        prop_assert_eq!(result, Cancelled::AlreadyFinished(before));
                    } else if before == Status::Running {
                        let lease = self.held.get(&id).copied();
                        prop_assert_eq!(result, Cancelled::Now { running: lease });
                        self.release(&id);
                    } else {
                        prop_assert_eq!(result, Cancelled::Now { running: None });
                    }
                    if !before.is_terminal() {
                        prop_assert_eq!(self.view(&id).status, Status::Cancelled);
                    }
                }
            }
            Op::Advance(dt) => {
                self.now += dt;
                let now = self.now;
                let reaped = self.e.reap(now);
                let mut seen = HashSet::new();
                for r in reaped {
                    prop_assert!(seen.insert(r.id.clone()), "reaped twice");
                    let held = self.held.get(&r.id).copied();
                    prop_assert_eq!(
                        held,
                        Some((r.slot, r.token)),
                        "reaped a lease we do not hold"
                    );
                    self.release(&r.id);
                    let v = self.view(&r.id);
                    prop_assert_eq!(
                        v.status,
                        if r.now_dead {
                            Status::Dead
                        } else {
                            Status::Queued
                        }
                    );
                    prop_assert_eq!(r.now_dead, v.lease_losses >= 2);
                }
                // What is left is not yet due.
                if let Some(deadline) = self.e.next_lease_deadline() {
                    prop_assert!(deadline > now);
                }
            }
            Op::Resubmit(i) => {
                if let Some(id) = self.pick_id(i) {
                    let before = self.view(&id).status;
                    let result = self.e.resubmit(&id, now);
                    if before == Status::Dead {
                        prop_assert!(result.is_ok());
                        let v = self.view(&id);
                        prop_assert_eq!(v.status, Status::Queued);
                        prop_assert_eq!(v.attempts, 0);
                        return Ok(Some(id));
                    }
                    prop_assert!(matches!(result, Err(CoreError::InvalidState(_))));
                }
            }
            Op::Purge(i) => {
                if let Some(id) = self.pick_id(i) {
                    let before = self.view(&id).status;
                    let result = self.e.purge(&id);
                    if before.is_terminal() {
                        prop_assert!(result.is_ok());
                        prop_assert!(self.e.get(&id, now).is_err());
                        self.ids.retain(|x| *x != id);
                        self.last_status.remove(&id);
                        self.purged.insert(id);
                    } else {
                        prop_assert!(matches!(result, Err(CoreError::InvalidState(_))));
                    }
                }
            }
            Op::StaleFinish(i) => {
                if !self.stale.is_empty() {
                    let (slot, token) = self.stale[i.index(self.stale.len())];
                    let before = all_tasks(&mut self.e, now);
                    prop_assert!(!self.e.finish(slot, token, ok(), now));
                    prop_assert!(!self.e.finish(slot, token, Finish::HandBack, now));
                    prop_assert!(!self.e.finish(slot, token, die(), now));
                    prop_assert_eq!(all_tasks(&mut self.e, now), before);
                }
            }
        }
        Ok(None)
    }

    fn check(&mut self, resubmitted: Option<&str>) -> Result<(), TestCaseError> {
        let now = self.now;
        let tasks = all_tasks(&mut self.e, now);
        prop_assert_eq!(self.e.len(), tasks.len());
        // No task lost, none invented, none listed twice.
        let listed: HashSet<&str> = tasks.iter().map(|t| t.id.as_str()).collect();
        prop_assert_eq!(listed.len(), tasks.len(), "a task listed twice");
        let expected: HashSet<&str> = self.ids.iter().map(String::as_str).collect();
        prop_assert_eq!(&listed, &expected);
        for id in &self.purged {
            prop_assert!(self.e.get(id, now).is_err(), "purged {} came back", id);
        }

        // Counts equal a recount.
        let mut recount: HashMap<&str, [u64; 9]> = HashMap::new();
        for t in &tasks {
            recount.entry(t.pool.as_str()).or_insert([0; 9])[t.status as usize] += 1;
        }
        for (pool, row) in self.e.counts(now) {
            let expected = recount.get(pool.as_str()).copied().unwrap_or([0; 9]);
            prop_assert_eq!(row, expected, "counts of {}", pool);
        }

        let by_id: HashMap<&str, &TaskView> = tasks.iter().map(|t| (t.id.as_str(), t)).collect();
        for t in &tasks {
            let get = self.e.get(&t.id, now).expect("get-able");
            prop_assert_eq!(&get, t);
            match t.status {
                // Exactly one valid lease per running task: the one we hold.
                Status::Running => {
                    prop_assert!(self.held.contains_key(&t.id), "{} runs unheld", t.id)
                }
                Status::Queued => prop_assert!(t.ready_ms <= now),
                Status::Scheduled | Status::Retrying => prop_assert!(t.ready_ms > now),
                // A waiting task waits on at least one parent that has not ended.
                Status::Waiting => {
                    let live_parent = self.parents_of[&t.id].iter().any(|p| {
                        by_id
                            .get(p.as_str())
                            .is_some_and(|p| !p.status.is_terminal())
                    });
                    prop_assert!(live_parent, "{} waits on ended parents only", t.id);
                }
                _ => {}
            }
            if t.status.is_terminal() {
                prop_assert!(t.finished_ms <= now);
            }
            if let Some(&last) = self.last_status.get(&t.id) {
                if last.is_terminal() && !t.status.is_terminal() {
                    prop_assert!(
                        last == Status::Dead && resubmitted == Some(t.id.as_str()),
                        "{} went from {:?} to {:?}",
                        t.id,
                        last,
                        t.status
                    );
                }
            }
        }
        for (id, &(slot, token)) in &self.held {
            prop_assert_eq!(by_id[id.as_str()].status, Status::Running);
            prop_assert!(
                self.e.set_progress(slot, token, 0.5),
                "held lease of {} invalid",
                id
            );
        }
        let running = tasks.iter().filter(|t| t.status == Status::Running).count();
        prop_assert_eq!(running, self.held.len());
        let mut leases: Vec<(u32, u64)> = self.e.leases_of(3);
        leases.sort();
        let mut expected: Vec<(u32, u64)> = self.held.values().copied().collect();
        expected.sort();
        prop_assert_eq!(leases, expected);
        for &(slot, token) in &self.stale {
            prop_assert!(
                !self.e.set_progress(slot, token, 0.1),
                "stale token accepted"
            );
        }
        // What can be claimed is exactly what is queued.
        for pool in POOLS {
            let queued = tasks
                .iter()
                .filter(|t| t.pool == pool && t.status == Status::Queued)
                .count();
            prop_assert_eq!(self.e.claimable(pool, now), queued);
        }
        self.last_status = tasks.iter().map(|t| (t.id.clone(), t.status)).collect();
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn engine_state_machine(ops in prop::collection::vec(op_strategy(), 1..80)) {
        let mut model = Model::new();
        for op in &ops {
            let resubmitted = model.apply(op)?;
            model.check(resubmitted.as_deref())?;
        }
        // Drain: run everything to the end; nothing is stranded.
        for _ in 0..1_000 {
            model.now += 1_000;
            let now = model.now;
            let reaped = model.e.reap(now);
            for r in reaped {
                model.release(&r.id);
            }
            let held: Vec<(String, u32, u64)> = model
                .held
                .iter()
                .map(|(id, &(s, t))| (id.clone(), s, t))
                .collect();
            for (id, slot, token) in held {
                prop_assert!(model.e.finish(slot, token, ok(), now));
                model.release(&id);
            }
            let mut claimed = 0;
            for pool in POOLS {
                for c in model.e.claim(pool, usize::MAX, 3, 100, now) {
                    model.held.insert(c.id.clone(), (c.slot, c.token));
                    claimed += 1;
                }
            }
            model.check(None)?;
            if claimed == 0 && model.held.is_empty() {
                break;
            }
        }
        let now = model.now;
        for t in all_tasks(&mut model.e, now) {
            prop_assert!(t.status.is_terminal(), "{} stranded as {:?}", t.id, t.status);
        }
    }
}

// ----- lazy removal from the queues -------------------------------------------------------------

/// A cancel leaves the task's queue entry in place (the queue has no index of its own); the entry
/// must never be claimed, counted or reported as due, even once its slot holds another task.
#[test]
fn cancelled_queue_entries_are_never_seen_again() {
    let mut e = engine();
    let now = 1_000;
    let mut ids = Vec::new();
    for i in 0..300 {
        // every third task scheduled for later, the rest queued now
        let at = if i % 3 == 0 { now + 500 } else { now };
        ids.push(submit(&mut e, spec("job").id(&format!("t{i}")).at(at), now));
    }
    assert_eq!(e.next_due(POOL), Some(now + 500));
    for id in ids.iter().step_by(2) {
        assert!(matches!(
            e.cancel(id, now).unwrap(),
            Cancelled::Now { running: None }
        ));
    }
    // t0 (scheduled) was cancelled: the next due task is another scheduled one, at the same time.
    assert_eq!(e.next_due(POOL), Some(now + 500));
    let queued_left = (0..300).filter(|i| i % 2 == 1 && i % 3 != 0).count();
    assert_eq!(e.claimable(POOL, now), queued_left);
    let scheduled_left = (0..300).filter(|i| i % 2 == 1 && i % 3 == 0).count();
    assert_eq!(e.claimable(POOL, now + 500), queued_left + scheduled_left);
    // purge the cancelled ones: their slots are reused by new tasks, which the stale entries
    // (same slots, other seqs) must not stand for
    for id in ids.iter().step_by(2) {
        e.purge(id).unwrap();
    }
    let fresh: Vec<String> = (0..150)
        .map(|i| submit(&mut e, spec("job").id(&format!("n{i}")).at(now + 900), now))
        .collect();
    assert_eq!(e.claimable(POOL, now), queued_left);
    let claimed = claim_ids(&mut e, POOL, 1000, now + 500);
    let expected: Vec<String> = (0..300)
        .filter(|i| i % 2 == 1)
        .map(|i| format!("t{i}"))
        .collect();
    let mut sorted = claimed.clone();
    sorted.sort_by_key(|id| id[1..].parse::<u32>().unwrap());
    assert_eq!(sorted, expected, "each live task once, no cancelled one");
    // queued ones first (ready earlier), then the promoted scheduled ones
    assert!(claimed[..queued_left]
        .iter()
        .all(|id| id[1..].parse::<u32>().unwrap() % 3 != 0));
    assert_eq!(e.next_due(POOL), Some(now + 900));
    assert_eq!(claim_ids(&mut e, POOL, 1000, now + 900), fresh);
    assert_counts_match(&mut e, now + 900);
}
