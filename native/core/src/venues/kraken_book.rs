//! Kraken books shared by the v1 and v2 APIs, as `tickrelay/venues/kraken_book.py`: pairs, their
//! checksum texts, the CRC32 check and resubscriptions. Pure: no I/O.
//!
//! A book keeps the subscribed depth, and the CRC32 the venue sends is checked after every update
//! (and v2 snapshot): the top 10 asks (ascending) then bids (descending), each price and size text
//! without its "." and leading zeros (v2: formatted at the instrument's precisions). The texts are
//! kept compactly per level ([`Digits`]: a number and a count of trailing zeros, no `String`),
//! beside the book and with exactly its prices. Every level of a message is read first
//! ([`Books::read`]), then the book and its texts change together.

use std::collections::{BTreeMap, HashMap};

use super::common::{disconnect, invalidate, reason, split_snapshot, FxMap, Instrument};
use super::feed::{Event, Level, Stats, SPOT};
use super::kraken_text::{Digits, Text};
use super::numbers::Decimals;
use crate::protocol::symbols::{normalize_pair, KRAKEN};

pub const VENUE: u16 = KRAKEN;
const CHECKED_LEVELS: usize = 10;
/// `kraken_book.MAX_PAIR`: a pair name is ASCII of at most this many characters.
pub const MAX_PAIR: usize = 64;

/// A level read from a message: price, size and (for a size) its checksum texts.
#[derive(Debug, Clone)]
pub struct Read {
    pub price: i64,
    pub size: i64,
    pub text: Option<Text>,
}

type Texts = BTreeMap<i64, Text>;

/// `kraken_book.Pair`: an instrument, its checksum texts per price, its v2 precisions.
#[derive(Debug, Clone)]
pub struct Pair {
    pub inst: Instrument,
    bid_text: Texts,
    ask_text: Texts,
    pub precision: Option<(u8, u8)>,
    /// Its book came over v2 (resubscribe there).
    pub v2: bool,
}

/// What `_lookup` found: a kept pair, or a new one (not kept until `keep`).
#[derive(Debug, Clone, Copy)]
pub enum Found {
    Kept(usize),
    New(Option<(u8, u8)>),
}

impl Found {
    pub fn precision(self, books: &Books) -> Option<(u8, u8)> {
        match self {
            Self::Kept(i) => books.pairs[i].precision,
            Self::New(precision) => precision,
        }
    }
}

/// A checksum as sent: `Some(v)` when it is in the CRC32 range (else it can never match).
pub type Checksum = Option<Option<u32>>;

/// `KrakenBooks`: the state a Kraken connection keeps whatever its API.
#[derive(Debug)]
pub struct Books {
    pub depth: i64,
    pub resync: bool,
    pub stats: Stats,
    pub pairs: Vec<Pair>,
    index: FxMap<String, usize>,
    requests: Vec<Vec<u8>>,
    pub precisions: HashMap<String, (u8, u8)>,
    pub dec: Decimals,
    /// The checksum's text of the top levels; a level's text as it is read.
    crc: Vec<u8>,
    levels: (Vec<Level>, Vec<Level>),
}

impl Books {
    pub fn new(depth: i64, resync: bool) -> Self {
        let mut stats = Stats::default();
        stats.extra.insert("unverified_checksums", 0);
        Self {
            depth,
            resync,
            stats,
            pairs: Vec::new(),
            index: FxMap::default(),
            requests: Vec::new(),
            precisions: HashMap::new(),
            dec: Decimals::default(),
            crc: Vec::new(),
            levels: (Vec::new(), Vec::new()),
        }
    }

