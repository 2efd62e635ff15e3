//! Framing: the 32-byte header, TLVs and the checksum, as `tickrelay/protocol/codec.py`.
//! Pure: no I/O.

use std::fmt;

pub const MAGIC: u32 = 0xDEAD_BEEF;
pub const VERSION: u8 = 1;
pub const HEADER_SIZE: usize = 32;
pub const CHECKSUM_OFFSET: usize = 28;
pub const FLAG_CHECKSUM: u8 = 0x01;
/// A TLV type byte that announces the extended form (`0xFF, 0x00, type, length u16`).
pub const EXTENDED: u8 = 0xFF;
pub const MAX_VALUE: usize = 0xFFFF;
/// The relay domains of table 1.3; any other value is `BadDomain`.
pub const DOMAINS: [u8; 4] = [1, 2, 3, 4];

/// A `ProtocolError` of `tickrelay.errors`: which subclass, and the message the Python code gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// The base class itself (a batch run that is not what it claims to be).
    Protocol(String),
    BadMagic(String),
    UnsupportedVersion(String),
    BadDomain(String),
    MalformedTlv(String),
    PayloadTooLarge(String),
    ChecksumMismatch(String),
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (Self::Protocol(m)
        | Self::BadMagic(m)
        | Self::UnsupportedVersion(m)
        | Self::BadDomain(m)
        | Self::MalformedTlv(m)
        | Self::PayloadTooLarge(m)
        | Self::ChecksumMismatch(m)) = self;
        f.write_str(m)
    }
}

/// The header fields after the magic, in wire order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub relay_domain: u8,
    pub version: u8,
    pub source: u8,
    pub flags: u8,
    pub sequence: u64,
    pub timestamp_ns: u64,
    pub payload_size: u32,
    pub checksum: u32,
}

pub(crate) fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(buf.get(at..at.checked_add(2)?)?.try_into().ok()?))
}

