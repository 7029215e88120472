//! Packing one Redis command in RESP, for the Trio-native connections of `skedulr.storage`.
//!
//! hiredis packs too, but through several allocations per argument; a process just woken from idling
//! pays for every instruction several times over, and the submit-to-start path packs one command
//! (benches/redis_cold_scripts.py and the notes in `_redis_direct.py` tell the measurements).

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyFloat, PyInt, PyString, PyTuple};

/// The RESP bytes of the command `args` (each a bytes-like object, str, int or float). TypeError names
/// the first argument of another type.
#[pyfunction]
pub fn pack_command<'py>(
    py: Python<'py>,
    args: &Bound<'py, PyTuple>,
) -> PyResult<Bound<'py, PyBytes>> {
    let mut out = Vec::with_capacity(64 + 16 * args.len());
    push_header(&mut out, b'*', args.len());
    for arg in args.iter() {
        if let Ok(bytes) = arg.cast::<PyBytes>() {
            push_bulk(&mut out, bytes.as_bytes());
        } else if let Ok(text) = arg.cast::<PyString>() {
            push_bulk(&mut out, text.to_str()?.as_bytes());
        } else if arg.is_instance_of::<PyInt>() || arg.is_instance_of::<PyFloat>() {
            // (an int's str and a float's repr are what Redis reads back as that number)
            let text = if arg.is_instance_of::<PyInt>() {
                arg.str()?
            } else {
                arg.repr()?
            };
            push_bulk(&mut out, text.to_str()?.as_bytes());
        } else if let Ok(buffer) = PyBuffer::<u8>::get(&arg) {
            push_bulk(&mut out, &buffer.to_vec(py)?);
        } else {
            return Err(PyTypeError::new_err(format!(
                "a Redis command argument is bytes, str, int or float, not {}",
                arg.get_type().name()?
            )));
        }
    }
    Ok(PyBytes::new(py, &out))
}

fn push_header(out: &mut Vec<u8>, kind: u8, n: usize) {
    out.push(kind);
    out.extend_from_slice(n.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn push_bulk(out: &mut Vec<u8>, value: &[u8]) {
    push_header(out, b'$', value.len());
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}
