//! `skedulr._core.LeaseTable`: the core lease table over integer keys (benchmarks, tooling).

use pyo3::prelude::*;
use skedulr_core::leases::LeaseTable as CoreLeases;

#[pyclass(module = "skedulr._core")]
pub struct LeaseTable {
    inner: CoreLeases<i64>,
}

#[pymethods]
impl LeaseTable {
    #[new]
    fn new() -> Self {
        LeaseTable {
            inner: CoreLeases::new(),
        }
    }

    /// Returns the fencing token of the new lease.
    fn grant(&mut self, key: i64, owner: u32, now_ms: i64, ttl_ms: i64) -> u64 {
        self.inner.grant(key, owner, now_ms, ttl_ms)
    }

    /// Grants every key to `owner`; returns their tokens in order.
    fn grant_many(&mut self, keys: Vec<i64>, owner: u32, now_ms: i64, ttl_ms: i64) -> Vec<u64> {
        keys.into_iter()
            .map(|k| self.inner.grant(k, owner, now_ms, ttl_ms))
            .collect()
    }

    fn renew(&mut self, key: i64, token: u64, now_ms: i64, ttl_ms: i64) -> bool {
        self.inner.renew(key, token, now_ms, ttl_ms)
    }

    fn release(&mut self, key: i64, token: u64) -> bool {
        self.inner.release(key, token)
    }

    fn holds(&self, key: i64, token: u64) -> bool {
        self.inner.holds(key, token)
    }

    /// -> [(key, token, owner)] of the leases that ran out, removed from the table.
    fn expire_due(&mut self, now_ms: i64) -> Vec<(i64, u64, u32)> {
        self.inner
            .expire_due(now_ms)
            .into_iter()
            .map(|(k, l)| (k, l.token, l.owner))
            .collect()
    }

    /// -> [(key, token)] of leases ending within `margin_ms`.
    fn due_for_renewal(&self, now_ms: i64, margin_ms: i64) -> Vec<(i64, u64)> {
        self.inner
            .due_for_renewal(now_ms, margin_ms)
            .into_iter()
            .map(|(k, l)| (k, l.token))
            .collect()
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }
}