pub(crate) fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(buf.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

pub(crate) fn u64_at(buf: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(buf.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

impl Header {
    /// The 32 header bytes as on the wire.
    pub fn to_bytes(&self) -> [u8; HEADER_SIZE] {
        let mut out = [0u8; HEADER_SIZE];
        out[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        out[4] = self.relay_domain;
        out[5] = self.version;
        out[6] = self.source;
        out[7] = self.flags;
        out[8..16].copy_from_slice(&self.sequence.to_le_bytes());
        out[16..24].copy_from_slice(&self.timestamp_ns.to_le_bytes());
        out[24..28].copy_from_slice(&self.payload_size.to_le_bytes());
        out[28..32].copy_from_slice(&self.checksum.to_le_bytes());
        out
    }

    /// The header at the start of `buf`, unchecked but for its length (`None`: fewer than 32 bytes).
    pub fn read(buf: &[u8]) -> Option<Self> {
        let h = buf.get(..HEADER_SIZE)?;
        Some(Self {
            relay_domain: h[4],
            version: h[5],
            source: h[6],
            flags: h[7],
            sequence: u64_at(h, 8)?,
            timestamp_ns: u64_at(h, 16)?,
            payload_size: u32_at(h, 24)?,
            checksum: u32_at(h, 28)?,
        })
    }
}

/// `parse_header`: the header at the start of `buf`, its magic, version and domain checked.
/// `Ok(None)` when `buf` holds fewer than 32 bytes.
pub fn parse_header(buf: &[u8], domain: Option<u8>) -> Result<Option<Header>, ProtocolError> {
    let (Some(h), Some(magic)) = (Header::read(buf), u32_at(buf, 0)) else {
        return Ok(None);
    };
    if magic != MAGIC {
        return Err(ProtocolError::BadMagic(format!("bad magic {magic:#010x} at offset 0")));
    }
    if h.version != VERSION {
        return Err(ProtocolError::UnsupportedVersion(format!(
            "version {}, this build speaks {VERSION}",
            h.version
        )));
    }
    if !DOMAINS.contains(&h.relay_domain) {
        return Err(ProtocolError::BadDomain(format!("unknown relay_domain {}", h.relay_domain)));
    }
    if let Some(d) = domain.filter(|d| *d != h.relay_domain) {
        return Err(ProtocolError::BadDomain(format!(
            "relay_domain {} on a stream of domain {d}",
            h.relay_domain
        )));
    }
    Ok(Some(h))
}

/// The message checksum (docs/protocol.md 1.1): CRC-32 (zlib) of header bytes 0..27, then the payload.
pub fn checksum(head28: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(head28);
    h.update(payload);
    h.finalize()
}

/// `crc32(data, start)`, the same function as Python's `zlib.crc32(data, start)`.
pub fn crc32(data: &[u8], start: u32) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(start);
    h.update(data);
    h.finalize()
}

/// `encode_message`: one whole message, header + `payload` (already TLV-framed). `None` when the
/// payload does not fit the header's u32 size.
pub fn encode_message(
    domain: u8,
    source: u8,
    sequence: u64,
    timestamp_ns: u64,
    payload: &[u8],
    with_checksum: bool,
) -> Option<Vec<u8>> {
    let mut h = Header {
        relay_domain: domain,
        version: VERSION,
        source,
        flags: if with_checksum { FLAG_CHECKSUM } else { 0 },
        sequence,
        timestamp_ns,
        payload_size: u32::try_from(payload.len()).ok()?,
        checksum: 0,
    };
    if with_checksum {
        h.checksum = checksum(&h.to_bytes()[..CHECKSUM_OFFSET], payload);
    }
    let mut out = Vec::with_capacity(HEADER_SIZE + payload.len());
    out.extend_from_slice(&h.to_bytes());
    out.extend_from_slice(payload);
    Some(out)
}

/// `encode_tlv`: `value` framed as one TLV, the extended form when it is over 255 bytes (or the
/// type is 255).
pub fn encode_tlv(tlv_type: u8, value: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    let n = value.len();
    let mut out = Vec::with_capacity(n + 5);
    if let (Ok(short), false) = (u8::try_from(n), tlv_type == EXTENDED) {
        out.extend_from_slice(&[tlv_type, short]);
    } else {
        let long = u16::try_from(n).map_err(|_| {
            ProtocolError::MalformedTlv(format!("TLV value of {n} bytes exceeds {MAX_VALUE}"))
        })?;
        out.extend_from_slice(&[EXTENDED, 0, tlv_type]);
        out.extend_from_slice(&long.to_le_bytes());
    }
    out.extend_from_slice(value);
    Ok(out)
}

/// `iter_tlvs`: (type, value) of each TLV of a payload, standard or extended form; lazy, so a
/// caller that stops early never sees a malformed TLV further on (as the Python generator).
pub fn iter_tlvs(payload: &[u8]) -> Tlvs<'_> {
    Tlvs { payload, at: 0 }
}

pub struct Tlvs<'a> {
    payload: &'a [u8],
    at: usize,
}

impl<'a> Iterator for Tlvs<'a> {
    type Item = Result<(u8, &'a [u8]), ProtocolError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (p, i) = (self.payload, self.at);
        if i >= p.len() {
            return None;
        }
        let item = next_tlv(p, i);
        // after an error the payload cannot be walked further: stop there
        self.at = match &item {
            Ok((_, _, end)) => *end,
            Err(_) => p.len(),
        };
        Some(item.map(|(t, start, end)| (t, &p[start..end])))
    }
}

/// (type, value start, value end) of the TLV at offset `i` of `p`.
fn next_tlv(p: &[u8], i: usize) -> Result<(u8, usize, usize), ProtocolError> {
    let n = p.len();
    let malformed = |m: String| Err(ProtocolError::MalformedTlv(m));
    let (Some(&t), Some(&second)) = (p.get(i), p.get(i + 1)) else {
        return malformed(format!("TLV header truncated at offset {i}"));
    };
    let (t, length, start) = if t == EXTENDED {
        if i + 5 > n {
            return malformed(format!("extended TLV header truncated at offset {i}"));
        }
        if second != 0 {
            return malformed(format!("extended TLV marker not followed by 0x00 at offset {i}"));
        }
        (p[i + 2], usize::from(p[i + 3]) | usize::from(p[i + 4]) << 8, i + 5)
    } else {
        (t, usize::from(second), i + 2)
    };
    let end = start + length;
    if end > n {
        return malformed(format!("TLV type {t} of {length} bytes runs past the payload at offset {i}"));
    }
    Ok((t, start, end))
}