    pub fn take_requests(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.requests)
    }

    pub fn on_disconnect(&mut self, out: &mut Vec<Event>) {
        self.requests.clear();
        disconnect(VENUE, self.pairs.iter_mut().map(|p| &mut p.inst), &mut self.stats, out);
        for p in &mut self.pairs {
            p.bid_text.clear();
            p.ask_text.clear();
        }
    }

    /// `_pairs.get(name)`.
    pub fn kept(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// `_lookup`: the pair of that name, or a new one not yet kept; `None` for a name that is no
    /// pair (`SymbolError`).
    pub fn lookup(&self, name: &str) -> Option<Found> {
        if let Some(i) = self.kept(name) {
            return Some(Found::Kept(i));
        }
        pair_symbol(name)?;
        Some(Found::New(self.precisions.get(name).copied()))
    }

    /// `_keep`: the kept pair of that name, made now if new (`name` was looked up).
    pub fn keep(&mut self, name: &str) -> usize {
        if let Some(i) = self.kept(name) {
            return i;
        }
        let depth = usize::try_from(self.depth.max(0)).unwrap_or(usize::MAX);
        let symbol = pair_symbol(name).unwrap_or_default();
        let Some(inst) = Instrument::new(name, symbol, Some(depth)) else { return usize::MAX };
        let precision = self.precisions.get(name).copied();
        let p = Pair { inst, bid_text: Texts::new(), ask_text: Texts::new(), precision, v2: false };
        self.pairs.push(p);
        self.index.insert(name.to_owned(), self.pairs.len() - 1);
        self.pairs.len() - 1
    }

    /// `_read`: one level of price and size texts (`None`: the frame is bad).
    pub fn read(&mut self, precision: Option<(u8, u8)>, price: &str, size: &str) -> Option<Read> {
        let (price_v, size_v) = self.dec.level(price, size)?;
        let text = match (size_v, precision) {
            (0, _) => None,
            (_, None) => Some(Text::of(&Digits::sent(price), &Digits::sent(size), &mut self.crc)),
            (_, Some((pp, sp))) => {
                Some(Text::of(&Digits::at(price_v, pp)?, &Digits::at(size_v, sp)?, &mut self.crc))
            }
        };
        Some(Read { price: price_v, size: size_v, text })
    }

    /// `_load`: a snapshot replaces the book and its texts.
    pub fn load(&mut self, i: usize, bids: &[Read], asks: &[Read], out: &mut Vec<Event>) {
        let p = &mut self.pairs[i];
        let stats = &mut self.stats;
        let live = p.inst.live;
        p.inst.book_stats(stats, |s| s.resyncs += u64::from(live));
        let (bid_levels, ask_levels) = &mut self.levels;
        load_texts(&mut p.bid_text, bids, bid_levels);
        load_texts(&mut p.ask_text, asks, ask_levels);
        p.inst.book.load(bid_levels, ask_levels);
        p.truncate();
        p.inst.live = true;
        let (now_bids, now_asks) = p.inst.book.levels();
        split_snapshot(p.inst.asset_id, VENUE, 0, 0, &now_bids, &now_asks, out);
        p.inst.render(stats);
    }

    /// `_update`: an update applied, its L2Delta (with the levels pushed out of the depth), the
    /// checksum checked.
    #[allow(clippy::too_many_arguments)]
    pub fn update(
        &mut self,
        i: usize,
        bids: &[Read],
        asks: &[Read],
        checksum: Checksum,
        ts: i64,
        raw: &[u8],
        out: &mut Vec<Event>,
    ) {
        let p = &mut self.pairs[i];
        p.inst.book_stats(&mut self.stats, |_| ());
        let mut bid_levels = update_texts(&mut p.bid_text, bids);
        let mut ask_levels = update_texts(&mut p.ask_text, asks);
        p.inst.book.update(&bid_levels, &ask_levels);
        let (gone_bids, gone_asks) = p.truncate();
        bid_levels.extend(gone_bids.iter().map(|&price| (price, 0)));
        ask_levels.extend(gone_asks.iter().map(|&price| (price, 0)));
        p.inst.book_stats(&mut self.stats, |s| s.updates_applied += 1);
        out.push(Event::L2Delta {
            asset_id: p.inst.asset_id,
            venue_id: VENUE,
            asset_type: SPOT,
            flags: 0,
            first_seq: 0,
            last_seq: 0,
            exchange_ts_ns: ts,
            bids: bid_levels,
            asks: ask_levels,
        });
        self.check(i, checksum, raw, out);
        let p = &mut self.pairs[i];
        if p.inst.live && p.inst.book.is_crossed() {
            p.inst.book_stats(&mut self.stats, |s| s.crossed += 1);
        }
        p.inst.render(&mut self.stats);
    }

    /// `_check`: the CRC32 of the top 10 levels' texts against the venue's.
    pub fn check(&mut self, i: usize, checksum: Checksum, raw: &[u8], out: &mut Vec<Event>) {
        let Some(checksum) = checksum else { return };
        let p = &mut self.pairs[i];
        if p.v2 && p.precision.is_none() {
            *self.stats.extra.entry("unverified_checksums").or_default() += 1;
            return;
        }
        let crc = &mut self.crc;
        crc.clear();
        let (asks, bids) = (p.ask_text.values().take(CHECKED_LEVELS), p.bid_text.values().rev());
        for text in asks.chain(bids.take(CHECKED_LEVELS)) {
            crc.extend_from_slice(text.bytes());
        }
        if checksum == Some(crc32fast::hash(crc)) {
            p.inst.book_stats(&mut self.stats, |s| s.checksums_verified += 1);
            return;
        }
        p.inst.book_stats(&mut self.stats, |s| s.checksum_failures += 1);
        if !self.stats.samples.contains_key("checksum_mismatch") {
            let head = &raw[..raw.len().min(super::feed::SAMPLE_BYTES)];
            self.stats
                .samples
                .insert("checksum_mismatch".to_owned(), String::from_utf8_lossy(head).into_owned());
        }
        if self.resync {
            invalidate(VENUE, &mut p.inst, reason::CHECKSUM_MISMATCH, &mut self.stats, out);
            p.bid_text.clear();
            p.ask_text.clear();
            let (v2, name) = (p.v2, p.inst.venue_symbol.clone());
            for kind in ["unsubscribe", "subscribe"] {
                let request = if v2 {
                    self.v2_request(kind, "book", &[&name])
                } else {
                    self.v1_request(kind, "book", &[&name])
                };
                self.requests.push(request);
            }
        } else {
            out.push(Event::StateInvalidation {
                venue_id: VENUE,
                asset_type: SPOT,
                reason: reason::CHECKSUM_MISMATCH,
                asset_ids: vec![p.inst.asset_id],
            });
        }
    }
}

