//! Kraken WebSocket v2, as `tickrelay/venues/kraken_v2.py`: channel messages, decoded and applied.
//! Pure: no I/O.
//!
//! Frames are objects with `channel`: `book` (snapshot/update with `checksum`; numbers are JSON
//! numbers whose text is kept), `trade`, `ticker`, `instrument` (the precisions the v2 checksum
//! formats with), `heartbeat`, `status`. `method` answers are objects without a channel
//! (`kraken.rs`).

use std::borrow::Cow;
use std::collections::HashSet;

use super::feed::{Event, SPOT};
use super::kraken::{Fail, Kraken};
use super::kraken_book::{Checksum, Read, VENUE};
use super::kraken_v1::int_token;
use super::numbers::parse_time_ns;
use super::typed::{Bad, Reader, Res};

const BUY: u8 = 0; // `Side.BUY`: the buyer was the aggressor
const SELL: u8 = 1;
/// Decimals an instrument's price or quantity may name (`kraken_v2._Precision`: InstrumentMeta's byte).
pub const MAX_PRECISION: i64 = 255;

/// Where a book's reads start and its bids end, its time and its lead level's texts.
type BookRead<'a> = (usize, usize, i64, Option<(&'a str, &'a str)>);

#[derive(Debug, Default)]
struct Book<'a> {
    symbol: Option<Cow<'a, str>>,
    bids: (usize, usize),
    asks: (usize, usize),
    checksum: Checksum,
    timestamp: Option<Cow<'a, str>>,
}

/// One `_V2Trade` or `_V2Ticker`: symbol, texts (price, qty | bid, bid_qty, ask, ask_qty), side, time.
#[derive(Debug, Default)]
struct Row<'a> {
    symbol: Option<Cow<'a, str>>,
    side: Option<Cow<'a, str>>,
    texts: [Option<&'a [u8]>; 4],
    timestamp: Option<Cow<'a, str>>,
}

/// The levels of `list[_V2Level]`: (price, qty) raw texts.
fn levels<'a>(r: &mut Reader<'a>, out: &mut Vec<(&'a [u8], &'a [u8])>) -> Res<(usize, usize)> {
    let start = out.len();
    r.array(|r, _| {
        let (mut price, mut qty) = (None, None);
        r.object(|r, key| match key {
            b"price" => r.raw().map(|v| price = Some(v)),
            b"qty" => r.raw().map(|v| qty = Some(v)),
            _ => r.skip(),
        })?;
        out.push((price.ok_or(Bad::Invalid)?, qty.ok_or(Bad::Invalid)?));
        Ok(())
    })?;
    Ok((start, out.len()))
}

/// An `int | None` checksum: `Some(None)` for an integer outside the CRC32 range.
fn checksum(r: &mut Reader<'_>) -> Res<Checksum> {
    if r.null()? {
        return Ok(None);
    }
    let token = int_token(r)?;
    let (negative, digits) = token.strip_prefix(b"-").map_or((false, token), |d| (true, d));
    let value = std::str::from_utf8(digits).ok().and_then(|d| d.parse::<u128>().ok());
    Ok(Some(match value {
        Some(0) => Some(0),
        Some(v) if !negative => u32::try_from(v).ok(),
        _ => None,
    }))
}

fn text(raw: &[u8]) -> Result<&str, Fail> {
    std::str::from_utf8(raw).map_err(|_| Fail::reject("bad_data"))
}

fn rows<'a>(r: &mut Reader<'a>, keys: [&[u8]; 4], trade: bool, out: &mut Vec<Row<'a>>) -> Res<()> {
    r.array(|r, _| {
        let mut row = Row::default();
        r.object(|r, key| match key {
            b"symbol" => r.str().map(|s| row.symbol = Some(s)),
            b"side" if trade => r.str().map(|s| row.side = Some(s)),
            b"timestamp" if trade => r.str().map(|s| row.timestamp = Some(s)),
            b"timestamp" => r.opt_str().map(|s| row.timestamp = s),
            k => match keys.iter().position(|name| *name == k) {
                Some(n) => r.raw().map(|v| row.texts[n] = Some(v)),
                None => r.skip(),
            },
        })?;
        let need = if trade { 2 } else { 4 };
        if row.symbol.is_none()
            || row.texts[..need].iter().any(Option::is_none)
            || (trade && (row.side.is_none() || row.timestamp.is_none()))
        {
            return Err(Bad::Invalid);
        }
        out.push(row);
        Ok(())
    })
}

