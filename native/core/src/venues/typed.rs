//! JSON read the way msgspec's typed decoders read it, as the Python feeds decode. Pure: no I/O.
//!
//! A [`Reader`] walks one text once, the way `msgspec.json.Decoder(SomeStruct)` does: the venue
//! module asks for the value it expects at each place (an object whose keys it matches, a `str`,
//! a bounded `int`, a `bool`, a raw span) and skips the rest, validating it. What it accepts and
//! refuses is msgspec's (0.23, checked by experiment, `tests/venues` and the differential tests):
//!
//! - the JSON grammar of RFC 8259, whitespace `' ' \t \n \r` only, nothing after the value;
//! - a string must hold no byte below 0x20, its escapes must be valid and `\u` surrogates paired;
//!   a string read as `str` must be UTF-8 (a skipped string or a key need not be);
//! - an object key is matched after its escapes are decoded; a repeated key is decoded again and
//!   the last one wins (each must be of the field's type);
//! - an `int` field takes an integer token only (`1.0` and `1e3` are floats), within its bounds;
//! - nesting deeper than [`MAX_DEPTH`] is [`Bad::TooDeep`], by the rule of `venues.feed.too_deep`.
//!
//! Strings without escapes are borrowed from the frame: a warm reader allocates nothing.

use std::borrow::Cow;

/// `venues.feed.MAX_DEPTH`: brackets a frame may nest.
pub const MAX_DEPTH: usize = 256;

/// Why a text was not decoded: msgspec's `DecodeError` (or `ValidationError`), or nesting past
/// [`MAX_DEPTH`] (`venues.feed.TOO_DEEP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bad {
    Invalid,
    TooDeep,
}

pub type Res<T> = Result<T, Bad>;

/// `venues.feed.too_deep`: brackets nested deeper than [`MAX_DEPTH`] outside strings (where a
/// backslash escapes the next byte), read from the start whatever the text's validity.
pub fn too_deep(raw: &[u8]) -> bool {
    if raw.len() <= MAX_DEPTH || raw.iter().filter(|&&c| c == b'[' || c == b'{').count() <= MAX_DEPTH {
        return false;
    }
    let (mut depth, mut in_string, mut escaped) = (0i64, false, false);
    for &c in raw {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_string = false;
            }
        } else {
            match c {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    if depth > MAX_DEPTH as i64 {
                        return true;
                    }
                }
                b']' | b'}' => depth -= 1,
                _ => {}
            }
        }
    }
    false
}

/// Whether the whole text is UTF-8, checked once, when the first `str` is read.
#[derive(Debug, Clone, Copy)]
enum Whole<'a> {
    Unchecked,
    Utf8(&'a str),
    NotUtf8,
}

/// A position in one JSON text.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    b: &'a [u8],
    i: usize,
    depth: usize,
    whole: Whole<'a>,
}

