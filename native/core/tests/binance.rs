//! The Binance feed on the real recordings (`../shared/fixtures/binance`) with the REST snapshots
//! their recorders fetched, as `tests/venues/test_binance.py` runs the Python feed: the same
//! counts, books and cross-checks; and hand-written frames for the paths they never take. The
//! byte-for-byte agreement with the Python feed is `tests/native` (every recording, fuzzed frames).

use std::collections::BTreeMap;
use std::path::PathBuf;

use tickrelay_core::protocol::fixed::format_fixed8;
use tickrelay_core::venues::binance::BinanceFeed;
use tickrelay_core::venues::feed::{Event, Feed};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/binance")
}

fn lines(path: &PathBuf) -> Vec<Vec<u8>> {
    let text = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.split(|&c| c == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect()
}

/// Snapshot bodies by symbol: one `.rest-depth-snapshot.json` (BTCUSDT) or the
/// `.rest-depth-snapshots.jsonl` whose sidecar names each body's symbol.
fn bodies(stem: &str) -> BTreeMap<String, Vec<u8>> {
    let single = fixtures().join(format!("{stem}.rest-depth-snapshot.json"));
    if single.exists() {
        return BTreeMap::from([("BTCUSDT".to_owned(), std::fs::read(single).expect("readable"))]);
    }
    let urls = std::fs::read_to_string(
        fixtures().join(format!("{stem}.rest-depth-snapshots.request_url_recv_ts.txt")),
    )
    .expect("readable");
    let symbols =
        urls.lines().map(|u| u.split("symbol=").nth(1).and_then(|s| s.split('&').next()).expect("symbol"));
    symbols
        .map(str::to_owned)
        .zip(lines(&fixtures().join(format!("{stem}.rest-depth-snapshots.jsonl"))))
        .collect()
}

/// Every line through the feed; each symbol gets its snapshot when it asks (from line `after`).
fn run(stem: &str, after: usize) -> (BinanceFeed, Vec<Event>) {
    let bodies = bodies(stem);
    let (mut feed, mut out, mut used) = (BinanceFeed::new([]), Vec::new(), Vec::new());
    for (n, raw) in lines(&fixtures().join(format!("{stem}.jsonl"))).iter().enumerate() {
        let before = feed.stats().ignored.values().sum::<u64>() + feed.stats().rejected.values().sum::<u64>();
        let start = out.len();
        feed.on_frame(raw, n as i64, &mut out);
        let after_ = feed.stats().ignored.values().sum::<u64>() + feed.stats().rejected.values().sum::<u64>();
        assert_eq!(after_ - before, u64::from(out.len() == start), "line {}: classified once", n + 1);
        for symbol in feed.wants_snapshot() {
            if n + 1 >= after && !used.contains(&symbol) {
                if let Some(body) = bodies.get(&symbol) {
                    used.push(symbol.clone());
                    feed.on_snapshot(&symbol, body, n as i64, &mut out).expect("a good snapshot");
                }
            }
        }
    }
    (feed, out)
}

fn counts<'a>(pairs: impl IntoIterator<Item = (&'a str, u64)>) -> BTreeMap<String, u64> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

