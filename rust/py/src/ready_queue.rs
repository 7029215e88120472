//! `skedulr._core.ReadyQueue`: the core ready queue over integer keys, for callers that want the
//! ordering without the engine (and for the benchmarks against `heapq`).

use pyo3::buffer::{PyBuffer, ReadOnlyCell};
use pyo3::exceptions::{PyOverflowError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyList;
use skedulr_core::ready_queue::{BatchPlan, ReadyQueue as CoreQueue};

#[pyclass(module = "skedulr._core")]
pub struct ReadyQueue {
    inner: CoreQueue<i64>,
}

/// The item at `i` of `list` as `T` (an IndexError past the end).
///
/// Exact `int` items are converted from a borrowed reference, with no new reference and no Python
/// code run (so the list cannot change under us); anything else (an int subclass, an object with
/// `__index__`) goes through pyo3's checked extraction on an owned reference. This is what makes
/// `push_many` cheap: pyo3's generic `Vec<(i64, i32)>` extraction cost ~60 ns per pair.
fn list_item<'py, T>(
    list: &Bound<'py, PyList>,
    i: usize,
    exact: impl Fn(*mut ffi::PyObject) -> Option<T>,
) -> PyResult<T>
where
    T: for<'a> FromPyObject<'a, 'py>,
{
    let py = list.py();
    // SAFETY: PyList_GetItem checks `i` (NULL and IndexError past the end); the reference is borrowed from a list we hold and used before any
    // Python code can run (`exact` only reads an exact int); the other path takes its own reference.
    let item = unsafe { ffi::PyList_GetItem(list.as_ptr(), i as ffi::Py_ssize_t) };
    if item.is_null() {
        return Err(PyErr::fetch(py));
    }
    if unsafe { ffi::PyLong_CheckExact(item) } != 0 {
        if let Some(value) = exact(item) {
            return Ok(value);
        }
    }
    let owned = unsafe { Bound::from_borrowed_ptr(py, item) };
    owned.extract().map_err(Into::into)
}

/// The value of an exact int if it fits an i64 (else None: the checked path raises the error).
fn exact_i64(item: *mut ffi::PyObject) -> Option<i64> {
    let mut overflow = 0;
    // SAFETY: `item` is an exact int, alive for the call.
    let value = unsafe { ffi::PyLong_AsLongLongAndOverflow(item, &mut overflow) };
    (overflow == 0 && !(value == -1 && unsafe { !ffi::PyErr_Occurred().is_null() }))
        .then_some(value)
}

fn exact_i32(item: *mut ffi::PyObject) -> Option<i32> {
    exact_i64(item).and_then(|v| i32::try_from(v).ok())
}

/// The item at `i` of `list` if it is an exact int (borrowed: use it before any Python code runs).
#[inline]
fn exact_at(list: &Bound<'_, PyList>, i: usize) -> Option<*mut ffi::PyObject> {
    // SAFETY: PyList_GetItem checks `i`; a miss sets IndexError, cleared here (the caller falls
    // back to the checked path, which raises it again).
    let item = unsafe { ffi::PyList_GetItem(list.as_ptr(), i as ffi::Py_ssize_t) };
    if item.is_null() {
        unsafe { ffi::PyErr_Clear() };
        return None;
    }
    (unsafe { ffi::PyLong_CheckExact(item) } != 0).then_some(item)
}

/// First pass of the fast `push_many`: checks that every key and priority is an exact int that
/// fits, planning the batch on the way; None sends the caller to the checked path.
fn plan_exact(keys: &Bound<'_, PyList>, priorities: &Bound<'_, PyList>) -> Option<BatchPlan> {
    let mut plan = BatchPlan::default();
    for i in 0..keys.len() {
        let key = exact_at(keys, i).and_then(exact_i64)?;
        let priority = exact_at(priorities, i).and_then(exact_i32)?;
        plan.add(key, priority);
    }
    Some(plan)
}

/// Priorities given as a buffer of 32- or 64-bit integers.
enum PriorityBuffer {
    I32(PyBuffer<i32>),
    I64(PyBuffer<i64>),
}

/// The contiguous items of a buffer (None if it is not C-contiguous).
fn cells<'a, T: pyo3::buffer::Element>(
    py: Python<'a>,
    buffer: &'a PyBuffer<T>,
) -> Option<&'a [ReadOnlyCell<T>]> {
    buffer.as_slice(py)
}

