//! `skedulr._core.Engine`: the embedded engine's task table, driven by `skedulr.storage.memory`.
//! Rows cross the boundary as plain tuples; the Python side names them (see `_core.pyi`).

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use skedulr_core::dag::Trigger;
use skedulr_core::engine::{Cancelled, Engine as CoreEngine, EngineConfig};
use skedulr_core::schedules::{Every, ScheduleSpec, ScheduleView};
use skedulr_core::task::{Finish, Status, TaskFilter, TaskSpec, TaskView};

use crate::cron::parse_cron_and_zone;
use crate::errors::{to_py, InvalidOptionError};

/// (id, name, pool, payload, priority, max_retries, timeout_ms, key, run_at_ms, parents, delay_ms)
type SpecTuple<'py> = (
    Option<String>,
    String,
    String,
    Bound<'py, PyBytes>,
    i32,
    u32,
    u64,
    Option<String>,
    Option<i64>,
    Vec<(String, String)>,
    Option<i64>,
);

/// (cancelled now, the lease it held if running, the status it had already ended in)
type CancelTuple = (bool, Option<(u32, u64)>, Option<&'static str>);

pub fn trigger_from(name: &str) -> PyResult<Trigger> {
    match name {
        "on_success" => Ok(Trigger::OnSuccess),
        "on_failure" => Ok(Trigger::OnFailure),
        "on_complete" => Ok(Trigger::OnComplete),
        other => Err(InvalidOptionError::new_err(format!(
            "unknown trigger {other:?}: use on_success, on_failure or on_complete"
        ))),
    }
}

pub fn trigger_name(t: Trigger) -> &'static str {
    match t {
        Trigger::OnSuccess => "on_success",
        Trigger::OnFailure => "on_failure",
        Trigger::OnComplete => "on_complete",
    }
}

/// A task spec as the engine takes it; a delay counts from `now_ms`, the moment of submitting.
fn spec_from(t: SpecTuple<'_>, now_ms: i64) -> PyResult<TaskSpec> {
    let (
        id,
        name,
        pool,
        payload,
        priority,
        max_retries,
        timeout_ms,
        key,
        run_at_ms,
        parents,
        delay_ms,
    ) = t;
    let run_at_ms = run_at_ms.or(delay_ms.map(|d| now_ms.saturating_add(d)));
    Ok(TaskSpec {
        id,
        name,
        pool,
        payload: payload.as_bytes().to_vec(),
        priority,
        max_retries,
        timeout_ms,
        key,
        run_at_ms,
        parents: parents
            .into_iter()
            .map(|(p, t)| Ok((p, trigger_from(&t)?)))
            .collect::<PyResult<_>>()?,
    })
}

fn filter_from(
    statuses: Option<Vec<String>>,
    name: Option<String>,
    pool: Option<String>,
    query: Option<String>,
) -> PyResult<TaskFilter> {
    let mut bits = 0u16;
    for s in statuses.unwrap_or_default() {
        let status = Status::parse(&s).ok_or_else(|| {
            InvalidOptionError::new_err(format!(
                "unknown status {s:?}: use one of waiting, scheduled, queued, running, retrying, succeeded, dead, cancelled, skipped"
            ))
        })?;
        bits |= status.bit();
    }
    Ok(TaskFilter {
        statuses: bits,
        name,
        pool,
        query,
    })
}

