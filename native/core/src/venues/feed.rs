//! The feed contract in Rust, as `tickrelay/venues/feed.py` and `venues/core.py`. Pure: no I/O.
//!
//! A venue feed takes raw frame bytes and the receipt time and pushes the protocol values to
//! publish, in order, into `out` ([`Event`], one per TLV, as `tickrelay.protocol.messages`).
//! Stamping them into finished Protocol V2 messages (source, sequence, header timestamp = the ts
//! passed in, CRC) and the RECOVERED invalidation after a complete snapshot of a dark book are the
//! finisher's job, as `FeedCore._finish`: a feed never makes bytes or sequence numbers itself.
//!
//! Every frame is classified exactly once, as in Python: it produced values, was ignored by design
//! (`stats.ignored[kind]`) or rejected (`stats.reject(reason, raw)`). A frame is decoded and checked
//! whole before it changes any state. Nothing here panics: malformed input is a counted reject.

use std::collections::BTreeMap;

/// A book level: (price, size), fixed point x 10^8.
pub type Level = (i64, i64);

/// `AssetType.CRYPTO_SPOT`: the only asset type the feeds publish.
pub const SPOT: u8 = 51;
/// `feed.SAMPLE_BYTES`: how much of the first rejected frame of each kind is kept.
pub const SAMPLE_BYTES: usize = 300;

/// The protocol values a feed publishes, field for field as `tickrelay.protocol.messages`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Trade {
        asset_id: u64,
        price: i64,
        volume: i64,
        exec_ts_ns: i64,
        venue_id: u16,
        asset_type: u8,
        side: u8,
    },
    Quote {
        asset_id: u64,
        bid_price: i64,
        bid_size: i64,
        ask_price: i64,
        ask_size: i64,
        quote_ts_ns: i64,
        venue_id: u16,
        asset_type: u8,
    },
    InstrumentMeta {
        asset_id: u64,
        venue_id: u16,
        asset_type: u8,
        price_decimals: u8,
        size_decimals: u8,
        venue_symbol: String,
        symbol: String,
    },
    L2Snapshot {
        asset_id: u64,
        venue_id: u16,
        asset_type: u8,
        flags: u8,
        exchange_seq: u64,
        exchange_ts_ns: i64,
        part: u16,
        bids: Vec<Level>,
        asks: Vec<Level>,
    },
    L2Delta {
        asset_id: u64,
        venue_id: u16,
        asset_type: u8,
        flags: u8,
        first_seq: u64,
        last_seq: u64,
        exchange_ts_ns: i64,
        bids: Vec<Level>,
        asks: Vec<Level>,
    },
    L2Reset {
        asset_id: u64,
        venue_id: u16,
        asset_type: u8,
        reason: u8,
    },
    StateInvalidation {
        venue_id: u16,
        asset_type: u8,
        reason: u8,
        asset_ids: Vec<u64>,
    },
}

/// The TLV names, as `type(value).__name__` counts them in `stats.messages`, in name order.
pub const NAMES: [&str; 7] =
    ["InstrumentMeta", "L2Delta", "L2Reset", "L2Snapshot", "Quote", "StateInvalidation", "Trade"];

impl Event {
    /// Its TLV's place in [`NAMES`].
    fn slot(&self) -> usize {
        match self {
            Self::InstrumentMeta { .. } => 0,
            Self::L2Delta { .. } => 1,
            Self::L2Reset { .. } => 2,
            Self::L2Snapshot { .. } => 3,
            Self::Quote { .. } => 4,
            Self::StateInvalidation { .. } => 5,
            Self::Trade { .. } => 6,
        }
    }

    /// The TLV's name, as `type(value).__name__` counts it in `stats.messages`.
    pub fn name(&self) -> &'static str {
        NAMES[self.slot()]
    }
}

/// `FeedStats.messages`: how many values of each TLV a feed published. One counter per name, not
/// a map: counting is on the per-frame path. Names never counted are absent, as in a Counter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts([u64; NAMES.len()]);

impl Counts {
    /// (name, count) of the names counted, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&&'static str, &u64)> {
        NAMES.iter().zip(&self.0).filter(|(_, &n)| n > 0)
    }

    pub fn get(&self, name: &str) -> Option<u64> {
        self.iter().find(|(k, _)| **k == name).map(|(_, &n)| n)
    }
}

