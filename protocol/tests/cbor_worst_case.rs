//! Issue 8 item 4: decoding a hostile 1 MiB CBOR input finishes quickly with the right result.
//!
//! Before the fix, one map of ~262k distinct keys was checked for duplicates by comparing each
//! key with every earlier one (~3.4·10¹⁰ comparisons: minutes), and containers pre-allocated
//! by their declared count. These tests assert only results; `benches/cbor.rs` prints the times.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cbor_support;

use cablebridge_protocol::cbor::{CborError, Value, MAX_ARRAY_ITEMS, MAX_MAP_ENTRIES};
use cbor_support::{capped_arrays, capped_maps, head, one_huge_map, Keys, MIB};

#[test]
fn one_map_of_a_quarter_million_keys_is_refused_at_its_head() {
    let (bytes, n) = one_huge_map(MIB);
    assert!(n > 250_000 && bytes.len() <= MIB);
    assert_eq!(
        Value::decode(&bytes),
        Err(CborError::TooManyEntries { container: "map", limit: MAX_MAP_ENTRIES })
    );
}

fn assert_maps(v: &Value, maps: usize) {
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), maps);
    for m in arr {
        let entries = m.as_map().unwrap();
        assert_eq!(entries.len(), MAX_MAP_ENTRIES);
    }
}

#[test]
fn a_mebibyte_of_unsorted_maps_at_the_cap_decodes() {
    for keys in [Keys::Descending, Keys::DescendingLongForm, Keys::DescendingSharedPrefix] {
        let (bytes, maps) = capped_maps(MIB, keys, false);
        assert!(bytes.len() <= MIB && bytes.len() > MIB * 9 / 10, "{keys:?}: {}", bytes.len());
        let v = Value::decode(&bytes).unwrap_or_else(|e| panic!("{keys:?}: {e}"));
        assert_maps(&v, maps);
        // Values are where the wire put them; lookups still find every key.
        let first = &v.as_array().unwrap()[0];
        if !matches!(keys, Keys::DescendingSharedPrefix) {
            assert_eq!(first.get(0), Some(&Value::Null));
            assert_eq!(first.get(MAX_MAP_ENTRIES as i64 - 1), Some(&Value::Null));
            assert_eq!(first.get(MAX_MAP_ENTRIES as i64), None);
        }
    }
}

#[test]
fn a_duplicate_in_the_last_map_of_a_mebibyte_is_found() {
    for keys in
        [Keys::Descending, Keys::DescendingLongForm, Keys::DescendingSharedPrefix, Keys::Ascending]
    {
        let (bytes, _) = capped_maps(MIB, keys, true);
        assert_eq!(Value::decode(&bytes), Err(CborError::DuplicateKey), "{keys:?}");
    }
}

#[test]
fn canonical_maps_at_the_cap_decode_in_both_modes() {
    let (bytes, maps) = capped_maps(MIB, Keys::Ascending, false);
    let strict = cablebridge_protocol::cbor::DecodeOptions { canonical: true };
    assert_maps(&Value::decode_with(&bytes, strict).unwrap(), maps);
    assert_maps(&Value::decode(&bytes).unwrap(), maps);
}

#[test]
fn a_mebibyte_of_one_byte_items_decodes() {
    let (bytes, arrays) = capped_arrays(MIB);
    let v = Value::decode(&bytes).unwrap();
    let outer = v.as_array().unwrap();
    assert_eq!(outer.len(), arrays);
    assert!(outer.iter().all(|a| a.as_array().is_some_and(|a| a.len() == MAX_ARRAY_ITEMS)));
}

#[test]
fn same_key_in_two_encodings_is_a_duplicate() {
    // 1 and 0x18 0x01 are the same key; so are "a" in a short and a long head.
    for wire in
        ["a2 01 f6 1801 f6", "a2 1801 f6 01 f6", "a2 6161 f6 780161 f6", "a2 0a f6 1a0000000a f6"]
    {
        let bytes = hex::decode(wire.replace(' ', "")).unwrap();
        assert_eq!(Value::decode(&bytes), Err(CborError::DuplicateKey), "{wire}");
    }
    // Distinct keys in long form are fine.
    let ok = hex::decode("a2 1802 f6 01 f6".replace(' ', "")).unwrap();
    assert_eq!(Value::decode(&ok).unwrap().as_map().unwrap().len(), 2);
}

#[test]
fn declared_counts_do_not_drive_allocation() {
    // A head claiming 2^32-1 items with a MiB of input behind it: refused by the cap, and one
    // within the cap but longer than the input: truncated.
    let mut huge = Vec::new();
    head(&mut huge, 4, u32::MAX as u64);
    huge.resize(MIB, 0xf6);
    assert_eq!(
        Value::decode(&huge),
        Err(CborError::TooManyEntries { container: "array", limit: MAX_ARRAY_ITEMS })
    );
    let mut short = Vec::new();
    head(&mut short, 5, MAX_MAP_ENTRIES as u64);
    short.extend_from_slice(&[0x01, 0xf6]);
    assert_eq!(Value::decode(&short), Err(CborError::Truncated));
}