fn row<'py>(py: Python<'py>, v: TaskView) -> PyResult<Bound<'py, PyTuple>> {
    let parents: Vec<(String, &str)> = v
        .parents
        .into_iter()
        .map(|(p, t)| (p, trigger_name(t)))
        .collect();
    let items: Vec<Bound<'py, PyAny>> = vec![
        v.id.into_pyobject(py)?.into_any(),
        v.name.into_pyobject(py)?.into_any(),
        v.pool.into_pyobject(py)?.into_any(),
        v.status.as_str().into_pyobject(py)?.into_any(),
        v.priority.into_pyobject(py)?.into_any(),
        v.attempts.into_pyobject(py)?.into_any(),
        v.max_retries.into_pyobject(py)?.into_any(),
        v.lease_losses.into_pyobject(py)?.into_any(),
        v.timeout_ms.into_pyobject(py)?.into_any(),
        v.progress.into_pyobject(py)?.into_any(),
        v.created_ms.into_pyobject(py)?.into_any(),
        v.ready_ms.into_pyobject(py)?.into_any(),
        v.started_ms.into_pyobject(py)?.into_any(),
        v.finished_ms.into_pyobject(py)?.into_any(),
        v.key.into_pyobject(py)?.into_any(),
        v.error.into_pyobject(py)?.into_any(),
        v.traceback.into_pyobject(py)?.into_any(),
        v.result
            .map(|r| PyBytes::new(py, &r))
            .into_pyobject(py)?
            .into_any(),
        PyBytes::new(py, &v.payload).into_any(),
        parents.into_pyobject(py)?.into_any(),
        v.schedule.into_pyobject(py)?.into_any(),
        v.seq.into_pyobject(py)?.into_any(),
    ];
    PyTuple::new(py, items)
}

fn schedule_row<'py>(py: Python<'py>, v: ScheduleView) -> PyResult<Bound<'py, PyTuple>> {
    let (kind, every) = match &v.spec.every {
        Every::Cron { schedule, tz } => ("cron", format!("{}|{}", schedule.spec(), tz.name())),
        Every::Interval { every_ms } => ("every", every_ms.to_string()),
    };
    let t = &v.spec.template;
    let items: Vec<Bound<'py, PyAny>> = vec![
        v.id.into_pyobject(py)?.into_any(),
        kind.into_pyobject(py)?.into_any(),
        every.into_pyobject(py)?.into_any(),
        t.name.clone().into_pyobject(py)?.into_any(),
        t.pool.clone().into_pyobject(py)?.into_any(),
        v.spec
            .skip_if_running
            .into_pyobject(py)?
            .to_owned()
            .into_any(),
        v.next_fire_ms.into_pyobject(py)?.into_any(),
        v.last_fire_ms.into_pyobject(py)?.into_any(),
        v.last_task.into_pyobject(py)?.into_any(),
        v.fired.into_pyobject(py)?.into_any(),
        v.skipped.into_pyobject(py)?.into_any(),
    ];
    PyTuple::new(py, items)
}

/// The in-memory task table. Not thread-safe by itself: the Python owner calls it from one thread.
#[pyclass(module = "skedulr._core")]
pub struct Engine {
    inner: CoreEngine,
}

#[pymethods]
impl Engine {
    #[new]
    #[pyo3(signature = (*, max_payload_bytes, key_ttl_ms, max_lease_losses, id_seed))]
    fn new(max_payload_bytes: usize, key_ttl_ms: i64, max_lease_losses: u32, id_seed: u64) -> Self {
        Engine {
            inner: CoreEngine::new(EngineConfig {
                max_payload_bytes,
                key_ttl_ms,
                max_lease_losses,
                id_seed,
            }),
        }
    }

    fn submit(&mut self, spec: SpecTuple<'_>, now_ms: i64) -> PyResult<(String, bool)> {
        let s = self
            .inner
            .submit(spec_from(spec, now_ms)?, now_ms)
            .map_err(to_py)?;
        Ok((s.id, s.created))
    }

    fn submit_many(
        &mut self,
        specs: Vec<SpecTuple<'_>>,
        now_ms: i64,
    ) -> PyResult<Vec<(String, bool)>> {
        let specs = specs
            .into_iter()
            .map(|spec| spec_from(spec, now_ms))
            .collect::<PyResult<Vec<_>>>()?;
        let out = self.inner.submit_many(specs, now_ms).map_err(to_py)?;
        Ok(out.into_iter().map(|s| (s.id, s.created)).collect())
    }

