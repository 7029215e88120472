//! Packing one Redis command in RESP, for the Trio-native connections of `skedulr.storage`.
//!
//! hiredis packs too, but through several allocations per argument; a process just woken from idling
//! pays for every instruction several times over, and the submit-to-start path packs one command
//! (benches/redis_cold_scripts.py and the notes in `_redis_direct.py` tell the measurements).

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyFloat, PyInt, PyString, PyTuple};

/// The RESP bytes of the command `args` (each bytes, a bytes-like object of bytes, str, int or float).
/// TypeError names the first argument of another type: a bool or an enum too, which hiredis refuses
/// as well (a flag slipping into a script's arguments is a bug, not the number 1).
#[pyfunction]
pub fn pack_command<'py>(
    py: Python<'py>,
    args: &Bound<'py, PyTuple>,
) -> PyResult<Bound<'py, PyBytes>> {
    let mut out = Vec::with_capacity(256);
    push_header(&mut out, b'*', args.len() as i64);
    for arg in args.iter() {
        if let Ok(bytes) = arg.cast::<PyBytes>() {
            push_bulk(&mut out, bytes.as_bytes());
        } else if let Ok(text) = arg.cast::<PyString>() {
            push_bulk(&mut out, text.to_str()?.as_bytes());
        } else if arg.is_exact_instance_of::<PyInt>() {
            match arg.extract::<i64>() {
                Ok(n) => push_bulk(&mut out, Digits::default().of(n)),
                Err(_) => push_bulk(&mut out, arg.str()?.to_str()?.as_bytes()), // (beyond 64 bits)
            }
        } else if arg.is_exact_instance_of::<PyFloat>() {
            // (a float's repr is what Redis reads back as that number)
            push_bulk(&mut out, arg.repr()?.to_str()?.as_bytes());
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

fn push_header(out: &mut Vec<u8>, kind: u8, n: i64) {
    out.push(kind);
    out.extend_from_slice(Digits::default().of(n));
    out.extend_from_slice(b"\r\n");
}

fn push_bulk(out: &mut Vec<u8>, value: &[u8]) {
    push_header(out, b'$', value.len() as i64);
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// An integer's decimal digits, written without allocating.
#[derive(Default)]
struct Digits([u8; 20]);

impl Digits {
    fn of(&mut self, n: i64) -> &[u8] {
        let mut at = self.0.len();
        let mut rest = n.unsigned_abs();
        loop {
            at -= 1;
            self.0[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        if n < 0 {
            at -= 1;
            self.0[at] = b'-';
        }
        &self.0[at..]
    }
}
