//! Binance spot market streams: the wire schema and venue symbols, as
//! `tickrelay/venues/binance_wire.py`. Pure: no I/O.
//!
//! Each schema is read as its msgspec Struct decodes ([`super::typed`]): the fields it names, of
//! their types and bounds (update ids int64 >= 0, times in ms that fit int64 ns), required unless
//! the Python schema gives a default; every other member is skipped.

use std::borrow::Cow;

use super::feed::Level;
use super::numbers::{places, MAX_TEXT};
use super::typed::{after, plain_text, Bad, Reader, Res};
use crate::protocol::fixed::parse_fixed8_rounded;

/// `QUOTE_ASSETS`, longest first (the longest matching suffix wins).
const QUOTES_LONGEST_FIRST: [&str; 37] = [
    "FDUSD", "USDT", "BUSD", "USDC", "TUSD", "USDP", "DOGE", "IDRT", "BIDR", "BVND", "USDS", "DAI", "USD",
    "BTC", "ETH", "BNB", "XRP", "TRX", "DOT", "EUR", "GBP", "TRY", "BRL", "AUD", "RUB", "UAH", "ZAR", "JPY",
    "PLN", "RON", "ARS", "NGN", "MXN", "COP", "CZK", "VAI", "PAX",
];
/// `MAX_SYMBOL`: characters of a venue symbol.
pub const MAX_SYMBOL: usize = 64;
/// `UpdateId`'s bounds.
const ID_MAX: i64 = i64::MAX;
/// `Millis`' upper bound: ms that fit int64 ns.
const MS_MAX: i64 = i64::MAX / 1_000_000;

/// `normalize_symbol`: `NKNUSDT` -> `NKN/USDT` by the longest known quote-asset suffix; None where
/// Python raises SymbolError (not ASCII, too long, no quote asset, nothing left for the base).
pub fn normalize_symbol(venue_symbol: &str) -> Option<String> {
    if !venue_symbol.is_ascii() || venue_symbol.len() > MAX_SYMBOL {
        return None;
    }
    let upper = venue_symbol.to_ascii_uppercase();
    QUOTES_LONGEST_FIRST.iter().find_map(|quote| {
        (upper.len() > quote.len() && upper.ends_with(quote))
            .then(|| format!("{}/{quote}", &upper[..upper.len() - quote.len()]))
    })
}

/// `stream_kind`: `nknusdt@kline_1m` -> `kline`.
pub fn stream_kind(stream: &[u8]) -> &[u8] {
    let after = stream.iter().position(|&c| c == b'@').map_or(&stream[..0], |k| &stream[k + 1..]);
    let kind = after.split(|&c| c == b'@').next().unwrap_or_default();
    kind.split(|&c| c == b'_').next().unwrap_or_default()
}

/// A payload schema (`_SCHEMAS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Trade,
    AggTrade,
    BookTicker,
    Depth,
    Kline,
}

impl Kind {
    /// The schema of a combined-stream kind (`_SCHEMAS`' keys).
    pub fn of(kind: &[u8]) -> Option<Self> {
        Some(match kind {
            b"trade" => Self::Trade,
            b"aggTrade" => Self::AggTrade,
            b"bookTicker" => Self::BookTicker,
            b"depth" => Self::Depth,
            b"kline" => Self::Kline,
            _ => return None,
        })
    }

    /// The kind of a raw-stream event type `e` (`_EVENT_KINDS.get(e, e)`).
    pub fn of_event(e: &str) -> &str {
        match e {
            "depthUpdate" => "depth",
            other => other,
        }
    }

    /// The kind's name, as the reject reasons say it (`invalid_depth`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Trade => "trade",
            Self::AggTrade => "aggTrade",
            Self::BookTicker => "bookTicker",
            Self::Depth => "depth",
            Self::Kline => "kline",
        }
    }
}