impl<'a> Reader<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Self { b, i: 0, depth: 0, whole: Whole::Unchecked }
    }

    /// The whole text as `str`, when it is UTF-8. A string without escapes is then sliced from it
    /// (the quotes around it are char boundaries) instead of being checked on its own: one check
    /// per frame instead of one per string.
    fn whole_str(&mut self) -> Option<&'a str> {
        if let Whole::Unchecked = self.whole {
            self.whole = std::str::from_utf8(self.b).map_or(Whole::NotUtf8, Whole::Utf8);
        }
        match self.whole {
            Whole::Utf8(text) => Some(text),
            _ => None,
        }
    }

    /// Decodes the whole text as one value read by `value` (whitespace around it allowed).
    pub fn whole<T>(b: &'a [u8], value: impl FnOnce(&mut Self) -> Res<T>) -> Res<T> {
        let mut r = Self::new(b);
        r.ws();
        let out = value(&mut r)?;
        r.ws();
        if r.i == b.len() {
            Ok(out)
        } else {
            Err(Bad::Invalid)
        }
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> Res<()> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(Bad::Invalid)
        }
    }

    fn enter(&mut self) -> Res<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            Err(Bad::TooDeep)
        } else {
            Ok(())
        }
    }

    /// An object: `field(reader, key)` reads (or skips) the value of each member, in order.
    pub fn object(&mut self, mut field: impl FnMut(&mut Self, &[u8]) -> Res<()>) -> Res<()> {
        self.eat(b'{')?;
        self.enter()?;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            self.depth -= 1;
            return Ok(());
        }
        let mut key = Vec::new(); // only used by a key with escapes
        loop {
            self.ws();
            let name = self.key(&mut key)?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            let b = self.b;
            match name {
                Some((start, end)) => field(self, &b[start..end])?,
                None => field(self, &key)?,
            }
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    self.depth -= 1;
                    return Ok(());
                }
                _ => return Err(Bad::Invalid),
            }
        }
    }

    /// An array: `item(reader, index)` reads (or skips) each item, in order.
    pub fn array(&mut self, mut item: impl FnMut(&mut Self, usize) -> Res<()>) -> Res<()> {
        self.eat(b'[')?;
        self.enter()?;
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            self.depth -= 1;
            return Ok(());
        }
        let mut n = 0;
        loop {
            self.ws();
            item(self, n)?;
            n += 1;
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    self.depth -= 1;
                    return Ok(());
                }
                _ => return Err(Bad::Invalid),
            }
        }
    }

    /// A key: its span when it has no escape, else None with the decoded bytes in `buf`.
    fn key(&mut self, buf: &mut Vec<u8>) -> Res<Option<(usize, usize)>> {
        self.eat(b'"')?;
        let start = self.i;
        let (end, escaped, _) = self.string_end()?;
        if !escaped {
            return Ok(Some((start, end)));
        }
        buf.clear();
        unescape(&self.b[start..end], buf)?;
        Ok(None)
    }

    /// Past the closing quote of a string whose opening quote was read; (end of its content,
    /// whether it holds an escape, whether it holds a byte past ASCII). Escapes are checked;
    /// UTF-8 is not. Inlined: it runs for every key and string of every frame.
    #[inline(always)]
    fn string_end(&mut self) -> Res<(usize, bool, bool)> {
        let (mut escaped, mut high) = (false, false);
        loop {
            let (at, wide) = plain_run(self.b, self.i);
            (self.i, high) = (at, high | wide);
            match self.peek() {
                Some(b'"') => {
                    self.i += 1;
                    return Ok((self.i - 1, escaped, high));
                }
                Some(b'\\') => {
                    escaped = true;
                    self.i += 1 + escape_len(&self.b[self.i + 1..])?;
                }
                _ => return Err(Bad::Invalid), // a control character, or the end
            }
        }
    }

    /// A `str` field: the decoded text (borrowed when it has no escape); must be UTF-8.
    pub fn str(&mut self) -> Res<Cow<'a, str>> {
        self.eat(b'"')?;
        let start = self.i;
        let (end, escaped, _) = self.string_end()?;
        if escaped {
            let mut buf = Vec::with_capacity(end - start);
            unescape(&self.b[start..end], &mut buf)?;
            return String::from_utf8(buf).map(Cow::Owned).map_err(|_| Bad::Invalid);
        }
        match self.whole_str() {
            Some(text) => text.get(start..end).map(Cow::Borrowed).ok_or(Bad::Invalid),
            None => std::str::from_utf8(&self.b[start..end]).map(Cow::Borrowed).map_err(|_| Bad::Invalid),
        }
    }

    /// A `str` field as its UTF-8 bytes (checked only when it holds a byte past ASCII): for the
    /// texts read as numbers, on the hot path.
    pub fn text(&mut self) -> Res<Cow<'a, [u8]>> {
        self.text_or_not_utf8()?.ok_or(Bad::Invalid)
    }

    /// A string's decoded bytes, or `Ok(None)` when they are not UTF-8: a `str` field that fails
    /// where a skipped string (a `msgspec.Raw`) would not.
    pub fn text_or_not_utf8(&mut self) -> Res<Option<Cow<'a, [u8]>>> {
        self.eat(b'"')?;
        let start = self.i;
        let (end, escaped, high) = self.string_end()?;
        let raw = &self.b[start..end];
        if !escaped {
            let utf8 = !high || self.whole_str().is_some() || std::str::from_utf8(raw).is_ok();
            return Ok(utf8.then_some(Cow::Borrowed(raw)));
        }
        let mut buf = Vec::with_capacity(raw.len());
        unescape(raw, &mut buf)?;
        Ok(std::str::from_utf8(&buf).is_ok().then_some(Cow::Owned(buf)))
    }

    /// What comes next is a string.
    pub fn at_string(&self) -> bool {
        self.peek() == Some(b'"')
    }

    /// What comes next is an array.
    pub fn at_array(&self) -> bool {
        self.peek() == Some(b'[')
    }

    /// The text from here on: for a venue's reader of its usual shape, which then moves past
    /// what it took with [`Reader::take`] (values nested at most a few deep: no depth to count).
    pub fn rest(&self) -> &'a [u8] {
        &self.b[self.i..]
    }

    /// Moves past `n` bytes of [`Reader::rest`].
    pub fn take(&mut self, n: usize) {
        self.i += n;
    }

    /// `str | None`.
    pub fn opt_str(&mut self) -> Res<Option<Cow<'a, str>>> {
        if self.null()? {
            Ok(None)
        } else {
            self.str().map(Some)
        }
    }

    /// Reads `null` if it is next.
    pub fn null(&mut self) -> Res<bool> {
        if self.peek() == Some(b'n') {
            self.literal(b"null")?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// A `bool` field.
    pub fn bool(&mut self) -> Res<bool> {
        match self.peek() {
            Some(b't') => self.literal(b"true").map(|()| true),
            Some(b'f') => self.literal(b"false").map(|()| false),
            _ => Err(Bad::Invalid),
        }
    }

    /// An `int` field bounded to `lo..=hi` (msgspec.Meta(ge, le)): an integer token only.
    pub fn int(&mut self, lo: i64, hi: i64) -> Res<i64> {
        let start = self.i;
        let (end, integer) = self.number()?;
        if !integer {
            return Err(Bad::Invalid);
        }
        let text = &self.b[start..end];
        let (negative, digits) = match text.split_first() {
            Some((b'-', rest)) => (true, rest),
            _ => (false, text),
        };
        let mut value: i128 = 0;
        for &d in digits {
            value = value * 10 + i128::from(d - b'0');
            if value > i128::from(u64::MAX) {
                return Err(Bad::Invalid);
            }
        }
        let value = if negative { -value } else { value };
        if value < i128::from(lo) || value > i128::from(hi) {
            return Err(Bad::Invalid);
        }
        i64::try_from(value).map_err(|_| Bad::Invalid)
    }

    /// `int | None` bounded as [`Reader::int`]: whether a value (not null) was there.
    pub fn opt_int(&mut self, lo: i64, hi: i64) -> Res<bool> {
        if self.null()? {
            Ok(false)
        } else {
            self.int(lo, hi).map(|_| true)
        }
    }

    /// `int | str | None`, the int bounded as [`Reader::int`]: whether a value (not null) was there.
    pub fn opt_int_or_str(&mut self, lo: i64, hi: i64) -> Res<bool> {
        match self.peek() {
            Some(b'"') => self.str().map(|_| true),
            _ => self.opt_int(lo, hi),
        }
    }

    /// A `msgspec.Raw` field: any value, validated and skipped; its span.
    pub fn raw(&mut self) -> Res<&'a [u8]> {
        let start = self.i;
        self.skip()?;
        Ok(&self.b[start..self.i])
    }

    /// Any value, validated as msgspec validates what it skips.
    pub fn skip(&mut self) -> Res<()> {
        match self.peek() {
            Some(b'{') => self.object(|r, _| r.skip()),
            Some(b'[') => self.array(|r, _| r.skip()),
            Some(b'"') => {
                self.i += 1;
                self.string_end().map(|_| ())
            }
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            _ => self.number().map(|_| ()),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Res<()> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(Bad::Invalid)
        }
    }

    /// A number token (the grammar of `json::number_end`): (its end, no fraction or exponent).
    fn number(&mut self) -> Res<(usize, bool)> {
        let end = super::json::number_end(self.b, self.i).map_err(|_| Bad::Invalid)?;
        let integer = !self.b[self.i..end].iter().any(|&c| matches!(c, b'.' | b'e' | b'E'));
        self.i = end;
        Ok((end, integer))
    }
}