impl Kraken {
    /// `_take_instruments` of an `_V2Instruments` text (`None`: it is not one).
    pub(super) fn instruments(&mut self, data: &[u8]) -> Option<()> {
        let mut pairs = Vec::new();
        Reader::whole(data, |r| {
            r.object(|r, key| match key {
                b"pairs" => {
                    pairs.clear();
                    r.array(|r, _| {
                        let (mut symbol, mut pp, mut qp) = (None, None, None);
                        r.object(|r, key| match key {
                            b"symbol" => r.str().map(|s| symbol = Some(s)),
                            b"price_precision" => r.int(0, MAX_PRECISION).map(|v| pp = Some(v as u8)),
                            b"qty_precision" => r.int(0, MAX_PRECISION).map(|v| qp = Some(v as u8)),
                            _ => r.skip(),
                        })?;
                        pairs.push((
                            symbol.ok_or(Bad::Invalid)?,
                            pp.ok_or(Bad::Invalid)?,
                            qp.ok_or(Bad::Invalid)?,
                        ));
                        Ok(())
                    })
                }
                _ => r.skip(),
            })
        })
        .ok()?;
        let b = &mut self.books;
        for (symbol, pp, qp) in pairs {
            b.precisions.insert(symbol.to_string(), (pp, qp));
            if let Some(i) = b.kept(&symbol) {
                b.pairs[i].precision = Some((pp, qp));
            }
        }
        Some(())
    }

    /// `_v2` of a channel message whose `data` is `data`.
    pub(super) fn v2(
        &mut self,
        channel: &str,
        kind: &str,
        data: &[u8],
        raw: &[u8],
        out: &mut Vec<Event>,
    ) -> Result<(), Fail> {
        let bad = || Fail::Reject(format!("bad_{channel}").into());
        match channel {
            "book" => {
                let (mut books, mut lv) = (Vec::new(), Vec::new());
                Reader::whole(data, |r| {
                    r.array(|r, _| {
                        let mut book = Book::default();
                        r.object(|r, key| match key {
                            b"symbol" => r.str().map(|s| book.symbol = Some(s)),
                            b"bids" => levels(r, &mut lv).map(|v| book.bids = v),
                            b"asks" => levels(r, &mut lv).map(|v| book.asks = v),
                            b"checksum" => checksum(r).map(|c| book.checksum = c),
                            b"timestamp" => r.opt_str().map(|s| book.timestamp = s),
                            _ => r.skip(),
                        })?;
                        if book.symbol.is_none() {
                            return Err(Bad::Invalid);
                        }
                        books.push(book);
                        Ok(())
                    })
                })
                .map_err(|_| bad())?;
                self.v2_book(kind == "snapshot", &books, &lv, raw, out).map_err(|_| bad())?;
            }
            "trade" | "ticker" => {
                let trade = channel == "trade";
                let keys: [&[u8]; 4] = if trade {
                    [b"price", b"qty", b"-", b"-"]
                } else {
                    [b"bid", b"bid_qty", b"ask", b"ask_qty"]
                };
                let mut all = Vec::new();
                Reader::whole(data, |r| rows(r, keys, trade, &mut all)).map_err(|_| bad())?;
                self.v2_rows(trade, &all, out).map_err(|_| bad())?;
            }
            "instrument" => {
                self.instruments(data).ok_or_else(bad)?;
                self.books.stats.ignore("instrument");
            }
            "heartbeat" | "status" => self.books.stats.ignore(channel),
            _ => self.books.stats.reject(&format!("unknown_channel:{channel}"), raw),
        }
        Ok(())
    }

