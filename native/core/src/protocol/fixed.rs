//! Fixed point: decimal text -> i64 x 10^8, as `tickrelay/protocol/fixed.py`. Pure: no I/O.
//!
//! Integer arithmetic on the text's digits only: a float never touches a value, and no digit
//! string is ever converted whole, so a text of any length is answered in one pass without
//! overflow. More than 8 decimals are rounded half to even and reported.

pub const DECIMALS: i64 = 8;

/// Why a text is not a fixed-point value (`FixedPointError` in Python, with its message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FixedError {
    /// "... is not a decimal number"
    NotANumber,
    /// "... is out of range for int64 x 10^8"
    OutOfRange,
}

/// `parse_fixed8_rounded`: `(value, rounded)`; `rounded` is true when non-zero digits beyond the
/// 8th decimal were dropped. Accepted: optional sign, digits with an optional `.` and fraction
/// (at least one digit in all), an optional exponent `e`/`E`, optional sign, 1 to 4 digits.
pub fn parse_fixed8_rounded(text: &[u8]) -> Result<(i64, bool), FixedError> {
    if let Some(value) = plain(text) {
        return Ok((value, false));
    }
    let (negative, body) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text),
    };
    let e_at = body.iter().position(|&c| c == b'e').or_else(|| body.iter().position(|&c| c == b'E'));
    let (mantissa, exponent) = match e_at {
        Some(k) => (&body[..k], parse_exponent(&body[k + 1..])?),
        None => (body, 0),
    };
    let (ip, fp) = match mantissa.iter().position(|&c| c == b'.') {
        Some(k) => (&mantissa[..k], &mantissa[k + 1..]),
        None => (mantissa, &mantissa[mantissa.len()..]),
    };
    let is_digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    if (ip.is_empty() && fp.is_empty()) || !is_digits(ip) || !is_digits(fp) {
        return Err(FixedError::NotANumber);
    }
    let (magnitude, rounded) = scale(ip, fp, exponent)?;
    let magnitude = i128::try_from(magnitude).map_err(|_| FixedError::OutOfRange)?;
    let value = if negative { -magnitude } else { magnitude };
    i64::try_from(value).map(|v| (v, rounded)).map_err(|_| FixedError::OutOfRange)
}

/// `parse_fixed8`: the value alone.
pub fn parse_fixed8(text: &[u8]) -> Result<i64, FixedError> {
    parse_fixed8_rounded(text).map(|(value, _)| value)
}

/// The common unsigned `123.4500` shape (1 to 19 integer digits, up to 8 decimals; a point
/// without decimals too) in one tight pass per part; `None` for anything else, which the general
/// path answers.
fn plain(text: &[u8]) -> Option<i64> {
    let (ip, mut fp) = match text.iter().position(|&c| c == b'.') {
        Some(k) => (&text[..k], &text[k + 1..]),
        None => (text, &text[text.len()..]),
    };
    if fp.len() > 8 && fp[8..].iter().all(|&c| c == b'0') {
        fp = &fp[..8]; // only zeros past the 8th decimal (Kraken's "0.000022900"): nothing rounded
    }
    if ip.is_empty() || ip.len() > 19 || fp.len() > 8 {
        return None;
    }
    let digits = |part: &[u8]| {
        part.iter().try_fold(0u64, |acc, &c| {
            let d = c.wrapping_sub(b'0');
            (d < 10).then(|| acc * 10 + u64::from(d))
        })
    };
    let (whole, fraction) = (digits(ip)?, digits(fp)?);
    let places = u32::try_from(fp.len()).ok()?;
    let scaled = whole.checked_mul(100_000_000)?.checked_add(fraction * 10u64.pow(8 - places))?;
    i64::try_from(scaled).ok()
}

fn parse_exponent(text: &[u8]) -> Result<i64, FixedError> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text),
    };
    if digits.is_empty() || digits.len() > 4 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(FixedError::NotANumber);
    }
    let magnitude = digits.iter().fold(0i64, |acc, &c| acc * 10 + i64::from(c - b'0'));
    Ok(if negative { -magnitude } else { magnitude })
}

/// |value| x 10^8 rounded half to even, as (magnitude, rounded), for the digits of `ip` then `fp`
/// times 10^`exponent`; `OutOfRange` when the magnitude has more than 19 digits.
fn scale(ip: &[u8], fp: &[u8], exponent: i64) -> Result<(u128, bool), FixedError> {
    let digit = |j: usize| u128::from(if j < ip.len() { ip[j] } else { fp[j - ip.len()] } - b'0');
    let total = ip.len() + fp.len();
    let first = (0..total).find(|&j| digit(j) != 0).unwrap_or(total);
    let significant = i64::try_from(total - first).map_err(|_| FixedError::OutOfRange)?;
    if significant == 0 {
        return Ok((0, false));
    }
    let fraction = i64::try_from(fp.len()).map_err(|_| FixedError::OutOfRange)?;
    // value = digits x 10^shift; a shift < 0 drops that many digits, with rounding
    let shift = exponent.saturating_sub(fraction).saturating_add(DECIMALS);
    let left = significant.saturating_add(shift); // digits of the magnitude before rounding
    if left > 19 {
        return Err(FixedError::OutOfRange); // >= 10^19 > 2^63
    }
    let whole = |from: usize, to: usize| (from..to).fold(0u128, |acc, j| acc * 10 + digit(j));
    if shift >= 0 {
        let factor = 10u128.pow(u32::try_from(shift).map_err(|_| FixedError::OutOfRange)?);
        return Ok((whole(first, total) * factor, false));
    }
    let cut = first + usize::try_from(left.max(0)).map_err(|_| FixedError::OutOfRange)?;
    let quotient = whole(first, cut);
    let rounded = (cut..total).any(|j| digit(j) != 0);
    // left < 0: a zero sits between the point and the first digit, so the rest is below half
    let up = left >= 0
        && cut < total
        && match digit(cut) {
            d if d > 5 => true,
            5 => (cut + 1..total).any(|j| digit(j) != 0) || quotient % 2 == 1,
            _ => false,
        };
    Ok((quotient + u128::from(up), rounded))
}

/// `format_fixed8(value)`: the decimal text with exactly 8 places (`-1.50000000`), as the feeds'
/// book stats show a best price.
pub fn format_fixed8(value: i64) -> String {
    let magnitude = value.unsigned_abs();
    let sign = if value < 0 { "-" } else { "" };
    format!("{sign}{}.{:08}", magnitude / 100_000_000, magnitude % 100_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_as_python() {
        assert_eq!(format_fixed8(150_000_000), "1.50000000");
        assert_eq!(format_fixed8(-1), "-0.00000001");
        assert_eq!(format_fixed8(0), "0.00000000");
        assert_eq!(format_fixed8(i64::MIN), "-92233720368.54775808");
    }
}
