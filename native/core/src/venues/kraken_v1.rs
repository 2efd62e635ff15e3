//! Kraken WebSocket v1, as `tickrelay/venues/kraken_v1.py`: arrays and event objects, decoded
//! and applied. Pure: no I/O.
//!
//! A frame is `[channelID, payload, (payload,) channelName, pair]`, read as msgspec reads it:
//! first as the whole typed tuple of the kind its tail names, else part by part. Then every
//! number, time and checksum text is read before the book or its texts change.

use std::borrow::Cow;

use super::feed::Event;
use super::feed::SPOT;
use super::kraken::{Fail, Kraken};
use super::kraken_book::{Checksum, Found, Read, VENUE};
use super::numbers::seconds_text_to_ns;
use super::typed::{Bad, Reader, Res};

const BUY: u8 = 0; // `Side.BUY`: the buyer was the aggressor
const SELL: u8 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Trade,
    Ticker,
    Spread,
    Book,
}

impl Kind {
    fn of(name: &[u8]) -> Option<Self> {
        if name.starts_with(b"book-") {
            return Some(Self::Book);
        }
        match name {
            // `decode_v1` looks "book" up as the book kind too: a book payload, then `bad_book` (no depth)
            b"book" => Some(Self::Book),
            b"trade" => Some(Self::Trade),
            b"ticker" => Some(Self::Ticker),
            b"spread" => Some(Self::Spread),
            _ => None,
        }
    }

    pub fn bad(self) -> &'static str {
        match self {
            Self::Trade => "bad_trade",
            Self::Ticker => "bad_ticker",
            Self::Spread => "bad_spread",
            Self::Book => "bad_book",
        }
    }
}

/// A level as sent: its first two texts and how many it has.
#[derive(Debug, Clone, Default)]
pub struct Lv<'a> {
    pub price: Cow<'a, str>,
    pub size: Cow<'a, str>,
    pub n: usize,
}

/// One `_V1Book` payload: ranges into the frame's levels.
#[derive(Debug, Clone, Default)]
struct Part<'a> {
    snap_asks: Option<(usize, usize)>,
    snap_bids: Option<(usize, usize)>,
    a: (usize, usize),
    b: (usize, usize),
    c: Option<Cow<'a, str>>,
}

/// A decoded v1 message's payload: rows of texts (trade, ticker, spread) or book parts.
#[derive(Debug, Default)]
pub struct Payload<'a> {
    texts: Vec<Vec<Cow<'a, str>>>,
    levels: Vec<Lv<'a>>,
    parts: Vec<Part<'a>>,
}

fn strs<'a>(r: &mut Reader<'a>, out: &mut Vec<Cow<'a, str>>) -> Res<()> {
    r.array(|r, _| r.str().map(|s| out.push(s)))
}

/// `list[list[str]]` as levels: (first two texts, count).
fn levels<'a>(r: &mut Reader<'a>, out: &mut Vec<Lv<'a>>) -> Res<(usize, usize)> {
    let start = out.len();
    r.array(|r, _| {
        let mut lv = Lv::default();
        r.array(|r, i| {
            let s = r.str()?;
            match i {
                0 => lv.price = s,
                1 => lv.size = s,
                _ => {}
            }
            lv.n = i + 1;
            Ok(())
        })?;
        out.push(lv);
        Ok(())
    })?;
    Ok((start, out.len()))
}

