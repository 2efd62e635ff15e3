//! The stream decoder, as `tickrelay/protocol/codec.py` (`Decoder`). Pure: no I/O.
//!
//! Bytes go in in any chunking; complete messages come out as spans of the decoder's buffer,
//! their header checked (magic, version, domain, size limit) and their CRC verified when they carry
//! one. The buffer is kept and compacted by the same rule as the Python, so the offsets the errors
//! name are the same, message for message.

use std::ops::Range;

use super::codec::{
    crc32, u32_at, Header, ProtocolError, CHECKSUM_OFFSET, DOMAINS, FLAG_CHECKSUM, HEADER_SIZE, MAGIC,
    VERSION,
};

const MAGIC_BYTES: [u8; 4] = MAGIC.to_le_bytes();

/// `codec.Decoder`'s state and options (see the Python for each).
#[derive(Debug, Clone)]
pub struct StreamDecoder {
    buf: Vec<u8>,
    pos: usize,
    pub max_payload: u64,
    pub domain: Option<u8>,
    pub verify: bool,
    pub require: bool,
    pub resync: bool,
    pub skipped_bytes: u64,
}

impl StreamDecoder {
    pub fn new(max_payload: u64, domain: Option<u8>, verify: bool, require: bool, resync: bool) -> Self {
        Self { buf: Vec::new(), pos: 0, max_payload, domain, verify, require, resync, skipped_bytes: 0 }
    }

    pub fn feed(&mut self, data: &[u8]) {
        if self.pos != 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes fed but not yet returned as messages.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Remove and return the bytes fed but not yet returned as messages.
    pub fn take_buffered(&mut self) -> Vec<u8> {
        let rest = self.buf[self.pos..].to_vec();
        self.buf.clear();
        self.pos = 0;
        rest
    }

    /// The buffer the spans of [`StreamDecoder::next_message`] index.
    pub fn buffer(&self) -> &[u8] {
        &self.buf
    }

    /// The next complete message (its header and its span in [`StreamDecoder::buffer`]), `None`
    /// when more bytes are needed. With `resync`, each error is handed to `on_error` and the
    /// decoder skips to the next magic, as the Python appends it to `errors`.
    pub fn next_message(
        &mut self,
        mut on_error: impl FnMut(ProtocolError),
    ) -> Result<Option<(Header, Range<usize>)>, ProtocolError> {
        loop {
            match self.next_inner() {
                Ok(found) => return Ok(found),
                Err(e) if self.resync => {
                    on_error(e);
                    self.skip_to_next_magic();
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn skip_to_next_magic(&mut self) {
        let from = self.pos + 1;
        let found = self
            .buf
            .get(from..)
            .and_then(|rest| rest.windows(4).position(|w| w == MAGIC_BYTES))
            .map(|at| from + at);
        // a magic may straddle the next feed
        let next = found.unwrap_or_else(|| (self.pos + 1).max(self.buf.len().saturating_sub(3)));
        self.skipped_bytes += (next - self.pos) as u64;
        self.pos = next;
    }

    fn next_inner(&mut self) -> Result<Option<(Header, Range<usize>)>, ProtocolError> {
        let pos = self.pos;
        let avail = &self.buf[pos..];
        let Some(h) = Header::read(avail) else {
            if avail.len() >= 4 && avail[..4] != MAGIC_BYTES {
                let hex: String = avail[..4].iter().map(|b| format!("{b:02x}")).collect();
                return Err(ProtocolError::BadMagic(format!("bad magic {hex}")));
            }
            return Ok(None);
        };
        let magic = u32_at(avail, 0).unwrap_or(0);
        let domain_ok = match self.domain {
            Some(d) => h.relay_domain == d,
            None => DOMAINS.contains(&h.relay_domain),
        };
        if magic != MAGIC || h.version != VERSION || !domain_ok {
            return Err(precise(&h, magic, pos, self.domain));
        }
        if u64::from(h.payload_size) > self.max_payload {
            return Err(ProtocolError::PayloadTooLarge(format!(
                "payload_size {} > limit {}",
                h.payload_size, self.max_payload
            )));
        }
        let end = pos + HEADER_SIZE + h.payload_size as usize;
        if end > self.buf.len() {
            return Ok(None);
        }
        if h.flags & FLAG_CHECKSUM != 0 {
            if self.verify {
                let raw = &self.buf[pos..end];
                if crc32(&raw[HEADER_SIZE..], crc32(&raw[..CHECKSUM_OFFSET], 0)) != h.checksum {
                    return Err(ProtocolError::ChecksumMismatch(format!(
                        "checksum mismatch on sequence {:#x}",
                        h.sequence
                    )));
                }
            }
        } else if self.require {
            return Err(ProtocolError::ChecksumMismatch(format!(
                "message sequence {:#x} carries no checksum",
                h.sequence
            )));
        }
        self.pos = end;
        Ok(Some((h, pos..end)))
    }

    /// Drop the bytes before the position where the Python does (`del buf[:end]` after a message
    /// ending past 64 KiB and past half the buffer). The caller calls it once it has copied the
    /// message's bytes out, so the spans stay valid until then.
    pub fn compact(&mut self) {
        let end = self.pos;
        if end > 1 << 16 && end * 2 > self.buf.len() {
            self.buf.drain(..end);
            self.pos = 0;
        }
    }
}

/// `parse_header`'s precise error for a header that failed the quick check.
fn precise(h: &Header, magic: u32, offset: usize, domain: Option<u8>) -> ProtocolError {
    if magic != MAGIC {
        return ProtocolError::BadMagic(format!("bad magic {magic:#010x} at offset {offset}"));
    }
    if h.version != VERSION {
        return ProtocolError::UnsupportedVersion(format!(
            "version {}, this build speaks {VERSION}",
            h.version
        ));
    }
    if !DOMAINS.contains(&h.relay_domain) {
        return ProtocolError::BadDomain(format!("unknown relay_domain {}", h.relay_domain));
    }
    ProtocolError::BadDomain(format!(
        "relay_domain {} on a stream of domain {}",
        h.relay_domain,
        domain.unwrap_or_default()
    ))
}
