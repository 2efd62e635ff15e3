//! The golden vectors both implementations share (`tests/protocol/vectors.json`): every vector's
//! header decodes to its fields, its checksum is recomputed bit for bit, and encoding its fields
//! and payload gives its bytes back.

use std::path::PathBuf;

use serde_json::Value;
use tickrelay_core::protocol::codec::{
    self, encode_message, encode_tlv, iter_tlvs, parse_header, CHECKSUM_OFFSET, FLAG_CHECKSUM, HEADER_SIZE,
};

fn vectors() -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/protocol/vectors.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match serde_json::from_str(&text).expect("vectors.json is JSON") {
        Value::Array(vectors) => vectors,
        _ => panic!("vectors.json is a list"),
    }
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex")).collect()
}

fn field(v: &Value, name: &str) -> u64 {
    v["header"][name].as_u64().unwrap_or_else(|| panic!("{}: header.{name}", v["name"]))
}

#[test]
fn every_vector_decodes_checksums_and_encodes_back() {
    let all = vectors();
    assert!(all.len() >= 12);
    for v in &all {
        let wire = unhex(v["hex"].as_str().expect("hex"));
        let h = parse_header(&wire, None).expect("valid header").expect("32 bytes");
        let name = &v["name"];
        assert_eq!(u64::from(h.relay_domain), field(v, "relay_domain"), "{name}");
        assert_eq!(u64::from(h.source), field(v, "source"), "{name}");
        assert_eq!(u64::from(h.flags), field(v, "flags"), "{name}");
        assert_eq!(h.sequence, field(v, "sequence"), "{name}");
        assert_eq!(h.timestamp_ns, field(v, "timestamp_ns"), "{name}");
        assert_eq!(u64::from(h.payload_size), field(v, "payload_size"), "{name}");
        assert_eq!(u64::from(h.checksum), field(v, "checksum"), "{name}");
        let payload = &wire[HEADER_SIZE..];
        assert_eq!(payload.len() as u64, field(v, "payload_size"), "{name}");
        if h.flags & FLAG_CHECKSUM != 0 {
            assert_eq!(codec::checksum(&wire[..CHECKSUM_OFFSET], payload), h.checksum, "{name}");
        }
        let again = encode_message(
            h.relay_domain,
            h.source,
            h.sequence,
            h.timestamp_ns,
            payload,
            h.flags & FLAG_CHECKSUM != 0,
        );
        assert_eq!(again.as_deref(), Some(&wire[..]), "{name}");
        // each TLV, re-framed, gives its bytes back (vectors use the form a writer must choose)
        let tlvs: Vec<(u8, &[u8])> = iter_tlvs(payload).collect::<Result<_, _>>().expect("well-formed TLVs");
        assert_eq!(tlvs.len(), v["tlvs"].as_array().map_or(0, Vec::len), "{name}");
        let reframed: Vec<u8> =
            tlvs.iter().flat_map(|(t, value)| encode_tlv(*t, value).expect("fits")).collect();
        assert_eq!(reframed, payload, "{name}");
    }
}

#[test]
fn crc32_is_zlibs() {
    // zlib.crc32(b"123456789") == 0xCBF43926 (the CRC-32/ISO-HDLC check value); chaining as zlib does
    assert_eq!(codec::crc32(b"123456789", 0), 0xCBF4_3926);
    assert_eq!(codec::crc32(b"56789", codec::crc32(b"1234", 0)), 0xCBF4_3926);
}

#[test]
fn header_errors_name_the_field() {
    let wire = unhex(vectors()[0]["hex"].as_str().expect("hex"));
    let mut bad = wire.clone();
    bad[0] = 0;
    assert!(
        matches!(parse_header(&bad, None), Err(codec::ProtocolError::BadMagic(m)) if m == "bad magic 0xdeadbe00 at offset 0")
    );
    let mut bad = wire.clone();
    bad[5] = 2;
    assert!(matches!(parse_header(&bad, None), Err(codec::ProtocolError::UnsupportedVersion(_))));
    let mut bad = wire.clone();
    bad[4] = 9;
    assert!(matches!(parse_header(&bad, None), Err(codec::ProtocolError::BadDomain(_))));
    assert!(
        matches!(parse_header(&wire, Some(2)), Err(codec::ProtocolError::BadDomain(m)) if m == "relay_domain 1 on a stream of domain 2")
    );
    assert_eq!(parse_header(&wire[..31], None), Ok(None));
}

#[test]
fn tlv_forms() {
    assert_eq!(encode_tlv(1, &[7; 3]), Ok(vec![1, 3, 7, 7, 7]));
    assert_eq!(encode_tlv(255, &[7]), Ok(vec![255, 0, 255, 1, 0, 7]));
    assert_eq!(encode_tlv(5, &[0; 300]).map(|t| t[..5].to_vec()), Ok(vec![255, 0, 5, 44, 1]));
    assert!(encode_tlv(5, &vec![0; 65536]).is_err());
}
