//! `NativeFeed`: a native venue feed and its finisher behind the byte-level feed contract
//! (`tickrelay.venues.core.FeedCore`'s calls). `tickrelay.venues.native.NativeCore` wraps it
//! with what stays in the Python feed (URL, subscribe frames, snapshot URLs, REST budget).
//!
//! The per-call path reuses one event vector and one output buffer: a call allocates nothing but
//! the `bytes` it returns (the empty one is CPython's shared singleton).
//!
//! `snapshot_wanted` is pushed, not asked for: the core that owns this feed hands itself to
//! `keep_wanted_on`, and a call that turns `wants_snapshot()` empty or not empty sets the holder's
//! `snapshot_wanted` attribute. Reading it after every frame is then a plain slot read in Python.

use std::collections::BTreeMap;

use pyo3::exceptions::{PyNotImplementedError, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyBytes, PyDict, PyInt, PyList, PyString, PyTuple, PyWeakrefMethods, PyWeakrefReference,
};
use tickrelay_core::protocol::events::EncodeError;
use tickrelay_core::protocol::fixed::format_fixed8;
use tickrelay_core::protocol::link::{seal_batch, BATCH_START};
use tickrelay_core::venues::feed::{Event, Feed, Stats};
use tickrelay_core::venues::finish::Finisher;
use tickrelay_core::venues::{build, Param, Params};

use crate::raise;
use crate::stamper::StamperBase;

/// One `native_spec()` value: None, bool, int, str, or a list / tuple of str.
fn param(name: &str, value: &Bound<'_, PyAny>) -> PyResult<Param> {
    if value.is_none() {
        return Ok(Param::None);
    }
    if let Ok(b) = value.cast::<PyBool>() {
        return Ok(Param::Bool(b.is_true()));
    }
    if value.is_instance_of::<PyInt>() {
        return Ok(Param::Int(value.extract()?));
    }
    if let Ok(s) = value.cast::<PyString>() {
        return Ok(Param::Str(s.to_str()?.to_owned()));
    }
    if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
        if let Ok(items) = value.extract::<Vec<String>>() {
            return Ok(Param::List(items));
        }
    }
    let kind = value.get_type().name()?;
    Err(PyTypeError::new_err(format!(
        "native feed parameter {name:?}: a {kind} is not None, bool, int, str or a list of str"
    )))
}

fn encode_error(py: Python<'_>, e: EncodeError) -> PyErr {
    match e {
        EncodeError::Struct(m) => match py.import("struct").and_then(|s| s.getattr("error")) {
            Ok(cls) => PyErr::from_type(cls.cast_into().expect("struct.error is a class"), m),
            Err(e) => e,
        },
        EncodeError::MalformedTlv(m) => raise(py, "MalformedTlv", m),
    }
}

/// A native venue feed and its stream's finisher (see the module docs).
///
/// One counter: the stream's `Stamper` (which `RelayOutput` owns and stamps its own messages with)
/// is the only one. A call that has events to stamp reads `stamper.counter` first and writes the
/// last counter it assigned back (also when an event is refused, as the Python stamper moves
/// before it encodes); a call with nothing to stamp touches neither. The stamper's fields are a
/// `StamperBase`, read and written here as Rust fields.
#[pyclass(module = "tickrelay._native")]
pub struct NativeFeed {
    feed: Box<dyn Feed>,
    finisher: Finisher,
    stamper: Py<StamperBase>,
    /// `VenueMessageError.venue`: the API's venue, the text before any `_` ("coinbase_advanced").
    venue: String,
    events: Vec<Event>,
    buf: Vec<u8>,
    /// The object whose `snapshot_wanted` this feed keeps (`keep_wanted_on`), held weakly: it is
    /// the core that owns this feed. None for a feed that never asks (nothing to check per call).
    holder: Option<Py<PyWeakrefReference>>,
    /// What the holder's `snapshot_wanted` was last set to.
    wanted: bool,
    /// Requests taken from the feed by `on_frame_batch`, handed out by the next `take_requests`.
    requests: Vec<Vec<u8>>,
    /// How many kinds of rejected frame (each with its sample) `on_frame_batch` last told of.
    rejects_told: usize,
}

/// `on_frame_batch`'s second value, bits as `tickrelay.venues.core.TODO_*`: a kind of rejected
/// frame not told before (log its sample), a REST snapshot wanted, requests to send.
const TODO_NEW_REJECT: u32 = 1;
const TODO_SNAPSHOT: u32 = 2;
const TODO_REQUESTS: u32 = 4;

