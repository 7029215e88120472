//! Core errors become the Python exceptions of `skedulr.errors`, one class per variant. The classes are
//! defined in Python (so users can import and subclass them); Rust only raises them.

use pyo3::PyErr;
use skedulr_core::CoreError;

pyo3::import_exception!(skedulr.errors, InvalidNameError);
pyo3::import_exception!(skedulr.errors, InvalidOptionError);
pyo3::import_exception!(skedulr.errors, InvalidCronError);
pyo3::import_exception!(skedulr.errors, InvalidTimeZoneError);
pyo3::import_exception!(skedulr.errors, TaskNotFoundError);
pyo3::import_exception!(skedulr.errors, DuplicateTaskError);
pyo3::import_exception!(skedulr.errors, InvalidStateError);
pyo3::import_exception!(skedulr.errors, UnknownParentError);
pyo3::import_exception!(skedulr.errors, CycleError);
pyo3::import_exception!(skedulr.errors, ScheduleNotFoundError);

/// The Python exception for a core error: use as `.map_err(to_py)?`.
pub fn to_py(e: CoreError) -> PyErr {
    let message = e.to_string();
    match e {
        CoreError::InvalidName(_) => InvalidNameError::new_err(message),
        CoreError::InvalidOption(_) => InvalidOptionError::new_err(message),
        CoreError::InvalidCron(_) => InvalidCronError::new_err(message),
        CoreError::InvalidTimeZone(_) => InvalidTimeZoneError::new_err(message),
        CoreError::TaskNotFound(_) => TaskNotFoundError::new_err(message),
        CoreError::DuplicateTask(_) => DuplicateTaskError::new_err(message),
        CoreError::InvalidState(_) => InvalidStateError::new_err(message),
        CoreError::UnknownParent(_) => UnknownParentError::new_err(message),
        CoreError::Cycle(_) => CycleError::new_err(message),
        CoreError::ScheduleNotFound(_) => ScheduleNotFoundError::new_err(message),
    }
}
