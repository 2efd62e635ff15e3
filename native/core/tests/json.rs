//! The JSON scanner against serde_json as the oracle: every frame of every recording in
//! `../shared/fixtures` (and the embedded ones), each frame's truncations and single-byte
//! corruptions, and hand-picked edge cases: the same verdict (JSON or not), and for JSON the same
//! tree, with numbers and strings as sent.

use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use tickrelay_core::venues::json::{Scanner, Value};

/// The scanned value as serde_json's tree; numbers through their text (serde_json's own parse of
/// the same text), strings through serde_json's unescaping of their text as sent.
fn to_json(v: Value<'_>) -> Json {
    if v.is_object() {
        let members = v.members().map(|(k, v)| (unescape(k), to_json(v)));
        return Json::Object(members.collect());
    }
    if v.is_array() {
        return Json::Array(v.items().map(to_json).collect());
    }
    if let Some(text) = v.number() {
        // serde_json refuses what no f64 holds (1e400), which JSON's grammar allows: text then
        return serde_json::from_slice(text).unwrap_or_else(|_| Json::String(unescape(text)));
    }
    if let Some(text) = v.str_raw() {
        return Json::String(unescape(text));
    }
    v.bool().map_or(Json::Null, Json::Bool)
}

fn unescape(text: &[u8]) -> String {
    let quoted = [b"\"", text, b"\""].concat();
    serde_json::from_slice(&quoted).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(text)))
}

fn agrees(scanner: &mut Scanner, frame: &[u8]) {
    let ours = scanner.scan(frame).map(to_json);
    let oracle = serde_json::from_slice::<Json>(frame);
    match (&ours, &oracle) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "{}", String::from_utf8_lossy(frame)),
        (Err(_), Err(_)) => {}
        (Ok(_), Err(e)) if e.to_string().starts_with("number out of range") => {}
        _ => panic!("scanner {ours:?}, serde_json {oracle:?}: {:?}", String::from_utf8_lossy(frame)),
    }
}

fn recordings() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut found = Vec::new();
    let mut dirs: Vec<PathBuf> = vec![root.join("../shared/fixtures"), root.join("src/tickrelay/data")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "jsonl") {
                found.push(path);
            }
        }
    }
    found
}

fn frames(path: &Path) -> Vec<Vec<u8>> {
    let text = std::fs::read(path).expect("readable");
    text.split(|&c| c == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect()
}

#[test]
fn every_recorded_frame_scans_as_serde_json_reads_it() {
    let (mut scanner, mut total) = (Scanner::new(), 0);
    let files = recordings();
    assert!(files.len() >= 10, "recordings found: {files:?}");
    for path in &files {
        for frame in frames(path) {
            agrees(&mut scanner, &frame);
            total += 1;
        }
    }
    assert!(total > 50_000, "{total} frames");
}

#[test]
fn truncated_and_corrupted_frames_get_serde_jsons_verdict() {
    let mut scanner = Scanner::new();
    for path in recordings() {
        // a few short frames of each file, every prefix and every byte replaced by a few others
        for frame in frames(&path).into_iter().filter(|f| f.len() < 400).step_by(97).take(4) {
            for cut in 0..frame.len() {
                agrees(&mut scanner, &frame[..cut]);
            }
            for at in 0..frame.len() {
                for byte in [b'"', b'\\', b'{', b']', b',', b':', b'0', b'-', b'e', b' ', 0x00, 0xff] {
                    let mut bad = frame.clone();
                    bad[at] = byte;
                    agrees(&mut scanner, &bad);
                }
            }
        }
    }
}

#[test]
fn edge_cases() {
    let mut scanner = Scanner::new();
    let cases: &[&[u8]] = &[
        b"",
        b" ",
        b"{}",
        b"[]",
        b" [ ] ",
        b"[1,]",
        b"[,1]",
        b"{\"a\":1,}",
        b"{\"a\" 1}",
        b"{1:2}",
        b"01",
        b"-0",
        b"-",
        b"1.",
        b".5",
        b"1e",
        b"1e+",
        b"1E-7",
        b"-0.0e0",
        b"1.5e308",
        b"123456789012345678901234567890",
        b"\"\\u00e9\\ud83d\\ude00\"",
        b"\"\\x\"",
        b"\"\\u12\"",
        b"\"a\nb\"",
        b"\"\xc3\xa9\"",
        b"\"\xff\"",
        b"true",
        b"tru",
        b"nul",
        b"[true,false,null]",
        b"{\"a\":{\"b\":[1,{\"c\":\"d\"}]}}",
        b"[1] x",
        b"\"unterminated",
        b"{\"a\":1,\"a\":2}",
    ];
    for case in cases {
        agrees(&mut scanner, case);
    }
    // nesting far deeper than any call stack: no overflow, the same verdict
    let deep = [vec![b'['; 100_000], vec![b']'; 100_000]].concat();
    assert!(scanner.scan(&deep).is_ok());
    assert!(scanner.scan(&deep[..deep.len() - 1]).is_err());
}

#[test]
fn navigation_reads_what_the_feeds_need() {
    let mut scanner = Scanner::new();
    let frame = br#"{"type":"l2update","product_id":"BTC-USD","changes":[["buy","116827.85","0.1"]],"n":-1e-5,"x":null}"#;
    let v = scanner.scan(frame).expect("JSON");
    assert_eq!(v.get("type").and_then(|t| t.str()), Some("l2update"));
    assert_eq!(v.get("missing").map(|m| m.raw()), None);
    let change: Vec<&[u8]> = v
        .get("changes")
        .into_iter()
        .flat_map(|c| c.items())
        .flat_map(|c| c.items())
        .filter_map(|s| s.str_raw())
        .collect();
    assert_eq!(change, [&b"buy"[..], b"116827.85", b"0.1"]);
    assert_eq!(v.get("n").and_then(|n| n.number()), Some(&b"-1e-5"[..]));
    assert!(v.get("x").is_some_and(|x| x.is_null()));
    assert_eq!(v.get("type").map(|t| t.items().count()), Some(0));
    let repeated = scanner.scan(br#"{"a":1,"b":2,"a":3}"#).expect("JSON");
    assert_eq!(repeated.get("a").and_then(|a| a.number()), Some(&b"3"[..]));
}