impl NativeFeed {
    /// Stamps what the last feed call pushed into `self.events` and returns it as one `bytes`.
    /// (`finish`, `stamp` and `after_call` are inlined into each call: the per-frame path, where a
    /// call each cost more than the work it saved; `bench/instructions.py`.)
    #[inline(always)]
    fn finish<'py>(&mut self, py: Python<'py>, ts: i64) -> PyResult<Bound<'py, PyBytes>> {
        match self.stamp(py, ts, 0)? {
            None => Ok(PyBytes::new(py, b"")),
            Some(_) => Ok(PyBytes::new(py, &self.buf)),
        }
    }

    /// What `finish` and `finish_batch` share: after the call's `after_call`, the events it pushed
    /// stamped and encoded into `self.buf` after `start` bytes left for the caller (the stamper's
    /// counter read first and written back after). The counter before them; None when there were none.
    #[inline(always)]
    fn stamp(&mut self, py: Python<'_>, ts: i64, start: usize) -> PyResult<Option<u64>> {
        self.after_call(py)?;
        if self.events.is_empty() {
            return Ok(None);
        }
        let mut stamper = self.stamper.bind(py).try_borrow_mut()?;
        let first = stamper.counter;
        self.finisher.counter = first;
        self.buf.clear();
        self.buf.resize(start, 0); // room the caller fills in (the batch envelope's head)
        let result = self.finisher.finish(&self.events, ts, &mut self.buf);
        self.events.clear();
        stamper.counter = self.finisher.counter;
        drop(stamper);
        result.map_err(|e| encode_error(py, e))?;
        Ok(Some(first))
    }

    /// What every feed call does first when it returns: the holder's `snapshot_wanted` kept (the
    /// call's events dropped if that fails).
    #[inline(always)]
    fn after_call(&mut self, py: Python<'_>) -> PyResult<()> {
        if self.holder.is_some() {
            if let Err(e) = self.sync_wanted(py) {
                self.events.clear();
                return Err(e);
            }
        }
        Ok(())
    }

    /// The holder's `snapshot_wanted` set again if the last call changed it (see the module docs).
    fn sync_wanted(&mut self, py: Python<'_>) -> PyResult<()> {
        let now = self.feed.snapshot_wanted();
        if now == self.wanted {
            return Ok(());
        }
        self.wanted = now;
        match self.holder.as_ref().and_then(|h| h.bind(py).upgrade()) {
            Some(holder) => holder.setattr(intern!(py, "snapshot_wanted"), now),
            None => Ok(()),
        }
    }

    /// `finish`, but the messages as one batch envelope (`link.encode_batch`, its timestamp `ts`)
    /// built in place around them; `b""` when there are none.
    fn finish_batch<'py>(&mut self, py: Python<'py>, ts: i64) -> PyResult<Bound<'py, PyBytes>> {
        let Some(first) = self.stamp(py, ts, BATCH_START)? else {
            return Ok(PyBytes::new(py, b""));
        };
        // the count fits: each message is at least a header, and the buffer's length is a usize
        let count = u32::try_from(self.finisher.counter.wrapping_sub(first)).unwrap_or(u32::MAX);
        if seal_batch(&mut self.buf, self.finisher.domain, self.finisher.source, count, ts).is_none() {
            return Err(PyValueError::new_err("a frame's messages do not fit one batch envelope"));
        }
        Ok(PyBytes::new(py, &self.buf))
    }

    /// What the collector must do after this frame (`TODO_*` bits); takes the feed's requests.
    fn todo(&mut self) -> u32 {
        let mut todo = 0;
        let kinds = self.feed.stats().samples.len();
        if kinds != self.rejects_told {
            self.rejects_told = kinds;
            todo |= TODO_NEW_REJECT;
        }
        if self.feed.snapshot_wanted() {
            todo |= TODO_SNAPSHOT;
        }
        self.requests.extend(self.feed.take_requests());
        if !self.requests.is_empty() {
            todo |= TODO_REQUESTS;
        }
        todo
    }
}

#[pymethods]
impl NativeFeed {
    /// The feed of venue API `api` built from `params` (`VenueFeed.native_spec()`), stamping as
    /// `stamper` (a `tickrelay.protocol.stamper.Stamper`: source, stream_id, domain, counter).
    /// Raises NotImplementedError when `api` has no native feed (the caller runs the Python one).
    #[new]
    fn new(api: &str, params: &Bound<'_, PyDict>, stamper: &Bound<'_, StamperBase>) -> PyResult<Self> {
        let finisher = {
            let s = stamper.try_borrow()?;
            Finisher::new(s.source, s.stream_id, s.domain, s.counter)
        };
        let mut map = BTreeMap::new();
        for (k, v) in params.iter() {
            let k: String = k.extract()?;
            let p = param(&k, &v)?;
            map.insert(k, p);
        }
        let feed = match build(api, &Params(map)) {
            None => {
                return Err(PyNotImplementedError::new_err(format!("no native feed for venue API {api:?}")))
            }
            Some(Err(message)) => {
                return Err(PyValueError::new_err(format!("native feed {api:?}: {message}")))
            }
            Some(Ok(feed)) => feed,
        };
        Ok(Self {
            feed,
            finisher,
            stamper: stamper.clone().unbind(),
            venue: api.split('_').next().unwrap_or(api).to_owned(),
            events: Vec::new(),
            buf: Vec::new(),
            holder: None,
            wanted: false,
            requests: Vec::new(),
            rejects_told: 0,
        })
    }

