//! One instrument's L2 order book in fixed point, as `tickrelay/venues/book.py`. Pure: no I/O.
//!
//! Each side maps price -> size; a size of 0 removes the level. The book knows nothing of venue
//! sequence numbers or checksums: the venue module does that and calls in here.
//!
//! A side is one sorted `Vec`, worst level first and best last (bids ascending, asks descending),
//! so the levels that change most, near the top, move the fewest bytes, and dropping the worst
//! levels is cutting the front. A change is found by binary search; a batch of many changes (a
//! Binance depth diff carries 90 on average, up to 1,000) is merged in one pass over the side
//! instead: sorted (stably: the last change of a price wins), then the side copied run by run,
//! each change's place found by galloping on from the previous one's. Against the `BTreeMap` per
//! side it replaces, over the Binance recording: the biggest twentieth of the depth diffs 33 -> 28
//! µs each with a binary search per change, 29 -> 20-21 µs with the gallop (its sides hold about
//! 1,400 levels, and a diff's 50 changes a side reach 1,000 deep: a binary search over the rest of
//! the side was a chain of cache-missing loads); a diff of fewer than `MERGE_AT` levels about 0.2 µs
//! more (its levels sit 250 deep on average, and moving a level's successors costs about a tree
//! walk).

use std::cmp::Ordering;

use super::feed::Level;

/// From this many changes on a side, [`Side::apply`] merges instead of changing level by level.
const MERGE_AT: usize = 16;

#[derive(Debug, Clone, Default)]
struct Side {
    /// The asks' side: prices descend (else ascend), so the best is last either way.
    asks: bool,
    levels: Vec<Level>,
    /// A merge's buffers, kept for the next one: the changes sorted, the side merged.
    sorted: Vec<Level>,
    spare: Vec<Level>,
}

impl Side {
    fn new(asks: bool) -> Self {
        Self { asks, ..Self::default() }
    }

    /// Where `a` goes against `b` in this side's order.
    fn order(&self, a: i64, b: i64) -> Ordering {
        if self.asks {
            b.cmp(&a)
        } else {
            a.cmp(&b)
        }
    }

    /// How many of `rest`'s first levels come before `price`: a galloping search from the front,
    /// so a change `d` levels past the previous one costs about 2 log2(d) comparisons.
    fn before(&self, rest: &[Level], price: i64) -> usize {
        let less = |level: &Level| self.order(level.0, price) == Ordering::Less;
        let mut end = 1;
        while end <= rest.len() && less(&rest[end - 1]) {
            end *= 2;
        }
        let start = end / 2; // rest[..start] all come before
        start + rest[start..end.min(rest.len())].partition_point(less)
    }

    fn set(&mut self, price: i64, size: i64) {
        match self.levels.binary_search_by(|&(p, _)| self.order(p, price)) {
            Ok(i) if size != 0 => self.levels[i].1 = size,
            Ok(i) => {
                self.levels.remove(i);
            }
            Err(i) if size != 0 => self.levels.insert(i, (price, size)),
            Err(_) => {}
        }
    }

    /// Absolute sizes, in order (a later change of a price wins; size 0 removes the level).
    fn apply(&mut self, changes: &[Level]) {
        if changes.len() < MERGE_AT {
            for &(price, size) in changes {
                self.set(price, size);
            }
            return;
        }
        let (mut sorted, mut merged) = (std::mem::take(&mut self.sorted), std::mem::take(&mut self.spare));
        sorted.clear();
        sorted.extend_from_slice(changes);
        sorted.sort_by(|a, b| self.order(a.0, b.0)); // stable: equal prices keep their order
        merged.clear();
        merged.reserve(self.levels.len() + sorted.len());
        let (old, mut i) = (&self.levels, 0);
        for (j, &(price, size)) in sorted.iter().enumerate() {
            if sorted.get(j + 1).is_some_and(|next| next.0 == price) {
                continue; // a later change of the same price wins
            }
            let before = self.before(&old[i..], price);
            merged.extend_from_slice(&old[i..i + before]);
            i += before;
            if old.get(i).is_some_and(|&(p, _)| p == price) {
                i += 1; // replaced or removed
            }
            if size != 0 {
                merged.push((price, size));
            }
        }
        merged.extend_from_slice(&old[i..]);
        self.spare = std::mem::replace(&mut self.levels, merged);
        self.sorted = sorted;
    }

    /// The whole side from a snapshot's levels: zero sizes skipped, a later duplicate winning.
    fn load(&mut self, levels: &[Level]) {
        let mut kept: Vec<Level> = levels.iter().filter(|&&(_, s)| s != 0).copied().collect();
        kept.sort_by(|a, b| self.order(a.0, b.0)); // stable: a snapshot comes sorted, either way
        self.levels.clear();
        for level in kept {
            match self.levels.last_mut() {
                Some(last) if last.0 == level.0 => *last = level,
                _ => self.levels.push(level),
            }
        }
    }

    fn best(&self) -> Option<Level> {
        self.levels.last().copied()
    }

    /// The levels, best first.
    fn best_first(&self) -> impl Iterator<Item = Level> + '_ {
        self.levels.iter().rev().copied()
    }

    /// Drops all but the best `keep` levels; their prices, worst first.
    fn truncate(&mut self, keep: usize) -> Vec<i64> {
        let excess = self.levels.len().saturating_sub(keep);
        self.levels.drain(..excess).map(|(p, _)| p).collect()
    }
}