/// A decoded payload. Texts are UTF-8 bytes; a diff's levels are in the [`Scratch`] it was read
/// with, their verdicts here.
#[derive(Debug)]
pub enum Payload<'a> {
    /// `_Trade` and `_AggTrade` (the same fields).
    Trade {
        s: Cow<'a, [u8]>,
        p: Cow<'a, [u8]>,
        q: Cow<'a, [u8]>,
        t: i64,
        m: bool,
    },
    BookTicker {
        u: i64,
        s: Cow<'a, [u8]>,
        quote: [Cow<'a, [u8]>; 4],
    },
    Depth {
        e: i64,
        s: Cow<'a, [u8]>,
        first: i64,
        last: i64,
        b: Result<(), LevelsError>,
        a: Result<(), LevelsError>,
    },
    Kline,
}

/// What reading a diff's levels fills: reused frame after frame.
#[derive(Debug, Default)]
pub struct Scratch {
    pub bids: Vec<Level>,
    pub asks: Vec<Level>,
    /// Values rounded in `bids` / `asks` (the last `b` / `a` member read).
    pub rounded: [u64; 2],
}

fn need<T>(field: Option<T>) -> Res<T> {
    field.ok_or(Bad::Invalid)
}

/// One payload object of schema `kind`.
pub fn payload<'a>(r: &mut Reader<'a>, kind: Kind, scratch: &mut Scratch) -> Res<Payload<'a>> {
    match kind {
        Kind::Trade | Kind::AggTrade => {
            let (mut s, mut p, mut q, mut t, mut m) = (None, None, None, None, None);
            r.object(|r, key| {
                match key {
                    b"s" => s = Some(r.text()?),
                    b"p" => p = Some(r.text()?),
                    b"q" => q = Some(r.text()?),
                    b"T" => t = Some(r.int(0, MS_MAX)?),
                    b"m" => m = Some(r.bool()?),
                    _ => r.skip()?,
                }
                Ok(())
            })?;
            Ok(Payload::Trade { s: need(s)?, p: need(p)?, q: need(q)?, t: need(t)?, m: need(m)? })
        }
        Kind::BookTicker => {
            let (mut u, mut s, mut b, mut bq, mut a, mut aq) = (None, None, None, None, None, None);
            r.object(|r, key| {
                match key {
                    b"u" => u = Some(r.int(0, ID_MAX)?),
                    b"s" => s = Some(r.text()?),
                    b"b" => b = Some(r.text()?),
                    b"B" => bq = Some(r.text()?),
                    b"a" => a = Some(r.text()?),
                    b"A" => aq = Some(r.text()?),
                    _ => r.skip()?,
                }
                Ok(())
            })?;
            let quote = [need(b)?, need(bq)?, need(a)?, need(aq)?];
            Ok(Payload::BookTicker { u: need(u)?, s: need(s)?, quote })
        }
        Kind::Depth => {
            let (mut e, mut s, mut first, mut last, mut b, mut a) = (None, None, None, None, None, None);
            let mut lead = Some((0, 0)); // not needed for a diff
            r.object(|r, key| {
                match key {
                    b"E" => e = Some(r.int(0, MS_MAX)?),
                    b"s" => s = Some(r.text()?),
                    b"U" => first = Some(r.int(0, ID_MAX)?),
                    b"u" => last = Some(r.int(0, ID_MAX)?),
                    b"b" => b = Some(side(r, &mut scratch.bids, &mut scratch.rounded[0], &mut lead)?),
                    b"a" => a = Some(side(r, &mut scratch.asks, &mut scratch.rounded[1], &mut lead)?),
                    _ => r.skip()?,
                }
                Ok(())
            })?;
            let (e, s, first, last) = (need(e)?, need(s)?, need(first)?, need(last)?);
            Ok(Payload::Depth { e, s, first, last, b: need(b)?, a: need(a)? })
        }
        Kind::Kline => {
            let mut s = false;
            r.object(|r, key| match key {
                b"s" => r.str().map(|_| s = true),
                _ => r.skip(),
            })?;
            s.then_some(Payload::Kline).ok_or(Bad::Invalid)
        }
    }
}

