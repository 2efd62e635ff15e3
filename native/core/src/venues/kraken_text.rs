//! A Kraken book level's checksum text, as `tickrelay/venues/kraken_book.py` builds it: the price's
//! and the size's text without "." and leading zeros (v1: as sent; v2: formatted at the instrument's
//! precisions), kept per level without a `String`: a short text inline, a long one on the heap.

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
}
