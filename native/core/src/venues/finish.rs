//! The finisher: a feed's events to finished Protocol V2 bytes, as `venues/core.py`
//! (`FeedCore._finish`) with the stream's `protocol/stamper.py` `Stamper`. Pure: no I/O.
//!
//! It owns the stream's identity and its counter (sequence = stream id << 48 | counter, the
//! counter +1 per message, the header timestamp the ts of the call) and the recovery state: the
//! books that had a complete snapshot and those invalidated since. After the L2Snapshot flagged END
//! of a dark book, a StateInvalidation(RECOVERED) naming it follows at once; a StateInvalidation
//! naming no asset darkens every book seen. Feeds never say RECOVERED: this does.

use std::collections::HashSet;

use super::feed::{Event, SPOT};
use crate::protocol::events::{write_message, EncodeError};

/// `SnapshotFlags.END`: the last part of a snapshot, the book is complete.
pub const SNAPSHOT_END: u8 = 2;
/// `Reason.RECOVERED`.
pub const RECOVERED: u8 = 5;
const COUNTER_BITS: u32 = 48;
const COUNTER_MASK: u64 = (1 << COUNTER_BITS) - 1;

#[derive(Debug, Clone)]
pub struct Finisher {
    pub source: u8,
    pub stream_id: u16,
    pub domain: u8,
    /// The last counter assigned (`Stamper.counter`).
    pub counter: u64,
    books: HashSet<u64>,
    dark: HashSet<u64>,
    recovered: u64,
}

impl Finisher {
    pub fn new(source: u8, stream_id: u16, domain: u8, counter: u64) -> Self {
        Self { source, stream_id, domain, counter, books: HashSet::new(), dark: HashSet::new(), recovered: 0 }
    }

    /// The RECOVERED invalidations made so far: the feed's `stats.messages["StateInvalidation"]`
    /// counts them besides its own (the Python core adds them to the feed's stats as it goes).
    pub fn recovered(&self) -> u64 {
        self.recovered
    }

    /// `Stamper.message`: `event` as the stream's next message, appended to `out`. The counter
    /// moves first, as in Python, even when the event is refused.
    pub fn message(&mut self, ts_ns: i64, event: &Event, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.counter = self.counter.wrapping_add(1);
        let sequence = u64::from(self.stream_id) << COUNTER_BITS | (self.counter & COUNTER_MASK);
        write_message(out, self.domain, self.source, sequence, ts_ns, event)
    }

    /// `FeedCore._finish`: every event as one message appended to `out`, in order, with RECOVERED
    /// where it is due. On `Err` (an event the protocol cannot carry, as the Python raises) what
    /// `out` holds past its old length is unusable; the counter has moved as the Python's has.
    pub fn finish(&mut self, events: &[Event], ts_ns: i64, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        for event in events {
            self.message(ts_ns, event, out)?;
            match *event {
                Event::StateInvalidation { ref asset_ids, .. } => {
                    if asset_ids.is_empty() {
                        self.dark.extend(self.books.iter().copied());
                    } else {
                        self.dark.extend(asset_ids.iter().copied());
                    }
                }
                Event::L2Snapshot { asset_id, venue_id, flags, .. } if flags & SNAPSHOT_END != 0 => {
                    self.books.insert(asset_id);
                    if self.dark.remove(&asset_id) {
                        let recovered = Event::StateInvalidation {
                            venue_id,
                            asset_type: SPOT,
                            reason: RECOVERED,
                            asset_ids: vec![asset_id],
                        };
                        self.message(ts_ns, &recovered, out)?;
                        self.recovered += 1;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::codec::{iter_tlvs, parse_header, HEADER_SIZE};

    fn snapshot(asset_id: u64, flags: u8) -> Event {
        Event::L2Snapshot {
            asset_id,
            venue_id: 3,
            asset_type: SPOT,
            flags,
            exchange_seq: 0,
            exchange_ts_ns: 0,
            part: 0,
            bids: vec![(100, 1)],
            asks: vec![(101, 1)],
        }
    }

    fn invalidation(asset_ids: Vec<u64>) -> Event {
        Event::StateInvalidation { venue_id: 3, asset_type: SPOT, reason: 1, asset_ids }
    }

    /// (sequence, TLV type, first byte of the value after the type's fixed head) of each message.
    fn messages(out: &[u8]) -> Vec<(u64, u8, Vec<u8>)> {
        let mut seen = Vec::new();
        let mut at = 0;
        while at < out.len() {
            let h = parse_header(&out[at..], Some(1)).expect("valid").expect("whole");
            let end = at + HEADER_SIZE + h.payload_size as usize;
            let (t, v) = iter_tlvs(&out[at + HEADER_SIZE..end]).next().expect("a TLV").expect("valid");
            seen.push((h.sequence, t, v.to_vec()));
            at = end;
        }
        seen
    }

    #[test]
    fn recovered_follows_the_complete_snapshot_of_a_dark_book_only() {
        let mut f = Finisher::new(3, 9, 1, 41);
        let mut out = Vec::new();
        // first snapshot: a book seen, nothing was dark
        f.finish(&[snapshot(7, 3)], 5, &mut out).expect("encodes");
        assert_eq!(messages(&out).len(), 1);
        // every book dark; a first part does not recover it, the END part does, once
        out.clear();
        let events = [invalidation(vec![]), snapshot(7, 1), snapshot(7, 2), snapshot(7, 2)];
        f.finish(&events, 6, &mut out).expect("encodes");
        let seen = messages(&out);
        let types: Vec<u8> = seen.iter().map(|m| m.1).collect();
        assert_eq!(types, [101, 5, 5, 101, 5]);
        // StateInvalidation value: venue u16, asset_type, reason, count u16, then the ids
        assert_eq!(seen[3].2, [3, 0, SPOT, RECOVERED, 1, 0, 7, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(seen[0].0, 9 << 48 | 43);
        assert_eq!(seen[4].0, 9 << 48 | 47);
        assert_eq!((f.counter, f.recovered()), (47, 1));
        // a named invalidation darkens a book never seen whole: its first snapshot recovers it
        out.clear();
        f.finish(&[invalidation(vec![8]), snapshot(8, 3)], 7, &mut out).expect("encodes");
        assert_eq!(messages(&out).iter().map(|m| m.1).collect::<Vec<_>>(), [101, 5, 101]);
        assert_eq!(f.recovered(), 2);
    }

    #[test]
    fn a_refused_event_moves_the_counter_as_the_python_stamper() {
        let mut f = Finisher::new(3, 1, 1, 0);
        let mut out = Vec::new();
        let bad = Event::L2Reset { asset_id: 1, venue_id: 3, asset_type: SPOT, reason: 1 };
        assert!(f.finish(std::slice::from_ref(&bad), -1, &mut out).is_err());
        assert_eq!(f.counter, 1);
        assert!(out.is_empty());
        f.finish(&[bad], 1, &mut out).expect("encodes");
        assert_eq!(messages(&out)[0].0, 1 << 48 | 2);
    }
}
