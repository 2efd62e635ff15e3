//! The venue events as whole Protocol V2 messages, byte for byte as
//! `tickrelay.protocol.stamper.Stamper.message` makes them (`protocol/messages.py`
//! `encode_value` for the TLV, `protocol/codec.py` `encode_message` / the fused
//! `encode_trade_message` and `encode_quote_message` for the header; CRC on). Pure: no I/O.
//!
//! A message is appended to a caller's buffer: the venue finisher reuses one buffer per call, so
//! a warm feed allocates nothing here.
//!
//! What the Python refuses, this refuses with the same exception class and message: a field out
//! of its wire type (`struct.error`: a negative time for a `Q` field, more than 65,535 levels), a
//! text over 255 bytes and a value over 65,535 bytes (`MalformedTlv`). The Python packs the
//! header first for Trade and Quote (the fused encoders) and the TLV first for the others; so do
//! these, so that a value wrong in both places gives the same message.

use std::fmt;
use std::sync::OnceLock;

use super::codec::{EXTENDED, FLAG_CHECKSUM, HEADER_SIZE, MAGIC, MAX_VALUE, VERSION};
use crate::venues::feed::{Event, Level};

/// The relay domain whose Trade and Quote take the fused encoders (`Domain.MARKET_DATA`).
pub const MARKET_DATA: u8 = 1;

const TRADE: u8 = 1;
const QUOTE: u8 = 2;
const INSTRUMENT_META: u8 = 4;
const L2_SNAPSHOT: u8 = 5;
const L2_DELTA: u8 = 6;
const L2_RESET: u8 = 7;
const STATE_INVALIDATION: u8 = 101;

/// Why an event cannot be encoded: the Python exception and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// `struct.error` (a field out of range of its wire type).
    Struct(&'static str),
    /// `tickrelay.errors.MalformedTlv`.
    MalformedTlv(String),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Struct(m) => f.write_str(m),
            Self::MalformedTlv(m) => f.write_str(m),
        }
    }
}

/// struct's message for a negative value in a `Q` field (and any other out-of-range `q` / `Q`).
const OUT_OF_RANGE: EncodeError = EncodeError::Struct("argument out of range");
/// struct's message for a value past an `H` field.
const USHORT: EncodeError = EncodeError::Struct("ushort format requires 0 <= number <= 65535");

/// A time field packed as `Q`: the Python refuses a negative one.
fn unsigned(ns: i64) -> Result<u64, EncodeError> {
    u64::try_from(ns).map_err(|_| OUT_OF_RANGE)
}

fn count(levels: usize) -> Result<u16, EncodeError> {
    u16::try_from(levels).map_err(|_| USHORT)
}

