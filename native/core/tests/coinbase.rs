//! The Coinbase feeds (Exchange and Advanced Trade) on real frames and on the cases their Python
//! twins define (each expected value printed by `tickrelay.venues.coinbase*`), and no panic on any
//! input. That both cores agree frame by frame is the Python differential tests' job.

use std::path::PathBuf;

use proptest::prelude::*;
use tickrelay_core::protocol::fixed::format_fixed8;
use tickrelay_core::venues::coinbase::CoinbaseFeed;
use tickrelay_core::venues::coinbase_advanced::AdvancedTradeFeed;
use tickrelay_core::venues::feed::{Event, Feed};

const RECORDING: &str =
    "coinbase/exchange-ws-feed/cryptofeed_2021-04-17_level2-ticker-matches_10-products.jsonl";

/// The recording's frames (`None` when `../shared/fixtures` is not there).
fn recording() -> Option<Vec<Vec<u8>>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures").join(RECORDING);
    let text = std::fs::read(path).ok()?;
    Some(text.split(|&c| c == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect())
}

fn run(feed: &mut dyn Feed, frames: &[&[u8]]) -> Vec<Vec<Event>> {
    frames
        .iter()
        .map(|raw| {
            let mut out = Vec::new();
            feed.on_frame(raw, 0, &mut out);
            out
        })
        .collect()
}

#[test]
fn the_recording_is_python_s() {
    let Some(frames) = recording() else {
        eprintln!("skipped: no ../shared/fixtures");
        return;
    };
    let mut feed = CoinbaseFeed::new("level2_batch");
    let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    let out = run(&mut feed, &refs);
    let s = feed.stats();
    assert_eq!(s.frames, 9946);
    let messages: Vec<(&str, u64)> = s.messages.iter().map(|(k, v)| (*k, *v)).collect();
    assert_eq!(
        messages,
        [("InstrumentMeta", 10), ("L2Delta", 9719), ("L2Snapshot", 10), ("Quote", 107), ("Trade", 107)]
    );
    assert!(s.rejected.is_empty() && s.rounded == 0);
    assert_eq!(s.ignored.get("subscriptions"), Some(&3));
    assert_eq!(s.extra.get("trade_id_gaps"), Some(&0));
    let skl = &s.books["SKL-USD"];
    assert_eq!(skl.updates_applied, 2592);
    assert_eq!(
        (skl.best_bid.map(format_fixed8).as_deref(), skl.best_ask.map(format_fixed8).as_deref()),
        (Some("0.79020000"), Some("0.79110000"))
    );
    let band = 485_756_983_526_270_208;
    assert_eq!(
        out[2][0],
        Event::InstrumentMeta {
            asset_id: band,
            venue_id: 102,
            asset_type: 51,
            price_decimals: 4,
            size_decimals: 2,
            venue_symbol: "BAND-GBP".into(),
            symbol: "BAND/GBP".into(),
        }
    );
    assert_eq!(
        out[4],
        [Event::Quote {
            asset_id: band,
            bid_price: 1_475_500_000,
            bid_size: 0,
            ask_price: 1_480_600_000,
            ask_size: 0,
            quote_ts_ns: 1_618_677_810_244_075_000,
            venue_id: 102,
            asset_type: 51,
        }]
    );
    assert_eq!(
        out[6],
        [Event::Trade {
            asset_id: band,
            price: 1_477_750_000,
            volume: 4_000_000,
            exec_ts_ns: 1_618_677_810_244_075_000,
            venue_id: 102,
            asset_type: 51,
            side: 0,
        }]
    );
    assert!(
        matches!(&out[30][..], [Event::L2Delta { exchange_ts_ns: 1_618_677_817_075_687_000, bids, asks, .. }]
        if bids.is_empty() && asks == &[(1306, 66_050_000_000)])
    );
}

