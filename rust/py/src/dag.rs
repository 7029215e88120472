//! `skedulr._core.Dag`: the core dependency graph over integer node ids, remembering outcomes itself
//! (the engine keeps outcomes in its task table instead).

use std::ffi::c_int;

use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
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

/// Edges a `resolve` visits holding the GIL; a cascade still going after that finishes without it.
const GIL_HELD_EDGES: usize = 4096;

/// A read-only buffer of native-endian i64 (format "q") that owns the ids it exports, so `resolve`
/// hands its result vectors to Python without copying or boxing each id. Python only sees it through
/// the `memoryview` that `int64_view` wraps around it.
#[pyclass(module = "skedulr._core", frozen)]
struct Int64Buffer {
    items: Box<[i64]>,
    /// The buffer's shape and stride, pointed to by every view (the object does not move).
    shape: ffi::Py_ssize_t,
    stride: ffi::Py_ssize_t,
}

#[pymethods]
impl Int64Buffer {
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        if view.is_null() {
            return Err(PyBufferError::new_err("no view to fill"));
        }
        if flags & ffi::PyBUF_WRITABLE == ffi::PyBUF_WRITABLE {
            return Err(PyBufferError::new_err("the ids are read-only"));
        }
        let this = slf.get();
        // SAFETY: `view` is the caller's Py_buffer to fill; every pointer stored in it points into
        // `this`, which the view keeps alive through `obj` (a new reference) and which never moves
        // or changes (frozen, boxed items).
        unsafe {
            (*view).buf = this.items.as_ptr() as *mut std::ffi::c_void;
            (*view).obj = slf.clone().into_any().into_ptr();
            (*view).len = this.shape * this.stride;
            (*view).readonly = 1;
            (*view).itemsize = this.stride;
            (*view).format = if flags & ffi::PyBUF_FORMAT == ffi::PyBUF_FORMAT {
                c"q".as_ptr() as *mut _
            } else {
                std::ptr::null_mut()
            };
            (*view).ndim = 1;
            (*view).shape = if flags & ffi::PyBUF_ND == ffi::PyBUF_ND {
                &this.shape as *const _ as *mut _
            } else {
                std::ptr::null_mut()
            };
            (*view).strides = if flags & ffi::PyBUF_STRIDES == ffi::PyBUF_STRIDES {
                &this.stride as *const _ as *mut _
            } else {
                std::ptr::null_mut()
            };
            (*view).suboffsets = std::ptr::null_mut();
            (*view).internal = std::ptr::null_mut();
        }
        Ok(())
    }
}

/// `items` as a read-only `memoryview` of format "q" (no copy: the view owns them).
fn int64_view(py: Python<'_>, items: Vec<i64>) -> PyResult<Bound<'_, PyAny>> {
    let shape = ffi::Py_ssize_t::try_from(items.len()).expect("fewer than 2^63 ids");
    let buffer = Bound::new(
        py,
        Int64Buffer {
            items: items.into_boxed_slice(),
            shape,
            stride: std::mem::size_of::<i64>() as ffi::Py_ssize_t,
        },
    )?;
    // SAFETY: `buffer` is a live object exporting the buffer protocol; the result is a new reference
    // or NULL with an exception set.
    unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyMemoryView_FromObject(buffer.as_ptr())) }
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

    /// Records `parent`'s outcome. Returns (ready children, skipped descendants), each a read-only
    /// `memoryview` of format "q" (native i64); a large cascade finishes without holding the GIL.
    fn resolve<'py>(
        &mut self,
        py: Python<'py>,
        parent: i64,
        outcome: &str,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let outcome = outcome_from(outcome)?;
        self.outcomes.insert(parent, outcome);
        let (inner, outcomes) = (&mut self.inner, &mut self.outcomes);
        let mut cascade = inner.start_resolve(parent, outcome);
        let done = inner.run_cascade(&mut cascade, GIL_HELD_EDGES);
        let finish = move || {
            inner.run_cascade(&mut cascade, usize::MAX);
            let resolution = cascade.into_resolution();
            outcomes.reserve(resolution.skipped.len());
            for &child in &resolution.skipped {
                outcomes.insert(child, Outcome::Skipped);
            }
            resolution
        };
        let resolution = if done { finish() } else { py.detach(finish) };
        Ok((
            int64_view(py, resolution.ready)?,
            int64_view(py, resolution.skipped)?,
        ))
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