/// `_COMBINED_DECODERS[kind]`: the whole frame as `{"stream": str, "data": <kind>}`.
pub fn combined<'a>(raw: &'a [u8], kind: Kind, scratch: &mut Scratch) -> Res<Payload<'a>> {
    Reader::whole(raw, |r| {
        let (mut stream, mut data) = (false, None);
        r.object(|r, key| {
            match key {
                b"stream" => stream = r.text().map(|_| true)?, // a str: checked, not kept
                b"data" => data = Some(payload(r, kind, scratch)?),
                _ => r.skip()?,
            }
            Ok(())
        })?;
        if stream {
            need(data)
        } else {
            Err(Bad::Invalid)
        }
    })
}

/// `_DATA_DECODERS[kind]`: a payload alone.
pub fn data<'a>(body: &'a [u8], kind: Kind, scratch: &mut Scratch) -> Res<Payload<'a>> {
    Reader::whole(body, |r| payload(r, kind, scratch))
}

/// An update id from `i`: `0` or digits without a leading zero, at most `i64::MAX`; (it, its end).
fn plain_id(raw: &[u8], i: usize) -> Option<(i64, usize)> {
    let digits = raw.get(i..)?.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 || digits > 19 || (digits > 1 && raw[i] == b'0') {
        return None;
    }
    let mut value = 0i64;
    for &c in &raw[i..i + digits] {
        value = value.checked_mul(10)?.checked_add(i64::from(c - b'0'))?;
    }
    Some((value, i + digits))
}

/// The usual combined bookTicker frame read in one pass, without the general reader:
/// `{"stream":"…","data":{"u":<id>,"s":"…","b":"…","B":"…","a":"…","A":"…"}}`, no whitespace,
/// every string plain (see `plain_text`). A frame it takes, [`combined`] reads to the same
/// payload; any other (None) takes the general path, which decides what it is.
pub fn plain_book_ticker(raw: &[u8]) -> Option<Payload<'_>> {
    let (_, i) = plain_text(raw, after(raw, 0, b"{\"stream\":\"")?)?;
    plain_book_ticker_data(raw, i)
}

/// [`plain_book_ticker`] from `i`, just past the closing quote of a stream name already read as
/// plain (the combined fast path has found where the name ends).
pub fn plain_book_ticker_data(raw: &[u8], i: usize) -> Option<Payload<'_>> {
    let (u, i) = plain_id(raw, after(raw, i, b",\"data\":{\"u\":")?)?;
    let (s, i) = plain_text(raw, after(raw, i, b",\"s\":\"")?)?;
    let (b, i) = plain_text(raw, after(raw, i, b",\"b\":\"")?)?;
    let (bq, i) = plain_text(raw, after(raw, i, b",\"B\":\"")?)?;
    let (a, i) = plain_text(raw, after(raw, i, b",\"a\":\"")?)?;
    let (aq, i) = plain_text(raw, after(raw, i, b",\"A\":\"")?)?;
    (after(raw, i, b"}}")? == raw.len()).then_some(Payload::BookTicker {
        u,
        s: Cow::Borrowed(s),
        quote: [Cow::Borrowed(b), Cow::Borrowed(bq), Cow::Borrowed(a), Cow::Borrowed(aq)],
    })
}

/// `_Envelope`: what a frame the fast path did not take says about itself.
#[derive(Debug, Default)]
pub struct Envelope<'a> {
    pub stream: Option<Cow<'a, str>>,
    /// The `data` member's raw value (None: absent).
    pub data: Option<&'a [u8]>,
    pub e: Option<Cow<'a, str>>,
    pub u: bool,
    pub id: bool,
    /// An `error` member, whatever its value (a `msgspec.Raw` that is there is true).
    pub error: bool,
    pub code: bool,
}

