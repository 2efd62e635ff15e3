//! Which subscriber gets which message, as `tickrelay/relay/fanout.py`. Pure: no sockets.
//!
//! A filter names TLV types, venues and instruments; an empty set means "any". A message matches
//! when one of its TLVs passes every non-empty set. TLVs that carry no venue (heartbeats, loss
//! reports) pass the venue and instrument sets; a StateInvalidation passes the instrument set when
//! it names none (the whole venue) or one of them.

use crate::protocol::codec::{iter_tlvs, u16_at, u32_at, u64_at, ProtocolError, HEADER_SIZE};

const STATE_INVALIDATION: u8 = 101;

/// Where the venue id sits in each market-data TLV value (the asset id is always at 0).
fn venue_at(tlv_type: u8) -> Option<usize> {
    match tlv_type {
        1 => Some(32),    // Trade
        2 => Some(48),    // Quote
        4..=7 => Some(8), // InstrumentMeta, L2Snapshot, L2Delta, L2Reset
        _ => None,
    }
}

/// A subscription filter, its sets kept sorted for binary search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    tlv_types: [bool; 256],
    any_type: bool,
    venues: Vec<u16>,
    asset_ids: Vec<u64>,
}

impl Filter {
    pub fn new(
        tlv_types: impl IntoIterator<Item = u8>,
        venues: impl IntoIterator<Item = u16>,
        asset_ids: impl IntoIterator<Item = u64>,
    ) -> Self {
        let mut types = [false; 256];
        let mut any_type = true;
        for t in tlv_types {
            types[usize::from(t)] = true;
            any_type = false;
        }
        let mut venues: Vec<u16> = venues.into_iter().collect();
        let mut asset_ids: Vec<u64> = asset_ids.into_iter().collect();
        venues.sort_unstable();
        venues.dedup();
        asset_ids.sort_unstable();
        asset_ids.dedup();
        Self { tlv_types: types, any_type, venues, asset_ids }
    }

    fn type_ok(&self, t: u8) -> bool {
        self.any_type || self.tlv_types[usize::from(t)]
    }

    fn venue_ok(&self, venue: u16) -> bool {
        self.venues.is_empty() || self.venues.binary_search(&venue).is_ok()
    }

    fn asset_ok(&self, asset_id: u64) -> bool {
        self.asset_ids.is_empty() || self.asset_ids.binary_search(&asset_id).is_ok()
    }

    /// `matches`: one TLV of `message` (a whole, validated message) passes the filter. TLVs are
    /// read lazily, as the Python generator does: a malformed TLV after a passing one is not seen.
    pub fn matches(&self, message: &[u8]) -> Result<bool, ProtocolError> {
        for tlv in iter_tlvs(message.get(HEADER_SIZE..).unwrap_or_default()) {
            let (t, v) = tlv?;
            if !self.type_ok(t) {
                continue;
            }
            if let Some(at) = venue_at(t).filter(|at| v.len() >= at + 2) {
                if !self.venue_ok(u16_at(v, at).unwrap_or_default())
                    || !self.asset_ok(u64_at(v, 0).unwrap_or_default())
                {
                    continue;
                }
            } else if t == STATE_INVALIDATION && v.len() >= 6 {
                if !self.venue_ok(u16_at(v, 0).unwrap_or_default()) {
                    continue;
                }
                let mut ids = v[6..].chunks_exact(8).filter_map(|a| u64_at(a, 0)).peekable();
                if !self.asset_ids.is_empty() && ids.peek().is_some() && !ids.any(|a| self.asset_ok(a)) {
                    continue;
                }
            }
            return Ok(true);
        }
        Ok(false)
    }

    /// `select`: the messages of a validated run that pass the filter, as (start, end) byte
    /// ranges of consecutive matches, and how many messages they hold.
    ///
    /// Messages with one standard-form market-data TLV long enough to hold its venue (nearly all
    /// of them) are matched from fixed offsets; anything else goes through [`Filter::matches`].
    /// A run that is not well framed (it was not validated) is a `ProtocolError`, never a panic.
    pub fn select(&self, run: &[u8]) -> Result<(Vec<(usize, usize)>, usize), ProtocolError> {
        let (n, mut i, mut count) = (run.len(), 0usize, 0usize);
        let mut runs: Vec<(usize, usize)> = Vec::new();
        let mut run_start: Option<usize> = None;
        while i < n {
            let end = u32_at(run, i + 24)
                .map(|size| i + HEADER_SIZE + size as usize)
                .filter(|end| *end <= n)
                .ok_or_else(|| {
                    ProtocolError::Protocol(format!("message at offset {i} of the run is truncated"))
                })?;
            let message = &run[i..end];
            let ok = match (message.get(HEADER_SIZE), message.get(HEADER_SIZE + 1)) {
                (Some(&t), Some(&len))
                    if end == i + HEADER_SIZE + 2 + usize::from(len)
                        && venue_at(t).is_some_and(|at| usize::from(len) >= at + 2) =>
                {
                    let v = &message[HEADER_SIZE + 2..];
                    let at = venue_at(t).unwrap_or_default();
                    self.type_ok(t)
                        && self.venue_ok(u16_at(v, at).unwrap_or_default())
                        && self.asset_ok(u64_at(v, 0).unwrap_or_default())
                }
                _ => self.matches(message)?,
            };
            match (ok, run_start) {
                (true, None) => run_start = Some(i),
                (false, Some(s)) => {
                    runs.push((s, i));
                    run_start = None;
                }
                _ => {}
            }
            count += usize::from(ok);
            i = end;
        }
        if let Some(s) = run_start {
            runs.push((s, n));
        }
        Ok((runs, count))
    }
}
