//! The venue feeds' building blocks, as `tickrelay.venues` (the feeds themselves follow the
//! feed contract of issue 13).

pub mod json;
