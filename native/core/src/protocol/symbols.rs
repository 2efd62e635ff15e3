//! Instrument keys and injective asset ids, as `tickrelay/protocol/symbols.py`. Pure: no I/O.
//!
//! A normalized symbol of at most 12 characters from A-Z, 0-9 and '/' packs into a base-38 id
//! (A-Z = 1..26, 0-9 = 27..36, '/' = 37, left-aligned, padded with 0 to 12 digits); any other
//! gets bit 63 set over a 63-bit BLAKE2b hash of its UTF-8 text.

/// `VenueId`.
pub const BINANCE: u16 = 100;
pub const KRAKEN: u16 = 101;
pub const COINBASE: u16 = 102;

const BASE: u64 = 38;
const WIDTH: usize = 12;
const HASHED_BIT: u64 = 1 << 63;

fn digit(c: u8) -> Option<u64> {
    match c {
        b'A'..=b'Z' => Some(u64::from(c - b'A') + 1),
        b'0'..=b'9' => Some(u64::from(c - b'0') + 27),
        b'/' => Some(37),
        _ => None,
    }
}

/// `asset_id_for`: the asset id of a normalized symbol; `None` for the empty symbol (Python's
/// `SymbolError`).
pub fn asset_id_for(symbol: &str) -> Option<u64> {
    if symbol.is_empty() {
        return None;
    }
    let b = symbol.as_bytes();
    if b.len() <= WIDTH {
        let packed = b.iter().try_fold(0u64, |acc, &c| digit(c).map(|d| acc * BASE + d));
        if let Some(value) = packed {
            return Some(value * BASE.pow((WIDTH - b.len()) as u32));
        }
    }
    let digest = blake2b_simd::Params::new().hash_length(8).hash(b);
    let mut le = [0u8; 8];
    le.copy_from_slice(digest.as_bytes());
    Some(HASHED_BIT | (u64::from_le_bytes(le) & (HASHED_BIT - 1)))
}

/// Python's `str.isspace`: Unicode White_Space and the four ASCII separators \x1c..\x1f.
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

fn alias(side: &str) -> &str {
    match side {
        "XBT" => "BTC",
        "XDG" => "DOGE",
        other => other,
    }
}

/// `normalize_pair`: `BASE/QUOTE` stripped (as `str.strip`), in upper case (full Unicode case
/// mapping; Rust's tables may be of a newer Unicode version than Python's, so venues that take
/// only ASCII symbols check that first), venue aliases mapped (XBT -> BTC, XDG -> DOGE); `None`
/// when a side is empty (`SymbolError`).
pub fn normalize_pair(base: &str, quote: &str) -> Option<String> {
    let b = base.trim_matches(py_space).to_uppercase();
    let q = quote.trim_matches(py_space).to_uppercase();
    if b.is_empty() || q.is_empty() {
        return None;
    }
    Some(format!("{}/{}", alias(&b), alias(&q)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_python_s() {
        // python3 -c "from tickrelay.protocol.symbols import asset_id_for as a; print(a('BTC/USD'), ...)"
        assert_eq!(asset_id_for("BTC/USD"), Some(603_367_314_271_748_800));
        assert_eq!(asset_id_for("ABCDEFGHIJKL"), Some(251_642_104_107_238_734));
        assert_eq!(asset_id_for("btc/usd"), Some(14_455_194_699_447_645_203));
        assert_eq!(asset_id_for("ABCDEFGHIJKLM"), Some(11_937_922_971_421_240_236));
        assert_eq!(asset_id_for("É/€"), Some(16_413_736_012_802_001_365));
        assert_eq!(asset_id_for(""), None);
    }

    #[test]
    fn pairs_are_python_s() {
        assert_eq!(normalize_pair(" xbt\x1c", "usd\u{3000}").as_deref(), Some("BTC/USD"));
        assert_eq!(normalize_pair("xdg", "straße").as_deref(), Some("DOGE/STRASSE"));
        assert_eq!(normalize_pair(" ", "USD"), None);
        assert_eq!(normalize_pair("BTC", ""), None);
    }
}