    /// -> [(slot, token, id, name, payload, attempt, priority, timeout_ms)]
    fn claim<'py>(
        &mut self,
        py: Python<'py>,
        pool: &str,
        max: usize,
        owner: u32,
        lease_ms: i64,
        now_ms: i64,
    ) -> PyResult<Vec<Bound<'py, PyTuple>>> {
        self.inner
            .claim(pool, max, owner, lease_ms, now_ms)
            .into_iter()
            .map(|c| {
                (
                    c.slot,
                    c.token,
                    c.id,
                    c.name,
                    PyBytes::new(py, &c.payload),
                    c.attempt,
                    c.priority,
                    c.timeout_ms,
                )
                    .into_pyobject(py)
            })
            .collect()
    }

    /// Records successes `[(slot, token, result | None)]`. Returns the refused (slot, token) pairs.
    fn succeed_many(
        &mut self,
        items: Vec<(u32, u64, Option<Bound<'_, PyBytes>>)>,
        now_ms: i64,
    ) -> Vec<(u32, u64)> {
        items
            .into_iter()
            .filter_map(|(slot, token, result)| {
                let finish = Finish::Succeeded {
                    result: result.map(|r| r.as_bytes().to_vec()),
                };
                (!self.inner.finish(slot, token, finish, now_ms)).then_some((slot, token))
            })
            .collect()
    }

    #[pyo3(signature = (slot, token, error, traceback, retry_delay_ms, now_ms))]
    fn fail(
        &mut self,
        slot: u32,
        token: u64,
        error: String,
        traceback: String,
        retry_delay_ms: Option<u64>,
        now_ms: i64,
    ) -> bool {
        let finish = Finish::Failed {
            error,
            traceback,
            retry_delay_ms,
        };
        self.inner.finish(slot, token, finish, now_ms)
    }

    /// Hands tasks back to their queue without counting an attempt. Returns how many were accepted.
    fn hand_back_many(&mut self, items: Vec<(u32, u64)>, now_ms: i64) -> usize {
        items
            .into_iter()
            .filter(|&(slot, token)| self.inner.finish(slot, token, Finish::HandBack, now_ms))
            .count()
    }

    fn renew(&mut self, held: Vec<(u32, u64)>, lease_ms: i64, now_ms: i64) -> Vec<(u32, u64)> {
        self.inner.renew(&held, lease_ms, now_ms)
    }

    /// -> [(slot, token, id, now_dead)]
    fn reap(&mut self, now_ms: i64) -> Vec<(u32, u64, String, bool)> {
        self.inner
            .reap(now_ms)
            .into_iter()
            .map(|r| (r.slot, r.token, r.id, r.now_dead))
            .collect()
    }

    fn leases_of(&self, owner: u32) -> Vec<(u32, u64)> {
        self.inner.leases_of(owner)
    }

    fn set_progress(&mut self, slot: u32, token: u64, progress: f32) -> bool {
        self.inner.set_progress(slot, token, progress)
    }

    fn next_due(&self, pool: &str) -> Option<i64> {
        self.inner.next_due(pool)
    }

    fn claimable(&self, pool: &str, now_ms: i64) -> usize {
        self.inner.claimable(pool, now_ms)
    }

    fn next_lease_deadline(&self) -> Option<i64> {
        self.inner.next_lease_deadline()
    }

    /// -> (cancelled now, (slot, token) of the lease it held if it was running, status before)
    fn cancel(&mut self, id: &str, now_ms: i64) -> PyResult<CancelTuple> {
        Ok(match self.inner.cancel(id, now_ms).map_err(to_py)? {
            Cancelled::Now { running } => (true, running, None),
            Cancelled::AlreadyFinished(status) => (false, None, Some(status.as_str())),
        })
    }

    fn resubmit(&mut self, id: &str, now_ms: i64) -> PyResult<()> {
        self.inner.resubmit(id, now_ms).map_err(to_py)
    }

    #[pyo3(signature = (name, pool, query, limit, now_ms))]
    fn resubmit_dead(
        &mut self,
        name: Option<String>,
        pool: Option<String>,
        query: Option<String>,
        limit: usize,
        now_ms: i64,
    ) -> PyResult<Vec<String>> {
        let filter = filter_from(None, name, pool, query)?;
        Ok(self.inner.resubmit_dead(&filter, limit, now_ms))
    }

    fn purge(&mut self, id: &str) -> PyResult<()> {
        self.inner.purge(id).map_err(to_py)
    }

    #[pyo3(signature = (name, pool, query, limit))]
    fn purge_dead(
        &mut self,
        name: Option<String>,
        pool: Option<String>,
        query: Option<String>,
        limit: usize,
    ) -> PyResult<Vec<String>> {
        let filter = filter_from(None, name, pool, query)?;
        Ok(self.inner.purge_dead(&filter, limit))
    }

    fn sweep(&mut self, before_ms: i64, now_ms: i64) -> usize {
        self.inner.sweep(before_ms, now_ms)
    }

    /// Forgets dead tasks that died before `before_ms`. Returns how many went.
    fn sweep_dead(&mut self, before_ms: i64) -> usize {
        self.inner.sweep_dead(before_ms)
    }

    fn get<'py>(
        &mut self,
        py: Python<'py>,
        id: &str,
        now_ms: i64,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let view = self.inner.get(id, now_ms).map_err(to_py)?;
        row(py, view)
    }

    #[pyo3(signature = (statuses, name, pool, query, limit, cursor, now_ms))]
    #[allow(clippy::too_many_arguments)]
    fn list_tasks<'py>(
        &mut self,
        py: Python<'py>,
        statuses: Option<Vec<String>>,
        name: Option<String>,
        pool: Option<String>,
        query: Option<String>,
        limit: usize,
        cursor: Option<u64>,
        now_ms: i64,
    ) -> PyResult<(Vec<Bound<'py, PyTuple>>, Option<u64>)> {
        let filter = filter_from(statuses, name, pool, query)?;
        let page = self.inner.list(&filter, limit, cursor, now_ms);
        let rows = page
            .tasks
            .into_iter()
            .map(|v| row(py, v))
            .collect::<PyResult<_>>()?;
        Ok((rows, page.next_cursor))
    }

    /// -> [(pool, {status: count})]
    fn counts(&mut self, now_ms: i64) -> Vec<(String, Vec<(&'static str, u64)>)> {
        self.inner
            .counts(now_ms)
            .into_iter()
            .map(|(pool, counts)| {
                let named = Status::ALL
                    .iter()
                    .map(|s| (s.as_str(), counts[*s as usize]))
                    .collect();
                (pool, named)
            })
            .collect()
    }

    fn watch(&mut self, id: &str) -> PyResult<bool> {
        self.inner.watch(id).map_err(to_py)
    }

    fn drain_finished(&mut self) -> Vec<String> {
        self.inner.drain_finished()
    }

    /// `kind` is "cron" (with `every` the spec and `tz` a zone name) or "every" (`every` in ms).
    #[pyo3(signature = (id, kind, every, tz, template, skip_if_running, now_ms))]
    #[allow(clippy::too_many_arguments)]
    fn add_schedule(
        &mut self,
        id: String,
        kind: &str,
        every: &str,
        tz: &str,
        template: SpecTuple<'_>,
        skip_if_running: bool,
        now_ms: i64,
    ) -> PyResult<i64> {
        let every = match kind {
            "cron" => {
                let (schedule, tz) = parse_cron_and_zone(every, tz)?;
                Every::Cron { schedule, tz }
            }
            "every" => Every::Interval {
                every_ms: every.parse().map_err(|_| {
                    InvalidOptionError::new_err(format!(
                        "interval {every:?} is not a whole number of ms"
                    ))
                })?,
            },
            other => {
                return Err(InvalidOptionError::new_err(format!(
                    "unknown schedule kind {other:?}: use cron or every"
                )))
            }
        };
        let spec = ScheduleSpec {
            id,
            every,
            template: spec_from(template, now_ms)?,
            skip_if_running,
        };
        self.inner.add_schedule(spec, now_ms).map_err(to_py)
    }

    fn remove_schedule(&mut self, id: &str) -> PyResult<()> {
        self.inner.remove_schedule(id).map_err(to_py)
    }

    /// -> [(id, kind, every, name, pool, skip_if_running, next_fire_ms, last_fire_ms, last_task, fired, skipped)]
    fn schedules<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyTuple>>> {
        self.inner
            .schedules()
            .into_iter()
            .map(|v| schedule_row(py, v))
            .collect()
    }

    fn next_schedule_due(&self) -> Option<i64> {
        self.inner.next_schedule_due()
    }

    fn fire_schedules(&mut self, now_ms: i64) -> Vec<String> {
        self.inner.fire_schedules(now_ms)
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }
}
