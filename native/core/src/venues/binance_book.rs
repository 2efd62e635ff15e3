//! The Binance books: REST snapshot hand-off, buffered diffs, continuity, resyncs, the bookTicker
//! cross-check and disconnects, as the second half of `tickrelay/venues/binance.py`. Pure: no I/O.

use super::wire;
use super::{BinanceFeed, Diff, State, Top, BUFFER_LIMIT, DIFF_TOPS_KEPT, MATCHED, MISMATCHED, VENUE};
use crate::venues::common::{self, reason, split_snapshot};
use crate::venues::feed::{Event, SPOT};
use crate::venues::numbers::NO_DECIMALS;

impl BinanceFeed {
    /// `on_snapshot`: load a REST depth snapshot body and replay the buffered diffs over it.
    pub(super) fn snapshot(&mut self, key: &str, body: &[u8], out: &mut Vec<Event>) -> Result<(), String> {
        let start = out.len();
        let (last, bids_raw, asks_raw) =
            wire::snapshot(body).map_err(|_| format!("depth snapshot for {key}: not a depth snapshot"))?;
        let found =
            self.lookup(key.as_bytes()).ok_or_else(|| format!("depth snapshot for {key}: unknown symbol"))?;
        let (mut bids, mut asks, mut rounded, mut lead) = (Vec::new(), Vec::new(), 0u64, None);
        wire::levels(bids_raw, &mut bids, &mut rounded, &mut lead)
            .and_then(|()| wire::levels(asks_raw, &mut asks, &mut rounded, &mut lead))
            .map_err(|_| {
                format!("depth snapshot for {key}: levels that are not [[price, quantity], ...] amounts")
            })?;
        self.stats.rounded += rounded;
        let idx = self.keep(found);
        self.book_stats(idx, |_| ());
        if self.insts[idx].state == State::Live {
            return Ok(());
        }
        let inst = &mut self.insts[idx];
        inst.depth_seen = true;
        inst.base.book.load(&bids, &asks);
        inst.state = State::Pending;
        inst.last_u = last;
        self.wanted.retain(|&w| w != idx);
        let lead = lead.unwrap_or((NO_DECIMALS, NO_DECIMALS));
        self.insts[idx].base.announce(VENUE, None, None, Some(lead), out);
        let buffered = std::mem::take(&mut self.insts[idx].buffer);
        for diff in buffered {
            self.diff(idx, diff, out);
        }
        self.stats.count(&out[start..]);
        Ok(())
    }

    /// `on_disconnect`: one StateInvalidation for the venue, an L2Reset per book, every book dark.
    pub(super) fn disconnect(&mut self, out: &mut Vec<Event>) {
        let books: Vec<usize> = (0..self.insts.len()).filter(|&i| self.insts[i].base.has_stats).collect();
        for inst in &mut self.insts {
            inst.base.live = inst.state != State::Wait; // disconnect() counts a resync for each
        }
        let Self { insts, stats, .. } = self;
        let with_books = insts.iter_mut().filter(|i| i.base.has_stats).map(|i| &mut i.base);
        common::disconnect(VENUE, with_books, stats, out);
        for inst in &mut self.insts {
            inst.buffer.clear();
        }
        for &idx in &books {
            self.drop_book(idx);
        }
    }

