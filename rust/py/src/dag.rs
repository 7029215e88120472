//! `skedulr._core.Dag`: the core dependency graph over integer node ids, remembering outcomes itself
//! (the engine keeps outcomes in its task table instead).

use pyo3::prelude::*;
use skedulr_core::dag::{Admission, Dag as CoreDag, Outcome};
use skedulr_core::hash::FxHashMap;

use crate::engine::trigger_from;
use crate::errors::InvalidOptionError;

fn outcome_from(name: &str) -> PyResult<Outcome> {
    match name {
        "succeeded" => Ok(Outcome::Succeeded),
        "dead" => Ok(Outcome::Dead),
        "cancelled" => Ok(Outcome::Cancelled),
        "skipped" => Ok(Outcome::Skipped),
        other => Err(InvalidOptionError::new_err(format!(
            "unknown outcome {other:?}: use succeeded, dead, cancelled or skipped"
        ))),
    }
}

#[pyclass(module = "skedulr._core")]
pub struct Dag {
    inner: CoreDag<i64>,
    outcomes: FxHashMap<i64, Outcome>,
}

#[pymethods]
impl Dag {
    #[new]
    fn new() -> Self {
        Dag {
            inner: CoreDag::new(),
            outcomes: FxHashMap::default(),
        }
    }

    /// Adds `child` waiting on `edges` [(parent, trigger)]. Returns "ready", "waiting" or "skipped".
    fn add_child(&mut self, child: i64, edges: Vec<(i64, String)>) -> PyResult<&'static str> {
        let edges = edges
            .into_iter()
            .map(|(p, t)| Ok((p, trigger_from(&t)?)))
            .collect::<PyResult<Vec<_>>>()?;
        let outcomes = &self.outcomes;
        let admission = self
            .inner
            .add_child(child, &edges, |p| outcomes.get(&p).copied());
        if admission == Admission::Skipped {
            self.outcomes.insert(child, Outcome::Skipped);
        }
        Ok(match admission {
            Admission::Ready => "ready",
            Admission::Waiting => "waiting",
            Admission::Skipped => "skipped",
        })
    }

    /// Records `parent`'s outcome. Returns (ready children, skipped descendants); large cascades run
    /// without holding the GIL.
    fn resolve(
        &mut self,
        py: Python<'_>,
        parent: i64,
        outcome: &str,
    ) -> PyResult<(Vec<i64>, Vec<i64>)> {
        let outcome = outcome_from(outcome)?;
        self.outcomes.insert(parent, outcome);
        let (inner, outcomes) = (&mut self.inner, &mut self.outcomes);
        let resolution = py.detach(|| {
            let r = inner.resolve(parent, outcome);
            for child in &r.skipped {
                outcomes.insert(*child, Outcome::Skipped);
            }
            r
        });
        Ok((resolution.ready, resolution.skipped))
    }

    fn forget(&mut self, child: i64) -> bool {
        self.inner.forget(child)
    }

    fn is_waiting(&self, child: i64) -> bool {
        self.inner.is_waiting(child)
    }

    fn __len__(&self) -> usize {
        self.inner.waiting_len()
    }
}
