//! Kraken books shared by the v1 and v2 APIs, as `tickrelay/venues/kraken_book.py`: pairs, their
//! checksum texts, the CRC32 check and resubscriptions. Pure: no I/O.
//!
//! A book keeps the subscribed depth, and the CRC32 the venue sends is checked after every update
//! (and v2 snapshot): the top 10 asks (ascending) then bids (descending), each price and size text
//! without its "." and leading zeros (v2: formatted at the instrument's precisions). Only those 20
//! texts are ever needed, and nearly every level's is its price and size written at the pair's
//! places ([`Mark`]), so they are written from the book when a checksum is checked. A pair keeps
//! the places that hold for its levels and, per side, the text of each level they do not hold for
//! (a number written otherwise, or at other places): usually none. A 1000-deep snapshot so reads
//! no text and builds no map of them: the 10 snapshot frames (350 KB) of the Kraken recording took
//! 1.5-2.6 ms with a text kept per level, and take 0.94 ms (interleaved runs); updates cost the same
//! (the last checksum's texts are reused: see `Written`). Every level of a message is read first
//! ([`Books::read`]), then the book and its texts change together.

use std::collections::{BTreeMap, HashMap};

use super::common::{disconnect, invalidate, reason, split_snapshot, FxMap, Instrument};
use super::feed::{Event, Level, Stats, SPOT};
use super::kraken_text::{plain_places, Digits, Mark, Text};
use super::numbers::Decimals;
use crate::protocol::symbols::{normalize_pair, KRAKEN};

pub const VENUE: u16 = KRAKEN;
const CHECKED_LEVELS: usize = 10;
/// `kraken_book.MAX_PAIR`: a pair name is ASCII of at most this many characters.
pub const MAX_PAIR: usize = 64;

/// A level read from a message: price, size and how its checksum text is had.
#[derive(Debug, Clone)]
pub struct Read {
    pub price: i64,
    pub size: i64,
    pub mark: Mark,
}

type Texts = BTreeMap<i64, Text>;