#[test]
fn a_crossed_book_is_dropped_and_asked_for_again() {
    let mut feed = CoinbaseFeed::new("level2");
    let out = run(
        &mut feed,
        &[
            br#"{"type":"snapshot","product_id":"BTC-USD","bids":[["100.5","1"]],"asks":[["101","2"]]}"#,
            br#"{"type":"l2update","product_id":"BTC-USD","changes":[["buy","101.5","0.1"]],"time":"2021-04-17T16:43:30.5Z"}"#,
            br#"{"type":"l2update","product_id":"BTC-USD","changes":[["buy","1","1"]]}"#,
            br#"{"type":"match","trade_id":7,"side":"sell","size":"0.5","price":"100","product_id":"BTC-USD","time":"2021-04-17T16:43:30Z"}"#,
            br#"{"type":"last_match","trade_id":7,"side":"sell","size":"0.5","price":"100","product_id":"BTC-USD","time":"2021-04-17T16:43:30Z"}"#,
            br#"{"type":"match","trade_id":9,"side":"sell","size":"0.5","price":"100.000000005","product_id":"BTC-USD","time":"2021-04-17T16:43:30Z"}"#,
            br#"{"type":"error","message":"nope"}"#,
            br#"{"type":"nope"}"#,
            b"[1",
            br#"{"type":"ticker","product_id":"BTC-USD","best_bid":1}"#,
        ],
    );
    let btc = 603_367_314_271_748_800;
    assert_eq!(
        out[1],
        [
            Event::L2Delta {
                asset_id: btc,
                venue_id: 102,
                asset_type: 51,
                flags: 0,
                first_seq: 0,
                last_seq: 0,
                exchange_ts_ns: 1_618_677_810_500_000_000,
                bids: vec![(10_150_000_000, 10_000_000)],
                asks: vec![],
            },
            Event::StateInvalidation { venue_id: 102, asset_type: 51, reason: 6, asset_ids: vec![btc] },
            Event::L2Reset { asset_id: btc, venue_id: 102, asset_type: 51, reason: 6 },
        ]
    );
    assert!(out[2].is_empty() && out[4].is_empty());
    assert!(matches!(out[5][..], [Event::Trade { price: 10_000_000_000, side: 0, .. }]));
    assert_eq!(
        feed.take_requests(),
        [
            br#"{"type":"unsubscribe","product_ids":["BTC-USD"],"channels":["level2"]}"#.to_vec(),
            br#"{"type":"subscribe","product_ids":["BTC-USD"],"channels":["level2"]}"#.to_vec(),
        ]
    );
    assert!(feed.take_requests().is_empty());
    let s = feed.stats();
    let rejected: Vec<(&str, u64)> = s.rejected.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(
        rejected,
        [
            ("invalid_json", 1),
            ("l2update_before_snapshot", 1),
            ("unknown:nope", 1),
            ("unknown:ticker", 1),
            ("venue_error", 1)
        ]
    );
    assert_eq!((s.rounded, s.venue_errors, s.extra["trade_id_gaps"]), (1, 1, 1));
    assert_eq!(s.ignored["duplicate_trade"], 1);
    let book = &s.books["BTC-USD"];
    assert_eq!(
        (book.updates_applied, book.crossed, book.best_bid.map(format_fixed8).as_deref()),
        (1, 1, None)
    );
}

