//! Coinbase Advanced Trade market data, as `tickrelay/venues/coinbase_advanced.py` (its module
//! docstring is the spec). Pure: no I/O.
//!
//! A frame is decoded whole as `msgspec.json.Decoder(Frame)` decodes it, then read (every number,
//! time and symbol checked, as Python's `_read`, into a plan of steps), then applied: the
//! sequence check, then the steps in order. A rejected frame changes nothing, not even the
//! sequence. No recording of this API exists, so this feed is not on the benchmark's hot path:
//! it decodes into small vectors per frame.

use std::borrow::Cow;

use super::coinbase::{subscription, Product, Products};
use super::common::{reason, split_snapshot, BUY, SELL};
use super::feed::{Event, Feed, Level, Stats, SPOT};
use super::numbers::{parse_time_ns, Decimals};
use super::typed::{self, Bad, Reader, Res};
use crate::protocol::symbols::COINBASE;

const VENUE: u16 = COINBASE;
const MAX_DELTA_LEVELS: usize = super::common::MAX_SNAPSHOT_LEVELS;

#[derive(Default)]
struct TradeW<'a> {
    product_id: Option<Cow<'a, str>>,
    price: Option<Cow<'a, str>>,
    size: Option<Cow<'a, str>>,
    side: Option<Cow<'a, str>>,
    time: Option<Cow<'a, str>>,
}

#[derive(Default)]
struct TickerW<'a> {
    product_id: Option<Cow<'a, str>>,
    best_bid: Option<Cow<'a, str>>,
    best_bid_quantity: Option<Cow<'a, str>>,
    best_ask: Option<Cow<'a, str>>,
    best_ask_quantity: Option<Cow<'a, str>>,
}

/// `_Level`: (side, price_level, new_quantity).
type LevelW<'a> = (Cow<'a, str>, Cow<'a, str>, Cow<'a, str>);

#[derive(Default)]
struct EventW<'a> {
    kind: Cow<'a, str>,
    product_id: Cow<'a, str>,
    trades: Vec<TradeW<'a>>,
    tickers: Vec<TickerW<'a>>,
    updates: Vec<LevelW<'a>>,
}

struct FrameW<'a> {
    channel: Cow<'a, str>,
    sequence_num: i64,
    timestamp: Cow<'a, str>,
    events: Vec<EventW<'a>>,
}

/// A list of structs, each read by `item` from a fresh default; `done` says whether its required
/// fields came.
fn structs<'a, T: Default>(
    r: &mut Reader<'a>,
    mut field: impl FnMut(&mut Reader<'a>, &[u8], &mut T) -> Res<()>,
    done: impl Fn(&T) -> bool,
) -> Res<Vec<T>> {
    let mut items = Vec::new();
    r.array(|r, _| {
        let mut item = T::default();
        r.object(|r, key| field(r, key, &mut item))?;
        if !done(&item) {
            return Err(Bad::Invalid);
        }
        items.push(item);
        Ok(())
    })?;
    Ok(items)
}