/// What `unknown` needs of a value: its text when it is a string, else whether it is truthy.
enum Truth<'a> {
    Str(Cow<'a, str>),
    Other(bool),
}

/// Digits of an integer `msgspec.json.Decoder(object)` takes (Python's `int` text limit).
const MAX_INT_CHARS: usize = 4300;

impl<'a> Reader<'a> {
    /// Any value as `msgspec.json.Decoder(object)` decodes it: every string (and key) UTF-8, an
    /// integer of at most 4300 characters, a float that is finite.
    fn any(&mut self) -> Res<Truth<'a>> {
        match self.peek() {
            Some(b'{') => {
                let mut empty = true;
                self.object(|r, key| {
                    empty = false;
                    std::str::from_utf8(key).map_err(|_| Bad::Invalid)?;
                    r.any().map(|_| ())
                })?;
                Ok(Truth::Other(!empty))
            }
            Some(b'[') => {
                let mut empty = true;
                self.array(|r, _| {
                    empty = false;
                    r.any().map(|_| ())
                })?;
                Ok(Truth::Other(!empty))
            }
            Some(b'"') => self.str().map(Truth::Str),
            Some(b't' | b'f' | b'n') => {
                let truthy = self.peek() == Some(b't');
                self.skip()?;
                Ok(Truth::Other(truthy))
            }
            _ => {
                let start = self.i;
                let (end, integer) = self.number()?;
                let text = &self.b[start..end];
                if integer {
                    if text.len() > MAX_INT_CHARS {
                        return Err(Bad::Invalid);
                    }
                    return Ok(Truth::Other(text.iter().any(|&c| matches!(c, b'1'..=b'9'))));
                }
                let value: f64 =
                    std::str::from_utf8(text).ok().and_then(|t| t.parse().ok()).ok_or(Bad::Invalid)?;
                if value.is_finite() {
                    Ok(Truth::Other(value != 0.0))
                } else {
                    Err(Bad::Invalid)
                }
            }
        }
    }
}