/// One payload of `kind`, as `_V1_PAYLOAD[kind]` decodes it.
fn payload<'a>(kind: Kind, r: &mut Reader<'a>, p: &mut Payload<'a>) -> Res<()> {
    match kind {
        Kind::Trade => r.array(|r, _| {
            let mut row = Vec::new();
            strs(r, &mut row)?;
            p.texts.push(row);
            Ok(())
        }),
        Kind::Spread => {
            let mut row = Vec::new();
            strs(r, &mut row)?;
            p.texts.push(row);
            Ok(())
        }
        Kind::Ticker => {
            let (mut a, mut b) = (None, None);
            r.object(|r, key| match key {
                b"a" => ticker_side(r).map(|v| a = Some(v)),
                b"b" => ticker_side(r).map(|v| b = Some(v)),
                _ => r.skip(),
            })?;
            let (a, b) = (a.ok_or(Bad::Invalid)?, b.ok_or(Bad::Invalid)?);
            p.texts.push(vec![a.0, a.1, b.0, b.1]);
            Ok(())
        }
        Kind::Book => {
            let mut part = Part::default();
            let levels_out = &mut p.levels;
            r.object(|r, key| match key {
                b"as" => r
                    .null()
                    .and_then(|n| if n { Ok(None) } else { levels(r, levels_out).map(Some) })
                    .map(|v| part.snap_asks = v),
                b"bs" => r
                    .null()
                    .and_then(|n| if n { Ok(None) } else { levels(r, levels_out).map(Some) })
                    .map(|v| part.snap_bids = v),
                b"a" => levels(r, levels_out).map(|v| part.a = v),
                b"b" => levels(r, levels_out).map(|v| part.b = v),
                b"c" => r.opt_str().map(|v| part.c = v),
                _ => r.skip(),
            })?;
            p.parts.push(part);
            Ok(())
        }
    }
}

/// `tuple[str, Any, str]` (the whole lot volume is read as msgspec.Raw: validated, not kept).
fn ticker_side<'a>(r: &mut Reader<'a>) -> Res<(Cow<'a, str>, Cow<'a, str>)> {
    let (mut price, mut volume, mut n) = (None, None, 0);
    r.array(|r, i| {
        n = i + 1;
        match i {
            0 => r.str().map(|s| price = Some(s)),
            1 => r.skip(),
            2 => r.str().map(|s| volume = Some(s)),
            _ => Err(Bad::Invalid),
        }
    })?;
    match (price, volume) {
        (Some(p), Some(v)) if n == 3 => Ok((p, v)),
        _ => Err(Bad::Invalid),
    }
}

/// An `int` field: any integer token msgspec takes (at most 4,300 characters).
pub fn int_token<'a>(r: &mut Reader<'a>) -> Res<&'a [u8]> {
    let raw = r.raw()?;
    let digits = raw.strip_prefix(b"-").unwrap_or(raw);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) || raw.len() > 4300 {
        return Err(Bad::Invalid);
    }
    Ok(raw)
}

/// The channel name between the 4th and 3rd last quotes of the frame's last 48 bytes.
fn tail_kind(raw: &[u8]) -> Option<Kind> {
    let tail = &raw[raw.len().saturating_sub(48)..];
    let mut quotes = tail.iter().enumerate().rev().filter(|(_, &c)| c == b'"').map(|(i, _)| i);
    let (_, _, end, start) = (quotes.next()?, quotes.next()?, quotes.next()?, quotes.next()?);
    Kind::of(&tail[start + 1..end])
}

/// `decode_v1`: the frame's kind, name and pair, its payload in `p`; or the reject reason.
pub fn decode<'a>(raw: &'a [u8], p: &mut Payload<'a>) -> Result<(Kind, Cow<'a, str>, Cow<'a, str>), Fail> {
    if let Some(kind) = tail_kind(raw) {
        let (mut name, mut pair, mut n) = (None, None, 0);
        let whole = Reader::whole(raw, |r| {
            r.array(|r, i| {
                n = i + 1;
                match i {
                    0 => int_token(r).map(|_| ()),
                    1 => payload(kind, r, p),
                    2 => r.str().map(|s| name = Some(s)),
                    3 => r.str().map(|s| pair = Some(s)),
                    _ => Err(Bad::Invalid),
                }
            })
        });
        if let (Ok(()), Some(name), Some(pair), 4) = (whole, name, pair, n) {
            return Ok((kind, name, pair));
        }
        *p = Payload::default();
    }
    let mut parts: Vec<&'a [u8]> = Vec::new();
    Reader::whole(raw, |r| r.array(|r, _| r.raw().map(|s| parts.push(s))))
        .map_err(|_| Fail::reject("invalid_json"))?;
    if parts.len() < 4 {
        return Err(Fail::reject("bad_frame"));
    }
    let text = |b: &'a [u8]| Reader::whole(b, |r| r.str()).map_err(|_| Fail::reject("bad_frame"));
    let (name, pair) = (text(parts[parts.len() - 2])?, text(parts[parts.len() - 1])?);
    let Some(kind) = Kind::of(name.as_bytes()) else {
        return Err(Fail::Reject(format!("unknown_channel:{name}").into()));
    };
    let payloads = &parts[1..parts.len() - 2];
    if kind != Kind::Book && payloads.len() != 1 {
        return Err(Fail::reject(kind.bad()));
    }
    for part in payloads {
        Reader::whole(part, |r| payload(kind, r, p)).map_err(|_| Fail::reject(kind.bad()))?;
    }
    Ok((kind, name, pair))
}