/// `push_many(keys, priorities)` with two C-contiguous buffers: keys of signed 64-bit integers
/// (`array.array('q')`, or `'l'` where a long is 64 bits) and priorities of signed 32- or 64-bit
/// integers (`'i'`, `'q'`, `'l'`). None if the inputs are not such buffers (the caller falls back).
fn push_buffers(
    queue: &mut CoreQueue<i64>,
    keys: &Bound<'_, PyAny>,
    priorities: &Bound<'_, PyAny>,
    now_ms: i64,
) -> Option<PyResult<()>> {
    let py = keys.py();
    let key_buffer = PyBuffer::<i64>::get(keys).ok()?;
    let priority_buffer = match PyBuffer::<i32>::get(priorities) {
        Ok(buffer) => PriorityBuffer::I32(buffer),
        Err(_) => PriorityBuffer::I64(PyBuffer::<i64>::get(priorities).ok()?),
    };
    let keys = cells(py, &key_buffer)?;
    match &priority_buffer {
        PriorityBuffer::I32(buffer) => {
            let priorities = cells(py, buffer)?;
            if keys.len() != priorities.len() {
                return Some(Err(length_mismatch(keys.len(), priorities.len())));
            }
            let pairs = || keys.iter().zip(priorities).map(|(k, p)| (k.get(), p.get()));
            let mut plan = BatchPlan::default();
            for (key, priority) in pairs() {
                plan.add(key, priority);
            }
            queue.push_planned(&plan, pairs(), now_ms, now_ms);
        }
        PriorityBuffer::I64(buffer) => {
            let priorities = cells(py, buffer)?;
            if keys.len() != priorities.len() {
                return Some(Err(length_mismatch(keys.len(), priorities.len())));
            }
            let mut plan = BatchPlan::default();
            for (key, priority) in keys.iter().zip(priorities) {
                let Ok(priority) = i32::try_from(priority.get()) else {
                    return Some(Err(PyOverflowError::new_err(format!(
                        "priority {} does not fit a 32-bit integer",
                        priority.get()
                    ))));
                };
                plan.add(key.get(), priority);
            }
            // Every priority fits (checked above).
            let pairs = keys
                .iter()
                .zip(priorities)
                .map(|(k, p)| (k.get(), p.get() as i32));
            queue.push_planned(&plan, pairs, now_ms, now_ms);
        }
    }
    Some(Ok(()))
}

fn length_mismatch(keys: usize, priorities: usize) -> PyErr {
    PyValueError::new_err(format!(
        "push_many got {keys} keys and {priorities} priorities: give one priority per key"
    ))
}

#[pymethods]
impl ReadyQueue {
    #[new]
    fn new() -> Self {
        ReadyQueue {
            inner: CoreQueue::new(),
        }
    }

    /// Adds `key` with `priority`, eligible from `ready_at_ms` (defaults to `now_ms`).
    #[pyo3(signature = (key, priority, ready_at_ms = None, now_ms = 0))]
    fn push(&mut self, key: i64, priority: i32, ready_at_ms: Option<i64>, now_ms: i64) {
        self.inner
            .push(key, priority, ready_at_ms.unwrap_or(now_ms), now_ms);
    }

    /// Adds many keys, all eligible at `now_ms`, in order (as `push` one by one would):
    /// `push_many(keys, priorities)` with two sequences of equal length: lists of ints, or (the
    /// fastest form) buffers such as `array.array('q')` keys and `array.array('i')` or `('q')`
    /// priorities; or `push_many(pairs)` with `(key, priority)` pairs.
    #[pyo3(signature = (keys, priorities = None, *, now_ms = 0))]
    fn push_many(
        &mut self,
        keys: &Bound<'_, PyAny>,
        priorities: Option<&Bound<'_, PyAny>>,
        now_ms: i64,
    ) -> PyResult<()> {
        // Filled by the checked paths only (the fast one needs no buffer).
        let mut items: Vec<(i64, i32)> = Vec::new();
        match priorities {
            Some(priorities) => match (keys.cast::<PyList>(), priorities.cast::<PyList>()) {
                (Ok(keys), Ok(priorities)) => {
                    // One pass over both lists. (Should an item's `__index__` shrink a list
                    // meanwhile, the read past its end raises IndexError.)
                    if keys.len() != priorities.len() {
                        return Err(length_mismatch(keys.len(), priorities.len()));
                    }
                    if let Some(plan) = plan_exact(keys, priorities) {
                        // Every item is an exact int that fits: read them again straight into the
                        // queue, with no buffer between (nothing can fail, and no Python code has
                        // run since the check, so the lists are as they were).
                        let pairs = (0..keys.len()).map(|i| {
                            let key = exact_at(keys, i).and_then(exact_i64);
                            let priority = exact_at(priorities, i).and_then(exact_i32);
                            key.zip(priority).expect("checked by plan_exact")
                        });
                        self.inner.push_planned(&plan, pairs, now_ms, now_ms);
                        return Ok(());
                    }
                    items.reserve(keys.len());
                    for i in 0..keys.len() {
                        let key = list_item(keys, i, exact_i64)?;
                        let priority = list_item(priorities, i, exact_i32)?;
                        items.push((key, priority));
                    }
                }
                _ => {
                    if let Some(pushed) = push_buffers(&mut self.inner, keys, priorities, now_ms) {
                        return pushed;
                    }
                    let keys: Vec<i64> = keys.extract()?;
                    let priorities: Vec<i32> = priorities.extract()?;
                    if keys.len() != priorities.len() {
                        return Err(length_mismatch(keys.len(), priorities.len()));
                    }
                    items.extend(keys.into_iter().zip(priorities));
                }
            },
            None => {
                for pair in keys.try_iter()? {
                    items.push(pair?.extract()?);
                }
            }
        }
        self.inner.push_many_at(&items, now_ms, now_ms);
        Ok(())
    }

    #[pyo3(signature = (now_ms = 0))]
    fn pop(&mut self, now_ms: i64) -> Option<i64> {
        self.inner.pop(now_ms)
    }

    #[pyo3(signature = (max, now_ms = 0))]
    fn pop_many(&mut self, max: usize, now_ms: i64) -> Vec<i64> {
        self.inner.pop_many(max, now_ms)
    }

    fn remove(&mut self, key: i64) -> bool {
        self.inner.remove(key)
    }

    fn next_ready_at(&self) -> Option<i64> {
        self.inner.next_ready_at()
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __contains__(&self, key: i64) -> bool {
        self.inner.contains(key)
    }

    fn __repr__(&self) -> String {
        format!(
            "<ReadyQueue len={} delayed={}>",
            self.inner.len(),
            self.inner.delayed_len()
        )
    }
}