pub fn envelope(raw: &[u8]) -> Res<Envelope<'_>> {
    Reader::whole(raw, |r| {
        let mut env = Envelope::default();
        r.object(|r, key| {
            match key {
                b"stream" => env.stream = r.opt_str()?,
                b"data" => env.data = Some(r.raw()?),
                b"e" => env.e = r.opt_str()?,
                b"u" => env.u = r.opt_int(0, ID_MAX)?,
                b"id" => env.id = r.opt_int_or_str(i64::MIN, i64::MAX)?,
                b"error" => env.error = r.raw().map(|_| true)?,
                b"code" => env.code = r.opt_int(i64::MIN, i64::MAX)?,
                b"msg" => {
                    r.opt_str()?;
                }
                _ => r.skip()?,
            }
            Ok(())
        })?;
        Ok(env)
    })
}

/// `_Snapshot`: (lastUpdateId, raw bids, raw asks).
pub fn snapshot(body: &[u8]) -> Res<(i64, &[u8], &[u8])> {
    Reader::whole(body, |r| {
        let (mut last, mut bids, mut asks) = (None, None, None);
        r.object(|r, key| {
            match key {
                b"lastUpdateId" => last = Some(r.int(0, ID_MAX)?),
                b"bids" => bids = Some(r.raw()?),
                b"asks" => asks = Some(r.raw()?),
                _ => r.skip()?,
            }
            Ok(())
        })?;
        Ok((need(last)?, need(bids)?, need(asks)?))
    })
}

/// `BinanceFeed._fixed`: the exact fixed point of a decimal text, counting a rounding in
/// `rounded`; None where Python raises FixedPointError (not a number, negative, out of range).
pub fn fixed(text: &[u8], rounded: &mut u64) -> Option<i64> {
    let n = text.len();
    if (9..20).contains(&n) && text[n - 9] == b'.' {
        // the fast path: at most 10 integer digits and exactly 8 places, so always in range; the
        // places as one word (simdjson's eight digits at once)
        let mut places = [0u8; 8];
        places.copy_from_slice(&text[n - 8..]);
        let w = u64::from_le_bytes(places);
        const HIGH: u64 = 0xF0F0_F0F0_F0F0_F0F0;
        const ZEROS: u64 = 0x3030_3030_3030_3030;
        let (mut value, mut digits) =
            (0i64, w & HIGH == ZEROS && w.wrapping_add(0x0606_0606_0606_0606) & HIGH == ZEROS);
        for &c in &text[..n - 9] {
            let d = c.wrapping_sub(b'0');
            digits &= d < 10;
            value = value.wrapping_mul(10).wrapping_add(i64::from(d));
        }
        if digits {
            let w = (w & 0x0F0F_0F0F_0F0F_0F0F).wrapping_mul(2561) >> 8;
            let w = (w & 0x00FF_00FF_00FF_00FF).wrapping_mul(6_553_601) >> 16;
            let fraction = (w & 0x0000_FFFF_0000_FFFF).wrapping_mul(42_949_672_960_001) >> 32;
            return Some(value * 100_000_000 + fraction as i64); // < 10^18
        }
    }
    if n > MAX_TEXT {
        return None; // more than MAX_TEXT characters, or bytes of a text that is not a number
    }
    let (value, was_rounded) = parse_fixed8_rounded(text).ok()?;
    if value < 0 {
        return None;
    }
    *rounded += u64::from(was_rounded);
    Some(value)
}

/// Why a level array was not taken: not `[[str, str], ...]` (msgspec's DecodeError, read before
/// any number), or a text that is not an amount, or a price of 0 (FixedPointError).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LevelsError {
    Decode,
    Number,
}

