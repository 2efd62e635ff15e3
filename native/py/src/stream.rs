//! `tickrelay.protocol.codec.Decoder` over the core's `StreamDecoder`: the same constructor,
//! methods, messages and exceptions, with one copy of each message (into its `bytes`) and the CRC
//! by crc32fast.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use tickrelay_core::protocol::stream::StreamDecoder;

use crate::{protocol_error, with_bytes};

/// `tickrelay.protocol.codec.Decoder` (see the Python for the arguments).
#[pyclass(module = "tickrelay._native")]
pub struct Decoder {
    inner: StreamDecoder,
    header: Py<PyAny>,
    message: Py<PyAny>,
    /// The errors skipped over with `resync`, as the Python's `errors` list.
    #[pyo3(get)]
    errors: Py<PyList>,
}

#[pymethods]
impl Decoder {
    #[new]
    #[pyo3(signature = (*, max_payload=1 << 20, domain=None, verify_checksum=true, require_checksum=false, resync=false))]
    fn new(
        py: Python<'_>,
        max_payload: u64,
        domain: Option<u8>,
        verify_checksum: bool,
        require_checksum: bool,
        resync: bool,
    ) -> PyResult<Self> {
        let codec = py.import("tickrelay.protocol.codec")?;
        Ok(Self {
            inner: StreamDecoder::new(max_payload, domain, verify_checksum, require_checksum, resync),
            header: codec.getattr("Header")?.unbind(),
            message: codec.getattr("Message")?.unbind(),
            errors: PyList::empty(py).unbind(),
        })
    }

    fn feed(&mut self, data: &Bound<'_, PyAny>) -> PyResult<()> {
        with_bytes(data, |d| self.inner.feed(d))
    }

    /// Bytes fed but not yet returned as messages.
    #[getter]
    fn buffered(&self) -> usize {
        self.inner.buffered()
    }

    #[getter]
    fn skipped_bytes(&self) -> u64 {
        self.inner.skipped_bytes
    }

    /// Remove and return the bytes fed but not yet returned as messages.
    fn take_buffered<'py>(&mut self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.take_buffered())
    }

    /// The next complete message, or None when more bytes are needed.
    fn next_message<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let errors = self.errors.bind(py);
        let mut failed = Ok(());
        let found = self.inner.next_message(|e| {
            if failed.is_ok() {
                failed = errors.append(protocol_error(py, e).into_value(py));
            }
        });
        failed?;
        let Some((h, span)) = found.map_err(|e| protocol_error(py, e))? else {
            return Ok(None);
        };
        let raw = PyBytes::new(py, &self.inner.buffer()[span]);
        self.inner.compact();
        let header = self.header.bind(py).call1((
            h.relay_domain,
            h.version,
            h.source,
            h.flags,
            h.sequence,
            h.timestamp_ns,
            h.payload_size,
            h.checksum,
        ))?;
        self.message.bind(py).call1((header, raw)).map(Some)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.next_message(py)
    }
}