/// `venues.feed.unknown`: why a frame that no schema of the venue took is rejected:
/// `unknown:<kind>`, the kind read from the first of `keys` whose value is truthy (a string;
/// another truthy value gives `unknown`), `unknown:<default>` without one; `invalid_json` when
/// the frame is not a JSON object `msgspec.json.Decoder(dict[str, object])` takes, `too_deep`
/// when it nests past [`MAX_DEPTH`].
pub fn unknown(raw: &[u8], keys: &[&str], default: &str) -> String {
    if too_deep(raw) {
        return "too_deep".to_owned();
    }
    let mut found: Vec<Option<Truth<'_>>> = keys.iter().map(|_| None).collect();
    let read = Reader::whole(raw, |r| {
        r.object(|r, key| {
            let key = std::str::from_utf8(key).map_err(|_| Bad::Invalid)?;
            let value = r.any()?;
            if let Some(k) = keys.iter().position(|k| *k == key) {
                found[k] = Some(value);
            }
            Ok(())
        })
    });
    match read {
        Err(Bad::TooDeep) => "too_deep".to_owned(),
        Err(Bad::Invalid) => "invalid_json".to_owned(),
        Ok(()) => match found
            .into_iter()
            .flatten()
            .find(|t| !matches!(t, Truth::Str(s) if s.is_empty()) && !matches!(t, Truth::Other(false)))
        {
            Some(Truth::Str(kind)) => format!("unknown:{kind}"),
            Some(Truth::Other(_)) => "unknown".to_owned(),
            None => format!("unknown:{default}"),
        },
    }
}

/// Past `word` at `i`, if it is there (the fast paths' fixed keys and punctuation).
#[inline(always)]
pub(crate) fn after(raw: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    (raw.get(i..i + word.len())? == word).then_some(i + word.len())
}

/// A plain string's content from `i` (past its opening quote): no escape, no control character,
/// no byte past ASCII (so it is the text's UTF-8); (its content, past its closing quote). Inlined:
/// it runs six times a Binance bookTicker and twice a level, and the call cost as much as the scan.
#[inline(always)]
pub(crate) fn plain_text(raw: &[u8], i: usize) -> Option<(&[u8], usize)> {
    let (end, high) = plain_run(raw, i);
    (raw.get(end) == Some(&b'"') && !high).then(|| (&raw[i..end], end + 1))
}

