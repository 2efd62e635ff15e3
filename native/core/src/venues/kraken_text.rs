//! A Kraken book level's checksum text, as `tickrelay/venues/kraken_book.py` builds it: the price's
//! and the size's text without "." and leading zeros (v1: as sent; v2: formatted at the instrument's
//! precisions). Nearly every level's text is its price and size written at a pair's places (v2:
//! the precisions; v1: the decimals Kraken writes, one count for every price of a pair and one for
//! every size), so a level is read to a [`Mark`]: those places, or (for a number written otherwise)
//! its own text, kept without a `String`: a short text inline, a long one on the heap.

/// A price's or size's checksum field: its text without "." and leading zeros.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Digits {
    /// The decimal digits of the number followed by that many zeros ("" for 0).
    Num(u64, u8),
    /// Any other text (more than 19 digits, an exponent, a sign), as its bytes.
    Text(Box<[u8]>),
}

impl Digits {
    /// v1: `text.replace(".", "").lstrip("0")`.
    pub fn sent(text: &str) -> Self {
        let mut value = 0u64;
        let mut n = 0usize;
        for &c in text.as_bytes() {
            match c {
                b'.' => {}
                b'0'..=b'9' if n < 19 => {
                    value = value * 10 + u64::from(c - b'0');
                    if value != 0 {
                        n += 1;
                    }
                }
                _ => return Self::Text(sent_text(text)),
            }
        }
        Self::Num(value, 0)
    }

    /// v2: `format_fixed8(value, places)` without "." and leading zeros; `None` where Python's
    /// `format_fixed8` raises (the value has more decimals than `places`).
    pub fn at(value: i64, places: u8) -> Option<Self> {
        let value = u64::try_from(value).ok()?;
        if places >= 8 {
            return Some(Self::Num(value, places - 8));
        }
        let unit = 10u64.pow(u32::from(8 - places));
        (value % unit == 0).then(|| Self::Num(value / unit, 0))
    }

    /// The text of `value` at `places` (as [`Digits::at`]), written to `buf`; nothing where `at`
    /// gives none (a level is only marked with places its values have: see [`plain_places`]).
    pub fn write_at(value: i64, places: u8, buf: &mut Vec<u8>) {
        if let Some(digits) = Self::at(value, places) {
            digits.write(buf);
        }
    }

    fn write(&self, buf: &mut Vec<u8>) {
        match self {
            Self::Num(0, _) => {}
            Self::Num(value, zeros) => {
                let mut digits = [0u8; 20];
                let (mut v, mut i) = (*value, digits.len());
                while v > 0 {
                    i -= 1;
                    digits[i] = b'0' + (v % 10) as u8;
                    v /= 10;
                }
                buf.extend_from_slice(&digits[i..]);
                buf.resize(buf.len() + usize::from(*zeros), b'0');
            }
            Self::Text(text) => buf.extend_from_slice(text),
        }
    }
}

/// A level's checksum field, price digits then size digits, kept inline (no allocation) when short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Text {
    Inline(u8, [u8; INLINE]),
    Heap(Box<[u8]>),
}

const INLINE: usize = 46;

impl Text {
    /// The two fields' digits, written through `buf` (cleared first).
    pub fn of(price: &Digits, size: &Digits, buf: &mut Vec<u8>) -> Self {
        buf.clear();
        price.write(buf);
        size.write(buf);
        match u8::try_from(buf.len()) {
            Ok(n) if buf.len() <= INLINE => {
                let mut inline = [0u8; INLINE];
                inline[..buf.len()].copy_from_slice(buf);
                Self::Inline(n, inline)
            }
            _ => Self::Heap(buf.as_slice().into()),
        }
    }

    pub fn bytes(&self) -> &[u8] {
        match self {
            Self::Inline(n, b) => &b[..usize::from(*n)],
            Self::Heap(b) => b,
        }
    }
}

/// How a book level's checksum text is had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mark {
    /// None: a size of 0 removes the level.
    Gone,
    /// Its price's and size's [`Digits::at`] these places.
    Places(u8, u8),
    /// Its own text (a number written with a sign, an exponent, or more decimals than it keeps).
    Text(Text),
}

/// The decimals of a number written plainly (digits, at most one "."): `Digits::sent` of such a
/// text is `Digits::at` its exact value and these places. `None` for any other text. (Counted here
/// from the point's byte offset: `numbers::places`, which counts characters, made a 1000-deep
/// snapshot 15 % slower.)
pub fn plain_places(text: &str) -> Option<u8> {
    let b = text.as_bytes();
    let dot = b.iter().position(|&c| c == b'.');
    let plain = b.iter().enumerate().all(|(i, &c)| c.is_ascii_digit() || Some(i) == dot);
    let places = dot.map_or(0, |d| b.len() - d - 1);
    (plain && b.len() > usize::from(dot.is_some())).then(|| u8::try_from(places).ok()).flatten()
}

fn sent_text(text: &str) -> Box<[u8]> {
    let bytes: Vec<u8> = text.bytes().filter(|&c| c != b'.').collect();
    let start = bytes.iter().take_while(|&&c| c == b'0').count();
    bytes[start..].into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_python_s() {
        let text = |d: Digits| {
            let mut b = Vec::new();
            d.write(&mut b);
            String::from_utf8(b).unwrap()
        };
        for (sent, want) in
            [("0.05000", "5000"), ("123.45", "12345"), ("0.0", ""), ("1e5", "1e5"), ("00.10", "10")]
        {
            assert_eq!(text(Digits::sent(sent)), want);
        }
        assert_eq!(text(Digits::sent("12345678901.123456789012")), "12345678901123456789012");
        assert_eq!(text(Digits::at(2_943_020_000_000, 1).unwrap()), "294302");
        assert_eq!(text(Digits::at(100_000, 8).unwrap()), "100000");
        assert_eq!(text(Digits::at(100_000, 10).unwrap()), "10000000");
        assert_eq!(Digits::at(2_943_020_000_001, 1), None);
    }

    #[test]
    fn plain_texts_have_places_and_are_their_value_at_them() {
        let at = |value: i64, places: u8| {
            let mut b = Vec::new();
            Digits::write_at(value, places, &mut b);
            String::from_utf8(b).unwrap()
        };
        // (text, its exact fixed-point value): Digits::sent of the text is the value at its places
        for (text, value) in [
            ("0.05000", 5_000_000),
            ("00.10", 10_000_000),
            ("2943.2", 294_320_000_000),
            ("0.000022900", 2_290),
            ("7", 700_000_000),
            ("5.", 500_000_000),
            (".5", 50_000_000),
            ("0.0", 0),
        ] {
            let places = plain_places(text).unwrap();
            let mut sent = Vec::new();
            Digits::sent(text).write(&mut sent);
            assert_eq!(at(value, places), String::from_utf8(sent).unwrap(), "{text}");
        }
        for text in ["1e5", "-1.5", "+1.5", "1.2.3", "", ".", " 1", "1_0"] {
            assert_eq!(plain_places(text), None, "{text}");
        }
    }
}
