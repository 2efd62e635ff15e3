//! The relay link's batch envelope, as `tickrelay/protocol/link.py` (`encode_batch`, `check_run`).
//! Pure: no I/O.

use super::codec::{
    u32_at, Header, ProtocolError, CHECKSUM_OFFSET, FLAG_CHECKSUM, HEADER_SIZE, MAGIC, VERSION,
};

/// `link.FLAG_BATCH`: the payload is a batch envelope (docs/protocol.md 5.3).
pub const FLAG_BATCH: u8 = 0x02;
/// `link.BATCH_START`: where an envelope's run of messages starts (header, then `<QI>` first, count).
pub const BATCH_START: usize = HEADER_SIZE + 12;

/// `encode_batch` in place: `buf[BATCH_START..]` holds `count` whole messages back to back (at
/// least one); this writes the envelope's header and batch head into `buf[..BATCH_START]`, the
/// first sequence read from the first inner message, and its CRC over the whole run. The bytes are
/// those of `encode_batch(domain, source, first, count, timestamp_ns, buf[BATCH_START..])`. `None`
/// (and `buf` unchanged) when the run is too short to hold a header or too long for the u32 size.
pub fn seal_batch(buf: &mut [u8], domain: u8, source: u8, count: u32, timestamp_ns: i64) -> Option<()> {
    let first = buf.get(BATCH_START + 8..BATCH_START + 16)?;
    let first = u64::from_le_bytes(first.try_into().ok()?);
    let size = u32::try_from(buf.len() - HEADER_SIZE).ok()?;
    buf[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    buf[4] = domain;
    buf[5] = VERSION;
    buf[6] = source;
    buf[7] = FLAG_CHECKSUM | FLAG_BATCH;
    buf[8..16].copy_from_slice(&first.to_le_bytes());
    buf[16..24].copy_from_slice(&timestamp_ns.to_le_bytes());
    buf[24..28].copy_from_slice(&size.to_le_bytes());
    buf[HEADER_SIZE..HEADER_SIZE + 8].copy_from_slice(&first.to_le_bytes());
    buf[HEADER_SIZE + 8..BATCH_START].copy_from_slice(&count.to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&buf[..CHECKSUM_OFFSET]);
    crc.update(&buf[HEADER_SIZE..]);
    buf[CHECKSUM_OFFSET..HEADER_SIZE].copy_from_slice(&crc.finalize().to_le_bytes());
    Some(())
}

/// `check_run`: `data[start..]` is exactly `count` well-framed messages of `domain` (magic,
/// version, domain, flags, sizes). Inner CRCs are not checked: the envelope's covers them.
///
/// The same two paths as the Python, so the verdicts and messages are the same: a run of one
/// message size is checked field by field at a stride (the Python's strided slices), and only
/// when that does not hold is it walked header by header; like the Python, the strided path does
/// not apply `max_payload` (the envelope's own limit already bounds it).
pub fn check_run(
    data: &[u8],
    start: usize,
    count: u64,
    domain: u8,
    max_payload: u64,
) -> Result<(), ProtocolError> {
    let Some(run) = data.get(start..) else {
        // as the Python: a start past the end is a run of negative length
        let n = data.len() as i128 - start as i128;
        return Err(ProtocolError::Protocol(format!("batch of {n} bytes cannot hold {count} messages")));
    };
    let n = run.len() as u64;
    if count == 0 || n < count.saturating_mul(HEADER_SIZE as u64) {
        return Err(ProtocolError::Protocol(format!("batch of {n} bytes cannot hold {count} messages")));
    }
    let size = n / count;
    if n % count == 0 && u32_at(run, 24).map(u64::from) == Some(size - HEADER_SIZE as u64) {
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        let mut expect = [0u8; HEADER_SIZE];
        expect[..4].copy_from_slice(&MAGIC.to_le_bytes());
        expect[4] = domain;
        expect[5] = VERSION;
        expect[24..28].copy_from_slice(&((size - HEADER_SIZE) as u32).to_le_bytes());
        let uniform = run.chunks_exact(size).all(|m| m[..6] == expect[..6] && m[24..28] == expect[24..28]);
        if uniform {
            if run.chunks_exact(size).any(|m| m[7] & !FLAG_CHECKSUM != 0) {
                return Err(ProtocolError::Protocol(
                    "a message in the batch has flags other than the checksum bit".into(),
                ));
            }
            return Ok(());
        }
    }
    walk(run, count, domain, max_payload)
}

fn walk(run: &[u8], count: u64, domain: u8, max_payload: u64) -> Result<(), ProtocolError> {
    let err = |m: String| Err(ProtocolError::Protocol(m));
    let (n, mut i, mut seen) = (run.len(), 0usize, 0u64);
    while i < n {
        let (Some(h), Some(magic)) = (Header::read(&run[i..]), u32_at(run, i)) else {
            return err(format!("message {} of the batch is truncated", seen + 1));
        };
        if magic != MAGIC || h.version != VERSION {
            return err(format!("message {} of the batch has a bad magic or version", seen + 1));
        }
        if h.relay_domain != domain {
            return err(format!(
                "message {} of the batch is of domain {}, not {domain}",
                seen + 1,
                h.relay_domain
            ));
        }
        if h.flags & !FLAG_CHECKSUM != 0 {
            return err(format!("message {} of the batch has flags {:#x}", seen + 1, h.flags));
        }
        if u64::from(h.payload_size) > max_payload {
            return err(format!(
                "message {} of the batch has payload_size {} > {max_payload}",
                seen + 1,
                h.payload_size
            ));
        }
        i = i.saturating_add(HEADER_SIZE + h.payload_size as usize);
        seen += 1;
        if i > n {
            return err(format!("message {seen} of the batch is truncated"));
        }
    }
    if seen != count {
        return err(format!("batch claims {count} messages but holds {seen}"));
    }
    Ok(())
}

#[cfg(test)]
mod seal_tests {
    use super::*;

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex")).collect()
    }

    /// Two trades of stream 9 (counters 1, 2); the envelope as Python's `encode_batch(1, 3,
    /// make_sequence(9, 1), 2, 1_700_000_000_000_000_123, run)` writes it.
    const RUN: &str = "efbeadde01010301010000000000090000002a36fe9c97172a000000d369f77c0128070000000000000064000000\
                       00000000050000000000000001000000000000000100330000000000efbeadde0101030102000000000009000000\
                       2a36fe9c97172a00000017301a45012807000000000000006500000000000000060000000000000002000000000000\
                       000100330001000000";
    const HEAD: &str =
        "efbeadde0101030301000000000009007b002a36fe9c9717a0000000c030f15e010000000000090002000000";

    #[test]
    fn seal_batch_writes_what_encode_batch_writes() {
        let mut buf = vec![0xAA; BATCH_START];
        buf.extend(unhex(RUN));
        assert_eq!(seal_batch(&mut buf, 1, 3, 2, 1_700_000_000_000_000_123), Some(()));
        assert_eq!(buf[..BATCH_START], unhex(HEAD)[..]);
        assert_eq!(buf[BATCH_START..], unhex(RUN)[..]);
        assert_eq!(check_run(&buf, BATCH_START, 2, 1, 1 << 20), Ok(()));
    }

    #[test]
    fn seal_batch_refuses_a_run_too_short_for_a_header() {
        let mut buf = vec![0; BATCH_START + 8];
        assert_eq!(seal_batch(&mut buf, 1, 3, 1, 0), None);
        assert_eq!(buf, vec![0; BATCH_START + 8]);
    }
}