/// From `i`, the offset of the first byte that ends a plain run of string content (a quote, a
/// backslash, a control character, or the end), and whether the run holds a byte past ASCII.
/// Eight bytes at a time (SWAR: a byte equal to `c` is a zero byte of `w ^ c..c`).
#[inline(always)]
pub(crate) fn plain_run(b: &[u8], mut i: usize) -> (usize, bool) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let mut high = 0u64;
    while let Some(chunk) = b.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
        let hit = zero(w ^ (ONES * u64::from(b'"'))) | zero(w ^ (ONES * u64::from(b'\\'))) | below_space;
        if hit != 0 {
            // the lowest flagged byte is a true one (false flags only sit above a true one)
            let at = hit.trailing_zeros() / 8;
            high |= w & HIGHS & ((1u64 << (8 * at)) - 1);
            return (i + at as usize, high != 0);
        }
        high |= w & HIGHS;
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            break;
        }
        high |= u64::from(c & 0x80);
        i += 1;
    }
    (i, high != 0)
}

fn hex4(b: &[u8]) -> Res<u32> {
    let h = b.get(..4).ok_or(Bad::Invalid)?;
    h.iter().try_fold(0u32, |acc, &c| {
        let d = (c as char).to_digit(16).ok_or(Bad::Invalid)?;
        Ok(acc * 16 + d)
    })
}

/// The length after the backslash of the escape `b` starts with (`b` is what follows the
/// backslash): `\uD83D\uDE00` is one escape of 11; a lone or unpaired surrogate is invalid.
fn escape_len(b: &[u8]) -> Res<usize> {
    match b.first() {
        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(1),
        Some(b'u') => {
            let unit = hex4(&b[1..])?;
            match unit {
                0xD800..=0xDBFF => {
                    if b.get(5..7) != Some(b"\\u") {
                        return Err(Bad::Invalid);
                    }
                    match hex4(&b[7..])? {
                        0xDC00..=0xDFFF => Ok(11),
                        _ => Err(Bad::Invalid),
                    }
                }
                0xDC00..=0xDFFF => Err(Bad::Invalid),
                _ => Ok(5),
            }
        }
        _ => Err(Bad::Invalid),
    }
}

