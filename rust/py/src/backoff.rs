//! `skedulr._core.RetryPolicy`: retry delays computed in the core (seeded, so deterministic).

use pyo3::prelude::*;
use skedulr_core::backoff::{salt_of as core_salt_of, Backoff, RetryPolicy as CorePolicy};

use crate::errors::to_py;

#[pyclass(module = "skedulr._core", frozen)]
pub struct RetryPolicy {
    inner: CorePolicy,
}

#[pymethods]
impl RetryPolicy {
    #[staticmethod]
    #[pyo3(signature = (base_ms, cap_ms, jitter, seed = 0))]
    fn exponential(base_ms: u64, cap_ms: u64, jitter: f64, seed: u64) -> PyResult<Self> {
        let backoff = Backoff::Exponential {
            base_ms,
            cap_ms,
            jitter,
        };
        Ok(RetryPolicy {
            inner: CorePolicy::new(backoff, seed).map_err(to_py)?,
        })
    }

    #[staticmethod]
    fn constant(delay_ms: u64) -> PyResult<Self> {
        Ok(RetryPolicy {
            inner: CorePolicy::new(Backoff::Constant { delay_ms }, 0).map_err(to_py)?,
        })
    }

    #[staticmethod]
    fn linear(base_ms: u64, step_ms: u64, cap_ms: u64) -> PyResult<Self> {
        let backoff = Backoff::Linear {
            base_ms,
            step_ms,
            cap_ms,
        };
        Ok(RetryPolicy {
            inner: CorePolicy::new(backoff, 0).map_err(to_py)?,
        })
    }

    /// Delay before retry number `retry` (1 = first retry) of the task salted by `salt`.
    #[pyo3(signature = (retry, salt = 0))]
    fn delay_ms(&self, retry: u32, salt: u64) -> u64 {
        self.inner.delay_ms(retry, salt)
    }

    fn __repr__(&self) -> String {
        format!("<RetryPolicy {:?}>", self.inner.backoff())
    }
}

/// A stable 64-bit jitter salt for a task id.
#[pyfunction]
pub fn salt_of(id: &str) -> u64 {
    core_salt_of(id)
}
