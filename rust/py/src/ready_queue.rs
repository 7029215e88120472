//! `skedulr._core.ReadyQueue`: the core ready queue over integer keys, for callers that want the
//! ordering without the engine (and for the benchmarks against `heapq`).

use pyo3::prelude::*;
use skedulr_core::ready_queue::ReadyQueue as CoreQueue;

#[pyclass(module = "skedulr._core", unsendable)]
pub struct ReadyQueue {
    inner: CoreQueue<i64>,
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
    #[pyo3(signature = (key, priority, ready_at_ms = 0, now_ms = 0))]
    fn push(&mut self, key: i64, priority: i32, ready_at_ms: i64, now_ms: i64) {
        self.inner.push(key, priority, ready_at_ms, now_ms);
    }

    /// Adds `(key, priority)` pairs, all eligible now.
    #[pyo3(signature = (items, now_ms = 0))]
    fn push_many(&mut self, items: Vec<(i64, i32)>, now_ms: i64) {
        for (key, priority) in items {
            self.inner.push(key, priority, now_ms, now_ms);
        }
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
