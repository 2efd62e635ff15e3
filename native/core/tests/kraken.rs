//! The Kraken feeds on the real captures in `../shared/fixtures` (v1 and v2), the CRC32 book
//! checks and resubscriptions, and no panic on arbitrary bytes or mutated real frames. The Python
//! feed is the spec: `tests/native` holds both cores to the same bytes and stats frame by frame.

use std::collections::BTreeMap;
use std::path::PathBuf;

use proptest::prelude::*;
use tickrelay_core::protocol::fixed::format_fixed8;
use tickrelay_core::venues::feed::{Event, Feed};
use tickrelay_core::venues::{build, Param, Params};

fn fixture(rel: &str) -> Vec<Vec<u8>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/kraken").join(rel);
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.split(|&c| c == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect()
}

const BOOK_1000: &str = "v1/cryptofeed_2021-04-17_book-1000_10-pairs.jsonl";
const BOOK_10: &str = "v1/python-kraken-sdk_2023-08-30_book-10_XBT-USD.jsonl";
const BOOK_V2: &str = "v2/python-kraken-sdk_2023-07-30_book-10_BTC-USD.jsonl";

fn feed(api: &str, depth: i64, policy: &str, precisions: &[&str]) -> Box<dyn Feed> {
    let params = Params(BTreeMap::from([
        ("depth".to_owned(), Param::Int(depth)),
        ("checksum_policy".to_owned(), Param::Str(policy.to_owned())),
        ("precisions".to_owned(), Param::List(precisions.iter().map(|p| (*p).to_owned()).collect())),
    ]));
    build(api, &params).expect("a Kraken arm").expect("valid parameters")
}

fn run(f: &mut dyn Feed, frames: &[Vec<u8>]) -> Vec<Event> {
    let mut out = Vec::new();
    for (n, frame) in frames.iter().enumerate() {
        f.on_frame(frame, n as i64, &mut out);
    }
    out
}

fn sum(f: &dyn Feed, field: fn(&tickrelay_core::venues::feed::BookStats) -> u64) -> u64 {
    f.stats().books.values().map(field).sum()
}

#[test]
fn the_1000_deep_book_verifies_every_checksum() {
    let mut f = feed("kraken_v1", 1000, "resync", &[]);
    run(f.as_mut(), &fixture(BOOK_1000));
    let s = f.stats();
    let messages: Vec<(&str, u64)> = s.messages.iter().map(|(k, v)| (*k, *v)).collect();
    assert_eq!(messages, [("InstrumentMeta", 10), ("L2Delta", 4269), ("L2Snapshot", 10)]);
    let ignored: Vec<(&str, u64)> = s.ignored.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(ignored, [("heartbeat", 31), ("subscriptionStatus", 10), ("systemStatus", 1)]);
    assert!(s.rejected.is_empty());
    assert_eq!(
        (sum(f.as_ref(), |b| b.checksums_verified), sum(f.as_ref(), |b| b.checksum_failures)),
        (4269, 0)
    );
    assert_eq!(s.books["XBT/CHF"].best_bid.map(format_fixed8).as_deref(), Some("56060.30000000"));
    assert!(f.take_requests().is_empty());
}

#[test]
fn the_10_deep_book_with_republish_entries_and_pongs() {
    let mut f = feed("kraken_v1", 10, "resync", &[]);
    run(f.as_mut(), &fixture(BOOK_10));
    let b = &f.stats().books["XBT/USD"];
    assert_eq!((b.updates_applied, b.checksums_verified, b.checksum_failures), (979, 979, 0));
    assert_eq!(f.stats().ignored["pong"], 16);
}

#[test]
fn v2_checksums_need_the_instrument_precisions() {
    let frames = fixture(BOOK_V2);
    let mut f = feed("kraken_v2", 10, "resync", &["1 8 BTC/USD"]);
    run(f.as_mut(), &frames);
    assert_eq!(f.stats().books["BTC/USD"].checksums_verified, 510);
    let mut f = feed("kraken_v2", 10, "resync", &[]);
    run(f.as_mut(), &frames);
    assert_eq!(
        (f.stats().books["BTC/USD"].checksums_verified, f.stats().extra["unverified_checksums"]),
        (0, 510)
    );
}

