//! What the venue feeds share, as the helpers of `tickrelay/venues/feed.py` (`Instrument`,
//! `disconnect`, `invalidate`) and `protocol.messages.split_snapshot`. Pure: no I/O.
//!
//! An [`Instrument`] keeps one instrument's book, whether its InstrumentMeta went out, whether
//! its book is live, and renders its best prices into its `BookStats` (kept in the feed's
//! [`Stats`] by venue symbol, created with its first book message, as Python's `book_stats`).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::book::OrderBook;
use super::feed::{BookStats, Event, Level, Stats, SPOT};
use super::finish::SNAPSHOT_END;
use super::numbers::places;

/// `protocol.messages.Reason`.
pub mod reason {
    pub const DISCONNECT: u8 = 1;
    pub const SEQUENCE_GAP: u8 = 2;
    pub const CHECKSUM_MISMATCH: u8 = 3;
    pub const STALE_FEED: u8 = 4;
    pub const CROSSED_BOOK: u8 = 6; // RECOVERED (5) is the finisher's, never a feed's
}

/// `SnapshotFlags.BEGIN` (END is the finisher's [`SNAPSHOT_END`]).
pub const BEGIN: u8 = 1;
/// `MAX_SNAPSHOT_LEVELS`: levels one L2Snapshot TLV holds.
pub const MAX_SNAPSHOT_LEVELS: usize = 4093;

/// FxHash (rustc's): the maps on the hot path are keyed by short symbols and update ids (std's
/// SipHash costs ~200 instructions for a product id; a feed's maps hold only the instruments it
/// kept, so a key an exchange could craft to collide buys it nothing).
#[derive(Default)]
pub struct Fx(u64);

impl Hasher for Fx {
    fn finish(&self) -> u64 {
        self.0
    }
    /// Eight bytes a step, as rustc-hash's FxHasher (a product id is one or two steps).
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            self.write_u64(u64::from_le_bytes(w));
        }
        let tail = words.remainder();
        if !tail.is_empty() {
            let mut w = [0u8; 8];
            w[..tail.len()].copy_from_slice(tail);
            self.write_u64(u64::from_le_bytes(w));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_i64(&mut self, n: i64) {
        self.write_u64(n as u64);
    }
}

pub type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<Fx>>;

/// `venues.feed.Instrument`.
#[derive(Debug, Clone)]
pub struct Instrument {
    pub venue_symbol: String,
    pub symbol: String,
    pub asset_id: u64,
    /// Its InstrumentMeta was published.
    pub announced: bool,
    pub book: OrderBook,
    /// A snapshot was applied and no trouble since.
    pub live: bool,
    /// Its `BookStats` exist (`stats.books[venue_symbol]`).
    pub has_stats: bool,
    /// The best prices its stats show.
    pub top: (Option<i64>, Option<i64>),
}

impl Instrument {
    /// `None` when the symbol is empty (`SymbolError`).
    pub fn new(venue_symbol: &str, symbol: String, depth: Option<usize>) -> Option<Self> {
        let asset_id = crate::protocol::symbols::asset_id_for(&symbol)?;
        Some(Self {
            venue_symbol: venue_symbol.to_owned(),
            symbol,
            asset_id,
            announced: false,
            book: OrderBook::new(depth),
            live: false,
            has_stats: false,
            top: (None, None),
        })
    }

    /// `book_stats`: `f` on its `BookStats`, created (empty) with the first call.
    pub fn book_stats<R>(&mut self, stats: &mut Stats, f: impl FnOnce(&mut BookStats) -> R) -> R {
        self.has_stats = true;
        match stats.books.get_mut(&self.venue_symbol) {
            Some(s) => f(s),
            None => f(stats.books.entry(self.venue_symbol.clone()).or_default()),
        }
    }

