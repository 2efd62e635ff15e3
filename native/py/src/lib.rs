//! `tickrelay._native`: the PyO3 glue over `tickrelay-core`. Thin on purpose: it converts
//! arguments, calls the core and turns the core's errors into the exceptions of
//! `tickrelay.errors` with the messages the Python code gives. The typed surface is
//! `src/tickrelay/_native.pyi`; `src/tickrelay/native.py` decides whether it is used.

use std::collections::BTreeSet;

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};
use tickrelay_core::protocol::codec::ProtocolError;
use tickrelay_core::protocol::fixed::{self, FixedError};
use tickrelay_core::protocol::link;
use tickrelay_core::relay::fanout::Filter;

mod feed;
mod stamper;
mod stream;

/// Calls `f` on the bytes of a `bytes` object or of any C-contiguous buffer (memoryview, bytearray).
pub(crate) fn with_bytes<R>(obj: &Bound<'_, PyAny>, f: impl FnOnce(&[u8]) -> R) -> PyResult<R> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(f(b.as_bytes()));
    }
    let buffer = PyBuffer::<u8>::get(obj)?;
    let ptr =
        buffer.as_slice_ptr().ok_or_else(|| PyTypeError::new_err("a C-contiguous buffer is required"))?;
    // SAFETY: the buffer export keeps the memory alive and unresizable until `buffer` drops, and
    // with the GIL held (we hold it throughout) no Python code can write to it meanwhile.
    let data = unsafe { ptr.as_ref() };
    Ok(f(data))
}

pub(crate) fn raise(py: Python<'_>, class: &str, message: String) -> PyErr {
    match py.import("tickrelay.errors").and_then(|m| m.getattr(class)) {
        Ok(cls) => PyErr::from_type(cls.cast_into().expect("tickrelay.errors holds classes"), message),
        Err(e) => e,
    }
}

pub(crate) fn protocol_error(py: Python<'_>, e: ProtocolError) -> PyErr {
    let class = match &e {
        ProtocolError::Protocol(_) => "ProtocolError",
        ProtocolError::BadMagic(_) => "BadMagic",
        ProtocolError::UnsupportedVersion(_) => "UnsupportedVersion",
        ProtocolError::BadDomain(_) => "BadDomain",
        ProtocolError::MalformedTlv(_) => "MalformedTlv",
        ProtocolError::PayloadTooLarge(_) => "PayloadTooLarge",
        ProtocolError::ChecksumMismatch(_) => "ChecksumMismatch",
    };
    raise(py, class, e.to_string())
}

/// `tickrelay.protocol.fixed.parse_fixed8_rounded`.
#[pyfunction]
fn parse_fixed8_rounded(text: &Bound<'_, PyAny>) -> PyResult<(i64, bool)> {
    let py = text.py();
    let result = if let Ok(s) = text.cast::<PyString>() {
        // a str that is not valid UTF-8 (lone surrogates) is not ASCII either: not a number
        s.to_str().map_or(Err(FixedError::NotANumber), |s| fixed::parse_fixed8_rounded(s.as_bytes()))
    } else {
        text.cast::<PyBytes>()?;
        with_bytes(text, fixed::parse_fixed8_rounded)?
    };
    result.map_err(|e| {
        // the Python's message: repr() of the text (bytes decoded as ASCII with replacement)
        let shown = match text.cast::<PyBytes>() {
            Ok(b) => PyString::new(
                py,
                &b.as_bytes()
                    .iter()
                    .map(|&c| if c.is_ascii() { char::from(c) } else { '\u{fffd}' })
                    .collect::<String>(),
            )
            .into_any(),
            Err(_) => text.clone(),
        };
        let shown = shown.repr().map(|r| r.to_string()).unwrap_or_default();
        let what = match e {
            FixedError::NotANumber => "is not a decimal number",
            FixedError::OutOfRange => "is out of range for int64 x 10^8",
        };
        raise(py, "FixedPointError", format!("{shown} {what}"))
    })
}

/// `tickrelay.protocol.link.check_run`.
#[pyfunction]
fn check_run(
    py: Python<'_>,
    data: &Bound<'_, PyAny>,
    start: usize,
    count: u64,
    domain: u8,
    max_payload: u64,
) -> PyResult<()> {
    with_bytes(data, |d| link::check_run(d, start, count, domain, max_payload))?
        .map_err(|e| protocol_error(py, e))
}

/// `tickrelay.relay.fanout.selector`: a subscription filter compiled once; calling it with a
/// validated run is `select_py(flt, run)`.
#[pyclass(module = "tickrelay._native", frozen)]
struct Selector {
    filter: Filter,
}

#[pymethods]
impl Selector {
    /// `flt` is a `fanout.Filter` (three frozensets).
    #[new]
    fn new(flt: &Bound<'_, PyTuple>) -> PyResult<Self> {
        Ok(Self {
            filter: Filter::new(
                flt.get_item(0)?.extract::<BTreeSet<u8>>()?,
                flt.get_item(1)?.extract::<BTreeSet<u16>>()?,
                flt.get_item(2)?.extract::<BTreeSet<u64>>()?,
            ),
        })
    }

    fn __call__<'py>(&self, body: &Bound<'py, PyAny>) -> PyResult<(Bound<'py, PyBytes>, usize)> {
        let py = body.py();
        with_bytes(body, |run| {
            let (ranges, count) = self.filter.select(run).map_err(|e| protocol_error(py, e))?;
            let size = ranges.iter().map(|(s, e)| e - s).sum();
            let out = PyBytes::new_with(py, size, |buf| {
                let mut at = 0;
                for &(s, e) in &ranges {
                    buf[at..at + e - s].copy_from_slice(&run[s..e]);
                    at += e - s;
                }
                Ok(())
            })?;
            Ok((out, count))
        })?
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(parse_fixed8_rounded, m)?)?;
    m.add_function(wrap_pyfunction!(check_run, m)?)?;
    m.add_class::<Selector>()?;
    m.add_class::<stream::Decoder>()?;
    m.add_class::<feed::NativeFeed>()?;
    m.add_class::<stamper::StamperBase>()?;
    Ok(())
}