#[test]
fn a_wrong_checksum_invalidates_and_resubscribes_that_pair_only() {
    let mut frames = fixture(BOOK_1000);
    let at = frames.iter().position(|f| f.windows(5).any(|w| w == b"\"c\":\"")).expect("an update");
    let text = String::from_utf8(frames[at].clone()).expect("UTF-8");
    let start = text.find("\"c\":\"").expect("checksum") + 5;
    frames[at] = format!("{}1{}", &text[..start], &text[start..]).into_bytes();
    let mut f = feed("kraken_v1", 1000, "resync", &[]);
    let out = run(f.as_mut(), &frames[..=at]);
    assert!(
        matches!(out[out.len() - 2], Event::StateInvalidation { reason: 3, ref asset_ids, .. } if asset_ids.len() == 1)
    );
    assert!(matches!(out[out.len() - 1], Event::L2Reset { reason: 3, .. }));
    let pair = &text[text.rfind(",\"").expect("pair") + 2..text.len() - 2];
    let want = |kind: &str| {
        format!(r#"{{"event":"{kind}","pair":["{pair}"],"subscription":{{"name":"book","depth":1000}}}}"#)
    };
    assert_eq!(f.take_requests(), [want("unsubscribe").into_bytes(), want("subscribe").into_bytes()]);
    assert_eq!(f.stats().samples["checksum_mismatch"].as_bytes(), &frames[at][..frames[at].len().min(300)]);
}

#[test]
fn trades_tickers_and_disconnects() {
    let mut f = feed("kraken_v1", 10, "resync", &[]);
    let out = run(f.as_mut(), &fixture("v1/cryptofeed_2021-04-17_trade_10-pairs.jsonl"));
    let trade = out.iter().find(|e| matches!(e, Event::Trade { .. })).expect("a trade");
    assert!(
        matches!(trade, Event::Trade { exec_ts_ns: 1_618_678_142_557_535_000, side: 1, .. }),
        "{trade:?}"
    );
    run(f.as_mut(), &fixture("v1/cryptofeed_2021-04-17_ticker_10-pairs.jsonl"));
    assert_eq!(f.stats().messages["Quote"], 18);
    let mut out = Vec::new();
    f.on_disconnect(0, &mut out);
    assert_eq!(out.len(), 1, "no book was ever published: the venue-wide invalidation only");
}

#[test]
fn a_v2_update_rejected_for_a_book_before_its_snapshot_counts_no_rounding() {
    // the first book (live) is read and a value rounded, then the second has no snapshot yet
    let update = br#"{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[{"price":29430.2,"qty":0.000000015}],"asks":[],"checksum":1},{"symbol":"ETH/USD","bids":[],"asks":[],"checksum":1}]}"#;
    for precisions in [&["1 8 BTC/USD"][..], &[]] {
        let mut f = feed("kraken_v2", 10, "resync", precisions);
        let frames = [fixture(BOOK_V2)[0].clone(), update.to_vec(), br#"{"channel":"heartbeat"}"#.to_vec()];
        run(f.as_mut(), &frames);
        let s = f.stats();
        let rejected: Vec<(&str, u64)> = s.rejected.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!((s.frames, s.rounded, rejected), (3, 0, vec![("book_update_before_snapshot", 1)]));
    }
}

fn mutate(frame: &[u8], at: usize, byte: u8, cut: usize) -> Vec<u8> {
    let mut m = frame.to_vec();
    if !m.is_empty() {
        let i = at % m.len();
        m[i] = byte;
        m.truncate(cut.max(i + 1));
    }
    m
}

proptest! {
    #[test]
    fn no_bytes_panic_either_api(frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 1..20)) {
        for api in ["kraken_v1", "kraken_v2"] {
            let mut f = feed(api, 10, "resync", &["1 8 BTC/USD"]);
            run(f.as_mut(), &frames);
        }
    }

    #[test]
    fn no_mutated_real_frame_panics(picks in proptest::collection::vec((0usize..4000, any::<usize>(), any::<u8>(), any::<usize>()), 1..60)) {
        let v1 = fixture(BOOK_10);
        let v2 = fixture(BOOK_V2);
        let mut f = feed("kraken_v1", 10, "resync", &["1 8 BTC/USD"]);
        let mut out = Vec::new();
        f.on_frame(&v1[3], 0, &mut out);
        f.on_frame(&v2[0], 0, &mut out);
        for (n, at, byte, cut) in picks {
            let frame = if n % 2 == 0 { &v1[n / 2 % v1.len()] } else { &v2[n / 2 % v2.len()] };
            f.on_frame(&mutate(frame, at, byte, cut % (frame.len() + 1)), 0, &mut out);
        }
    }
}