    fn v2_book(
        &mut self,
        snapshot: bool,
        books: &[Book<'_>],
        lv: &[(&[u8], &[u8])],
        raw: &[u8],
        out: &mut Vec<Event>,
    ) -> Result<(), Fail> {
        let b = &mut self.books;
        let mut read: Vec<BookRead<'_>> = Vec::with_capacity(books.len());
        let mut reads: Vec<Read> = Vec::new();
        let mut seen: HashSet<&str> = HashSet::new(); // allocates only for a frame of two books or more
        for book in books {
            let symbol = book.symbol.as_deref().unwrap_or_default();
            // Kraken sends one book a pair: a second would be applied to the book the first left,
            // dark if the first's checksum failed
            if books.len() > 1 && !seen.insert(symbol) {
                b.dec.rounded = 0;
                b.stats.reject("duplicate_book", raw);
                return Ok(());
            }
            let precision = if snapshot {
                b.lookup(symbol).ok_or(Fail::reject("bad"))?.precision(b)
            } else {
                match b.kept(symbol).filter(|&i| b.pairs[i].inst.live) {
                    Some(i) => b.pairs[i].precision,
                    None => {
                        b.dec.rounded = 0; // the books read before this one rounded for nothing
                        b.stats.reject("book_update_before_snapshot", raw);
                        return Ok(());
                    }
                }
            };
            let side = |range: (usize, usize)| &lv[range.0..range.1];
            let mut lead = None;
            for &(price, qty) in side(book.bids).iter().chain(side(book.asks)) {
                let (price, qty) = (text(price)?, text(qty)?);
                lead.get_or_insert((price, qty));
            }
            let ts = match book.timestamp.as_deref() {
                Some(t) if !t.is_empty() => parse_time_ns(t).ok_or(Fail::reject("bad"))?,
                _ => 0,
            };
            let start = reads.len();
            for &(price, qty) in side(book.bids).iter().chain(side(book.asks)) {
                reads.push(b.read(precision, text(price)?, text(qty)?).ok_or(Fail::reject("bad"))?);
            }
            read.push((start, start + book.bids.1 - book.bids.0, ts, lead));
        }
        for (book, &(start, mid, ts, lead)) in books.iter().zip(&read) {
            let symbol = book.symbol.as_deref().unwrap_or_default();
            let end = start + (book.bids.1 - book.bids.0) + (book.asks.1 - book.asks.0);
            let (bids, asks) = (&reads[start..mid], &reads[mid..end]);
            let i = b.keep(symbol);
            if snapshot {
                let p = &mut b.pairs[i];
                p.v2 = true;
                let precision = p.precision;
                p.inst.announce(VENUE, lead.map(|l| l.0), lead.map(|l| l.1), precision, out);
                b.load(i, bids, asks, out);
                b.check(i, book.checksum, raw, out);
            } else {
                b.update(i, bids, asks, book.checksum, ts, raw, out);
            }
        }
        Ok(())
    }

    fn v2_rows(&mut self, trade: bool, rows: &[Row<'_>], out: &mut Vec<Event>) -> Result<(), Fail> {
        let b = &mut self.books;
        let bad = || Fail::reject("bad");
        let mut values = Vec::with_capacity(rows.len());
        for row in rows {
            let side = row.side.as_deref();
            if trade && !matches!(side, Some("buy" | "sell")) {
                return Err(bad());
            }
            let t = |n: usize| row.texts[n].map_or(Ok(""), text);
            let when = match row.timestamp.as_deref() {
                Some(w) if !w.is_empty() || trade => parse_time_ns(w).ok_or_else(bad)?,
                _ => 0,
            };
            let v = if trade {
                let price = b.dec.positive(t(0)?).ok_or_else(bad)?;
                [price, b.dec.positive(t(1)?).ok_or_else(bad)?, 0, 0]
            } else {
                let mut v = [0; 4];
                for (n, slot) in v.iter_mut().enumerate() {
                    *slot = b.dec.amount(t(n)?).ok_or_else(bad)?;
                }
                v
            };
            values.push((v, when));
        }
        for row in rows {
            b.lookup(row.symbol.as_deref().unwrap_or_default()).ok_or_else(bad)?;
        }
        for (row, (v, when)) in rows.iter().zip(values) {
            let i = b.keep(row.symbol.as_deref().unwrap_or_default());
            let p = &mut b.pairs[i];
            let (price, size) =
                (text(row.texts[0].unwrap_or_default())?, text(row.texts[1].unwrap_or_default())?);
            let precision = p.precision;
            p.inst.announce(VENUE, Some(price), Some(size), precision, out);
            let asset_id = p.inst.asset_id;
            out.push(if trade {
                let side = if row.side.as_deref() == Some("buy") { BUY } else { SELL };
                Event::Trade {
                    asset_id,
                    price: v[0],
                    volume: v[1],
                    exec_ts_ns: when,
                    venue_id: VENUE,
                    asset_type: SPOT,
                    side,
                }
            } else {
                Event::Quote {
                    asset_id,
                    bid_price: v[0],
                    bid_size: v[1],
                    ask_price: v[2],
                    ask_size: v[3],
                    quote_ts_ns: when,
                    venue_id: VENUE,
                    asset_type: SPOT,
                }
            });
        }
        Ok(())
    }
}