impl std::ops::Index<&str> for Counts {
    type Output = u64;

    /// Panics for a name never counted, as a map's index does.
    fn index(&self, name: &str) -> &u64 {
        let k = NAMES.iter().position(|&n| n == name).filter(|&k| self.0[k] > 0);
        &self.0[k.unwrap_or_else(|| panic!("no {name} counted"))]
    }
}

/// `feed.BookStats`: one book's integrity counters and its top as decimal text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BookStats {
    pub updates_applied: u64,
    pub checksums_verified: u64,
    pub checksum_failures: u64,
    pub gaps: u64,
    pub resyncs: u64,
    pub crossed: u64,
    /// The best prices in fixed point; Python's text (`format_fixed8`) is made when the stats are
    /// read, not each time the top moves.
    pub best_bid: Option<i64>,
    pub best_ask: Option<i64>,
}

/// `feed.FeedStats`. Maps are ordered by key; Python's Counters compare by content, so order is
/// free (the glue hands them over as dicts).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub frames: u64,
    pub messages: Counts,
    pub ignored: BTreeMap<String, u64>,
    pub rejected: BTreeMap<String, u64>,
    pub samples: BTreeMap<String, String>,
    pub rounded: u64,
    pub venue_errors: u64,
    pub books: BTreeMap<String, BookStats>,
    /// Venue-specific counters the Python feed keeps as attributes (`trade_id_gaps`, ...), by name.
    pub extra: BTreeMap<&'static str, u64>,
}

impl Stats {
    /// `FeedStats.reject`: count the reason; keep the first `SAMPLE_BYTES` of the first frame of
    /// each reason, decoded as Python's `bytes.decode("utf-8", "replace")` does.
    pub fn reject(&mut self, reason: &str, raw: &[u8]) {
        *self.rejected.entry(reason.to_owned()).or_default() += 1;
        if !self.samples.contains_key(reason) {
            let head = &raw[..raw.len().min(SAMPLE_BYTES)];
            self.samples.insert(reason.to_owned(), String::from_utf8_lossy(head).into_owned());
        }
    }

    /// Count one frame ignored by design.
    pub fn ignore(&mut self, kind: &str) {
        *self.ignored.entry(kind.to_owned()).or_default() += 1;
    }

    /// `FeedStats.count`: the values a call produced, by TLV name.
    pub fn count(&mut self, out: &[Event]) {
        for value in out {
            self.messages.0[value.slot()] += 1;
        }
    }
}

/// The feed contract (`venues.feed.VenueFeed`), the part that runs per frame. What needs no state
/// of the feed's (URL, subscribe frames, snapshot URLs, REST budget) stays in the Python feed.
/// `Send + Sync` as PyO3 requires of a class's fields (a feed of plain data is both).
pub trait Feed: Send + Sync {
    /// One received text frame: push the values to publish into `out` (after whatever it holds).
    fn on_frame(&mut self, raw: &[u8], ts_recv_ns: i64, out: &mut Vec<Event>);

    /// A REST snapshot the feed asked for. `Err(message)` is Python's `VenueMessageError`: the body
    /// is not a usable snapshot and the key stays wanted (nothing else changes).
    fn on_snapshot(
        &mut self,
        key: &str,
        body: &[u8],
        ts_recv_ns: i64,
        out: &mut Vec<Event>,
    ) -> Result<(), String> {
        let _ = (key, body, ts_recv_ns, out);
        Err("this feed takes no REST snapshots".to_owned())
    }

    /// The connection is gone: drop every book, push the invalidations.
    fn on_disconnect(&mut self, ts_ns: i64, out: &mut Vec<Event>);

    /// Keys whose REST snapshot the feed needs now.
    fn wants_snapshot(&self) -> Vec<String> {
        Vec::new()
    }

    /// Whether [`Feed::wants_snapshot`] is not empty: the check made after every call, so a feed
    /// that asks for snapshots answers it without building the list.
    fn snapshot_wanted(&self) -> bool {
        !self.wants_snapshot().is_empty()
    }

    /// Frames to send now (resubscribe / unsubscribe), each handed out once, byte for byte as the
    /// Python feed writes them.
    fn take_requests(&mut self) -> Vec<Vec<u8>>;

    fn stats(&self) -> &Stats;
}
