//! Reading the message a submit publishes when it hands tasks to an idle instance (lua/_hand_off.lua):
//! `<pool> <lease_until_ms>\n`, then per task `<id> <token> <bytes of spec>\n<spec>`, a spec being
//! `<name> <timeout_ms> <priority>\n<payload>` (lua/_lib.lua). Read in Rust because it is on the path from
//! submit to start, which a process just woken from idling walks several times slower than usual.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};

/// `(pool, lease_until_ms, rows)` of a hand-off message, each row as a claim returns it:
/// `(id, token, id, name, payload, attempt 1, priority, timeout_ms)`. ValueError for anything else.
#[pyfunction]
pub fn parse_hand_off<'py>(
    py: Python<'py>,
    data: &[u8],
) -> PyResult<(Bound<'py, PyString>, i64, Vec<Bound<'py, PyTuple>>)> {
    let malformed = || PyValueError::new_err("not a hand-off message");
    let (head, mut rest) = split_line(data).ok_or_else(malformed)?;
    let [pool, lease_until] = words(head).ok_or_else(malformed)?;
    let mut rows = Vec::new();
    while !rest.is_empty() {
        let (line, after) = split_line(rest).ok_or_else(malformed)?;
        let [task_id, token, size] = words(line).ok_or_else(malformed)?;
        let size = number(size)?;
        let spec = usize::try_from(size)
            .ok()
            .and_then(|n| after.get(..n))
            .ok_or_else(malformed)?;
        rest = &after[spec.len()..];
        let (spec_head, payload) = split_line(spec).ok_or_else(malformed)?;
        let [name, timeout_ms, priority] = words(spec_head).ok_or_else(malformed)?;
        let task_id = PyString::new(py, text(task_id)?);
        let row = (
            task_id.clone(),
            number(token)?,
            task_id,
            text(name)?,
            PyBytes::new(py, payload),
            1i64,
            number(priority)?,
            number(timeout_ms)?,
        );
        rows.push(row.into_pyobject(py)?);
    }
    Ok((PyString::new(py, text(pool)?), number(lease_until)?, rows))
}

/// The bytes before the first newline, and those after it.
fn split_line(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = data.iter().position(|&b| b == b'\n')?;
    Some((&data[..end], &data[end + 1..]))
}

/// Exactly N space-separated words.
fn words<const N: usize>(line: &[u8]) -> Option<[&[u8]; N]> {
    let mut parts = line.split(|&b| b == b' ');
    let out = std::array::from_fn(|_| parts.next());
    if parts.next().is_some() || out.iter().any(Option::is_none) {
        return None;
    }
    Some(out.map(Option::unwrap))
}

fn text(word: &[u8]) -> PyResult<&str> {
    std::str::from_utf8(word)
        .map_err(|_| PyValueError::new_err("not a hand-off message: not UTF-8"))
}

fn number(word: &[u8]) -> PyResult<i64> {
    text(word)?
        .parse()
        .map_err(|_| PyValueError::new_err("not a hand-off message: a number expected"))
}
