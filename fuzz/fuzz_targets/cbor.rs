//! The CBOR codec (protocol/src/cbor.rs): never panics, and round-trips.
//!
//! Properties: anything the lenient decoder accepts re-encodes to canonical bytes that the
//! canonical decoder accepts and that re-encode to themselves (decode → encode → decode equal,
//! modulo map order, which the encoder canonicalises); input the canonical decoder accepts is
//! already byte-for-byte what the encoder writes.
#![no_main]

use cablebridge_protocol::cbor::{DecodeOptions, Value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let canonical = DecodeOptions { canonical: true };
    if let Ok(v) = Value::decode(data) {
        let encoded = v.to_vec();
        let again = match Value::decode_with(&encoded, canonical) {
            Ok(again) => again,
            Err(e) => panic!("encoder output is not canonical CBOR: {e} ({v:?})"),
        };
        assert_eq!(again.to_vec(), encoded, "decode -> encode -> decode is not stable");
        if Value::decode_with(data, canonical).is_ok() {
            assert_eq!(encoded, data, "canonical input must re-encode to itself");
            assert_eq!(again, v);
        }
    } else {
        assert!(
            Value::decode_with(data, canonical).is_err(),
            "canonical accepts what lenient refuses"
        );
    }
    // Prefix decoding consumes a prefix that decodes alone to the same item.
    if let Ok((v, used)) = Value::decode_prefix(data) {
        assert!(used <= data.len());
        assert_eq!(Value::decode(&data[..used]).ok(), Some(v));
    }
});