impl Pair {
    /// `truncate`: keep the subscribed depth in the book and its texts; the prices dropped.
    fn truncate(&mut self) -> (Vec<i64>, Vec<i64>) {
        let gone = self.inst.book.truncate(None);
        for price in &gone.0 {
            self.bid_text.remove(price);
        }
        for price in &gone.1 {
            self.ask_text.remove(price);
        }
        gone
    }
}

/// The normalized symbol of a venue pair name (`Pair.__init__`); `None` for a name that is no pair.
pub fn pair_symbol(name: &str) -> Option<String> {
    if !name.is_ascii() || name.len() > MAX_PAIR {
        return None;
    }
    let (base, quote) = name.split_once('/').unwrap_or((name, ""));
    normalize_pair(base, quote)
}

/// A snapshot's texts (`_load`): every level with a size, as the book keeps them.
fn load_texts(texts: &mut Texts, read: &[Read], levels: &mut Vec<Level>) {
    // built in one pass, a later duplicate winning, as `OrderBook::load`
    *texts = read.iter().filter_map(|r| Some((r.price, r.text.clone()?))).collect();
    levels.clear();
    levels.extend(read.iter().map(|r| (r.price, r.size)));
}

/// `_texts` for an update: the text of a level follows the level; the levels as a delta carries them.
fn update_texts(texts: &mut Texts, read: &[Read]) -> Vec<Level> {
    for r in read {
        match &r.text {
            Some(text) => {
                texts.insert(r.price, text.clone());
            }
            None => {
                texts.remove(&r.price);
            }
        }
    }
    read.iter().map(|r| (r.price, r.size)).collect()
}