/// `b` / `a` of a diff or `bids` / `asks` of a snapshot, read once the way msgspec reads it as a
/// `msgspec.Raw` (a JSON syntax error is `Err`) and the way `BinanceFeed._levels` then reads that
/// (`_LEVELS_DECODER`, then `_fixed` on each text): the levels into `out` (cleared first), the
/// rounded values into `rounded`, the places of the first level's texts into `lead` if empty.
fn side(
    r: &mut Reader<'_>,
    out: &mut Vec<Level>,
    rounded: &mut u64,
    lead: &mut Option<(u8, u8)>,
) -> Res<Result<(), LevelsError>> {
    out.clear();
    *rounded = 0;
    let was = *lead;
    if let Some((len, verdict)) = plain_side(r.rest(), out, rounded, lead) {
        r.take(len);
        return Ok(verdict);
    }
    *lead = was;
    general_side(r, out, rounded, lead)
}

/// [`side`] of any text, the general way.
fn general_side(
    r: &mut Reader<'_>,
    out: &mut Vec<Level>,
    rounded: &mut u64,
    lead: &mut Option<(u8, u8)>,
) -> Res<Result<(), LevelsError>> {
    out.clear();
    *rounded = 0;
    if !r.at_array() {
        return r.skip().map(|()| Err(LevelsError::Decode));
    }
    let (mut decoded, mut numbers) = (true, true);
    r.array(|r, _| {
        if !r.at_array() {
            decoded = false;
            return r.skip();
        }
        let (mut level, mut count, mut dp) = ([None, None], 0usize, [0u8; 2]);
        r.array(|r, k| {
            count += 1;
            let text = if r.at_string() {
                r.text_or_not_utf8()?
            } else {
                r.skip()?;
                None
            };
            match text {
                Some(text) if k < 2 => {
                    if lead.is_none() {
                        dp[k] = places(std::str::from_utf8(&text).ok());
                    }
                    if numbers {
                        level[k] = fixed(&text, rounded);
                        numbers &= level[k].is_some();
                    }
                }
                _ => decoded = false,
            }
            Ok(())
        })?;
        if lead.is_none() {
            *lead = Some((dp[0], dp[1]));
        }
        decoded &= count == 2;
        if let [Some(price), Some(size)] = level {
            if decoded && numbers {
                out.push((price, size));
            }
        }
        Ok(())
    })?;
    Ok(if !decoded {
        Err(LevelsError::Decode)
    } else if !numbers || out.iter().any(|&(price, _)| price == 0) {
        Err(LevelsError::Number)
    } else {
        Ok(())
    })
}

/// [`side`] of the usual shape, `[["<price>","<size>"],...]` without whitespace and every text
/// plain (see [`plain_text`]), in one tight pass with the same verdict and values: (its length,
/// the verdict); None for any other text, which [`side`] then reads the general way (what this
/// filled is then undone there).
fn plain_side(
    raw: &[u8],
    out: &mut Vec<Level>,
    rounded: &mut u64,
    lead: &mut Option<(u8, u8)>,
) -> Option<(usize, Result<(), LevelsError>)> {
    let mut i = after(raw, 0, b"[")?;
    let (mut numbers, mut zero) = (true, false);
    if raw.get(i) == Some(&b']') {
        return Some((i + 1, Ok(())));
    }
    loop {
        let (price, j) = plain_text(raw, after(raw, i, b"[\"")?)?;
        let (size, j) = plain_text(raw, after(raw, j, b",\"")?)?;
        i = after(raw, j, b"]")?;
        if lead.is_none() {
            *lead = Some((places(std::str::from_utf8(price).ok()), places(std::str::from_utf8(size).ok())));
        }
        if numbers {
            match fixed(price, rounded).and_then(|p| Some((p, fixed(size, rounded)?))) {
                Some(level) => {
                    zero |= level.0 == 0;
                    out.push(level);
                }
                None => numbers = false,
            }
        }
        match raw.get(i) {
            Some(b',') => i += 1,
            Some(b']') => {
                return Some((i + 1, if numbers && !zero { Ok(()) } else { Err(LevelsError::Number) }));
            }
            _ => return None,
        }
    }
}