    /// `render`: show the book's best prices in its stats.
    pub fn render(&mut self, stats: &mut Stats) {
        let top = self.book.top_prices();
        if top != self.top && self.has_stats {
            self.top = top;
            if let Some(s) = stats.books.get_mut(&self.venue_symbol) {
                (s.best_bid, s.best_ask) = top;
            }
        }
    }

    /// `drop`: forget the book; it is dark until the next snapshot.
    pub fn drop_book(&mut self, stats: &mut Stats) {
        self.book.clear();
        self.live = false;
        self.top = (None, None);
        if self.has_stats {
            if let Some(s) = stats.books.get_mut(&self.venue_symbol) {
                (s.best_bid, s.best_ask) = (None, None);
            }
        }
    }

    /// `announce`: InstrumentMeta before the instrument's first message; its decimals are the
    /// places of the first price and size texts seen, unless the venue names them.
    pub fn announce(
        &mut self,
        venue_id: u16,
        price: Option<&str>,
        size: Option<&str>,
        decimals: Option<(u8, u8)>,
        out: &mut Vec<Event>,
    ) {
        if !self.announced {
            self.announced = true;
            let (price_decimals, size_decimals) = decimals.unwrap_or_else(|| (places(price), places(size)));
            out.push(Event::InstrumentMeta {
                asset_id: self.asset_id,
                venue_id,
                asset_type: SPOT,
                price_decimals,
                size_decimals,
                venue_symbol: self.venue_symbol.clone(),
                symbol: self.symbol.clone(),
            });
        }
    }
}

/// `disconnect`: every book is gone; one StateInvalidation for the venue, an L2Reset per book ever
/// published, each instrument dark (a resync counted for each that was live).
pub fn disconnect<'a>(
    venue_id: u16,
    instruments: impl IntoIterator<Item = &'a mut Instrument>,
    stats: &mut Stats,
    out: &mut Vec<Event>,
) {
    out.push(Event::StateInvalidation {
        venue_id,
        asset_type: SPOT,
        reason: reason::DISCONNECT,
        asset_ids: Vec::new(),
    });
    for inst in instruments {
        if inst.has_stats {
            if inst.live {
                inst.book_stats(stats, |s| s.resyncs += 1);
            }
            out.push(Event::L2Reset {
                asset_id: inst.asset_id,
                venue_id,
                asset_type: SPOT,
                reason: reason::DISCONNECT,
            });
        }
        inst.drop_book(stats);
    }
}

/// `invalidate`: one instrument's book is no longer trusted; StateInvalidation + L2Reset, the book
/// dropped.
pub fn invalidate(venue_id: u16, inst: &mut Instrument, reason: u8, stats: &mut Stats, out: &mut Vec<Event>) {
    out.push(Event::StateInvalidation { venue_id, asset_type: SPOT, reason, asset_ids: vec![inst.asset_id] });
    out.push(Event::L2Reset { asset_id: inst.asset_id, venue_id, asset_type: SPOT, reason });
    inst.drop_book(stats);
}

/// `split_snapshot`: a book as one L2Snapshot, or as parts numbered from 0 when its levels do not
/// fit one TLV value; bids fill the parts first, then asks, each side best first; the first part
/// is flagged BEGIN and the last END.
pub fn split_snapshot(
    asset_id: u64,
    venue_id: u16,
    exchange_seq: u64,
    exchange_ts_ns: i64,
    bids: &[Level],
    asks: &[Level],
    out: &mut Vec<Event>,
) {
    let total = bids.len() + asks.len();
    let parts = total.div_ceil(MAX_SNAPSHOT_LEVELS).max(1);
    for n in 0..parts {
        let (from, to) = (n * MAX_SNAPSHOT_LEVELS, ((n + 1) * MAX_SNAPSHOT_LEVELS).min(total));
        let side = |levels: &[Level], offset: usize| {
            levels[from.saturating_sub(offset).min(levels.len())..to.saturating_sub(offset).min(levels.len())]
                .to_vec()
        };
        out.push(Event::L2Snapshot {
            asset_id,
            venue_id,
            asset_type: SPOT,
            flags: if n == 0 { BEGIN } else { 0 } | if n + 1 == parts { SNAPSHOT_END } else { 0 },
            exchange_seq,
            exchange_ts_ns,
            part: u16::try_from(n).unwrap_or(u16::MAX),
            bids: side(bids, 0),
            asks: side(asks, bids.len()),
        });
    }
}

