//! Fixed point: the Python module's examples (tests/protocol/test_fixed.py), exactly.

use tickrelay_core::protocol::fixed::{parse_fixed8_rounded, FixedError};

#[test]
fn examples() {
    let cases: &[(&str, i64, bool)] = &[
        ("116827.85", 11_682_785_000_000, false),
        ("0.00004147", 4147, false),
        ("61737.63000000", 6_173_763_000_000, false),
        ("1e-05", 1000, false),
        ("-1.5", -150_000_000, false),
        ("+2", 200_000_000, false),
        (".5", 50_000_000, false),
        ("5.", 500_000_000, false),
        ("1.000000005", 100_000_000, true),
        ("1.000000015", 100_000_002, true),
        ("1.0000000051", 100_000_001, true),
        ("0.000000001", 0, true),
        ("1E2", 10_000_000_000, false),
        ("0e9999", 0, false),
        ("92233720368.54775807", i64::MAX, false),
        ("-92233720368.54775808", i64::MIN, false),
    ];
    for &(text, value, rounded) in cases {
        assert_eq!(parse_fixed8_rounded(text.as_bytes()), Ok((value, rounded)), "{text}");
    }
}

#[test]
fn rejects() {
    let not_numbers =
        ["", ".", "abc", "1..2", "1e", "1e+", "--1", "1_0", "²", " 1", "1e99999", "1e5x", "-", "e5"];
    for text in not_numbers {
        assert_eq!(parse_fixed8_rounded(text.as_bytes()), Err(FixedError::NotANumber), "{text:?}");
    }
    for text in ["1e9999", "92233720368.54775808", "1e20", "-92233720368.54775809"] {
        assert_eq!(parse_fixed8_rounded(text.as_bytes()), Err(FixedError::OutOfRange), "{text}");
    }
}