/// `kraken_book.Pair`: an instrument, its checksum texts per price, its v2 precisions.
#[derive(Debug, Clone)]
pub struct Pair {
    pub inst: Instrument,
    /// The places (price, size) a level's checksum text is written at, unless it has its own text
    /// below; `None` while every level has.
    places: Option<(u8, u8)>,
    /// The levels with their own text.
    bid_text: Texts,
    ask_text: Texts,
    /// Each side's part of the last checksum text.
    bid_written: Written,
    ask_written: Written,
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
        let (bid_text, ask_text) = (Texts::new(), Texts::new());
        let (bid_written, ask_written) = (Written::default(), Written::default());
        let p =
            Pair { inst, places: None, bid_text, ask_text, bid_written, ask_written, precision, v2: false };
        self.pairs.push(p);
        self.index.insert(name.to_owned(), self.pairs.len() - 1);
        self.pairs.len() - 1
    }

    /// `_read`: one level of price and size texts (`None`: the frame is bad).
    pub fn read(&mut self, precision: Option<(u8, u8)>, price: &str, size: &str) -> Option<Read> {
        let rounded = self.dec.rounded;
        let (price_v, size_v) = self.dec.level(price, size)?;
        let mark = match (size_v, precision) {
            (0, _) => Mark::Gone,
            (_, None) => match (plain_places(price), plain_places(size)) {
                // as sent, and exact: the text is the value at its places
                (Some(pp), Some(sp)) if self.dec.rounded == rounded => Mark::Places(pp, sp),
                _ => Mark::Text(Text::of(&Digits::sent(price), &Digits::sent(size), &mut self.crc)),
            },
            (_, Some((pp, sp))) => {
                Digits::at(price_v, pp)?;
                Digits::at(size_v, sp)?;
                Mark::Places(pp, sp)
            }
        };
        Some(Read { price: price_v, size: size_v, mark })
    }

    /// `_load`: a snapshot replaces the book and its texts.
    pub fn load(&mut self, i: usize, bids: &[Read], asks: &[Read], out: &mut Vec<Event>) {
        let p = &mut self.pairs[i];
        let stats = &mut self.stats;
        let live = p.inst.live;
        p.inst.book_stats(stats, |s| s.resyncs += u64::from(live));
        let (bid_levels, ask_levels) = &mut self.levels;
        p.places = bids.iter().chain(asks).find_map(|r| match r.mark {
            Mark::Places(pp, sp) => Some((pp, sp)),
            _ => None,
        });
        load_texts(&mut p.bid_text, p.places, bids, bid_levels);
        load_texts(&mut p.ask_text, p.places, asks, ask_levels);
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
        let mut bid_levels = update_texts(&mut p.bid_text, &mut p.places, bids);
        let mut ask_levels = update_texts(&mut p.ask_text, &mut p.places, asks);
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
        let book = &p.inst.book;
        p.ask_written.write(book.asks_best_first(), &p.ask_text, p.places, crc);
        p.bid_written.write(book.bids_best_first(), &p.bid_text, p.places, crc);
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

/// One side's part of the last checksum text, with the levels it was written from. A level's text
/// at `places` is a function of its price and size, so a checksum whose side has the same top 10
/// and no level with its own text (most Kraken updates change levels deeper down) copies the
/// side's text whole, and any other copies the text of every level it finds here (an own text
/// first) and writes only the levels new to it.
/// Writing all 20 levels' numbers for every update cost Kraken 0.6 µs a frame.
#[derive(Debug, Clone, Default)]
struct Written {
    /// The places the text was written at: `None` while a level had its own text (nothing is
    /// reused then).
    places: Option<(u8, u8)>,
    levels: Vec<Level>,
    /// Where each level's text ends in `text`.
    ends: Vec<usize>,
    text: Vec<u8>,
    /// The buffers of the next one.
    spare: (Vec<Level>, Vec<usize>, Vec<u8>),
}

impl Written {
    /// The checksum's part of one side (appended to `crc`): its best levels' texts, each its own
    /// or written at `places`.
    fn write(
        &mut self,
        levels: impl Iterator<Item = Level>,
        texts: &Texts,
        places: Option<(u8, u8)>,
        crc: &mut Vec<u8>,
    ) {
        let (mut top, mut ends, mut text) = std::mem::take(&mut self.spare);
        top.clear();
        top.extend(levels.take(CHECKED_LEVELS));
        // every text of the last one is its level's at `self.places`, if that is set; a level may
        // have its own text now with the same price and size (sent again, written otherwise)
        let reuse = places.is_some() && self.places == places;
        if reuse && texts.is_empty() && top == self.levels {
            crc.extend_from_slice(&self.text);
            self.spare = (top, ends, text);
            return;
        }
        ends.clear();
        text.clear();
        for &(price, size) in &top {
            let own = if texts.is_empty() { None } else { texts.get(&price) };
            match (own, places) {
                (Some(own), _) => text.extend_from_slice(own.bytes()),
                (None, Some((pp, sp))) => match if reuse { self.find((price, size)) } else { None } {
                    Some((start, end)) => text.extend_from_slice(&self.text[start..end]),
                    None => {
                        Digits::write_at(price, pp, &mut text);
                        Digits::write_at(size, sp, &mut text);
                    }
                },
                (None, None) => {} // cannot be: with no places, every level has its own text
            }
            ends.push(text.len());
        }
        crc.extend_from_slice(&text);
        self.places = if texts.is_empty() { places } else { None };
        let old = (
            std::mem::replace(&mut self.levels, top),
            std::mem::replace(&mut self.ends, ends),
            std::mem::replace(&mut self.text, text),
        );
        self.spare = old;
    }

    /// Where the text of `level` is in `text`, if it is there.
    fn find(&self, level: Level) -> Option<(usize, usize)> {
        let i = self.levels.iter().position(|&l| l == level)?;
        Some((if i == 0 { 0 } else { self.ends[i - 1] }, self.ends[i]))
    }
}

/// The level read as `r` keeps its own text in `texts` if it needs one (the pair's places being
/// `places`), and none otherwise; `buf` is scratch.
fn set_text(texts: &mut Texts, r: &Read, places: Option<(u8, u8)>, buf: &mut Vec<u8>) {
    let own = match &r.mark {
        Mark::Gone => None,
        &Mark::Places(pp, sp) if places == Some((pp, sp)) => None,
        &Mark::Places(pp, sp) => Digits::at(r.price, pp)
            .zip(Digits::at(r.size, sp))
            .map(|(price, size)| Text::of(&price, &size, buf)),
        Mark::Text(text) => Some(text.clone()),
    };
    match own {
        Some(text) => texts.insert(r.price, text),
        None => texts.remove(&r.price),
    };
}

/// A snapshot's texts (`_load`): the own text of every level with a size that needs one, a later
/// duplicate winning, as `OrderBook::load`.
fn load_texts(texts: &mut Texts, places: Option<(u8, u8)>, read: &[Read], levels: &mut Vec<Level>) {
    texts.clear();
    let mut crc = Vec::new();
    for r in read.iter().filter(|r| !matches!(r.mark, Mark::Gone)) {
        set_text(texts, r, places, &mut crc);
    }
    levels.clear();
    levels.extend(read.iter().map(|r| (r.price, r.size)));
}

/// `_texts` for an update: the text of a level follows the level; the levels as a delta carries
/// them. A pair with no places yet (every level has its own text) takes the first level's.
fn update_texts(texts: &mut Texts, places: &mut Option<(u8, u8)>, read: &[Read]) -> Vec<Level> {
    let mut crc = Vec::new();
    for r in read {
        if let (None, &Mark::Places(pp, sp)) = (*places, &r.mark) {
            *places = Some((pp, sp));
        }
        set_text(texts, r, *places, &mut crc);
    }
    read.iter().map(|r| (r.price, r.size)).collect()
}