/// The bytes of a string's content (`raw`, checked by `string_end`) with escapes decoded.
fn unescape(raw: &[u8], out: &mut Vec<u8>) -> Res<()> {
    let mut i = 0;
    while i < raw.len() {
        let c = raw[i];
        if c != b'\\' {
            out.push(c);
            i += 1;
            continue;
        }
        let rest = &raw[i + 1..];
        let len = escape_len(rest)?;
        let ch = match rest[0] {
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' if len == 11 => {
                let (hi, lo) = (hex4(&rest[1..])?, hex4(&rest[7..])?);
                char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)).ok_or(Bad::Invalid)?
            }
            b'u' => char::from_u32(hex4(&rest[1..])?).ok_or(Bad::Invalid)?,
            other => char::from(other),
        };
        let mut utf8 = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut utf8).as_bytes());
        i += 1 + len;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kline(b: &[u8]) -> Res<String> {
        Reader::whole(b, |r| {
            let mut s = None;
            r.object(|r, key| match key {
                b"s" => r.str().map(|v| s = Some(v.into_owned())),
                _ => r.skip(),
            })?;
            s.ok_or(Bad::Invalid)
        })
    }

    #[test]
    fn reads_as_msgspec_does() {
        // each verdict checked against msgspec 0.23 (tests/venues/test_binance.py keeps a few)
        let ok: &[(&[u8], &str)] = &[
            (br#"{"s":"a","s":"b"}"#, "b"),
            (br#"{"\u0073":"a"}"#, "a"),
            (b"{\"s\":\"a\",\"x\":\"\xff\\u0041\",\"\xff\":1}", "a"),
            (br#"{"s":"\ud83d\ude00\/\n\u00e9"}"#, "\u{1F600}/\n\u{e9}"),
            (br#"{"s":"a","x":[1,{"y":[true,false,null,-1.5e3,"z"]}],"z":1E400}"#, "a"),
            (b" {\"s\":\"a\" ,\"x\" : 1}\r\n\t", "a"),
            (b"{\"s\":\"\x7f\"}", "\x7f"),
        ];
        for (raw, s) in ok {
            assert_eq!(kline(raw).as_deref(), Ok(*s), "{}", String::from_utf8_lossy(raw));
        }
        let bad: &[&[u8]] = &[
            br#"{"s":"a","s":1}"#,
            b"{\"s\":\"\xff\"}",
            b"{\"s\":\"\xed\xa0\x80\"}",
            br#"{"s":"\ud800"}"#,
            br#"{"s":"\udc00"}"#,
            br#"{"s":"\ud800\u0041"}"#,
            br#"{"s":"a","x":"\x"}"#,
            b"{\"s\":\"a\",\"x\":\"\t\"}",
            br#"{"s":"a","x":01}"#,
            br#"{"s":"a","x":1.}"#,
            br#"{"s":"a","x":-}"#,
            br#"{"s":"a",}"#,
            br#"{"s":"a"}x"#,
            br#"{"s":"a""#,
            b"",
            b"{\"s\":\"a\"\x0b}",
            br#"{"S":"a"}"#,
            br#"["a"]"#,
            br#"{"s":"a","x":truex}"#,
            br#"{"s":"a","\ud800":1}"#,
        ];
        for raw in bad {
            assert_eq!(kline(raw), Err(Bad::Invalid), "{}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn ints_are_integer_tokens_within_bounds() {
        let int = |b: &[u8]| Reader::whole(b, |r| r.int(0, i64::MAX));
        assert_eq!(int(b"-0"), Ok(0));
        assert_eq!(int(b"9223372036854775807"), Ok(i64::MAX));
        for bad in [&b"9223372036854775808"[..], b"-1", b"1.0", b"1e3", b"true", b"\"1\"", b"null"] {
            assert_eq!(int(bad), Err(Bad::Invalid));
        }
        assert_eq!(int(&[b'9'; 5000]), Err(Bad::Invalid));
    }

    #[test]
    fn depth_is_the_feed_rule() {
        let nest =
            |n: usize| [b"{\"x\":".to_vec(), vec![b'['; n - 1], vec![b']'; n - 1], b"}".to_vec()].concat();
        assert!(kline(&nest(256)).is_err_and(|e| e == Bad::Invalid)); // no "s": but not too deep
        assert_eq!(kline(&nest(257)), Err(Bad::TooDeep));
        assert!(!too_deep(&nest(256)) && too_deep(&nest(257)));
        let quoted =
            [b"{\"x\":\"".to_vec(), vec![b'['; 300], b"\\\"".to_vec(), vec![b'{'; 300], b"\"}".to_vec()];
        assert!(!too_deep(&quoted.concat()));
        assert!(too_deep(&[b"{".to_vec(), b"[]".repeat(300), vec![b'['; 256]].concat()));
        assert!(!too_deep(&[vec![b']'; 300], vec![b'['; 256]].concat()));
    }

    #[test]
    fn unknown_is_python_s() {
        // each checked against tickrelay.venues.feed.unknown(raw, ("type",), "no_type")
        let cases: &[(&[u8], &str)] = &[
            (br#"{"type":"zz"}"#, "unknown:zz"),
            (br#"{"type":5}"#, "unknown"),
            (br#"{"type":0}"#, "unknown:no_type"),
            (br#"{"type":0.0,"x":1}"#, "unknown:no_type"),
            (br#"{"type":1e-999}"#, "unknown:no_type"),
            (br#"{"type":[0]}"#, "unknown"),
            (br#"{"type":"a","type":""}"#, "unknown:no_type"),
            (br#"{"t\u0079pe":"\u00e9"}"#, "unknown:\u{e9}"),
            (br#"{"type":"x","y":1E400}"#, "invalid_json"),
            (b"{\"type\":\"x\",\"\xff\":1}", "invalid_json"),
            (b"{\"type\":\"x\",\"y\":\"\xff\"}", "invalid_json"),
            (br#"[{"type":"x"}]"#, "invalid_json"),
            (br#"{"type":"x"}}"#, "invalid_json"),
        ];
        for (raw, reason) in cases {
            assert_eq!(unknown(raw, &["type"], "no_type"), *reason, "{}", String::from_utf8_lossy(raw));
        }
        let big = |n: usize| [br#"{"type":"x","y":"#.to_vec(), vec![b'1'; n], b"}".to_vec()].concat();
        assert_eq!(unknown(&big(4300), &["type"], "no_type"), "unknown:x");
        assert_eq!(unknown(&big(4301), &["type"], "no_type"), "invalid_json");
        let deep =
            [br#"{"type":"x","y":"#.to_vec(), vec![b'['; 300], vec![b']'; 300], b"}".to_vec()].concat();
        assert_eq!(unknown(&deep, &["type"], "no_type"), "too_deep");
        assert_eq!(unknown(br#"{"type":"","channel":"c"}"#, &["channel", "type"], "no_channel"), "unknown:c");
    }
}
