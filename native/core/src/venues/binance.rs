//! Binance spot market streams, as `tickrelay/venues/binance.py` (its docstring says what each
//! frame becomes). Pure: no I/O.
//!
//! Same values in the same order, same stats after every call, as the Python feed: the combined
//! stream fast path and the envelope read of every other frame ([`super::binance_wire`]); trades,
//! bookTickers (checked against the book when their update id meets a diff's), and depth diffs
//! buffered until the REST snapshot, applied with Binance's continuity rules (gap, stale, resync).
//! A frame is read and checked whole before anything changes. On the hot path nothing allocates
//! but the level vectors an L2Delta owns: symbols are looked up by the frame's text, texts go
//! straight to fixed point.

use std::collections::VecDeque;

use super::binance_wire::{self as wire, fixed, Kind, LevelsError, Payload};
use super::common::{FxMap, Instrument};
use super::feed::{Event, Feed, Level, Stats, SPOT};
use super::typed::{plain_run, too_deep, Bad};

pub const BUFFER_LIMIT: usize = 10_000;
pub const TICKER_LIMIT: usize = 10_000;
pub const DIFF_TOPS_KEPT: usize = 64;
/// `MAX_DIFF_LEVELS`: what one L2Delta TLV holds.
pub const MAX_DIFF_LEVELS: usize = 4093;
const VENUE: u16 = 100;
const MS: i64 = 1_000_000;
const COMBINED_PREFIX: &[u8] = b"{\"stream\":\"";
const BUY: u8 = 0;
const SELL: u8 = 1;
const MATCHED: &str = "bookticker_matched";
const MISMATCHED: &str = "bookticker_mismatched";

/// (best bid, its size, best ask, its size): a book's top or a bookTicker's.
type Top = [i64; 4];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Wait,
    Pending,
    Live,
}

#[derive(Debug)]
struct Diff {
    first: i64,
    last: i64,
    ts: i64,
    bids: Vec<Level>,
    asks: Vec<Level>,
}

/// bookTickers by update id in the order first inserted, as the Python dict: a re-inserted id
/// keeps its place, the oldest goes first. Removals leave stale order entries, skipped later.
#[derive(Debug, Default)]
struct Tickers {
    map: FxMap<i64, (u64, Top)>,
    order: VecDeque<(i64, u64)>,
    next: u64,
}

impl Tickers {
    fn insert(&mut self, u: i64, quote: Top) {
        if let Some(entry) = self.map.get_mut(&u) {
            entry.1 = quote;
            return;
        }
        self.next += 1;
        self.map.insert(u, (self.next, quote));
        self.order.push_back((u, self.next));
        if self.map.len() > TICKER_LIMIT {
            self.pop_oldest();
        }
        if self.order.len() > 2 * self.map.len() + 64 {
            let map = &self.map;
            self.order.retain(|(u, seq)| map.get(u).is_some_and(|e| e.0 == *seq));
        }
    }

    fn oldest(&mut self) -> Option<i64> {
        while let Some(&(u, seq)) = self.order.front() {
            if self.map.get(&u).is_some_and(|e| e.0 == seq) {
                return Some(u);
            }
            self.order.pop_front();
        }
        None
    }

    fn pop_oldest(&mut self) {
        if let Some(u) = self.oldest() {
            self.map.remove(&u);
            self.order.pop_front();
        }
    }

    fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
    }
}

/// A symbol's book and its Binance continuity state (`_Instrument`; `base.live` is set only for
/// `disconnect`, as Python's: `state` says more).
#[derive(Debug)]
struct Inst {
    base: Instrument,
    state: State,
    last_u: i64,
    buffer: VecDeque<Diff>,
    depth_seen: bool,
    tickers: Tickers,
    diff_tops: VecDeque<(i64, Top)>,
}

/// One Binance spot connection's parsing state (`BinanceFeed`).
#[derive(Debug, Default)]
pub struct BinanceFeed {
    pairs: FxMap<String, String>,
    stats: Stats,
    insts: Vec<Inst>,
    index: FxMap<Vec<u8>, usize>, // by venue symbol
    wanted: Vec<usize>,
    scratch: wire::Scratch,
    /// The instrument `lookup` found last: a connection's frames mostly name the same symbol
    /// again, and comparing its text is cheaper than hashing it.
    last: usize,
}