/// The apply step of v1 channel messages (`KrakenV1._v1`).
impl Kraken {
    pub(super) fn v1(
        &mut self,
        kind: Kind,
        name: &str,
        pair: &str,
        p: &Payload<'_>,
        raw: &[u8],
        out: &mut Vec<Event>,
    ) -> Result<(), Fail> {
        let bad = || Fail::reject(kind.bad());
        let b = &mut self.books;
        match kind {
            Kind::Trade => {
                let mut trades = Vec::with_capacity(p.texts.len());
                for entry in &p.texts {
                    let side = entry.get(3).map(|s| s.as_ref());
                    if entry.len() < 4 || !matches!(side, Some("b" | "s")) {
                        return Err(bad());
                    }
                    let price = b.dec.positive(&entry[0]).ok_or_else(bad)?;
                    let volume = b.dec.positive(&entry[1]).ok_or_else(bad)?;
                    let when = seconds_text_to_ns(&entry[2]).ok_or_else(bad)?;
                    trades.push((price, volume, when, if side == Some("b") { BUY } else { SELL }));
                }
                b.lookup(pair).ok_or_else(bad)?;
                let i = b.keep(pair);
                for ((price, volume, when, side), entry) in trades.into_iter().zip(&p.texts) {
                    let inst = &mut b.pairs[i].inst;
                    inst.announce(VENUE, Some(&entry[0]), Some(&entry[1]), None, out);
                    out.push(Event::Trade {
                        asset_id: inst.asset_id,
                        price,
                        volume,
                        exec_ts_ns: when,
                        venue_id: VENUE,
                        asset_type: SPOT,
                        side,
                    });
                }
            }
            Kind::Ticker | Kind::Spread => {
                let t = p.texts.first().ok_or_else(bad)?;
                // ticker: [ask, ask lot, bid, bid lot]; spread: [bid, ask, time, bid volume, ask volume]
                let (bid, bid_size, ask, ask_size, when) = if kind == Kind::Ticker {
                    (&t[2], &t[3], &t[0], &t[1], None)
                } else {
                    if t.len() < 5 {
                        return Err(bad());
                    }
                    (&t[0], &t[3], &t[1], &t[4], Some(&t[2]))
                };
                let values =
                    (b.dec.amount(bid), b.dec.amount(bid_size), b.dec.amount(ask), b.dec.amount(ask_size));
                let (Some(bid_price), Some(bid_v), Some(ask_price), Some(ask_v)) = values else {
                    return Err(bad());
                };
                let ts = match when {
                    Some(w) => seconds_text_to_ns(w).ok_or_else(bad)?,
                    None => 0,
                };
                b.lookup(pair).ok_or_else(bad)?;
                let i = b.keep(pair);
                let inst = &mut b.pairs[i].inst;
                inst.announce(VENUE, Some(bid), Some(bid_size), None, out);
                out.push(Event::Quote {
                    asset_id: inst.asset_id,
                    bid_price,
                    bid_size: bid_v,
                    ask_price,
                    ask_size: ask_v,
                    quote_ts_ns: ts,
                    venue_id: VENUE,
                    asset_type: SPOT,
                });
            }
            Kind::Book => self.v1_book(name, pair, p, raw, out)?,
        }
        Ok(())
    }