fn event<'a>(r: &mut Reader<'a>, key: &[u8], e: &mut EventW<'a>) -> Res<()> {
    match key {
        b"type" => e.kind = r.str()?,
        b"product_id" => e.product_id = r.str()?,
        b"trades" => {
            e.trades = structs(
                r,
                |r, key, t: &mut TradeW<'a>| {
                    let slot = match key {
                        b"product_id" => &mut t.product_id,
                        b"price" => &mut t.price,
                        b"size" => &mut t.size,
                        b"side" => &mut t.side,
                        b"time" => &mut t.time,
                        _ => return r.skip(),
                    };
                    *slot = Some(r.str()?);
                    Ok(())
                },
                |t| {
                    t.product_id.is_some()
                        && t.price.is_some()
                        && t.size.is_some()
                        && t.side.is_some()
                        && t.time.is_some()
                },
            )?
        }
        b"tickers" => {
            e.tickers = structs(
                r,
                |r, key, t: &mut TickerW<'a>| {
                    match key {
                        b"product_id" => t.product_id = Some(r.str()?),
                        b"best_bid" => t.best_bid = r.opt_str()?,
                        b"best_bid_quantity" => t.best_bid_quantity = r.opt_str()?,
                        b"best_ask" => t.best_ask = r.opt_str()?,
                        b"best_ask_quantity" => t.best_ask_quantity = r.opt_str()?,
                        _ => r.skip()?,
                    }
                    Ok(())
                },
                |t| t.product_id.is_some(),
            )?
        }
        b"updates" => {
            let levels = structs(
                r,
                |r, key, u: &mut [Option<Cow<'a, str>>; 3]| {
                    let k = match key {
                        b"side" => 0,
                        b"price_level" => 1,
                        b"new_quantity" => 2,
                        _ => return r.skip(),
                    };
                    u[k] = Some(r.str()?);
                    Ok(())
                },
                |u| u.iter().all(Option::is_some),
            )?;
            e.updates = levels
                .into_iter()
                .map(|[a, b, c]| (a.unwrap_or_default(), b.unwrap_or_default(), c.unwrap_or_default()))
                .collect();
        }
        _ => r.skip()?,
    }
    Ok(())
}

fn decode(raw: &[u8]) -> Res<FrameW<'_>> {
    Reader::whole(raw, |r| {
        let (mut channel, mut sequence_num, mut timestamp, mut events) =
            (None, None, Cow::Borrowed(""), Vec::new());
        r.object(|r, key| {
            match key {
                b"channel" => channel = Some(r.str()?),
                b"sequence_num" => sequence_num = Some(r.int(0, i64::MAX)?),
                b"timestamp" => timestamp = r.str()?,
                b"events" => events = structs(r, event, |_| true)?,
                _ => r.skip()?,
            }
            Ok(())
        })?;
        match (channel, sequence_num) {
            (Some(channel), Some(sequence_num)) => Ok(FrameW { channel, sequence_num, timestamp, events }),
            _ => Err(Bad::Invalid),
        }
    })
}

/// One step of a read frame, applied in order.
enum Step<'a> {
    Ignore(String),
    Trade {
        product_id: &'a str,
        price: i64,
        volume: i64,
        when: i64,
        side: u8,
        texts: (&'a str, &'a str),
    },
    Quote {
        product_id: &'a str,
        quote: [i64; 4],
        texts: (&'a str, Option<&'a str>),
    },
    Book {
        product_id: &'a str,
        snapshot: bool,
        bids: Vec<Level>,
        asks: Vec<Level>,
        texts: Option<(&'a str, &'a str)>,
    },
}

/// `side.upper()`: Python's full Unicode upper case (ASCII the usual way, without allocating).
fn upper_is(text: &str, word: &str) -> bool {
    if text.is_ascii() {
        text.eq_ignore_ascii_case(word)
    } else {
        text.to_uppercase() == word
    }
}

/// `AdvancedTradeFeed`'s per-frame state.
pub struct AdvancedTradeFeed {
    stats: Stats,
    products: Products,
    sequence: Option<i64>,
    requests: Vec<Vec<u8>>,
    fixed: Decimals,
}

impl Default for AdvancedTradeFeed {
    fn default() -> Self {
        Self::new()
    }
}

impl AdvancedTradeFeed {
    pub fn new() -> Self {
        Self {
            stats: Stats::default(),
            products: Products::default(),
            sequence: None,
            requests: Vec::new(),
            fixed: Decimals::default(),
        }
    }

    /// `_product`'s check: a product id that is kept, or would make a product.
    fn known_or_valid(&self, product_id: &str) -> Option<()> {
        (self.products.find(product_id).is_some() || Product::new(product_id).is_some()).then_some(())
    }

