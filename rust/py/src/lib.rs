//! `skedulr._core`: the PyO3 shell over `skedulr-core`. Each file wraps one core concept; nothing here
//! decides scheduling behaviour.

use pyo3::prelude::*;

mod backoff;
mod cron;
mod dag;
mod engine;
mod errors;
mod hand_off;
mod leases;
mod ready_queue;
mod resp;
mod scripts;

/// Checks a job name, pool name, task id or schedule id against the shared alphabet; `kind` names
/// it in the error message.
#[pyfunction]
fn validate_name(kind: &str, value: &str) -> PyResult<()> {
    skedulr_core::validate::name(kind, value).map_err(errors::to_py)
}

/// Checks an idempotency key against the shared alphabet.
#[pyfunction]
fn validate_key(value: &str) -> PyResult<()> {
    skedulr_core::validate::key(value).map_err(errors::to_py)
}

/// An order for a batch whose tasks name each other as parents (`parents[i]`: indexes into the batch)
/// in which every task comes after its parents. Raises CycleError naming a position on a cycle.
#[pyfunction]
fn topological_order(parents: Vec<Vec<usize>>) -> PyResult<Vec<usize>> {
    if let Some(bad) = parents.iter().flatten().find(|&&p| p >= parents.len()) {
        return Err(errors::InvalidOptionError::new_err(format!(
            "parent index {bad} is outside the batch of {}",
            parents.len()
        )));
    }
    skedulr_core::dag::topological_order(&parents).map_err(|i| {
        errors::CycleError::new_err(format!(
            "the task at position {i} of the batch is part of a dependency cycle: a task cannot (indirectly) wait for itself"
        ))
    })
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    use skedulr_core::validate;
    m.add_class::<engine::Engine>()?;
    m.add_class::<ready_queue::ReadyQueue>()?;
    m.add_class::<leases::LeaseTable>()?;
    m.add_class::<dag::Dag>()?;
    m.add_class::<backoff::RetryPolicy>()?;
    m.add_class::<cron::CronSchedule>()?;
    m.add_function(wrap_pyfunction!(backoff::salt_of, m)?)?;
    m.add_function(wrap_pyfunction!(validate_name, m)?)?;
    m.add_function(wrap_pyfunction!(validate_key, m)?)?;
    m.add_function(wrap_pyfunction!(topological_order, m)?)?;
    m.add_function(wrap_pyfunction!(resp::pack_command, m)?)?;
    m.add_function(wrap_pyfunction!(hand_off::parse_hand_off, m)?)?;
    m.add("MIN_PRIORITY", validate::MIN_PRIORITY)?;
    m.add("MAX_PRIORITY", validate::MAX_PRIORITY)?;
    m.add("MAX_NAME_LEN", validate::MAX_NAME_LEN)?;
    m.add("MAX_KEY_LEN", validate::MAX_KEY_LEN)?;
    m.add("MAX_RETRIES", validate::MAX_RETRIES)?;
    m.add("NAME_ALPHABET", validate::NAME_ALPHABET)?;
    let lua = pyo3::types::PyDict::new(m.py());
    for (name, source) in scripts::SCRIPTS {
        lua.set_item(name, source)?;
    }
    m.add("LUA_SCRIPTS", lua)?;
    Ok(())
}