    /// Keep `holder.snapshot_wanted` equal to `bool(wants_snapshot())`: set now, and again by
    /// every call that changes it (`holder` is held weakly: it is the core that owns this feed).
    fn keep_wanted_on(&mut self, holder: &Bound<'_, PyAny>) -> PyResult<()> {
        self.wanted = self.feed.snapshot_wanted();
        holder.setattr(intern!(holder.py(), "snapshot_wanted"), self.wanted)?;
        self.holder = Some(PyWeakrefReference::new(holder)?.unbind());
        Ok(())
    }

    fn on_frame<'py>(
        &mut self,
        py: Python<'py>,
        raw: &[u8],
        ts_recv_ns: i64,
    ) -> PyResult<Bound<'py, PyBytes>> {
        self.feed.on_frame(raw, ts_recv_ns, &mut self.events);
        self.finish(py, ts_recv_ns)
    }

    /// `on_frame` with the collector's per-frame checks folded in: (the frame's messages as one
    /// batch envelope stamped `ts_recv_ns`, or `b""`; the `TODO_*` bits).
    fn on_frame_batch<'py>(
        &mut self,
        py: Python<'py>,
        raw: &[u8],
        ts_recv_ns: i64,
    ) -> PyResult<(Bound<'py, PyBytes>, u32)> {
        self.feed.on_frame(raw, ts_recv_ns, &mut self.events);
        let batch = self.finish_batch(py, ts_recv_ns)?;
        Ok((batch, self.todo()))
    }

    /// Raises `tickrelay.errors.VenueMessageError(venue, body, reason)` for a body that is not a
    /// usable snapshot, as the Python feed does.
    fn on_snapshot<'py>(
        &mut self,
        py: Python<'py>,
        key: &str,
        body: &Bound<'py, PyBytes>,
        ts_recv_ns: i64,
    ) -> PyResult<Bound<'py, PyBytes>> {
        if let Err(reason) = self.feed.on_snapshot(key, body.as_bytes(), ts_recv_ns, &mut self.events) {
            self.events.clear();
            self.after_call(py)?; // the key stays wanted: nothing changes, but say so if it did
            let cls = py.import("tickrelay.errors")?.getattr("VenueMessageError")?;
            return Err(PyErr::from_value(cls.call1((self.venue.as_str(), body, reason))?));
        }
        self.finish(py, ts_recv_ns)
    }

    fn on_disconnect<'py>(&mut self, py: Python<'py>, ts_ns: i64) -> PyResult<Bound<'py, PyBytes>> {
        self.feed.on_disconnect(ts_ns, &mut self.events);
        self.finish(py, ts_ns)
    }

    fn wants_snapshot(&self) -> Vec<String> {
        self.feed.wants_snapshot()
    }

    fn take_requests<'py>(&mut self, py: Python<'py>) -> Vec<Bound<'py, PyBytes>> {
        let mut requests = std::mem::take(&mut self.requests);
        requests.extend(self.feed.take_requests());
        requests.iter().map(|r| PyBytes::new(py, r)).collect()
    }

    /// Everything `FeedStats` holds, as plain dicts (books as dicts of `BookStats` fields), the
    /// finisher's RECOVERED invalidations counted in `messages`, and `extra`: the venue's own
    /// counters (`trade_id_gaps`, ...).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s: &Stats = self.feed.stats();
        let d = PyDict::new(py);
        d.set_item("frames", s.frames)?;
        let messages = PyDict::new(py);
        for (name, n) in s.messages.iter() {
            messages.set_item(name, n)?;
        }
        if self.finisher.recovered() > 0 {
            let own = s.messages.get("StateInvalidation").unwrap_or(0);
            messages.set_item("StateInvalidation", own + self.finisher.recovered())?;
        }
        d.set_item("messages", messages)?;
        d.set_item("ignored", &s.ignored)?;
        d.set_item("rejected", &s.rejected)?;
        d.set_item("samples", &s.samples)?;
        d.set_item("rounded", s.rounded)?;
        d.set_item("venue_errors", s.venue_errors)?;
        let books = PyDict::new(py);
        for (symbol, b) in &s.books {
            let book = PyDict::new(py);
            book.set_item("updates_applied", b.updates_applied)?;
            book.set_item("checksums_verified", b.checksums_verified)?;
            book.set_item("checksum_failures", b.checksum_failures)?;
            book.set_item("gaps", b.gaps)?;
            book.set_item("resyncs", b.resyncs)?;
            book.set_item("crossed", b.crossed)?;
            book.set_item("best_bid", b.best_bid.map(format_fixed8))?;
            book.set_item("best_ask", b.best_ask.map(format_fixed8))?;
            books.set_item(symbol, book)?;
        }
        d.set_item("books", books)?;
        d.set_item("extra", &s.extra)?;
        Ok(d)
    }
}
