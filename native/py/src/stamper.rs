//! `StamperBase`: the fields of `tickrelay.protocol.stamper.Stamper` (its base class when the
//! extension is built; a Python class with the same slots otherwise). The Python subclass keeps the
//! methods; a `NativeFeed` holds the same object and reads and writes `counter` as a Rust field,
//! with no attribute lookup and no `int` object per call.

use pyo3::prelude::*;

/// One stream's identity and its message counter (see the module docs).
#[pyclass(module = "tickrelay._native", subclass)]
pub struct StamperBase {
    #[pyo3(get, set)]
    pub source: u8,
    #[pyo3(get, set)]
    pub stream_id: u16,
    #[pyo3(get, set)]
    pub domain: u8,
    /// The last counter assigned.
    #[pyo3(get, set)]
    pub counter: u64,
}

#[pymethods]
impl StamperBase {
    #[new]
    #[pyo3(signature = (source, stream_id, domain = 1, counter = 0))]
    fn new(source: u8, stream_id: u16, domain: u8, counter: u64) -> Self {
        Self { source, stream_id, domain, counter }
    }
}