    /// `_diff`: one parsed diff through the symbol's sync state; the kind of ignore, if ignored.
    pub(super) fn diff(&mut self, idx: usize, d: Diff, out: &mut Vec<Event>) -> Option<&'static str> {
        let inst = &mut self.insts[idx];
        inst.depth_seen = true;
        if inst.state == State::Wait {
            inst.buffer.push_back(d);
            if inst.buffer.len() > BUFFER_LIMIT {
                inst.buffer.pop_front();
            }
            self.want(idx);
            return Some("depthUpdate:buffered");
        }
        let last = inst.last_u;
        if d.last <= last {
            return Some("depthUpdate:stale");
        }
        // last < d.last <= i64::MAX: last + 1 cannot overflow
        if inst.state == State::Pending {
            if d.first > last + 1 {
                self.book_stats(idx, |s| s.resyncs += 1);
                self.drop_book(idx);
                return self.diff(idx, d, out);
            }
            self.publish_snapshot(idx, out);
        } else if d.first != last + 1 {
            self.book_stats(idx, |s| s.gaps += 1);
            self.invalidate(idx, reason::SEQUENCE_GAP, out);
            self.diff(idx, d, out);
            return None;
        }
        let inst = &mut self.insts[idx];
        inst.base.book.update(&d.bids, &d.asks);
        inst.state = State::Live;
        inst.last_u = d.last;
        let asset_id = inst.base.asset_id;
        self.book_stats(idx, |s| s.updates_applied += 1);
        out.push(Event::L2Delta {
            asset_id,
            venue_id: VENUE,
            asset_type: SPOT,
            flags: 0,
            first_seq: d.first as u64, // update ids are read as int64 >= 0
            last_seq: d.last as u64,
            exchange_ts_ns: d.ts,
            bids: d.bids,
            asks: d.asks,
        });
        if self.insts[idx].base.book.is_crossed() {
            self.book_stats(idx, |s| s.crossed += 1);
            self.invalidate(idx, reason::CROSSED_BOOK, out);
            return None;
        }
        let Self { insts, stats, .. } = self;
        insts[idx].base.render(stats); // the decimal text is only re-rendered when the top moves
        let book = &self.insts[idx].base.book;
        if let (Some(bid), Some(ask)) = (book.best_bid(), book.best_ask()) {
            self.check_tickers(idx, d.last, [bid.0, bid.1, ask.0, ask.1]);
        }
        None
    }

    /// `_cross_check_later`: check a bookTicker against the book's top once the diff ending at its
    /// `u` is applied (now, if it already was).
    pub(super) fn cross_check_later(&mut self, idx: usize, u: i64, quote: Top) {
        let inst = &mut self.insts[idx];
        if inst.state == State::Live && u <= inst.last_u {
            if let Some(&(_, top)) = inst.diff_tops.iter().find(|(k, _)| *k == u) {
                self.cross_check(quote, top);
            }
            return;
        }
        inst.tickers.insert(u, quote);
    }

    fn cross_check(&mut self, quote: Top, top: Top) {
        let key = if quote == top { MATCHED } else { MISMATCHED };
        *self.stats.extra.entry(key).or_default() += 1;
    }

    fn check_tickers(&mut self, idx: usize, u: i64, top: Top) {
        let tickers = &mut self.insts[idx].tickers;
        let quote = tickers.map.remove(&u).map(|(_, quote)| quote);
        while let Some(oldest) = tickers.oldest() {
            if oldest > u {
                break;
            }
            tickers.pop_oldest();
        }
        let tops = &mut self.insts[idx].diff_tops;
        match tops.iter_mut().find(|(k, _)| *k == u) {
            Some(entry) => entry.1 = top,
            None => {
                tops.push_back((u, top));
                if tops.len() > DIFF_TOPS_KEPT {
                    tops.pop_front();
                }
            }
        }
        if let Some(quote) = quote {
            self.cross_check(quote, top);
        }
    }

    /// `_drop_book`: the book forgotten, the symbol waits for (and asks for) a new snapshot.
    fn drop_book(&mut self, idx: usize) {
        let Self { insts, stats, .. } = self;
        let inst = &mut insts[idx];
        inst.base.drop_book(stats);
        inst.state = State::Wait;
        inst.diff_tops.clear();
        inst.tickers.clear();
        self.want(idx);
    }

    /// `_invalidate`: StateInvalidation + L2Reset for this instrument, its book dropped.
    fn invalidate(&mut self, idx: usize, why: u8, out: &mut Vec<Event>) {
        self.book_stats(idx, |s| s.resyncs += 1);
        let Self { insts, stats, .. } = self;
        common::invalidate(VENUE, &mut insts[idx].base, why, stats, out);
        self.drop_book(idx);
    }

    /// `_publish_snapshot`: the loaded book as `split_snapshot` parts.
    fn publish_snapshot(&mut self, idx: usize, out: &mut Vec<Event>) {
        let inst = &self.insts[idx];
        let (bids, asks) = inst.base.book.levels();
        split_snapshot(inst.base.asset_id, VENUE, inst.last_u as u64, 0, &bids, &asks, out);
        // ids are >= 0
    }
}
