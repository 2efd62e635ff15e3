//! One instrument's L2 order book in fixed point, as `tickrelay/venues/book.py`. Pure: no I/O.
//!
//! Each side is an ordered map price -> size; a size of 0 removes the level. The book knows
//! nothing of venue sequence numbers or checksums: the venue module does that and calls in here.

use std::collections::BTreeMap;

use super::feed::Level;

#[derive(Debug, Clone, Default)]
pub struct OrderBook {
    /// Levels `truncate` keeps per side (None: all).
    pub depth: Option<usize>,
    bids: BTreeMap<i64, i64>,
    asks: BTreeMap<i64, i64>,
}

fn apply(side: &mut BTreeMap<i64, i64>, changes: &[Level]) {
    for &(price, size) in changes {
        if size != 0 {
            side.insert(price, size);
        } else {
            side.remove(&price);
        }
    }
}

impl OrderBook {
    pub fn new(depth: Option<usize>) -> Self {
        Self { depth, ..Self::default() }
    }

    pub fn clear(&mut self) {
        self.bids.clear();
        self.asks.clear();
    }

    /// Apply a batch of absolute level sizes per side (size 0 removes the level).
    pub fn update(&mut self, bids: &[Level], asks: &[Level]) {
        apply(&mut self.bids, bids);
        apply(&mut self.asks, asks);
    }

    /// Replace the whole book (a snapshot); zero-size levels are skipped. Later duplicates win, as
    /// in Python's dict comprehension: `collect` sorts stably and keeps the last of equal prices,
    /// and builds the map in one pass from the sorted levels (a snapshot comes sorted), not a
    /// search per level.
    pub fn load(&mut self, bids: &[Level], asks: &[Level]) {
        let kept = |levels: &[Level]| levels.iter().filter(|&&(_, s)| s != 0).copied().collect();
        self.bids = kept(bids);
        self.asks = kept(asks);
    }

    pub fn best_bid(&self) -> Option<Level> {
        self.bids.iter().next_back().map(|(&p, &s)| (p, s))
    }

    pub fn best_ask(&self) -> Option<Level> {
        self.asks.iter().next().map(|(&p, &s)| (p, s))
    }

    /// (best bid price, best ask price); None for an empty side.
    pub fn top_prices(&self) -> (Option<i64>, Option<i64>) {
        (self.bids.keys().next_back().copied(), self.asks.keys().next().copied())
    }

    /// The best `n` levels of each side, best first.
    pub fn top(&self, n: usize) -> (Vec<Level>, Vec<Level>) {
        (
            self.bids.iter().rev().take(n).map(|(&p, &s)| (p, s)).collect(),
            self.asks.iter().take(n).map(|(&p, &s)| (p, s)).collect(),
        )
    }

    /// Every level of each side, best first.
    pub fn levels(&self) -> (Vec<Level>, Vec<Level>) {
        self.top(usize::MAX)
    }

    /// Drop levels beyond `depth` (default: the book's own) on each side; returns the prices
    /// dropped (bids, asks) in Python's order (worst first).
    pub fn truncate(&mut self, depth: Option<usize>) -> (Vec<i64>, Vec<i64>) {
        let Some(keep) = depth.or(self.depth) else {
            return (Vec::new(), Vec::new());
        };
        let bids: Vec<i64> = {
            let excess = self.bids.len().saturating_sub(keep);
            self.bids.keys().take(excess).copied().collect()
        };
        let asks: Vec<i64> = {
            let excess = self.asks.len().saturating_sub(keep);
            self.asks.keys().rev().take(excess).copied().collect()
        };
        for p in &bids {
            self.bids.remove(p);
        }
        for p in &asks {
            self.asks.remove(p);
        }
        (bids, asks)
    }

    /// Best bid at or above best ask.
    pub fn is_crossed(&self) -> bool {
        matches!(self.top_prices(), (Some(b), Some(a)) if b >= a)
    }

    pub fn len(&self) -> usize {
        self.bids.len() + self.asks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn bid_count(&self) -> usize {
        self.bids.len()
    }

    pub fn ask_count(&self) -> usize {
        self.asks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn book_keeps_best_first_and_truncates_worst_first() {
        let mut b = OrderBook::new(Some(2));
        b.load(&[(100, 1), (99, 2), (98, 3), (97, 0)], &[(101, 1), (102, 2), (103, 3)]);
        assert_eq!(b.top_prices(), (Some(100), Some(101)));
        assert_eq!(b.truncate(None), (vec![98], vec![103]));
        b.update(&[(100, 0), (101, 5)], &[]);
        assert!(b.is_crossed());
        assert_eq!(b.levels(), (vec![(101, 5), (99, 2)], vec![(101, 1), (102, 2)]));
        assert_eq!(b.len(), 4);
    }

    #[test]
    fn a_snapshot_s_later_duplicate_wins_and_zeros_are_skipped() {
        let mut b = OrderBook::new(None);
        b.update(&[(1, 1)], &[(9, 9)]);
        b.load(&[(100, 1), (99, 2), (100, 3), (98, 0)], &[(101, 0), (102, 2), (102, 5), (101, 4)]);
        assert_eq!(b.levels(), (vec![(100, 3), (99, 2)], vec![(101, 4), (102, 5)]));
    }
}
