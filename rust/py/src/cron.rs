//! `skedulr._core.CronSchedule`: cron parsing and next-fire computation, in a named time zone.

use chrono_tz::Tz;
use pyo3::prelude::*;
use skedulr_core::cron::{parse_time_zone, CronSchedule as CoreCron};

use crate::errors::to_py;

pub fn parse_cron_and_zone(spec: &str, tz: &str) -> PyResult<(CoreCron, Tz)> {
    let schedule = CoreCron::parse(spec).map_err(to_py)?;
    let tz = parse_time_zone(tz).map_err(to_py)?;
    Ok((schedule, tz))
}

#[pyclass(module = "skedulr._core", frozen)]
pub struct CronSchedule {
    inner: CoreCron,
    tz: Tz,
}

#[pymethods]
impl CronSchedule {
    #[new]
    #[pyo3(signature = (spec, tz = "UTC"))]
    fn new(spec: &str, tz: &str) -> PyResult<Self> {
        let (inner, tz) = parse_cron_and_zone(spec, tz)?;
        Ok(CronSchedule { inner, tz })
    }

    /// The first fire time strictly after `after_ms` (epoch ms), or None within 30 years.
    fn next_after(&self, after_ms: i64) -> Option<i64> {
        self.inner.next_after(after_ms, self.tz)
    }

    #[getter]
    fn spec(&self) -> &str {
        self.inner.spec()
    }

    #[getter]
    fn tz(&self) -> &str {
        self.tz.name()
    }

    fn __repr__(&self) -> String {
        format!(
            "<CronSchedule {:?} tz={}>",
            self.inner.spec(),
            self.tz.name()
        )
    }
}
