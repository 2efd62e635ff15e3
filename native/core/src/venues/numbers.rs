//! Exchange text to exact integers, as `tickrelay/venues/numbers.py`. Pure: no I/O.
//!
//! Prices and sizes go to fixed point (`protocol::fixed`) within the same bounds as Python's:
//! a decimal text is at most [`MAX_TEXT`] bytes, never negative, a price or traded size never
//! zero. Times are RFC 3339 texts to integer ns. Every failure is `None`: the venue counts the
//! whole frame as rejected before its state changes. Python memoizes texts for speed; here the
//! parse is cheaper than a lookup, and the results are the same.

use super::feed::Level;
use crate::protocol::fixed::parse_fixed8_rounded;

/// `MAX_TEXT`: characters of a decimal text.
pub const MAX_TEXT: usize = 64;
/// `NO_DECIMALS`: InstrumentMeta's places when no text was seen.
pub const NO_DECIMALS: u8 = 255;

/// `places`: digits after the decimal point of an exchange's text (0 without a point; 255 for
/// none or an empty text).
pub fn places(text: Option<&str>) -> u8 {
    match text {
        None | Some("") => NO_DECIMALS,
        Some(t) => {
            t.find('.').map_or(0, |point| u8::try_from(t[point + 1..].chars().count()).unwrap_or(NO_DECIMALS))
        }
    }
}

/// `DecimalCache`: decimal text to fixed point; `rounded` counts the texts of the frame being read
/// that had more than 8 decimals (the feed adds it to its stats when it takes the frame).
#[derive(Debug, Default)]
pub struct Decimals {
    pub rounded: u64,
}

impl Decimals {
    /// `__call__`: an amount, zero or more.
    pub fn amount(&mut self, text: &str) -> Option<i64> {
        if text.len() > MAX_TEXT {
            return None;
        }
        let (value, rounded) = parse_fixed8_rounded(text.as_bytes()).ok()?;
        if value < 0 {
            return None;
        }
        self.rounded += u64::from(rounded);
        Some(value)
    }

    /// `positive`: a price, or the size of a trade.
    pub fn positive(&mut self, text: &str) -> Option<i64> {
        self.amount(text).filter(|&v| v != 0)
    }

    /// `level`: a book level, a positive price and a size (zero: remove the level).
    pub fn level(&mut self, price: &str, size: &str) -> Option<Level> {
        Some((self.positive(price)?, self.amount(size)?))
    }
}

fn digits(b: &[u8]) -> Option<i64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0i64, |acc, &d| acc * 10 + i64::from(d - b'0')))
}

/// Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's days_from_civil).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `_epoch_seconds` of `YYYY-MM-DDTHH:MM:SS` (separators not read): `calendar.timegm`, which
/// takes years 1..9999 and months 1..12 and counts day, hour, minute and second on from there.
fn epoch_seconds(b: &[u8]) -> Option<i64> {
    let year = digits(&b[..4])?;
    let month = digits(&b[5..7])?;
    let (day, hour) = (digits(&b[8..10])?, digits(&b[11..13])?);
    let (minute, second) = (digits(&b[14..16])?, digits(&b[17..19])?);
    if year == 0 || !(1..=12).contains(&month) {
        return None;
    }
    let days = days_from_civil(year, month, 1) + day - 1;
    Some(days * 86_400 + hour * 3_600 + minute * 60 + second)
}

/// The first 9 digits of a fraction, padded with zeros: ns.
fn fraction_ns(frac: &[u8]) -> i64 {
    (0..9).fold(0i64, |acc, j| acc * 10 + frac.get(j).map_or(0, |&d| i64::from(d - b'0')))
}

/// `parse_time_ns`: `2021-04-17T16:43:30.244075Z` (or a `+HH:MM` offset) to ns since the epoch.
pub fn parse_time_ns(text: &str) -> Option<i64> {
    time_ns(text.as_bytes(), epoch_seconds)
}