    fn v1_book(
        &mut self,
        name: &str,
        pair: &str,
        p: &Payload<'_>,
        raw: &[u8],
        out: &mut Vec<Event>,
    ) -> Result<(), Fail> {
        let bad = || Fail::reject("bad_book");
        let depth_text = name.strip_prefix("book-").ok_or_else(bad)?;
        if depth_text.is_empty() || depth_text.len() > 4 || !depth_text.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        let depth: usize = depth_text.parse().map_err(|_| bad())?;
        let first = p.parts.first().ok_or_else(bad)?;
        let b = &mut self.books;
        let lv = |range: Option<(usize, usize)>| range.map_or(&[][..], |(s, e)| &p.levels[s..e]);
        if first.snap_asks.is_some() || first.snap_bids.is_some() {
            let (asks, bids) = (lv(first.snap_asks), lv(first.snap_bids));
            let lead = asks.first().or(bids.first());
            let found = b.lookup(pair).ok_or_else(bad)?;
            let precision = found.precision(b);
            let read_bids = read_all(b, precision, bids).ok_or_else(bad)?;
            let read_asks = read_all(b, precision, asks).ok_or_else(bad)?;
            let i = b.keep(pair);
            let pr = &mut b.pairs[i];
            pr.inst.book.depth = Some(depth);
            pr.v2 = false;
            let (price, size) =
                lead.map_or((None, None), |l| (Some(l.price.as_ref()), Some(l.size.as_ref())));
            pr.inst.announce(VENUE, price, size, None, out); // every level was read: two texts or more
            b.load(i, &read_bids, &read_asks, out);
            return Ok(());
        }
        let Some(i) = b.kept(pair).filter(|&i| b.pairs[i].inst.live) else {
            b.stats.reject("book_update_before_snapshot", raw);
            return Ok(());
        };
        let mut checksum = None;
        for part in &p.parts {
            if part.c.is_some() {
                checksum = part.c.as_deref();
            }
        }
        let checksum: Checksum = match checksum {
            None => None,
            Some(c) if c.is_empty() || c.len() > 20 || !c.bytes().all(|d| d.is_ascii_digit()) => {
                return Err(bad())
            }
            Some(c) => Some(c.parse::<u128>().ok().and_then(|v| u32::try_from(v).ok())),
        };
        let precision = Found::Kept(i).precision(b);
        let bids = p.parts.iter().flat_map(|part| &p.levels[part.b.0..part.b.1]);
        let read_bids = read_iter(b, precision, bids).ok_or_else(bad)?;
        let asks = p.parts.iter().flat_map(|part| &p.levels[part.a.0..part.a.1]);
        let read_asks = read_iter(b, precision, asks).ok_or_else(bad)?;
        b.pairs[i].inst.book.depth = Some(depth);
        b.update(i, &read_bids, &read_asks, checksum, 0, raw, out);
        Ok(())
    }
}

fn read_all(
    b: &mut super::kraken_book::Books,
    precision: Option<(u8, u8)>,
    levels: &[Lv<'_>],
) -> Option<Vec<Read>> {
    read_iter(b, precision, levels.iter())
}

/// `_read` over v1 levels: at least two texts each (exactly two where precisions format them).
fn read_iter<'l, 'a: 'l>(
    b: &mut super::kraken_book::Books,
    precision: Option<(u8, u8)>,
    levels: impl Iterator<Item = &'l Lv<'a>>,
) -> Option<Vec<Read>> {
    let mut out = Vec::with_capacity(levels.size_hint().0); // a snapshot's thousands: no regrowing
    for lv in levels {
        if lv.n < 2 || (precision.is_some() && lv.n != 2) {
            return None;
        }
        out.push(b.read(precision, &lv.price, &lv.size)?);
    }
    Some(out)
}