    /// `_read`: every value of the frame, checked; `None` rejects the frame (`bad_<channel>`).
    fn read<'a>(&mut self, frame: &'a FrameW<'a>) -> Option<(i64, Vec<Step<'a>>)> {
        let ts = if frame.timestamp.is_empty() { 0 } else { parse_time_ns(&frame.timestamp)? };
        let mut steps = Vec::new();
        let channel = &*frame.channel;
        for event in &frame.events {
            if channel == "market_trades" && event.kind == "update" {
                for t in &event.trades {
                    let (Some(pid), Some(price), Some(size), Some(side), Some(time)) =
                        (&t.product_id, &t.price, &t.size, &t.side, &t.time)
                    else {
                        return None;
                    };
                    let side = if upper_is(side, "SELL") {
                        BUY // the maker sold: the aggressor bought
                    } else if upper_is(side, "BUY") {
                        SELL
                    } else {
                        return None;
                    };
                    let (price_v, volume) = (self.fixed.positive(price)?, self.fixed.positive(size)?);
                    let when = parse_time_ns(time)?;
                    self.known_or_valid(pid)?;
                    steps.push(Step::Trade {
                        product_id: pid,
                        price: price_v,
                        volume,
                        when,
                        side,
                        texts: (price, size),
                    });
                }
            } else if channel == "market_trades" {
                steps.push(Step::Ignore(format!("market_trades:{}", event.kind)));
            } else if channel == "ticker" {
                for tk in &event.tickers {
                    let (Some(pid), Some(bid), Some(ask)) = (&tk.product_id, &tk.best_bid, &tk.best_ask)
                    else {
                        continue;
                    };
                    let or_zero =
                        |q: &'a Option<Cow<'a, str>>| q.as_deref().filter(|q| !q.is_empty()).unwrap_or("0");
                    let quote = [
                        self.fixed.amount(bid)?,
                        self.fixed.amount(or_zero(&tk.best_bid_quantity))?,
                        self.fixed.amount(ask)?,
                        self.fixed.amount(or_zero(&tk.best_ask_quantity))?,
                    ];
                    self.known_or_valid(pid)?;
                    steps.push(Step::Quote {
                        product_id: pid,
                        quote,
                        texts: (bid, tk.best_bid_quantity.as_deref()),
                    });
                }
            } else if channel == "l2_data" && !event.product_id.is_empty() {
                let snapshot = event.kind == "snapshot";
                if !snapshot && event.updates.len() > MAX_DELTA_LEVELS {
                    return None;
                }
                let (mut bids, mut asks) = (Vec::new(), Vec::new());
                for (side, price, size) in &event.updates {
                    let level = match &**side {
                        "bid" | "offer" => self.fixed.level(price, size)?,
                        _ => return None,
                    };
                    if side == "bid" { &mut bids } else { &mut asks }.push(level);
                }
                self.known_or_valid(&event.product_id)?;
                let texts = event.updates.first().map(|(_, p, q)| (&**p, &**q));
                steps.push(Step::Book { product_id: &event.product_id, snapshot, bids, asks, texts });
            }
        }
        Some((ts, steps))
    }

    fn apply(&mut self, step: Step<'_>, seq: i64, ts: i64, out: &mut Vec<Event>, note: &mut Option<String>) {
        match step {
            Step::Ignore(kind) => {
                note.get_or_insert(kind);
            }
            Step::Trade { product_id, price, volume, when, side, texts } => {
                let Some(i) = self.products.keep(product_id) else { return };
                let inst = &mut self.products.list[i].inst;
                inst.announce(VENUE, Some(texts.0), Some(texts.1), None, out);
                let asset_id = inst.asset_id;
                out.push(Event::Trade {
                    asset_id,
                    price,
                    volume,
                    exec_ts_ns: when,
                    venue_id: VENUE,
                    asset_type: SPOT,
                    side,
                });
            }
            Step::Quote { product_id, quote, texts } => {
                let Some(i) = self.products.keep(product_id) else { return };
                let inst = &mut self.products.list[i].inst;
                inst.announce(VENUE, Some(texts.0), texts.1, None, out);
                let [bid_price, bid_size, ask_price, ask_size] = quote;
                out.push(Event::Quote {
                    asset_id: inst.asset_id,
                    bid_price,
                    bid_size,
                    ask_price,
                    ask_size,
                    quote_ts_ns: ts,
                    venue_id: VENUE,
                    asset_type: SPOT,
                });
            }
            Step::Book { product_id, snapshot, bids, asks, texts } => {
                let Some(i) = self.products.keep(product_id) else { return };
                let inst = &mut self.products.list[i].inst;
                let seq = seq as u64; // checked >= 0 by the decoder
                if snapshot {
                    inst.announce(VENUE, texts.map(|t| t.0), texts.map(|t| t.1), None, out);
                    let live = inst.live;
                    inst.book_stats(&mut self.stats, |s| s.resyncs += u64::from(live));
                    inst.book.load(&bids, &asks);
                    inst.live = true;
                    let (bids_now, asks_now) = inst.book.levels();
                    split_snapshot(inst.asset_id, VENUE, seq, 0, &bids_now, &asks_now, out);
                } else if inst.live {
                    inst.book.update(&bids, &asks);
                    inst.book_stats(&mut self.stats, |s| s.updates_applied += 1);
                    out.push(Event::L2Delta {
                        asset_id: inst.asset_id,
                        venue_id: VENUE,
                        asset_type: SPOT,
                        flags: 0,
                        first_seq: seq,
                        last_seq: seq,
                        exchange_ts_ns: ts,
                        bids,
                        asks,
                    });
                } else {
                    note.get_or_insert_with(|| "l2_data:before_snapshot".to_owned());
                }
                inst.render(&mut self.stats);
            }
        }
    }

    /// `_sequence_gap`: every live book of the connection is invalidated and level2 asked again.
    fn sequence_gap(&mut self, out: &mut Vec<Event>) {
        let published: Vec<usize> =
            (0..self.products.list.len()).filter(|&i| self.products.list[i].inst.live).collect();
        if published.is_empty() {
            return;
        }
        let asset_ids = published.iter().map(|&i| self.products.list[i].inst.asset_id).collect();
        out.push(Event::StateInvalidation {
            venue_id: VENUE,
            asset_type: SPOT,
            reason: reason::SEQUENCE_GAP,
            asset_ids,
        });
        for &i in &published {
            let inst = &mut self.products.list[i].inst;
            inst.book_stats(&mut self.stats, |s| s.gaps += 1);
            out.push(Event::L2Reset {
                asset_id: inst.asset_id,
                venue_id: VENUE,
                asset_type: SPOT,
                reason: reason::SEQUENCE_GAP,
            });
            inst.drop_book(&mut self.stats);
        }
        for kind in ["unsubscribe", "subscribe"] {
            let ids = published.iter().map(|&i| self.products.list[i].inst.venue_symbol.as_str());
            self.requests.push(subscription(kind, ids, br#""channel":"level2""#));
        }
    }
}

impl Feed for AdvancedTradeFeed {
    fn on_frame(&mut self, raw: &[u8], _ts_recv_ns: i64, out: &mut Vec<Event>) {
        self.stats.frames += 1;
        self.fixed.rounded = 0;
        let frame = match decode(raw) {
            Ok(frame) => frame,
            Err(_) => {
                let reason = typed::unknown(raw, &["channel", "type"], "no_channel");
                self.stats.reject(&reason, raw);
                return;
            }
        };
        let Some((ts, steps)) = self.read(&frame) else {
            self.stats.reject(&format!("bad_{}", frame.channel), raw);
            return;
        };
        self.stats.rounded += self.fixed.rounded;
        let start = out.len();
        let seq = frame.sequence_num;
        if self.sequence.is_some_and(|prev| prev.checked_add(1) != Some(seq)) {
            self.sequence_gap(out);
        }
        self.sequence = Some(seq);
        let mut note = None;
        for step in steps {
            self.apply(step, seq, ts, out, &mut note);
        }
        if out.len() == start {
            let kind = note.unwrap_or_else(|| frame.channel.to_string());
            self.stats.ignore(&kind);
        }
        self.stats.count(&out[start..]);
    }

    fn on_disconnect(&mut self, _ts_ns: i64, out: &mut Vec<Event>) {
        self.sequence = None;
        self.requests.clear();
        super::common::disconnect(VENUE, self.products.instruments(), &mut self.stats, out);
    }

    fn take_requests(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.requests)
    }

    fn stats(&self) -> &Stats {
        &self.stats
    }
}
