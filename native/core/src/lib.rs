//! tickrelay's compiled core. Pure: no I/O, no clock, no Python.
//!
//! Laid out like the Python package it mirrors (`src/tickrelay`): [`protocol`] is
//! `tickrelay.protocol` (framing, checksum, fixed point, the relay link's batch runs),
//! [`relay`] is `tickrelay.relay` (the data path: which subscriber gets which message) and
//! [`venues`] is `tickrelay.venues` (every venue API's feed: frames to finished messages). The
//! Python modules stay the readable spec; every function here says which one it matches, and the
//! tests (Rust and Python, over the same vectors) hold the two to the same bytes and verdicts.
//!
//! No function here panics on any input: malformed input is an `Err` the glue turns into the
//! same exception the Python code raises (`native/py`), and `tests/no_panic.rs` feeds the inputs
//! that break careless parsers.
#![forbid(unsafe_code)]

pub mod protocol;
pub mod relay;
pub mod venues;