/// 10^(9 - digits): what a fraction of `digits` digits is scaled by to ns.
const FRACTION_SCALE: [i64; 10] =
    [1_000_000_000, 100_000_000, 10_000_000, 1_000_000, 100_000, 10_000, 1_000, 100, 10, 1];

/// [`parse_time_ns`] that remembers the last `YYYY-MM-DDTHH:MM:SS` it read: a feed's consecutive
/// times mostly share that head, the costly part (the answer is the same: it is a function of the
/// head alone).
#[derive(Debug, Default)]
pub struct Times {
    head: [u8; 19],
    seconds: Option<i64>,
}

impl Times {
    pub fn ns(&mut self, text: &str) -> Option<i64> {
        self.ns_of_bytes(text.as_bytes())
    }

    /// [`Times::ns`] of a text's bytes (a text not ASCII is None, as for a `str`).
    pub fn ns_of_bytes(&mut self, text: &[u8]) -> Option<i64> {
        // the usual shape, the remembered head then `.<1 to 9 digits>Z`: only the fraction to read
        // (the head passed time_ns' checks when it was remembered)
        if let (Some(seconds), Some((head, [b'.', fraction @ .., b'Z']))) =
            (self.seconds, text.split_first_chunk::<19>())
        {
            if *head == self.head && (1..=9).contains(&fraction.len()) {
                let mut ns = 0i64;
                for &c in fraction {
                    let d = c.wrapping_sub(b'0');
                    if d >= 10 {
                        return self.ns_in_general(text);
                    }
                    ns = ns * 10 + i64::from(d);
                }
                let ns =
                    i128::from(seconds) * 1_000_000_000 + i128::from(ns * FRACTION_SCALE[fraction.len()]);
                return i64::try_from(ns).ok();
            }
        }
        self.ns_in_general(text)
    }

    fn ns_in_general(&mut self, text: &[u8]) -> Option<i64> {
        time_ns(text, |head| {
            if self.seconds.is_none() || head != self.head {
                self.seconds = Some(epoch_seconds(head)?);
                self.head.copy_from_slice(head);
            }
            self.seconds
        })
    }
}

/// `parse_time_ns`, the first 19 characters read by `seconds`.
fn time_ns(b: &[u8], seconds: impl FnOnce(&[u8]) -> Option<i64>) -> Option<i64> {
    if !b.is_ascii() || b.len() < 20 || b.len() > 40 || b[4] != b'-' || b[10] != b'T' {
        return None;
    }
    let seconds = seconds(&b[..19])?;
    let mut rest = &b[19..];
    let mut frac: &[u8] = &[];
    if rest.first() == Some(&b'.') {
        let end = 1 + rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        (frac, rest) = (&rest[1..end], &rest[end..]);
    }
    let offset = match rest {
        b"Z" | b"z" | b"+00:00" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let minutes = digits(&[*h1, *h2])? * 60 + digits(&[*m1, *m2])?;
            if *sign == b'+' {
                minutes * 60
            } else {
                -minutes * 60
            }
        }
        _ => return None,
    };
    let ns = i128::from(seconds - offset) * 1_000_000_000 + i128::from(fraction_ns(frac));
    i64::try_from(ns).ok()
}

