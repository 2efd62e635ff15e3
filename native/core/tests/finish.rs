//! The shared finisher vectors (`tests/venues/finish_vectors.json`, made by the Python `FeedCore`
//! and `Stamper` and held to them by `tests/venues/test_finish_vectors.py`): every session's calls
//! through one `Finisher` give the same bytes, counter, RECOVERED count and refusals.

use std::path::PathBuf;

use serde_json::Value;
use tickrelay_core::protocol::events::EncodeError;
use tickrelay_core::venues::feed::{Event, Level};
use tickrelay_core::venues::finish::Finisher;

fn sessions() -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/venues/finish_vectors.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match serde_json::from_str(&text).expect("JSON") {
        Value::Array(v) => v,
        _ => panic!("a list of sessions"),
    }
}

fn u(v: &Value, name: &str) -> u64 {
    v[name].as_u64().unwrap_or_else(|| panic!("{name} in {v}"))
}

fn i(v: &Value, name: &str) -> i64 {
    v[name].as_i64().unwrap_or_else(|| panic!("{name} in {v}"))
}

fn small<T: TryFrom<u64>>(v: &Value, name: &str) -> T {
    T::try_from(u(v, name)).unwrap_or_else(|_| panic!("{name} out of range in {v}"))
}

fn s(v: &Value, name: &str) -> String {
    v[name].as_str().unwrap_or_else(|| panic!("{name} in {v}")).to_owned()
}

fn levels(v: &Value, name: &str) -> Vec<Level> {
    let side = v[name].as_array().unwrap_or_else(|| panic!("{name} in {v}"));
    side.iter().map(|l| (l[0].as_i64().expect("price"), l[1].as_i64().expect("size"))).collect()
}

fn event(v: &Value) -> Event {
    match v["name"].as_str().expect("name") {
        "Trade" => Event::Trade {
            asset_id: u(v, "asset_id"),
            price: i(v, "price"),
            volume: i(v, "volume"),
            exec_ts_ns: i(v, "exec_ts_ns"),
            venue_id: small(v, "venue_id"),
            asset_type: small(v, "asset_type"),
            side: small(v, "side"),
        },
        "Quote" => Event::Quote {
            asset_id: u(v, "asset_id"),
            bid_price: i(v, "bid_price"),
            bid_size: i(v, "bid_size"),
            ask_price: i(v, "ask_price"),
            ask_size: i(v, "ask_size"),
            quote_ts_ns: i(v, "quote_ts_ns"),
            venue_id: small(v, "venue_id"),
            asset_type: small(v, "asset_type"),
        },
        "InstrumentMeta" => Event::InstrumentMeta {
            asset_id: u(v, "asset_id"),
            venue_id: small(v, "venue_id"),
            asset_type: small(v, "asset_type"),
            price_decimals: small(v, "price_decimals"),
            size_decimals: small(v, "size_decimals"),
            venue_symbol: s(v, "venue_symbol"),
            symbol: s(v, "symbol"),
        },
        "L2Snapshot" => Event::L2Snapshot {
            asset_id: u(v, "asset_id"),
            venue_id: small(v, "venue_id"),
            asset_type: small(v, "asset_type"),
            flags: small(v, "flags"),
            exchange_seq: u(v, "exchange_seq"),
            exchange_ts_ns: i(v, "exchange_ts_ns"),
            part: small(v, "part"),
            bids: levels(v, "bids"),
            asks: levels(v, "asks"),
        },
        "L2Delta" => Event::L2Delta {
            asset_id: u(v, "asset_id"),
            venue_id: small(v, "venue_id"),
            asset_type: small(v, "asset_type"),
            flags: small(v, "flags"),
            first_seq: u(v, "first_seq"),
            last_seq: u(v, "last_seq"),
            exchange_ts_ns: i(v, "exchange_ts_ns"),
            bids: levels(v, "bids"),
            asks: levels(v, "asks"),
        },
        "L2Reset" => Event::L2Reset {
            asset_id: u(v, "asset_id"),
            venue_id: small(v, "venue_id"),
            asset_type: small(v, "asset_type"),
            reason: small(v, "reason"),
        },
        "StateInvalidation" => Event::StateInvalidation {
            venue_id: small(v, "venue_id"),
            asset_type: small(v, "asset_type"),
            reason: small(v, "reason"),
            asset_ids: v["asset_ids"]
                .as_array()
                .expect("ids")
                .iter()
                .map(|a| a.as_u64().expect("id"))
                .collect(),
        },
        other => panic!("unknown event {other}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn every_session_gives_the_python_bytes_counters_and_refusals() {
    let all = sessions();
    assert!(all.len() >= 30);
    let mut out = Vec::new();
    let (mut calls, mut refused) = (0, 0);
    for (n, session) in all.iter().enumerate() {
        let mut f = Finisher::new(
            small(session, "source"),
            small(session, "stream_id"),
            small(session, "domain"),
            u(session, "counter"),
        );
        for call in session["calls"].as_array().expect("calls") {
            let events: Vec<Event> = call["events"].as_array().expect("events").iter().map(event).collect();
            let recovered = f.recovered();
            out.clear();
            let result = f.finish(&events, i(call, "ts"), &mut out);
            match (&call["error"], result) {
                (Value::Null, Ok(())) => {
                    let (got, want) = (hex(&out), s(call, "hex"));
                    let at = got.bytes().zip(want.bytes()).take_while(|(a, b)| a == b).count() / 2;
                    assert!(got == want, "session {n}: first difference at byte {at} of {}", want.len() / 2);
                }
                (Value::Array(e), Err(got)) => {
                    let class = match got {
                        EncodeError::Struct(_) => "error",
                        EncodeError::MalformedTlv(_) => "MalformedTlv",
                    };
                    let want = (e[0].as_str().expect("class"), e[1].as_str().expect("message"));
                    assert_eq!((class, got.to_string().as_str()), want, "session {n}");
                    refused += 1;
                }
                (want, got) => panic!("session {n}: expected {want}, got {got:?}"),
            }
            assert_eq!(f.counter, u(call, "counter"), "session {n}");
            assert_eq!(f.recovered() - recovered, u(call, "recovered"), "session {n}");
            calls += 1;
        }
    }
    assert!(calls > 150 && refused > 5, "{calls} calls, {refused} refused");
}
