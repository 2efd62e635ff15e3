//! The relay's data path, as `tickrelay.relay`.

pub mod fanout;