impl BinanceFeed {
    /// `BinanceFeed(pairs=...)`: `pairs` maps venue symbols to `BASE/QUOTE` (exchangeInfo).
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut feed = Self { pairs: pairs.into_iter().collect(), ..Self::default() };
        feed.stats.extra.insert(MATCHED, 0);
        feed.stats.extra.insert(MISMATCHED, 0);
        feed
    }

    /// From `native_spec()`'s parameters: `pairs`, venue symbol and pair alternating.
    pub fn from_params(params: &super::Params) -> Result<Self, String> {
        let flat = params.list("pairs")?;
        if flat.len() % 2 != 0 {
            return Err("parameter \"pairs\" must alternate venue symbol and pair".to_owned());
        }
        Ok(Self::new(flat.chunks(2).map(|kv| (kv[0].clone(), kv[1].clone()))))
    }

    fn reject(&mut self, reason: &str, raw: &[u8]) {
        self.stats.reject(reason, raw);
    }

    fn want(&mut self, idx: usize) {
        if !self.wanted.contains(&idx) {
            self.wanted.push(idx);
        }
    }

    /// `_lookup`: the index of the symbol's instrument, or a new one not yet kept (SymbolError:
    /// None).
    fn lookup(&mut self, venue_symbol: &[u8]) -> Option<Result<usize, Instrument>> {
        if self.insts.get(self.last).is_some_and(|i| i.base.venue_symbol.as_bytes() == venue_symbol) {
            return Some(Ok(self.last));
        }
        if let Some(&idx) = self.index.get(venue_symbol) {
            self.last = idx;
            return Some(Ok(idx));
        }
        let venue_symbol = std::str::from_utf8(venue_symbol).ok()?; // read as a str: UTF-8
        let symbol = match self.pairs.get(venue_symbol).filter(|s| !s.is_empty()) {
            Some(pair) => pair.clone(),
            None => wire::normalize_symbol(venue_symbol)?,
        };
        Instrument::new(venue_symbol, symbol, None).map(Err)
    }

    /// `_keep`: the instrument `lookup` found or made.
    fn keep(&mut self, found: Result<usize, Instrument>) -> usize {
        match found {
            Ok(idx) => idx,
            Err(base) => {
                self.index.insert(base.venue_symbol.as_bytes().to_vec(), self.insts.len());
                self.insts.push(Inst {
                    base,
                    state: State::Wait,
                    last_u: 0,
                    buffer: VecDeque::new(),
                    depth_seen: false,
                    tickers: Tickers::default(),
                    diff_tops: VecDeque::new(),
                });
                self.insts.len() - 1
            }
        }
    }

    /// `Instrument.book_stats`: `f` on the instrument's BookStats (made with the first call).
    fn book_stats(&mut self, idx: usize, f: impl FnOnce(&mut super::feed::BookStats)) {
        let Self { insts, stats, .. } = self;
        insts[idx].base.book_stats(stats, f);
    }

    fn general(&mut self, raw: &[u8], out: &mut Vec<Event>) {
        let env = match wire::envelope(raw) {
            Ok(env) => env,
            Err(Bad::TooDeep) => return self.reject("too_deep", raw),
            Err(Bad::Invalid) => {
                return self.reject(if too_deep(raw) { "too_deep" } else { "invalid_json" }, raw)
            }
        };
        if env.error || env.code {
            self.stats.venue_errors += 1;
            return self.reject("venue_error", raw);
        }
        let (kind, body): (&str, &[u8]) = match (&env.stream, env.data, &env.e) {
            (Some(stream), Some(data), _) => {
                (std::str::from_utf8(wire::stream_kind(stream.as_bytes())).unwrap_or_default(), data)
            }
            (_, _, Some(e)) => (Kind::of_event(e), raw),
            _ if env.u => ("bookTicker", raw),
            _ if env.id => return self.stats.ignore("subscription_ack"),
            _ => return self.reject("unknown_shape", raw),
        };
        let Some(schema) = Kind::of(kind.as_bytes()) else {
            return self.reject(&format!("unknown_kind:{kind}"), raw);
        };
        let mut scratch = std::mem::take(&mut self.scratch);
        match wire::data(body, schema, &mut scratch) {
            Ok(payload) => self.dispatch(payload, &scratch, raw, out),
            Err(_) => self.reject(&format!("invalid_{}", schema.name()), raw),
        }
        self.scratch = scratch;
    }

    fn dispatch(&mut self, payload: Payload<'_>, scratch: &wire::Scratch, raw: &[u8], out: &mut Vec<Event>) {
        let s = match &payload {
            Payload::Kline => return self.stats.ignore("kline"),
            Payload::Trade { s, .. } | Payload::BookTicker { s, .. } | Payload::Depth { s, .. } => s.as_ref(),
        };
        let Some(found) = self.lookup(s) else {
            return self.reject("unknown_symbol", raw);
        };
        let mut rounded = 0u64;
        match &payload {
            Payload::BookTicker { u, quote: texts, .. } => {
                let mut quote = [0i64; 4];
                for (slot, text) in quote.iter_mut().zip(texts) {
                    match fixed(text, &mut rounded) {
                        Some(value) => *slot = value,
                        None => return self.reject("bad_number", raw),
                    }
                }
                self.stats.rounded += rounded;
                let idx = self.keep(found);
                let inst = &mut self.insts[idx];
                if !inst.base.announced {
                    let (b, bq) = (std::str::from_utf8(&texts[0]).ok(), std::str::from_utf8(&texts[1]).ok());
                    inst.base.announce(VENUE, b, bq, None, out);
                }
                out.push(Event::Quote {
                    asset_id: inst.base.asset_id,
                    bid_price: quote[0],
                    bid_size: quote[1],
                    ask_price: quote[2],
                    ask_size: quote[3],
                    quote_ts_ns: 0,
                    venue_id: VENUE,
                    asset_type: SPOT,
                });
                if inst.depth_seen {
                    self.cross_check_later(idx, *u, quote);
                }
            }
            Payload::Depth { e, first, last, b, a, .. } => {
                match b.and(*a) {
                    Err(LevelsError::Decode) => return self.reject("invalid_depth", raw),
                    Err(LevelsError::Number) => return self.reject("bad_number", raw),
                    Ok(()) if scratch.bids.len() + scratch.asks.len() > MAX_DIFF_LEVELS => {
                        return self.reject("too_many_levels", raw)
                    }
                    Ok(()) => {}
                }
                self.stats.rounded += scratch.rounded[0] + scratch.rounded[1];
                let idx = self.keep(found);
                self.book_stats(idx, |_| ());
                let diff = Diff {
                    first: *first,
                    last: *last,
                    ts: e * MS,
                    bids: scratch.bids.clone(),
                    asks: scratch.asks.clone(),
                };
                if let Some(kind) = self.diff(idx, diff, out) {
                    self.stats.ignore(kind);
                }
            }
            Payload::Trade { p, q, t, m, .. } => {
                let (Some(price), Some(volume)) = (fixed(p, &mut rounded), fixed(q, &mut rounded)) else {
                    return self.reject("bad_number", raw);
                };
                if price == 0 || volume == 0 {
                    return self.reject("bad_number", raw);
                }
                self.stats.rounded += rounded;
                let idx = self.keep(found);
                let inst = &mut self.insts[idx].base;
                if !inst.announced {
                    let (p, q) = (std::str::from_utf8(p).ok(), std::str::from_utf8(q).ok());
                    inst.announce(VENUE, p, q, None, out);
                }
                out.push(Event::Trade {
                    asset_id: inst.asset_id,
                    price,
                    volume,
                    exec_ts_ns: t * MS,
                    venue_id: VENUE,
                    asset_type: SPOT,
                    side: if *m { SELL } else { BUY },
                });
            }
            Payload::Kline => {}
        }
    }
}