/// `Side`: the aggressor of a trade.
pub const BUY: u8 = 0;
pub const SELL: u8 = 1;

/// A JSON string as `msgspec.json.encode` writes it: `"` and `\\` escaped, \b \f \n \r \t, other
/// control characters as `\u00XX`, everything else (DEL, non-ASCII) as is. For the request frames
/// the feeds hand out, byte for byte as the Python feed's.
pub fn encode_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for &c in s.as_bytes() {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            c if c < 0x20 => out.extend_from_slice(format!("\\u{c:04x}").as_bytes()),
            c => out.push(c),
        }
    }
    out.push(b'"');
}

/// A JSON array of strings, as `msgspec.json.encode` writes a list of str.
pub fn encode_strs<'a>(out: &mut Vec<u8>, items: impl IntoIterator<Item = &'a str>) {
    out.push(b'[');
    for (n, item) in items.into_iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        encode_str(out, item);
    }
    out.push(b']');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(bids: usize, asks: usize) -> Vec<(u8, u16, usize, usize)> {
        let level = |i: usize| (i as i64 + 1, 1);
        let (b, a): (Vec<Level>, Vec<Level>) =
            ((0..bids).map(level).collect(), (0..asks).map(level).collect());
        let mut out = Vec::new();
        split_snapshot(7, 102, 0, 0, &b, &a, &mut out);
        out.iter()
            .map(|e| match e {
                Event::L2Snapshot { flags, part, bids, asks, .. } => (*flags, *part, bids.len(), asks.len()),
                _ => unreachable!(),
            })
            .collect()
    }

    #[test]
    fn snapshots_split_as_python() {
        assert_eq!(parts(0, 0), [(3, 0, 0, 0)]);
        assert_eq!(parts(2, 3), [(3, 0, 2, 3)]);
        assert_eq!(parts(4093, 1), [(1, 0, 4093, 0), (2, 1, 0, 1)]);
        assert_eq!(parts(5000, 5000), [(1, 0, 4093, 0), (0, 1, 907, 3186), (2, 2, 0, 1814)]);
    }

    #[test]
    fn disconnect_resets_books_ever_published() {
        let mut stats = Stats::default();
        let mut a = Instrument::new("A-B", "A/B".into(), None).unwrap();
        let mut b = Instrument::new("C-D", "C/D".into(), None).unwrap();
        a.book.load(&[(1, 1)], &[(2, 1)]);
        a.live = true;
        a.book_stats(&mut stats, |_| ());
        a.render(&mut stats);
        assert_eq!(stats.books["A-B"].best_ask, Some(2));
        let mut out = Vec::new();
        disconnect(102, [&mut a, &mut b], &mut stats, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(stats.books["A-B"].resyncs, 1);
        assert_eq!(stats.books["A-B"].best_ask, None);
        assert!(!a.live && a.book.is_empty());
    }

    #[test]
    fn strings_encode_as_msgspec() {
        // msgspec.json.encode(['a"b\\c\x01\x08\x0c\n\r\t\x1f\x7f\u00e9'])
        let mut out = Vec::new();
        encode_strs(&mut out, ["a\"b\\c\x01\x08\x0c\n\r\t\x1f\x7f\u{e9}", ""]);
        assert_eq!(out, "[\"a\\\"b\\\\c\\u0001\\b\\f\\n\\r\\t\\u001f\x7f\u{e9}\",\"\"]".as_bytes());
    }
}
