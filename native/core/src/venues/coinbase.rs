//! The Coinbase Exchange feed, as `tickrelay/venues/coinbase.py` (read it for the behaviour: the
//! module docstring there is the spec). Pure: no I/O.
//!
//! A frame is decoded as `msgspec.json.Decoder(Message)` decodes it (a union tagged by `type`,
//! read with [`typed::Reader`]) in one pass that also reads each level's decimal text into the
//! reused `bids` / `asks` buffers; a value that fails (a bad number, side or time) is remembered
//! and counts only once the whole frame decoded, as Python checks values after decoding. Then
//! the frame is applied, changing state only when every value was good.

use std::borrow::Cow;

use super::common::{
    encode_str, encode_strs, invalidate, reason, split_snapshot, FxMap, Instrument, BUY, MAX_SNAPSHOT_LEVELS,
    SELL,
};
use super::feed::{Event, Feed, Level, Stats, SPOT};
use super::numbers::{Decimals, Times};
use super::typed::{self, after, plain_text, Bad, Reader, Res};
use crate::protocol::symbols::{normalize_pair, COINBASE};

const VENUE: u16 = COINBASE;
/// `MAX_SYMBOL`: characters of a product id (InstrumentMeta holds 255 bytes).
pub(crate) const MAX_SYMBOL: usize = 64;
/// `Id64`: trade ids are int64 >= 0.
const ID_MAX: i64 = i64::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Match,
    LastMatch,
    Ticker,
    Snapshot,
    L2Update,
    Heartbeat,
    Subscriptions,
    Error,
}

impl Kind {
    fn of(tag: &str) -> Option<Self> {
        Some(match tag {
            "match" => Self::Match,
            "last_match" => Self::LastMatch,
            "ticker" => Self::Ticker,
            "snapshot" => Self::Snapshot,
            "l2update" => Self::L2Update,
            "heartbeat" => Self::Heartbeat,
            "subscriptions" => Self::Subscriptions,
            "error" => Self::Error,
            _ => return None,
        })
    }

    /// `type(message).__name__.strip("_").lower()`.
    fn name(self) -> &'static str {
        match self {
            Self::Match => "match",
            Self::LastMatch => "lastmatch",
            Self::Ticker => "ticker",
            Self::Snapshot => "snapshot",
            Self::L2Update => "l2update",
            Self::Heartbeat => "heartbeat",
            Self::Subscriptions => "subscriptions",
            Self::Error => "error",
        }
    }

    fn bad(self) -> &'static str {
        match self {
            Self::Match => "bad_match",
            Self::LastMatch => "bad_lastmatch",
            Self::Ticker => "bad_ticker",
            Self::Snapshot => "bad_snapshot",
            Self::L2Update => "bad_l2update",
            _ => "bad_message",
        }
    }
}

/// The first `type` member's string: msgspec looks the tag up before it decodes the struct.
fn tag(raw: &[u8]) -> Res<Cow<'_, str>> {
    // the usual shape, `{"type":"<text>"...`: the first member is the tag
    if let Some(rest) = raw.strip_prefix(br#"{"type":""#) {
        if let Some(end) = rest.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20) {
            if rest[end] == b'"' {
                return std::str::from_utf8(&rest[..end]).map(Cow::Borrowed).map_err(|_| Bad::Invalid);
            }
        }
    }
    Reader::whole(raw, |r| {
        let mut tag = None;
        r.object(|r, key| {
            if key == b"type" && tag.is_none() {
                tag = Some(r.str()?);
                Ok(())
            } else {
                r.skip()
            }
        })?;
        tag.ok_or(Bad::Invalid)
    })
}

/// One frame's fields, decoded (`None`: absent or null).
#[derive(Default)]
struct Wire<'a> {
    trade_id: Option<i64>,
    side: Option<Cow<'a, str>>,
    size: Option<Cow<'a, str>>,
    price: Option<Cow<'a, str>>,
    product_id: Option<Cow<'a, str>>,
    time: Option<Cow<'a, str>>,
    best_bid: Option<Cow<'a, str>>,
    best_ask: Option<Cow<'a, str>>,
    best_bid_size: Option<Cow<'a, str>>,
    best_ask_size: Option<Cow<'a, str>>,
    /// bids / asks (snapshot) or changes (l2update) were there
    has_bids: bool,
    has_asks: bool,
    /// the first level of the snapshot's bids, and of its asks: (price, size) texts
    first_bid: Option<(Cow<'a, str>, Cow<'a, str>)>,
    first_ask: Option<(Cow<'a, str>, Cow<'a, str>)>,
    /// a level's value failed (bad number or side): the frame is `bad_<type>` if it decodes
    bad_bids: bool,
    bad_asks: bool,
    /// values rounded in the bids (or changes) and asks kept (a repeated key is read again)
    rounded_bids: u64,
    rounded_asks: u64,
}