#[test]
fn advanced_trade_flips_the_maker_side_and_resubscribes_after_a_gap() {
    let mut feed = AdvancedTradeFeed::new();
    let out = run(
        &mut feed,
        &[
            br#"{"channel":"l2_data","sequence_num":1,"timestamp":"2021-04-17T16:43:30Z","events":[{"type":"snapshot","product_id":"ETH-USD","updates":[{"side":"bid","price_level":"10.5","new_quantity":"2"},{"side":"offer","price_level":"11","new_quantity":"3"}]}]}"#,
            br#"{"channel":"market_trades","sequence_num":2,"events":[{"type":"update","trades":[{"product_id":"ETH-USD","price":"10.75","size":"1","side":"BUY","time":"2021-04-17T16:43:31Z"}]}]}"#,
            br#"{"channel":"heartbeats","sequence_num":4}"#,
        ],
    );
    let eth = 1_319_909_545_448_720_576;
    assert!(matches!(&out[0][1], Event::L2Snapshot { exchange_seq: 1, flags: 3, bids, asks, .. }
        if bids == &[(1_050_000_000, 200_000_000)] && asks == &[(1_100_000_000, 300_000_000)]));
    // the maker bought: the aggressor sold
    assert!(
        matches!(out[1][..], [Event::Trade { asset_id, price: 1_075_000_000, side: 1, .. }] if asset_id == eth)
    );
    assert_eq!(
        out[2],
        [
            Event::StateInvalidation { venue_id: 102, asset_type: 51, reason: 2, asset_ids: vec![eth] },
            Event::L2Reset { asset_id: eth, venue_id: 102, asset_type: 51, reason: 2 },
        ]
    );
    assert_eq!(
        feed.take_requests(),
        [
            br#"{"type":"unsubscribe","product_ids":["ETH-USD"],"channel":"level2"}"#.to_vec(),
            br#"{"type":"subscribe","product_ids":["ETH-USD"],"channel":"level2"}"#.to_vec(),
        ]
    );
    assert_eq!(feed.stats().books["ETH-USD"].gaps, 1);
    assert!(feed.stats().ignored.is_empty());
}

/// A real frame of each kind, for mutation.
const FRAMES: &[&[u8]] = &[
    br#"{"type":"snapshot","product_id":"BTC-USD","bids":[["100.5","1"]],"asks":[["101","2"]]}"#,
    br#"{"type":"l2update","product_id":"BTC-USD","changes":[["buy","101.5","0.1"]],"time":"2021-04-17T16:43:30.5Z"}"#,
    br#"{"type":"match","trade_id":7,"side":"sell","size":"0.5","price":"100","product_id":"BTC-USD","time":"2021-04-17T16:43:30Z"}"#,
    br#"{"type":"ticker","product_id":"BTC-USD","best_bid":"1","best_ask":"2","best_bid_size":"0.1","time":"2021-04-17T16:43:30Z"}"#,
    br#"{"channel":"l2_data","sequence_num":1,"timestamp":"2021-04-17T16:43:30Z","events":[{"type":"snapshot","product_id":"ETH-USD","updates":[{"side":"bid","price_level":"10.5","new_quantity":"2"}]}]}"#,
    br#"{"channel":"market_trades","sequence_num":2,"events":[{"type":"update","trades":[{"product_id":"ETH-USD","price":"10.75","size":"1","side":"BUY","time":"2021-04-17T16:43:31Z"}]}]}"#,
    br#"{"channel":"ticker","sequence_num":3,"timestamp":"2021-04-17T16:43:30Z","events":[{"type":"update","tickers":[{"product_id":"ETH-USD","best_bid":"1","best_ask":"2"}]}]}"#,
];

fn both(frames: &[Vec<u8>]) {
    let mut exchange = CoinbaseFeed::new("level2_batch");
    let mut advanced = AdvancedTradeFeed::new();
    let mut out = Vec::new();
    for raw in frames {
        exchange.on_frame(raw, 0, &mut out);
        advanced.on_frame(raw, 0, &mut out);
    }
    exchange.on_disconnect(0, &mut out);
    advanced.on_disconnect(0, &mut out);
    let _ = (exchange.take_requests(), advanced.take_requests());
}

proptest! {
    #[test]
    fn no_bytes_panic_the_feeds(frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 1..8)) {
        both(&frames);
    }

    #[test]
    fn no_mutated_frame_panics_the_feeds(
        picks in prop::collection::vec((0..FRAMES.len(), any::<usize>(), any::<u8>(), 0..4u8), 1..12)
    ) {
        let frames: Vec<Vec<u8>> = picks
            .iter()
            .map(|&(k, at, byte, how)| {
                let mut f = FRAMES[k].to_vec();
                let at = at % (f.len() + 1);
                match how {
                    0 => f.truncate(at),
                    1 => f.insert(at, byte),
                    2 => if at < f.len() { f[at] = byte },
                    _ => f.splice(at..at, b"99999999999999999999999.000000001e5".iter().copied()).for_each(drop),
                }
                f
            })
            .collect();
        both(&frames);
    }
}