#[derive(Debug, Clone)]
pub struct OrderBook {
    /// Levels `truncate` keeps per side (None: all).
    pub depth: Option<usize>,
    bids: Side,
    asks: Side,
}

impl OrderBook {
    pub fn new(depth: Option<usize>) -> Self {
        Self { depth, bids: Side::new(false), asks: Side::new(true) }
    }

    pub fn clear(&mut self) {
        self.bids.levels.clear();
        self.asks.levels.clear();
    }

    /// Apply a batch of absolute level sizes per side (size 0 removes the level).
    pub fn update(&mut self, bids: &[Level], asks: &[Level]) {
        self.bids.apply(bids);
        self.asks.apply(asks);
    }

    /// Replace the whole book (a snapshot); zero-size levels are skipped. Later duplicates win, as
    /// in Python's dict comprehension.
    pub fn load(&mut self, bids: &[Level], asks: &[Level]) {
        self.bids.load(bids);
        self.asks.load(asks);
    }

    pub fn best_bid(&self) -> Option<Level> {
        self.bids.best()
    }

    pub fn best_ask(&self) -> Option<Level> {
        self.asks.best()
    }

    /// The bids, best first.
    pub fn bids_best_first(&self) -> impl Iterator<Item = Level> + '_ {
        self.bids.best_first()
    }

    /// The asks, best first.
    pub fn asks_best_first(&self) -> impl Iterator<Item = Level> + '_ {
        self.asks.best_first()
    }

    /// (best bid price, best ask price); None for an empty side.
    pub fn top_prices(&self) -> (Option<i64>, Option<i64>) {
        (self.bids.best().map(|l| l.0), self.asks.best().map(|l| l.0))
    }

    /// The best `n` levels of each side, best first.
    pub fn top(&self, n: usize) -> (Vec<Level>, Vec<Level>) {
        (self.bids.best_first().take(n).collect(), self.asks.best_first().take(n).collect())
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
        (self.bids.truncate(keep), self.asks.truncate(keep))
    }

    /// Best bid at or above best ask.
    pub fn is_crossed(&self) -> bool {
        matches!(self.top_prices(), (Some(b), Some(a)) if b >= a)
    }

    pub fn len(&self) -> usize {
        self.bids.levels.len() + self.asks.levels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn bid_count(&self) -> usize {
        self.bids.levels.len()
    }

    pub fn ask_count(&self) -> usize {
        self.asks.levels.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// The reference: each side a map price -> size, changed one level at a time (book.py's dicts).
    #[derive(Default)]
    struct Model {
        bids: BTreeMap<i64, i64>,
        asks: BTreeMap<i64, i64>,
    }

    impl Model {
        fn apply(side: &mut BTreeMap<i64, i64>, changes: &[Level]) {
            for &(p, s) in changes {
                if s != 0 {
                    side.insert(p, s);
                } else {
                    side.remove(&p);
                }
            }
        }

        fn levels(&self) -> (Vec<Level>, Vec<Level>) {
            (
                self.bids.iter().rev().map(|(&p, &s)| (p, s)).collect(),
                self.asks.iter().map(|(&p, &s)| (p, s)).collect(),
            )
        }
    }

    /// Mostly a few prices, so changes hit levels that exist, and some from a wider range, so
    /// sides grow long enough for the merge's gallop to take long strides; sizes with zeros;
    /// batches short and long (either side of `MERGE_AT`), with repeated prices.
    fn batch() -> impl Strategy<Value = Vec<Level>> {
        let price = prop_oneof![
            6 => 90i64..110,
            3 => -500i64..500,
            1 => prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(0)],
        ];
        prop::collection::vec((price, prop_oneof![Just(0i64), 1i64..4]), 0..40)
    }

    proptest! {
        #[test]
        fn the_book_is_the_maps_it_replaces(
            steps in prop::collection::vec((batch(), batch(), 0u8..8), 1..30),
            depth in prop::option::of(1usize..12),
        ) {
            let (mut book, mut model) = (OrderBook::new(depth), Model::default());
            for (bids, asks, action) in steps {
                match action {
                    0 => {
                        book.load(&bids, &asks);
                        model = Model::default();
                        Model::apply(&mut model.bids, &bids.iter().copied().filter(|l| l.1 != 0).collect::<Vec<_>>());
                        Model::apply(&mut model.asks, &asks.iter().copied().filter(|l| l.1 != 0).collect::<Vec<_>>());
                    }
                    1 => {
                        let (gone_bids, gone_asks) = book.truncate(None);
                        let keep = depth.unwrap_or(usize::MAX);
                        let worst_bids: Vec<i64> =
                            model.bids.keys().take(model.bids.len().saturating_sub(keep)).copied().collect();
                        let worst_asks: Vec<i64> =
                            model.asks.keys().rev().take(model.asks.len().saturating_sub(keep)).copied().collect();
                        for p in &worst_bids {
                            model.bids.remove(p);
                        }
                        for p in &worst_asks {
                            model.asks.remove(p);
                        }
                        prop_assert_eq!((gone_bids, gone_asks), (worst_bids, worst_asks));
                    }
                    _ => {
                        book.update(&bids, &asks);
                        Model::apply(&mut model.bids, &bids);
                        Model::apply(&mut model.asks, &asks);
                    }
                }
                prop_assert_eq!(book.levels(), model.levels());
                prop_assert_eq!(book.top_prices(), (model.bids.keys().next_back().copied(), model.asks.keys().next().copied()));
                prop_assert_eq!((book.bid_count(), book.ask_count()), (model.bids.len(), model.asks.len()));
            }
        }
    }

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
