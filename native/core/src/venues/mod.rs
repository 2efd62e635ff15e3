//! The venue feeds, as `tickrelay.venues`: the feed contract ([`feed`]), the order book
//! ([`book`]) and the JSON scanner the feeds read frames with ([`json`]).

pub mod book;
pub mod feed;
pub mod json;