/// `side` of a snapshot's raw `bids` / `asks` (a `msgspec.Raw` already validated).
pub fn levels(
    raw: &[u8],
    out: &mut Vec<Level>,
    rounded: &mut u64,
    lead: &mut Option<(u8, u8)>,
) -> Result<(), LevelsError> {
    let mut side_rounded = 0;
    Reader::whole(raw, |r| side(r, out, &mut side_rounded, lead)).unwrap_or(Err(LevelsError::Decode))?;
    *rounded += side_rounded;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_and_stream_kinds() {
        for (venue, symbol) in [
            ("NKNUSDT", "NKN/USDT"),
            ("BTCFDUSD", "BTC/FDUSD"),
            ("ETHBTC", "ETH/BTC"),
            ("bnbusdt", "BNB/USDT"),
            ("BNBUSD", "BN/BUSD"),
        ] {
            assert_eq!(normalize_symbol(venue).as_deref(), Some(symbol));
        }
        for bad in ["USDT", "FOOBAR", "", "ÉTHUSDT", &("A".repeat(61) + "USDT")] {
            assert_eq!(normalize_symbol(bad), None);
        }
        let kinds: Vec<&[u8]> = ["a@depth@100ms", "a@kline_1m", "a@bookTicker", "a@trade", "trade", "a@"]
            .iter()
            .map(|s| stream_kind(s.as_bytes()))
            .collect();
        assert_eq!(kinds, [&b"depth"[..], b"kline", b"bookTicker", b"trade", b"", b""]);
    }

    /// A bookTicker payload as plain values.
    fn ticker(p: Option<Payload<'_>>) -> Option<(i64, Vec<u8>, Vec<Vec<u8>>)> {
        match p? {
            Payload::BookTicker { u, s, quote } => {
                Some((u, s.to_vec(), quote.iter().map(|q| q.to_vec()).collect()))
            }
            _ => None,
        }
    }

    #[test]
    fn the_plain_book_ticker_is_what_the_general_reader_reads() {
        let usual = r#"{"stream":"btcusdt@bookTicker","data":{"u":50093239212,"s":"BTCUSDT","b":"61837.63000000","B":"3.78826000","a":"61837.64000000","A":"1.54698000"}}"#;
        let read = |raw: &str| {
            let general = combined(raw.as_bytes(), Kind::BookTicker, &mut Scratch::default());
            (ticker(plain_book_ticker(raw.as_bytes())), ticker(general.ok()))
        };
        let (plain, general) = read(usual);
        assert_eq!(plain.as_ref().map(|t| t.0), Some(50_093_239_212));
        assert_eq!(plain, general);
        let id = |text: &str| usual.replace("50093239212", text);
        assert_eq!(read(&id("0")).0.map(|t| t.0), Some(0));
        assert_eq!(read(&id("9223372036854775807")).0.map(|t| t.0), Some(i64::MAX));
        // the shapes it does not take go the general way
        let refused = [
            id("9223372036854775808"),
            id("05"),
            id("-0"),
            id("5.0"),
            id("5e3"),
            id(""),
            usual.replace("BTCUSDT\"", "BTC\\u0055SDT\""),
            usual.replace("BTCUSDT\"", "BTCUSDT\u{e9}\""),
            usual.replace("BTCUSDT\"", "BTC\tUSDT\""),
            usual.replace("}}", "} }"),
            usual.replace("}}", "}}x"),
            usual.replace("}}", "}"),
            usual.replace("\"B\"", "\"b\""),
            usual.replace(",\"A\":\"1.54698000\"", ""),
            usual.replace("\"u\":50093239212,", ""),
        ];
        for text in &refused {
            assert_eq!(read(text).0, None, "{text}");
        }
        // what it takes of any text one byte short, the general reader reads the same
        for k in 0..usual.len() {
            let short = format!("{}{}", &usual[..k], &usual[k + 1..]);
            let (plain, general) = read(&short);
            if plain.is_some() {
                assert_eq!(plain, general, "{short}");
            }
        }
    }

    #[test]
    fn fixed_takes_what_python_takes() {
        let mut rounded = 0;
        assert_eq!(fixed(b"61837.63000000", &mut rounded), Some(6_183_763_000_000));
        assert_eq!(fixed(b".00000001", &mut rounded), Some(1));
        assert_eq!(fixed(b"1.5", &mut rounded), Some(150_000_000));
        assert_eq!(fixed(b"1.000000005", &mut rounded), Some(100_000_000));
        assert_eq!(rounded, 1);
        for bad in ["-1", "x.00000000", "99999999999.00000000", "1e999", "", "1_0", "+"] {
            assert_eq!(fixed(bad.as_bytes(), &mut rounded), None, "{bad}");
        }
        assert_eq!(fixed(b"92233720368.54775807", &mut rounded), Some(i64::MAX));
        for (text, value) in [
            ("0.00000000", 0),
            ("9999999999.99999999", 999_999_999_999_999_999),
            ("0.12345678", 12_345_678),
            ("87654321.90000009", 8_765_432_190_000_009),
        ] {
            assert_eq!(fixed(text.as_bytes(), &mut rounded), Some(value), "{text}");
        }
        for bad in ["1.0000000:", "1.0000000/", "1.000 0000", "1:.00000000", "1.00000\u{7f}00"] {
            assert_eq!(fixed(bad.as_bytes(), &mut rounded), None, "{bad}");
        }
    }

    #[test]
    fn the_plain_side_is_the_general_side() {
        let usual = r#"[["61737.63000000","0.00000000"],["1.5","2"],["61730.17000000","1.00000001"]]"#;
        let mut texts = vec![usual.to_owned(), "[]".to_owned(), r#"[["0","1"]]"#.to_owned()];
        for k in 0..usual.len() {
            texts.push(format!("{}{}", &usual[..k], &usual[k + 1..]));
            texts.push(format!("{}x{}", &usual[..k], &usual[k..]));
        }
        let mut plain_taken = 0;
        for text in &texts {
            for lead in [None, Some((9, 9))] {
                let run = |plain: bool| {
                    let (mut out, mut rounded, mut first) = (Vec::new(), 0, lead);
                    let read = Reader::whole(text.as_bytes(), |r| {
                        if plain {
                            let (len, verdict) = plain_side(r.rest(), &mut out, &mut rounded, &mut first)
                                .ok_or(Bad::TooDeep)?; // not taken: told apart below
                            r.take(len);
                            Ok(verdict)
                        } else {
                            general_side(r, &mut out, &mut rounded, &mut first)
                        }
                    });
                    (read, out, rounded, first)
                };
                let (plain, general) = (run(true), run(false));
                if plain.0 == Err(Bad::TooDeep) {
                    continue;
                }
                plain_taken += 1;
                if general.0 == Ok(Ok(())) {
                    assert_eq!(plain, general, "{text}");
                } else {
                    assert_eq!(plain.0, general.0, "{text}"); // what a refused side leaves is not used
                }
            }
        }
        assert!(plain_taken > 100, "{plain_taken}");
    }

    #[test]
    fn levels_read_the_whole_array_before_any_number() {
        let (mut out, mut rounded, mut first) = (Vec::new(), 0, None);
        assert_eq!(
            levels(br#"[["1.5","2"],["3.00000000","0.00000000"]]"#, &mut out, &mut rounded, &mut first),
            Ok(())
        );
        assert_eq!(
            (out.as_slice(), first),
            (&[(150_000_000, 200_000_000), (300_000_000, 0)][..], Some((1, 0)))
        );
        for (raw, why) in [
            (&br#"[["x","1"],"bad"]"#[..], LevelsError::Decode),
            (br#"[["x","1"]]"#, LevelsError::Number),
            (br#"[["0","1"]]"#, LevelsError::Number),
            (br#"[["1"]]"#, LevelsError::Decode),
            (br#"[["1","2","3"]]"#, LevelsError::Decode),
            (br#"{}"#, LevelsError::Decode),
        ] {
            assert_eq!(
                levels(raw, &mut out, &mut rounded, &mut first),
                Err(why),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }
}