#[test]
fn recordings_parse_with_continuous_books() {
    type Counts = &'static [(&'static str, u64)];
    #[rustfmt::skip]
    let cases: [(&str, usize, u64, Counts, Counts, Counts); 4] = [
        ("spot/hftbacktest_2024-08-08_combined_depth100ms-trade-bookTicker_BTCUSDT", 7, 41248,
         &[("InstrumentMeta", 1), ("L2Delta", 3449), ("L2Snapshot", 1), ("Quote", 28040), ("Trade", 9757)],
         &[("depthUpdate:buffered", 3)], &[("BTCUSDT", 3449)]),
        ("spot/cryptofeed_2021-10-12_combined_depth100ms-bookTicker-aggTrade-kline1m_4-symbols", 0, 265,
         &[("InstrumentMeta", 4), ("L2Delta", 172), ("L2Snapshot", 4), ("Quote", 84), ("Trade", 2)],
         &[("depthUpdate:buffered", 4), ("depthUpdate:stale", 1), ("kline", 2)],
         &[("NKNUSDT", 149), ("BLZETH", 9), ("LRCBTC", 13), ("RUNEEUR", 1)]),
        ("spot-binance-us/cryptofeed_2021-10-12_combined_depth100ms-aggTrade-kline1m-bookTicker_4-symbols", 0, 480,
         &[("InstrumentMeta", 4), ("L2Delta", 332), ("L2Snapshot", 4), ("Quote", 128), ("Trade", 11)],
         &[("depthUpdate:buffered", 4), ("kline", 5)],
         &[("COMPUSDT", 106), ("OMGBUSD", 158), ("CRVUSDT", 28), ("ZRXUSDT", 40)]),
        ("spot/rust-orderbook-feed_2026-07-04_raw-depth100ms_BTCUSDT", 0, 18,
         &[("InstrumentMeta", 1), ("L2Delta", 9), ("L2Snapshot", 1)],
         &[("depthUpdate:buffered", 1), ("depthUpdate:stale", 8)], &[("BTCUSDT", 9)]),
    ];
    for (stem, after, frames, messages, ignored, updates) in cases {
        let (feed, _) = run(stem, after);
        let stats = feed.stats();
        assert_eq!(stats.frames, frames, "{stem}");
        let got: BTreeMap<String, u64> = stats.messages.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
        assert_eq!(got, counts(messages.iter().copied()), "{stem}");
        assert_eq!(stats.ignored, counts(ignored.iter().copied()), "{stem}");
        assert!(stats.rejected.is_empty() && stats.rounded == 0 && stats.venue_errors == 0, "{stem}");
        let applied = stats.books.iter().map(|(s, b)| (s.as_str(), b.updates_applied));
        assert_eq!(counts(applied), counts(updates.iter().copied()), "{stem}");
        for book in stats.books.values() {
            assert_eq!((book.gaps, book.resyncs, book.crossed), (0, 0, 0), "{stem}");
            assert!(book.best_bid.is_some() && book.best_ask.is_some());
        }
        assert!(feed.wants_snapshot().is_empty());
        assert_eq!(stats.extra.get("bookticker_mismatched"), Some(&0), "{stem}");
    }
}