/// `list[tuple[str, ...]]` of `width` strings per item; `item` gets each tuple's texts.
fn tuples<'a>(
    r: &mut Reader<'a>,
    width: usize,
    mut item: impl FnMut([Cow<'a, str>; 3]) -> Res<()>,
) -> Res<()> {
    r.array(|r, _| {
        let mut texts: [Cow<'a, str>; 3] = Default::default();
        let mut n = 0;
        r.array(|r, k| {
            if k >= width {
                return Err(Bad::Invalid);
            }
            texts[k] = r.str()?;
            n += 1;
            Ok(())
        })?;
        if n != width {
            return Err(Bad::Invalid);
        }
        item(texts)
    })
}

/// 10^(8 - places): what a fraction of `places` digits is scaled by.
const PLACES_SCALE: [u64; 9] = [100_000_000, 10_000_000, 1_000_000, 100_000, 10_000, 1_000, 100, 10, 1];

/// An amount's text from `i` (past its opening quote) in its usual shape, read as it is scanned:
/// 1 to 11 integer digits, then maybe a point and at most 8 places (never rounded), then the
/// closing quote; (its value x 10^8, past the quote). Such a text is what
/// `parse_fixed8_rounded` reads to the same value; any other is None.
fn plain_amount(raw: &[u8], mut i: usize) -> Option<(i64, usize)> {
    let start = i;
    let mut whole = 0u64;
    while let Some(d) = raw.get(i).map(|c| c.wrapping_sub(b'0')).filter(|&d| d < 10) {
        whole = whole.wrapping_mul(10).wrapping_add(u64::from(d));
        i += 1;
    }
    if i == start || i - start > 11 {
        return None;
    }
    let mut fraction = 0u64;
    let mut scale = PLACES_SCALE[0];
    if raw.get(i) == Some(&b'.') {
        i += 1;
        let point = i;
        while let Some(d) = raw.get(i).map(|c| c.wrapping_sub(b'0')).filter(|&d| d < 10) {
            fraction = fraction.wrapping_mul(10).wrapping_add(u64::from(d));
            i += 1;
        }
        scale = *PLACES_SCALE.get(i - point)?;
    }
    if raw.get(i) != Some(&b'"') {
        return None;
    }
    // < 10^11 x 10^8 + 10^8 < 2^64; past i64::MAX is the general path's OutOfRange
    let value = i64::try_from(whole * 100_000_000 + fraction * scale).ok()?;
    Some((value, i + 1))
}

/// The usual l2update frame read in one pass, without the general reader:
/// `{"type":"l2update","product_id":"…","changes":[["buy"|"sell","<price>","<size>"],…],"time":"…"}`,
/// no whitespace, every string plain (see [`plain_text`]), every amount plain (see
/// [`plain_amount`]), every price above 0. It pushes the levels into `bids` / `asks` and gives the
/// product id and time; [`CoinbaseFeed::decode`] reads such a frame to the same values with
/// nothing bad or rounded. Any other frame (None, the levels pushed so far to be cleared) takes
/// the general path, which decides what it is.
fn plain_l2update<'a>(
    raw: &'a [u8],
    bids: &mut Vec<Level>,
    asks: &mut Vec<Level>,
) -> Option<(&'a [u8], &'a [u8])> {
    let (product_id, i) = plain_text(raw, after(raw, 0, br#"{"type":"l2update","product_id":""#)?)?;
    let mut i = after(raw, i, br#","changes":["#)?;
    if raw.get(i) == Some(&b']') {
        i += 1;
    } else {
        loop {
            i = after(raw, i, br#"[""#)?;
            let (side, j) = match raw.get(i) {
                Some(b'b') => (&mut *bids, after(raw, i, br#"buy",""#)?),
                _ => (&mut *asks, after(raw, i, br#"sell",""#)?),
            };
            let (price, j) = plain_amount(raw, j)?;
            let (size, j) = plain_amount(raw, after(raw, j, br#",""#)?)?;
            if price == 0 {
                return None;
            }
            side.push((price, size));
            i = after(raw, j, b"]")?;
            match raw.get(i) {
                Some(b',') => i += 1,
                Some(b']') => {
                    i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    let (time, i) = plain_text(raw, after(raw, i, br#","time":""#)?)?;
    (after(raw, i, b"}")? == raw.len()).then_some((product_id, time))
}

/// A snapshot side's usual text, `[["<price>","<size>"],…]` with no whitespace and every amount
/// plain (see [`plain_amount`]), every price above 0, read in one pass: its levels pushed into
/// `levels`; (its length, the texts of its first level). Any other text is None (the levels
/// pushed so far to be cleared).
fn plain_levels<'a>(raw: &'a [u8], levels: &mut Vec<Level>) -> Option<(usize, Option<(&'a str, &'a str)>)> {
    let mut i = after(raw, 0, b"[")?;
    if raw.get(i) == Some(&b']') {
        return Some((i + 1, None));
    }
    let mut first = None;
    loop {
        let at = after(raw, i, br#"[""#)?;
        let (price, price_end) = plain_amount(raw, at)?;
        let size_at = after(raw, price_end, br#",""#)?;
        let (size, end) = plain_amount(raw, size_at)?;
        if price == 0 {
            return None;
        }
        if first.is_none() {
            let text = |from: usize, to: usize| std::str::from_utf8(&raw[from..to - 1]).ok();
            first = Some((text(at, price_end)?, text(size_at, end)?));
        }
        levels.push((price, size));
        i = after(raw, end, b"]")?;
        match raw.get(i) {
            Some(b',') => i += 1,
            Some(b']') => return Some((i + 1, first)),
            _ => return None,
        }
    }
}

/// A snapshot's `bids` or `asks` (`list[tuple[str, str]]`) read into `levels`, with the texts of
/// its first level in `first` and whether a value failed in `bad`; the values rounded in it. The
/// usual text is read in one pass ([`plain_levels`]), any other by the general reader.
fn snapshot_side<'a>(
    r: &mut Reader<'a>,
    fixed: &mut Decimals,
    levels: &mut Vec<Level>,
    first: &mut Option<(Cow<'a, str>, Cow<'a, str>)>,
    bad: &mut bool,
) -> Res<u64> {
    levels.clear();
    *bad = false;
    if let Some((len, head)) = plain_levels(r.rest(), levels) {
        r.take(len);
        *first = head.map(|(price, size)| (Cow::Borrowed(price), Cow::Borrowed(size)));
        return Ok(0);
    }
    levels.clear();
    *first = None;
    let before = fixed.rounded;
    tuples(r, 2, |[price, size, _]| {
        if !*bad {
            match fixed.level(&price, &size) {
                Some(level) => levels.push(level),
                None => *bad = true,
            }
        }
        first.get_or_insert((price, size));
        Ok(())
    })?;
    Ok(fixed.rounded - before)
}

/// `coinbase.Product`, which Advanced Trade shares.
pub(crate) struct Product {
    pub(crate) inst: Instrument,
    /// The last trade id published (0: none).
    trade_id: i64,
}

impl Product {
    /// `Product(product_id)`: `None` is `SymbolError` (not ASCII, longer than [`MAX_SYMBOL`], or an
    /// empty side of the pair).
    pub(crate) fn new(product_id: &str) -> Option<Self> {
        if !product_id.is_ascii() || product_id.len() > MAX_SYMBOL {
            return None;
        }
        let (base, quote) = product_id.split_once('-').unwrap_or((product_id, ""));
        let inst = Instrument::new(product_id, normalize_pair(base, quote)?, None)?;
        Some(Self { inst, trade_id: 0 })
    }
}

/// The products a connection has seen, in the order first seen (as Python's dict), by product id.
#[derive(Default)]
pub(crate) struct Products {
    pub(crate) list: Vec<Product>,
    /// By the product id's UTF-8, which the fast path reads without making a `str` of it.
    index: FxMap<Box<[u8]>, usize>,
}

impl Products {
    pub(crate) fn find(&self, product_id: &str) -> Option<usize> {
        self.find_utf8(product_id.as_bytes())
    }

    /// [`Products::find`] by the product id's UTF-8.
    fn find_utf8(&self, product_id: &[u8]) -> Option<usize> {
        self.index.get(product_id).copied()
    }

    /// `_product` (`_keep` in Advanced Trade): the kept product of the id, made and kept now if
    /// new; `None` when the id makes none (`SymbolError`).
    pub(crate) fn keep(&mut self, product_id: &str) -> Option<usize> {
        if let Some(i) = self.find(product_id) {
            return Some(i);
        }
        self.list.push(Product::new(product_id)?);
        self.index.insert(product_id.as_bytes().into(), self.list.len() - 1);
        Some(self.list.len() - 1)
    }

    pub(crate) fn instruments(&mut self) -> impl Iterator<Item = &mut Instrument> {
        self.list.iter_mut().map(|p| &mut p.inst)
    }
}

/// `msgspec.json.encode({"type": kind, "product_ids": ids, <channel>})`; `channel` is the last
/// member as encoded (`"channels":["level2"]` on the Exchange feed, `"channel":"level2"` on
/// Advanced Trade).
pub(crate) fn subscription<'a>(
    kind: &str,
    ids: impl IntoIterator<Item = &'a str>,
    channel: &[u8],
) -> Vec<u8> {
    let mut frame = Vec::with_capacity(96);
    frame.extend_from_slice(br#"{"type":"#);
    encode_str(&mut frame, kind);
    frame.extend_from_slice(br#","product_ids":"#);
    encode_strs(&mut frame, ids);
    frame.push(b',');
    frame.extend_from_slice(channel);
    frame.push(b'}');
    frame
}

/// `CoinbaseFeed`'s per-frame state.
pub struct CoinbaseFeed {
    level2_channel: String,
    stats: Stats,
    products: Products,
    requests: Vec<Vec<u8>>,
    fixed: Decimals,
    times: Times,
    bids: Vec<Level>,
    asks: Vec<Level>,
}

const TRADE_ID_GAPS: &str = "trade_id_gaps";

impl CoinbaseFeed {
    pub fn new(level2_channel: &str) -> Self {
        let mut stats = Stats::default();
        stats.extra.insert(TRADE_ID_GAPS, 0);
        Self {
            level2_channel: level2_channel.to_owned(),
            stats,
            products: Products::default(),
            requests: Vec::new(),
            fixed: Decimals::default(),
            times: Times::default(),
            bids: Vec::new(),
            asks: Vec::new(),
        }
    }

    /// Decodes the struct of `kind` (pass 2), reading levels into `self.bids` / `self.asks`.
    fn decode<'a>(&mut self, raw: &'a [u8], tag: &str, kind: Kind) -> Res<Wire<'a>> {
        let (bids, asks, fixed) = (&mut self.bids, &mut self.asks, &mut self.fixed);
        bids.clear();
        asks.clear();
        Reader::whole(raw, |r| {
            let mut w = Wire::default();
            r.object(|r, key| {
                use Kind::*;
                match (key, kind) {
                    (b"type", _) => {
                        if r.str()? != tag {
                            return Err(Bad::Invalid);
                        }
                    }
                    (b"product_id", Match | LastMatch | Ticker | Snapshot | L2Update) => {
                        w.product_id = Some(r.str()?);
                    }
                    (b"trade_id", Match | LastMatch) => w.trade_id = Some(r.int(0, ID_MAX)?),
                    (b"side", Match | LastMatch) => w.side = Some(r.str()?),
                    (b"size", Match | LastMatch) => w.size = Some(r.str()?),
                    (b"price", Match | LastMatch) => w.price = Some(r.str()?),
                    (b"time", Match | LastMatch) => w.time = Some(r.str()?),
                    (b"time", Ticker | L2Update) => w.time = r.opt_str()?,
                    (b"best_bid", Ticker) => w.best_bid = r.opt_str()?,
                    (b"best_ask", Ticker) => w.best_ask = r.opt_str()?,
                    (b"best_bid_size", Ticker) => w.best_bid_size = r.opt_str()?,
                    (b"best_ask_size", Ticker) => w.best_ask_size = r.opt_str()?,
                    (b"message", Error) => {
                        r.str()?;
                    }
                    (b"bids", Snapshot) => {
                        w.has_bids = true;
                        w.rounded_bids = snapshot_side(r, fixed, bids, &mut w.first_bid, &mut w.bad_bids)?;
                    }
                    (b"asks", Snapshot) => {
                        w.has_asks = true;
                        w.rounded_asks = snapshot_side(r, fixed, asks, &mut w.first_ask, &mut w.bad_asks)?;
                    }
                    (b"changes", L2Update) => {
                        bids.clear();
                        asks.clear();
                        (w.has_bids, w.bad_bids) = (true, false);
                        let before = fixed.rounded;
                        tuples(r, 3, |[side, price, size]| {
                            if !w.bad_bids {
                                let level = fixed.level(&price, &size);
                                match (&*side, level) {
                                    ("buy", Some(level)) => bids.push(level),
                                    ("sell", Some(level)) => asks.push(level),
                                    _ => w.bad_bids = true,
                                }
                            }
                            Ok(())
                        })?;
                        w.rounded_bids = fixed.rounded - before;
                    }
                    _ => r.skip()?,
                }
                Ok(())
            })?;
            fixed.rounded = w.rounded_bids + w.rounded_asks; // of the levels kept
            Ok(w)
        })
    }

    /// The frame, decoded: its values (or `Err(reason)` to reject it). Changes state only when
    /// every value was good.
    fn apply(&mut self, raw: &[u8], out: &mut Vec<Event>) -> Result<(), Cow<'static, str>> {
        self.bids.clear();
        self.asks.clear();
        if let Some((product_id, time)) = plain_l2update(raw, &mut self.bids, &mut self.asks) {
            return self.l2update(product_id, Some(time), false, out);
        }
        let tag = tag(raw).map_err(|_| typed::unknown(raw, &["type"], "no_type"))?;
        let kind = Kind::of(&tag).ok_or_else(|| typed::unknown(raw, &["type"], "no_type"))?;
        let w = self.decode(raw, &tag, kind).map_err(|_| typed::unknown(raw, &["type"], "no_type"))?;
        let required = match kind {
            Kind::Match | Kind::LastMatch => {
                w.trade_id.is_some()
                    && w.side.is_some()
                    && w.size.is_some()
                    && w.price.is_some()
                    && w.product_id.is_some()
                    && w.time.is_some()
            }
            Kind::Ticker => w.product_id.is_some(),
            Kind::Snapshot => w.product_id.is_some() && w.has_bids && w.has_asks,
            Kind::L2Update => w.product_id.is_some() && w.has_bids,
            Kind::Heartbeat | Kind::Subscriptions | Kind::Error => true,
        };
        if !required {
            return Err(typed::unknown(raw, &["type"], "no_type").into());
        }
        let bad = Cow::Borrowed(kind.bad());
        match kind {
            Kind::L2Update => {
                let product_id = w.product_id.as_deref().unwrap_or_default().as_bytes();
                self.l2update(product_id, w.time.as_deref().map(str::as_bytes), w.bad_bids, out)
            }
            Kind::Match | Kind::LastMatch => self.trade(&w, out).ok_or(bad),
            Kind::Ticker => self.ticker(&w, out).ok_or(bad),
            Kind::Snapshot => self.snapshot(&w, out).ok_or(bad),
            Kind::Error => {
                self.stats.venue_errors += 1;
                Err("venue_error".into())
            }
            Kind::Heartbeat | Kind::Subscriptions => {
                self.stats.ignore(kind.name());
                Ok(())
            }
        }
    }

    fn trade(&mut self, w: &Wire<'_>, out: &mut Vec<Event>) -> Option<()> {
        let (Some(trade_id), Some(side), Some(size), Some(price), Some(product_id), Some(time)) =
            (w.trade_id, &w.side, &w.size, &w.price, &w.product_id, &w.time)
        else {
            return None;
        };
        if let Some(i) = self.products.find(product_id) {
            if trade_id <= self.products.list[i].trade_id {
                self.stats.ignore("duplicate_trade");
                return Some(());
            }
        }
        let (price_v, volume) = (self.fixed.positive(price)?, self.fixed.positive(size)?);
        let when = self.times.ns(time)?;
        // the maker's side: the aggressor is the other
        let aggressor = match &**side {
            "buy" => SELL,
            "sell" => BUY,
            _ => return None,
        };
        let i = self.products.keep(product_id)?;
        let p = &mut self.products.list[i];
        if p.trade_id != 0 && p.trade_id.checked_add(1) != Some(trade_id) {
            *self.stats.extra.entry(TRADE_ID_GAPS).or_default() += 1;
        }
        p.trade_id = trade_id;
        p.inst.announce(VENUE, Some(price), Some(size), None, out);
        out.push(Event::Trade {
            asset_id: p.inst.asset_id,
            price: price_v,
            volume,
            exec_ts_ns: when,
            venue_id: VENUE,
            asset_type: SPOT,
            side: aggressor,
        });
        Some(())
    }

    fn ticker(&mut self, w: &Wire<'_>, out: &mut Vec<Event>) -> Option<()> {
        fn or_zero<'t>(text: &'t Option<Cow<'_, str>>) -> &'t str {
            match text.as_deref() {
                None | Some("") => "0",
                Some(t) => t,
            }
        }
        let (Some(best_bid), Some(best_ask)) = (&w.best_bid, &w.best_ask) else {
            self.stats.ignore("ticker:no_quote");
            return Some(());
        };

        let bid_price = self.fixed.amount(best_bid)?;
        let bid_size = self.fixed.amount(or_zero(&w.best_bid_size))?;
        let ask_price = self.fixed.amount(best_ask)?;
        let ask_size = self.fixed.amount(or_zero(&w.best_ask_size))?;
        let quote_ts_ns = match w.time.as_deref() {
            None | Some("") => 0,
            Some(t) => self.times.ns(t)?,
        };
        let i = self.products.keep(w.product_id.as_deref()?)?;
        let inst = &mut self.products.list[i].inst;
        inst.announce(VENUE, Some(best_bid), w.best_bid_size.as_deref(), None, out);
        out.push(Event::Quote {
            asset_id: inst.asset_id,
            bid_price,
            bid_size,
            ask_price,
            ask_size,
            quote_ts_ns,
            venue_id: VENUE,
            asset_type: SPOT,
        });
        Some(())
    }

    fn snapshot(&mut self, w: &Wire<'_>, out: &mut Vec<Event>) -> Option<()> {
        if w.bad_bids || w.bad_asks {
            return None;
        }
        let i = self.products.keep(w.product_id.as_deref()?)?;
        let inst = &mut self.products.list[i].inst;
        let first = w.first_bid.as_ref().or(w.first_ask.as_ref());
        inst.announce(VENUE, first.map(|f| &*f.0), first.map(|f| &*f.1), None, out);
        let live = inst.live;
        inst.book_stats(&mut self.stats, |s| s.resyncs += u64::from(live));
        inst.book.load(&self.bids, &self.asks);
        inst.live = true;
        let (bids, asks) = inst.book.levels();
        split_snapshot(inst.asset_id, VENUE, 0, 0, &bids, &asks, out);
        inst.render(&mut self.stats);
        Some(())
    }

    /// The l2update of `product_id` at `time` (UTF-8 texts; None: null), its levels in `self.bids`
    /// and `self.asks`; `bad`: a level's value failed.
    fn l2update(
        &mut self,
        product_id: &[u8],
        time: Option<&[u8]>,
        bad: bool,
        out: &mut Vec<Event>,
    ) -> Result<(), Cow<'static, str>> {
        let i = match self.products.find_utf8(product_id) {
            Some(i) if self.products.list[i].inst.live => i,
            _ => return Err("l2update_before_snapshot".into()),
        };
        let ts = match time {
            None | Some(b"") => Some(0),
            Some(t) => self.times.ns_of_bytes(t),
        };
        let too_many = self.bids.len() + self.asks.len() > MAX_SNAPSHOT_LEVELS; // one L2Delta holds them
        let (false, false, Some(ts)) = (bad, too_many, ts) else {
            return Err(Kind::L2Update.bad().into());
        };
        let inst = &mut self.products.list[i].inst;
        inst.book.update(&self.bids, &self.asks);
        inst.book_stats(&mut self.stats, |s| s.updates_applied += 1);
        out.push(Event::L2Delta {
            asset_id: inst.asset_id,
            venue_id: VENUE,
            asset_type: SPOT,
            flags: 0,
            first_seq: 0,
            last_seq: 0,
            exchange_ts_ns: ts,
            bids: self.bids.clone(),
            asks: self.asks.clone(),
        });
        if inst.book.is_crossed() {
            inst.book_stats(&mut self.stats, |s| s.crossed += 1);
            invalidate(VENUE, inst, reason::CROSSED_BOOK, &mut self.stats, out);
            let product_id = inst.venue_symbol.clone();
            self.resubscribe(&product_id);
        }
        self.products.list[i].inst.render(&mut self.stats);
        Ok(())
    }

    /// Unsubscribe and subscribe the product's level2 again: Coinbase answers with a snapshot.
    fn resubscribe(&mut self, product_id: &str) {
        let mut channels = br#""channels":"#.to_vec();
        encode_strs(&mut channels, [self.level2_channel.as_str()]);
        for kind in ["unsubscribe", "subscribe"] {
            self.requests.push(subscription(kind, [product_id], &channels));
        }
    }
}

impl Feed for CoinbaseFeed {
    fn on_frame(&mut self, raw: &[u8], _ts_recv_ns: i64, out: &mut Vec<Event>) {
        self.stats.frames += 1;
        self.fixed.rounded = 0;
        let start = out.len();
        match self.apply(raw, out) {
            Ok(()) => {
                self.stats.rounded += self.fixed.rounded;
                self.stats.count(&out[start..]);
            }
            Err(reason) => {
                out.truncate(start);
                self.stats.reject(&reason, raw);
            }
        }
    }

    /// Every book is gone. Trade ids are kept, so the trade a resubscription repeats is not
    /// published twice.
    fn on_disconnect(&mut self, _ts_ns: i64, out: &mut Vec<Event>) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::fixed::parse_fixed8_rounded;

    /// What an l2update frame reads to: (product id, time, bids, asks), by the fast path or by the
    /// general reader (None when it is not a good l2update with nothing rounded).
    type Read = Option<(String, String, Vec<Level>, Vec<Level>)>;

    fn read(raw: &str) -> (Read, Read) {
        let mut feed = CoinbaseFeed::new("level2");
        let (mut bids, mut asks) = (Vec::new(), Vec::new());
        let plain = plain_l2update(raw.as_bytes(), &mut bids, &mut asks).map(|(p, t)| {
            (String::from_utf8_lossy(p).into_owned(), String::from_utf8_lossy(t).into_owned(), bids, asks)
        });
        let general = feed.decode(raw.as_bytes(), "l2update", Kind::L2Update).ok().and_then(|w| {
            if !w.has_bids || w.bad_bids || feed.fixed.rounded != 0 {
                return None;
            }
            let text = |t: &Option<Cow<'_, str>>| t.as_deref().map(str::to_owned);
            Some((text(&w.product_id)?, text(&w.time)?, feed.bids.clone(), feed.asks.clone()))
        });
        (plain, general)
    }

    #[test]
    fn the_plain_l2update_is_what_the_general_reader_reads() {
        let usual = r#"{"type":"l2update","product_id":"SKL-BTC","changes":[["sell","0.00001306","660.5"],["buy","12345678901.12345678","0"]],"time":"2021-04-17T16:43:37.075687Z"}"#;
        let (plain, general) = read(usual);
        let (bids, asks) = (vec![(1_234_567_890_112_345_678, 0)], vec![(1306, 66_050_000_000)]);
        let time = "2021-04-17T16:43:37.075687Z".to_owned();
        assert_eq!(plain, Some(("SKL-BTC".to_owned(), time, bids, asks)));
        assert_eq!(plain, general);
        let taken = [
            usual.replace(r#"["sell","0.00001306","660.5"],"#, ""),
            usual.replace(r#"[["sell","0.00001306","660.5"],["buy","12345678901.12345678","0"]]"#, "[]"),
            usual.replace("660.5", "660."),
            usual.replace("660.5", "0660"),
            usual.replace("2021-04-17T16:43:37.075687Z", ""),
        ];
        for text in &taken {
            let (plain, general) = read(text);
            assert!(plain.is_some(), "{text}");
            assert_eq!(plain, general, "{text}");
        }
        // the shapes it does not take go the general way
        let refused = [
            usual.replace("0.00001306", "0.000013061"),
            usual.replace("0.00001306", "0"),
            usual.replace("0.00001306", ".5"),
            usual.replace("0.00001306", "1e3"),
            usual.replace("0.00001306", "-1"),
            usual.replace("0.00001306", "+1"),
            usual.replace("12345678901.", "123456789012."),
            usual.replace("12345678901.", "99999999999."),
            usual.replace("\"sell\"", "\"Sell\""),
            usual.replace("\"buy\"", "\"bu\""),
            usual.replace("SKL-BTC", "SKL\\u002dBTC"),
            usual.replace("SKL-BTC", "SKL-\u{e9}"),
            usual.replace("SKL-BTC", "SKL\tBTC"),
            usual.replace("\"time\":\"2021-04-17T16:43:37.075687Z\"", "\"time\":null"),
            usual.replace("}", " }"),
            usual.replace("}", "}x"),
            usual.replace(",\"time\"", ", \"time\""),
            usual.replace("\"660.5\"]", "\"660.5\",\"x\"]"),
            usual.replace("\"type\":\"l2update\",", ""),
        ];
        for text in &refused {
            assert_eq!(read(text).0, None, "{text}");
        }
        // what it takes of any text cut short, one byte short, or with one byte changed, the
        // general reader reads the same
        for k in 0..usual.len() {
            let (head, tail) = (&usual[..k], &usual[k + 1..]);
            let changed =
                ["", "\"", "0", "9", ".", ",", "[", "]", "}", " "].map(|c| format!("{head}{c}{tail}"));
            for text in changed.iter().chain([&head.to_owned()]) {
                let (plain, general) = read(text);
                if plain.is_some() {
                    assert_eq!(plain, general, "{text}");
                }
            }
        }
    }

    /// What a snapshot side reads to: (levels, texts of the first, a value failed, values rounded).
    type Side = Option<(Vec<Level>, Option<(String, String)>, bool, u64)>;

    /// A snapshot side's text read by [`snapshot_side`], and the same text with a space after its
    /// opening bracket, which the fast path refuses and the general reader skips (None: no
    /// bracket opens the text, which neither reads).
    fn sides(text: &str) -> (Side, Side) {
        let read = |text: &str| {
            let (mut fixed, mut levels, mut first, mut bad) = (Decimals::default(), Vec::new(), None, false);
            let rounded = Reader::whole(text.as_bytes(), |r| {
                snapshot_side(r, &mut fixed, &mut levels, &mut first, &mut bad)
            })
            .ok()?;
            let first = first.map(|(p, s)| (p.into_owned(), s.into_owned()));
            Some((levels, first, bad, rounded))
        };
        let body = text.trim_start_matches([' ', '\t', '\n', '\r']);
        let spaced =
            body.strip_prefix('[').map(|rest| format!("{}[ {rest}", &text[..text.len() - body.len()]));
        assert!(spaced.as_ref().is_none_or(|t| plain_levels(t.as_bytes(), &mut Vec::new()).is_none()));
        (read(text), spaced.and_then(|t| read(&t)))
    }

    #[test]
    fn plain_snapshot_levels_are_what_the_general_reader_reads() {
        let usual = r#"[["14.8024","12.77"],["14.8069","0"],["0.00000001","123.10"]]"#;
        let mut levels = Vec::new();
        let (len, first) = plain_levels(usual.as_bytes(), &mut levels).expect("the usual shape");
        assert_eq!((len, first), (usual.len(), Some(("14.8024", "12.77"))));
        assert_eq!(levels, [(1_480_240_000, 1_277_000_000), (1_480_690_000, 0), (1, 12_310_000_000)]);
        let (plain, general) = sides(usual);
        assert_eq!(plain, general);
        assert_eq!(plain.map(|s| (s.2, s.3)), Some((false, 0)));
        assert_eq!(plain_levels(b"[]x", &mut levels), Some((2, None)));
        // values the general reader refuses or rounds: not taken here, and read the general way
        for text in [r#"[["0","1"]]"#, r#"[["1","1.000000001"]]"#, r#"[["1","-1"]]"#, r#"[["1","1"] ]"#] {
            assert_eq!(plain_levels(text.as_bytes(), &mut levels), None, "{text}");
        }
        assert_eq!(sides(r#"[["0","1"],["2","1"]]"#).0.map(|s| (s.2, s.3)), Some((true, 0)));
        assert_eq!(
            sides(r#"[["1","1.000000001"]]"#).0.map(|s| (s.0, s.2, s.3)),
            Some((vec![(100_000_000, 100_000_000)], false, 1))
        );
        // any text cut short, one byte short, with one byte changed or a space put in reads the
        // same both ways
        for k in 0..usual.len() {
            let (head, tail) = (&usual[..k], &usual[k + 1..]);
            let changed = ["", "\"", "0", "9", ".", ",", "[", "]", " "].map(|c| format!("{head}{c}{tail}"));
            let inserted = format!("{head} {}", &usual[k..]);
            for text in changed.iter().chain([&head.to_owned(), &inserted]) {
                let (plain, general) = sides(text);
                assert_eq!(plain, general, "{text}");
            }
        }
    }

    #[test]
    fn a_plain_amount_is_what_parse_fixed8_reads() {
        let taken = ["0", "1", "1.", "1.5", "0.00000001", "00000000001.1", "92233720368.54775807"];
        for text in taken {
            let quoted = format!("{text}\"");
            let (value, end) = plain_amount(quoted.as_bytes(), 0).expect(text);
            assert_eq!((parse_fixed8_rounded(text.as_bytes()), end), (Ok((value, false)), quoted.len()));
        }
        // what it leaves to parse_fixed8_rounded: rounded, out of range, too long or not a number
        let refused = [
            "1.000000000",
            "92233720368.54775808",
            "000000000001",
            "",
            ".",
            ".5",
            "1..5",
            "1.5.",
            "1a",
            "+1",
            "1e3",
        ];
        for text in refused {
            assert_eq!(plain_amount(format!("{text}\"").as_bytes(), 0), None, "{text}");
        }
    }
}