/// Appends `event` to `out` as one whole message (header + one TLV, CRC on). On `Err`, `out` is as
/// it was.
pub fn write_message(
    out: &mut Vec<u8>,
    domain: u8,
    source: u8,
    sequence: u64,
    timestamp_ns: i64,
    event: &Event,
) -> Result<(), EncodeError> {
    let start = out.len();
    let fused = domain == MARKET_DATA && matches!(event, Event::Trade { .. } | Event::Quote { .. });
    let result = (|| {
        let ts = if fused { Some(unsigned(timestamp_ns)?) } else { None };
        out.extend_from_slice(&[0; HEADER_SIZE]);
        write_tlv(out, event)?;
        let ts = match ts {
            Some(ts) => ts,
            None => unsigned(timestamp_ns)?,
        };
        finish_header(out, start, domain, source, sequence, ts)
    })();
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Fills in the header of the message at `out[start..]` (its TLVs already written) and its CRC.
fn finish_header(
    out: &mut [u8],
    start: usize,
    domain: u8,
    source: u8,
    sequence: u64,
    ts: u64,
) -> Result<(), EncodeError> {
    let size = u32::try_from(out.len() - start - HEADER_SIZE).map_err(|_| OUT_OF_RANGE)?;
    let h = &mut out[start..];
    h[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    h[4] = domain;
    h[5] = VERSION;
    h[6] = source;
    h[7] = FLAG_CHECKSUM;
    h[8..16].copy_from_slice(&sequence.to_le_bytes());
    h[16..24].copy_from_slice(&ts.to_le_bytes());
    h[24..28].copy_from_slice(&size.to_le_bytes());
    let mut crc = fresh_crc();
    crc.update(&h[..28]);
    crc.update(&h[HEADER_SIZE..]);
    h[28..32].copy_from_slice(&crc.finalize().to_le_bytes());
    Ok(())
}

/// A new CRC-32 hasher, cloned from one made once: `Hasher::new` asks the CPU which kernel to use
/// (four feature checks) each time, a tenth of what a short message's CRC costs.
fn fresh_crc() -> crc32fast::Hasher {
    static MADE: OnceLock<crc32fast::Hasher> = OnceLock::new();
    MADE.get_or_init(crc32fast::Hasher::new).clone()
}

/// A side's levels, 16 bytes each (price then size): one copy a level, the room made first.
fn levels(out: &mut Vec<u8>, side: &[Level]) {
    out.reserve(16 * side.len());
    for &(price, size) in side {
        let mut level = [0u8; 16];
        level[..8].copy_from_slice(&price.to_le_bytes());
        level[8..].copy_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&level);
    }
}

/// `_text`: a u8 length, then the UTF-8 bytes.
fn text(out: &mut Vec<u8>, s: &str) -> Result<(), EncodeError> {
    let n = u8::try_from(s.len())
        .map_err(|_| EncodeError::MalformedTlv(format!("text field of {} bytes exceeds 255", s.len())))?;
    out.push(n);
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// `encode_value`: the TLV of `event`, appended to `out` (on `Err`, part of it may be there).
fn write_tlv(out: &mut Vec<u8>, event: &Event) -> Result<(), EncodeError> {
    match *event {
        Event::Trade { asset_id, price, volume, exec_ts_ns, venue_id, asset_type, side } => {
            let exec_ts = unsigned(exec_ts_ns)?;
            out.extend_from_slice(&[TRADE, 40]);
            out.extend_from_slice(&asset_id.to_le_bytes());
            out.extend_from_slice(&price.to_le_bytes());
            out.extend_from_slice(&volume.to_le_bytes());
            out.extend_from_slice(&exec_ts.to_le_bytes());
            out.extend_from_slice(&venue_id.to_le_bytes());
            out.extend_from_slice(&[asset_type, 0, side, 0, 0, 0]);
            Ok(())
        }
        Event::Quote {
            asset_id,
            bid_price,
            bid_size,
            ask_price,
            ask_size,
            quote_ts_ns,
            venue_id,
            asset_type,
        } => {
            let quote_ts = unsigned(quote_ts_ns)?;
            out.extend_from_slice(&[QUOTE, 56]);
            out.extend_from_slice(&asset_id.to_le_bytes());
            for v in [bid_price, bid_size, ask_price, ask_size] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(&quote_ts.to_le_bytes());
            out.extend_from_slice(&venue_id.to_le_bytes());
            out.extend_from_slice(&[asset_type, 0, 0, 0, 0, 0]);
            Ok(())
        }
        Event::InstrumentMeta {
            asset_id,
            venue_id,
            asset_type,
            price_decimals,
            size_decimals,
            ref venue_symbol,
            ref symbol,
        } => framed(out, INSTRUMENT_META, |out| {
            out.extend_from_slice(&asset_id.to_le_bytes());
            out.extend_from_slice(&venue_id.to_le_bytes());
            out.extend_from_slice(&[asset_type, price_decimals, size_decimals]);
            text(out, venue_symbol)?;
            text(out, symbol)
        }),
        Event::L2Snapshot {
            asset_id,
            venue_id,
            asset_type,
            flags,
            exchange_seq,
            exchange_ts_ns,
            part,
            ref bids,
            ref asks,
        } => {
            let ts = unsigned(exchange_ts_ns)?;
            let (nb, na) = (count(bids.len())?, count(asks.len())?);
            framed(out, L2_SNAPSHOT, |out| {
                out.extend_from_slice(&asset_id.to_le_bytes());
                out.extend_from_slice(&venue_id.to_le_bytes());
                out.extend_from_slice(&[asset_type, flags]);
                out.extend_from_slice(&exchange_seq.to_le_bytes());
                out.extend_from_slice(&ts.to_le_bytes());
                for v in [part, nb, na] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
                levels(out, bids);
                levels(out, asks);
                Ok(())
            })
        }
        Event::L2Delta {
            asset_id,
            venue_id,
            asset_type,
            flags,
            first_seq,
            last_seq,
            exchange_ts_ns,
            ref bids,
            ref asks,
        } => {
            let ts = unsigned(exchange_ts_ns)?;
            let (nb, na) = (count(bids.len())?, count(asks.len())?);
            framed(out, L2_DELTA, |out| {
                // the fixed part in one copy (the hot message of every venue's books)
                let mut head = [0u8; 40];
                head[..8].copy_from_slice(&asset_id.to_le_bytes());
                head[8..10].copy_from_slice(&venue_id.to_le_bytes());
                head[10..12].copy_from_slice(&[asset_type, flags]);
                head[12..20].copy_from_slice(&first_seq.to_le_bytes());
                head[20..28].copy_from_slice(&last_seq.to_le_bytes());
                head[28..36].copy_from_slice(&ts.to_le_bytes());
                head[36..38].copy_from_slice(&nb.to_le_bytes());
                head[38..40].copy_from_slice(&na.to_le_bytes());
                out.extend_from_slice(&head);
                levels(out, bids);
                levels(out, asks);
                Ok(())
            })
        }
        Event::L2Reset { asset_id, venue_id, asset_type, reason } => {
            out.extend_from_slice(&[L2_RESET, 12]);
            out.extend_from_slice(&asset_id.to_le_bytes());
            out.extend_from_slice(&venue_id.to_le_bytes());
            out.extend_from_slice(&[asset_type, reason]);
            Ok(())
        }
        Event::StateInvalidation { venue_id, asset_type, reason, ref asset_ids } => {
            let n = count(asset_ids.len())?;
            framed(out, STATE_INVALIDATION, |out| {
                out.extend_from_slice(&venue_id.to_le_bytes());
                out.extend_from_slice(&[asset_type, reason]);
                out.extend_from_slice(&n.to_le_bytes());
                for a in asset_ids {
                    out.extend_from_slice(&a.to_le_bytes());
                }
                Ok(())
            })
        }
    }
}

/// `encode_tlv(tlv_type, value)` with the value written by `value`: the standard form for a value
/// of up to 255 bytes, the extended form above (the value is moved up to make room, only then).
fn framed(
    out: &mut Vec<u8>,
    tlv_type: u8,
    value: impl FnOnce(&mut Vec<u8>) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    let head = out.len();
    out.extend_from_slice(&[tlv_type, 0]);
    value(out)?;
    let n = out.len() - head - 2;
    if let Ok(short) = u8::try_from(n) {
        out[head + 1] = short;
        return Ok(());
    }
    let long = u16::try_from(n)
        .map_err(|_| EncodeError::MalformedTlv(format!("TLV value of {n} bytes exceeds {MAX_VALUE}")))?;
    let [lo, hi] = long.to_le_bytes();
    // the extended header is 5 bytes: 3 more than the 2 reserved
    out.splice(head..head + 2, [EXTENDED, 0, tlv_type, lo, hi]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(symbol: &str) -> Event {
        Event::InstrumentMeta {
            asset_id: 7,
            venue_id: 3,
            asset_type: 1,
            price_decimals: 2,
            size_decimals: 8,
            venue_symbol: symbol.to_owned(),
            symbol: "BTC/USD".to_owned(),
        }
    }

    #[test]
    fn a_refused_event_leaves_the_buffer_as_it_was() {
        let mut out = vec![1, 2, 3];
        let long = "x".repeat(256);
        assert_eq!(
            write_message(&mut out, 1, 3, 1, 5, &meta(&long)),
            Err(EncodeError::MalformedTlv("text field of 256 bytes exceeds 255".into()))
        );
        let trade = Event::Trade {
            asset_id: 1,
            price: 1,
            volume: 1,
            exec_ts_ns: -1,
            venue_id: 1,
            asset_type: 1,
            side: 0,
        };
        assert_eq!(write_message(&mut out, 1, 3, 1, 5, &trade), Err(OUT_OF_RANGE));
        assert_eq!(out, [1, 2, 3]);
    }

    #[test]
    fn a_big_value_takes_the_extended_form_and_too_big_a_one_is_refused() {
        let delta = |n: usize| Event::L2Delta {
            asset_id: 1,
            venue_id: 1,
            asset_type: 1,
            flags: 0,
            first_seq: 0,
            last_seq: 0,
            exchange_ts_ns: 0,
            bids: vec![(1, 2); n],
            asks: Vec::new(),
        };
        let mut out = Vec::new();
        write_tlv(&mut out, &delta(20)).expect("fits");
        assert_eq!(out[..5], [EXTENDED, 0, L2_DELTA, 104, 1]); // 40 + 320 = 360 bytes
        assert_eq!(out.len(), 5 + 360);
        out.clear();
        assert_eq!(
            write_tlv(&mut out, &delta(4094)),
            Err(EncodeError::MalformedTlv("TLV value of 65544 bytes exceeds 65535".into()))
        );
        assert_eq!(write_tlv(&mut out, &delta(70_000)), Err(USHORT));
    }
}
