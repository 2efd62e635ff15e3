//! No input panics the core: what breaks careless parsers (huge numbers, bad UTF-8, truncated
//! and lying frames) comes back as an `Err`, every prefix and every single-byte corruption of a
//! real run included.

use tickrelay_core::protocol::codec::{encode_message, iter_tlvs, parse_header};
use tickrelay_core::protocol::fixed::parse_fixed8_rounded;
use tickrelay_core::protocol::link::check_run;
use tickrelay_core::relay::fanout::Filter;

fn trade(venue: u16, asset: u64) -> Vec<u8> {
    let mut value = vec![0u8; 40];
    value[..8].copy_from_slice(&asset.to_le_bytes());
    value[32..34].copy_from_slice(&venue.to_le_bytes());
    let mut payload = vec![1, 40];
    payload.extend_from_slice(&value);
    encode_message(1, 3, 1, 0, &payload, true).expect("small")
}

#[test]
fn hostile_number_texts() {
    let long_digits = "9".repeat(100_000);
    let long_zeros = format!("0.{}1", "0".repeat(100_000));
    let texts: Vec<&[u8]> = vec![
        long_digits.as_bytes(),
        long_zeros.as_bytes(),
        b"\xff\xfe\xfd",
        b"1\xc3",
        b"1.5\xe2\x82",
        b"1e-9999999",
        b"1e-",
        b"-",
        b"+.",
        b".e1",
        b"\x001",
        b"18446744073709551616",
        b"-9223372036854775809e-8",
    ];
    for text in texts {
        let _ = parse_fixed8_rounded(text);
    }
    assert_eq!(parse_fixed8_rounded(long_zeros.as_bytes()), Ok((0, true)));
}

#[test]
fn every_prefix_and_corruption_of_a_run() {
    let run: Vec<u8> = (0..5u64).flat_map(|i| trade(100 + (i % 3) as u16, i)).collect();
    let filters = [Filter::new([], [101], []), Filter::new([2], [], [7]), Filter::new([], [], [])];
    let mut inputs: Vec<Vec<u8>> = (0..=run.len()).map(|k| run[..k].to_vec()).collect();
    for at in 0..run.len() {
        for byte in [0x00, 0x01, 0x7f, 0xff] {
            let mut bad = run.clone();
            bad[at] = byte;
            inputs.push(bad);
        }
    }
    for input in &inputs {
        let _ = parse_header(input, Some(1));
        let _ = iter_tlvs(input).count();
        for count in [0, 1, 5, u64::MAX] {
            let _ = check_run(input, 0, count, 1, 1 << 20);
            let _ = check_run(input, input.len() + 10, count, 1, 64);
        }
        for f in &filters {
            let _ = f.select(input);
            let _ = f.matches(input);
        }
    }
    assert!(Filter::new([], [], []).select(&run[..run.len() - 1]).is_err());
}