#[path = "binance_book.rs"]
mod binance_book;

impl Feed for BinanceFeed {
    fn on_frame(&mut self, raw: &[u8], _ts_recv_ns: i64, out: &mut Vec<Event>) {
        self.stats.frames += 1;
        let start = out.len();
        if raw.starts_with(COMBINED_PREFIX) {
            // a plain name (no escape, control or byte past ASCII) ends at the first quote, as below
            let (end, high) = plain_run(raw, 11);
            let plain = !high && raw.get(end) == Some(&b'"');
            let name = if plain {
                &raw[11..end]
            } else {
                match raw[11..].iter().position(|&c| c == b'"') {
                    Some(k) => &raw[11..11 + k],
                    None => &raw[11..(raw.len() - 1).max(11)], // raw[11:-1], as Python slices
                }
            };
            if let Some(kind) = Kind::of(wire::stream_kind(name)) {
                if kind == Kind::BookTicker && plain {
                    if let Some(payload) = wire::plain_book_ticker_data(raw, end + 1) {
                        self.dispatch(payload, &wire::Scratch::default(), raw, out); // no levels
                        return self.stats.count(&out[start..]);
                    }
                }
                let mut scratch = std::mem::take(&mut self.scratch);
                let taken = match wire::combined(raw, kind, &mut scratch) {
                    Ok(payload) => {
                        self.dispatch(payload, &scratch, raw, out);
                        true
                    }
                    Err(_) => false,
                };
                self.scratch = scratch;
                if taken {
                    return self.stats.count(&out[start..]);
                }
            }
        }
        self.general(raw, out);
        self.stats.count(&out[start..]);
    }

    fn on_snapshot(
        &mut self,
        key: &str,
        body: &[u8],
        _ts_recv_ns: i64,
        out: &mut Vec<Event>,
    ) -> Result<(), String> {
        self.snapshot(key, body, out)
    }

    fn on_disconnect(&mut self, _ts_ns: i64, out: &mut Vec<Event>) {
        self.disconnect(out);
    }

    fn wants_snapshot(&self) -> Vec<String> {
        self.wanted.iter().map(|&idx| self.insts[idx].base.venue_symbol.clone()).collect()
    }

    fn snapshot_wanted(&self) -> bool {
        !self.wanted.is_empty()
    }

    fn take_requests(&mut self) -> Vec<Vec<u8>> {
        Vec::new() // a book that fails its checks asks for a REST snapshot instead
    }

    fn stats(&self) -> &Stats {
        &self.stats
    }
}