#[test]
fn hftbacktest_snapshot_straddles_the_buffered_diff_and_bookticker_checks_match() {
    let (feed, out) = run("spot/hftbacktest_2024-08-08_combined_depth100ms-trade-bookTicker_BTCUSDT", 7);
    let snap = out.iter().position(|e| matches!(e, Event::L2Snapshot { .. })).expect("a snapshot");
    match (&out[snap], &out[snap + 1]) {
        (
            Event::L2Snapshot { exchange_seq, flags: 3, part: 0, bids, asks, .. },
            Event::L2Delta { first_seq, last_seq, .. },
        ) => {
            assert_eq!((*exchange_seq, bids.len(), asks.len()), (50_093_239_218, 1000, 1000));
            assert_eq!((*first_seq, *last_seq), (50_093_239_208, 50_093_239_224));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(feed.stats().extra.get("bookticker_matched"), Some(&564));
    let book = &feed.stats().books["BTCUSDT"];
    let best = book.best_bid.map(format_fixed8);
    assert!(best.as_deref().is_some_and(|b| b.len() > 9 && b.as_bytes()[b.len() - 9] == b'.'));
}

fn depth(symbol: &str, first: i64, last: i64, bids: &str, asks: &str) -> Vec<u8> {
    format!(
        r#"{{"stream":"{}@depth@100ms","data":{{"e":"depthUpdate","E":1,"s":"{symbol}","U":{first},"u":{last},"b":{bids},"a":{asks}}}}}"#,
        symbol.to_lowercase()
    )
    .into_bytes()
}

#[test]
fn gap_invalidates_that_symbol_and_the_gap_diff_starts_the_new_buffer() {
    let mut feed = BinanceFeed::new([]);
    let mut out = Vec::new();
    feed.on_frame(&depth("ETHUSDT", 10, 12, r#"[["100.00000000","1.00000000"]]"#, "[]"), 1, &mut out);
    let snap = br#"{"lastUpdateId":11,"bids":[["100.00000000","2.00000000"]],"asks":[["101.00000000","1.00000000"]]}"#;
    feed.on_snapshot("ETHUSDT", snap, 2, &mut out).expect("good");
    out.clear();
    feed.on_frame(&depth("ETHUSDT", 15, 16, r#"[["99.00000000","1.00000000"]]"#, "[]"), 5, &mut out);
    assert!(matches!(
        &out[..],
        [Event::StateInvalidation { reason: 2, .. }, Event::L2Reset { reason: 2, .. }]
    ));
    let book = &feed.stats().books["ETHUSDT"];
    assert_eq!((book.gaps, book.resyncs, book.best_bid.map(format_fixed8).as_deref()), (1, 1, None));
    assert_eq!(feed.wants_snapshot(), ["ETHUSDT"]);
    assert!(feed.on_snapshot("ETHUSDT", b"{}", 6, &mut out).is_err());
    assert!(feed.on_snapshot("FOO", br#"{"lastUpdateId":1,"bids":[],"asks":[]}"#, 6, &mut out).is_err());
    out.clear();
    let snap = br#"{"lastUpdateId":14,"bids":[["98.00000000","1.00000000"]],"asks":[["101.00000000","1.00000000"]]}"#;
    feed.on_snapshot("ETHUSDT", snap, 6, &mut out).expect("good");
    assert!(matches!(&out[..], [Event::L2Snapshot { .. }, Event::L2Delta { first_seq: 15, .. }]));
    let book = &feed.stats().books["ETHUSDT"];
    assert_eq!(
        (book.best_bid.map(format_fixed8).as_deref(), book.best_ask.map(format_fixed8).as_deref()),
        (Some("99.00000000"), Some("101.00000000"))
    );
}

#[test]
fn a_rejected_diff_counts_no_rounding() {
    // bids read (one value rounded), then asks that are not [[price, quantity], ...]: invalid_depth
    let mut feed = BinanceFeed::new([]);
    let mut out = Vec::new();
    feed.on_frame(&depth("ETHUSDT", 10, 12, r#"[["1.000000005","1"]]"#, r#"[["1"]]"#), 1, &mut out);
    feed.on_frame(br#"{"e":"trade","s":"ETHUSDT","p":"1","q":"1","T":1,"m":false}"#, 2, &mut out);
    let s = feed.stats();
    assert_eq!((s.frames, s.rounded, s.rejected.get("invalid_depth").copied()), (2, 0, Some(1)));
    assert!(matches!(out.last(), Some(Event::Trade { price: 100_000_000, .. })), "{out:?}");
}

#[test]
fn acks_errors_and_garbage_are_classified_never_panic() {
    let mut feed = BinanceFeed::new([]);
    let mut out = Vec::new();
    let cases: [(&[u8], &str); 12] = [
        (br#"{"error":{"code":2,"msg":"Invalid request"},"id":3}"#, "venue_error"),
        (br#"{"code":-1121,"msg":"Invalid symbol."}"#, "venue_error"),
        (b"not json", "invalid_json"),
        (b"", "invalid_json"),
        (b"{}", "unknown_shape"),
        (br#"{"stream":"btcusdt@depth20@100ms","data":{"lastUpdateId":1}}"#, "unknown_kind:depth20"),
        (br#"{"e":"outboundAccountPosition","E":1}"#, "unknown_kind:outboundAccountPosition"),
        (br#"{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT"}}"#, "invalid_trade"),
        (
            br#"{"stream":"btcusdt@trade","data":{"s":"FOO","p":"1","q":"1","T":1,"m":true}}"#,
            "unknown_symbol",
        ),
        (
            br#"{"stream":"btcusdt@trade","data":{"s":"BTCUSDT","p":"1e999","q":"1","T":1,"m":true}}"#,
            "bad_number",
        ),
        (br#"{"stream":"btcusdt@trade","data":[1,2]"#, "invalid_json"),
        (br#"{"e":"depthUpdate","E":1,"s":"ETHUSDT","U":10,"u":12,"b":[["1"]],"a":[]}"#, "invalid_depth"),
    ];
    for (raw, reason) in cases {
        feed.on_frame(raw, 0, &mut out);
        assert!(out.is_empty(), "{reason}");
        assert!(feed.stats().samples.contains_key(reason), "{reason}");
    }
    feed.on_frame(br#"{"result":null,"id":1}"#, 0, &mut out);
    let deep = [&b"{\"x\":"[..], &[b'['; 300], &[b']'; 300], b"}"].concat();
    feed.on_frame(&deep, 0, &mut out);
    assert_eq!(feed.stats().ignored, counts([("subscription_ack", 1)]));
    assert_eq!((feed.stats().venue_errors, feed.stats().rejected["too_deep"]), (2, 1));
    assert_eq!(feed.stats().samples["venue_error"], r#"{"error":{"code":2,"msg":"Invalid request"},"id":3}"#);
    // what breaks careless parsers: 100k nesting, megabyte numbers, bad UTF-8, lone surrogates
    let hostile = [
        [&b"{\"stream\":\"a@trade\",\"data\":"[..], &[b'['; 100_000]].concat(),
        [
            &b"{\"e\":\"trade\",\"s\":\"BTCUSDT\",\"p\":\""[..],
            &[b'9'; 1_000_000],
            b"\",\"q\":\"1\",\"T\":1,\"m\":true}",
        ]
        .concat(),
        [&b"{\"u\":"[..], &[b'9'; 1_000_000], b"}"].concat(),
        b"{\"e\":\"trade\",\"s\":\"\xff\",\"x\":\"\xff\"}".to_vec(),
        br#"{"stream":"a@kline_1m","data":{"s":"\ud800"}}"#.to_vec(),
    ];
    for raw in &hostile {
        feed.on_frame(raw, 0, &mut out);
        assert!(out.is_empty());
    }
    assert!(feed.on_snapshot("BTCUSDT", &hostile[0], 0, &mut out).is_err());
    assert_eq!(feed.stats().rejected["too_deep"], 2);
}

mod no_panic {
    use super::*;
    use proptest::prelude::*;

    fn recorded() -> Vec<Vec<u8>> {
        let cf = "spot/cryptofeed_2021-10-12_combined_depth100ms-bookTicker-aggTrade-kline1m_4-symbols";
        let mut frames = lines(&fixtures().join(format!("{cf}.jsonl")));
        frames.extend(lines(
            &fixtures().join("spot/rust-orderbook-feed_2026-07-04_raw-depth100ms_BTCUSDT.jsonl"),
        ));
        frames.extend(bodies(cf).into_values());
        frames
    }

    /// A real frame or snapshot body, truncated, a byte changed, a slice repeated or dropped.
    fn mutated(frames: &[Vec<u8>], pick: usize, op: u8, at: usize, len: usize, byte: u8) -> Vec<u8> {
        let mut f = frames[pick % frames.len()].clone();
        let at = at % (f.len() + 1);
        let end = (at + len).min(f.len());
        match op % 5 {
            0 => f.truncate(at),
            1 if at < f.len() => f[at] = byte,
            2 => {
                let slice = f[at..end].to_vec();
                f.splice(at..at, slice);
            }
            3 => {
                f.drain(at..end);
            }
            _ => f.insert(at, byte),
        }
        f
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_and_mutated_frames_are_classified_never_panic(
            steps in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<usize>(), 0usize..64, any::<u8>(), any::<bool>()), 1..40),
            noise in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let frames = recorded();
            let mut feed = BinanceFeed::new([("BNBUSD".to_owned(), "BNB/USD".to_owned())]);
            let mut out = Vec::new();
            feed.on_frame(&noise, 0, &mut out);
            for (n, (pick, op, at, len, byte, snapshot)) in steps.into_iter().enumerate() {
                let raw = mutated(&frames, pick, op, at, len, byte);
                let classified = |f: &BinanceFeed| f.stats().ignored.values().sum::<u64>() + f.stats().rejected.values().sum::<u64>();
                let before = classified(&feed);
                let start = out.len();
                feed.on_frame(&raw, n as i64, &mut out);
                prop_assert_eq!(classified(&feed) - before, u64::from(out.len() == start));
                if snapshot {
                    for key in feed.wants_snapshot() {
                        let _ = feed.on_snapshot(&key, &raw, n as i64, &mut out);
                    }
                }
            }
            feed.on_disconnect(0, &mut out);
        }
    }
}
