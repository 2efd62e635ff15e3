//! Protocol V2 (`docs/protocol.md`), as `tickrelay.protocol`.

pub mod codec;
pub mod events;
pub mod fixed;
pub mod link;
pub mod stream;
pub mod symbols;