/// `seconds_text_to_ns`: Kraken's `"1618678142.557535"` to integer ns, from the text.
pub fn seconds_text_to_ns(text: &str) -> Option<i64> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|c| c.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(frac) || whole.len() > 12 {
        return None;
    }
    let seconds: i64 = whole.bytes().fold(0, |acc, c| acc * 10 + i64::from(c - b'0'));
    let ns =
        (0..9).fold(0i64, |acc, j| acc * 10 + frac.as_bytes().get(j).map_or(0, |&c| i64::from(c - b'0')));
    seconds.checked_mul(1_000_000_000)?.checked_add(ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_python_s() {
        // python3 -c "from tickrelay.venues.numbers import parse_time_ns as p; print(p('...'))"
        let cases: &[(&str, Option<i64>)] = &[
            ("2021-04-17T16:43:30.244075Z", Some(1_618_677_810_244_075_000)),
            ("2021-04-17T16:43:30.1234567891234Z", Some(1_618_677_810_123_456_789)),
            ("2021-04-17T16:43:30Z", Some(1_618_677_810_000_000_000)),
            ("2021-04-17T16:43:30.5+01:30", Some(1_618_672_410_500_000_000)),
            ("2021-04-17T16:43:30.Z", Some(1_618_677_810_000_000_000)),
            ("2021-02-31T99:43:30-00:00", Some(1_615_088_610_000_000_000)),
            ("1969-12-31T23:59:59.9z", Some(-100_000_000)),
            ("2021-13-17T16:43:30Z", None),
            ("0000-01-01T00:00:00Z", None),
            ("2300-01-01T00:00:00Z", None),
            ("2021-04-17T16:43:3 .5Z", None),
            ("2021-04-17T16:43:+1.5Z", None),
            ("2021-04-17T16:43:30+ 1:00", None),
            ("2021-04-17T16:43:30.5X", None),
            ("2021-04-17T16:43:3٠.5Z", None),
            ("2021-04-17 16:43:30.5Z", None),
        ];
        let mut times = Times::default();
        // the usual shape after its head was remembered, and its neighbours
        let usual: &[(&str, Option<i64>)] = &[
            ("2021-04-17T16:43:30.244075Z", Some(1_618_677_810_244_075_000)),
            ("2021-04-17T16:43:30.2Z", Some(1_618_677_810_200_000_000)),
            ("2021-04-17T16:43:30.123456789Z", Some(1_618_677_810_123_456_789)),
            ("2021-04-17T16:43:30.1234567891Z", Some(1_618_677_810_123_456_789)),
            ("2021-04-17T16:43:30.Z", Some(1_618_677_810_000_000_000)),
            ("2021-04-17T16:43:30.24407Z ", None),
            ("2021-04-17T16:43:30.24407 Z", None),
            ("2021-04-17T16:43:30.2440a5Z", None),
            ("2021-04-17T16:43:30.244075z", Some(1_618_677_810_244_075_000)),
            ("2021-04-17T16:43:31.5Z", Some(1_618_677_811_500_000_000)),
            ("2021-04-17T16:43:30.5Z", Some(1_618_677_810_500_000_000)),
        ];
        for (text, ns) in usual {
            assert_eq!(parse_time_ns(text), *ns, "{text}");
            assert_eq!(times.ns(text), *ns, "{text} (remembered)");
        }
        for (text, ns) in cases {
            assert_eq!(parse_time_ns(text), *ns, "{text}");
            assert_eq!(times.ns(text), *ns, "{text} (remembered)");
            assert_eq!(times.ns(text), *ns, "{text} (again)");
        }
    }

    #[test]
    fn amounts_are_bounded() {
        let mut d = Decimals::default();
        assert_eq!(d.level("1.5", "0"), Some((150_000_000, 0)));
        assert_eq!(d.positive("0"), None);
        assert_eq!(d.amount("-1"), None);
        assert_eq!(d.amount(&"1".repeat(65)), None);
        assert_eq!(d.amount("1.000000005"), Some(100_000_000));
        assert_eq!(d.rounded, 1);
        assert_eq!(
            (places(None), places(Some("")), places(Some("12")), places(Some("1.250"))),
            (255, 255, 0, 3)
        );
    }

    #[test]
    fn kraken_times_are_python_s() {
        assert_eq!(seconds_text_to_ns("1618678142.557535"), Some(1_618_678_142_557_535_000));
        assert_eq!(seconds_text_to_ns("1618678142"), Some(1_618_678_142_000_000_000));
        assert_eq!(seconds_text_to_ns("1.1234567899"), Some(1_123_456_789));
        for bad in ["", ".5", "1.2.3", "+1", " 1", "1_0", "١٢", "9999999999999", "999999999999.5", "1.x"] {
            assert_eq!(seconds_text_to_ns(bad), None, "{bad}");
        }
    }
}
