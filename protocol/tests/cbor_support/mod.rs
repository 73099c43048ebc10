//! Hostile CBOR inputs of a given size, shared by `tests/cbor_worst_case.rs` and
//! `benches/cbor.rs` (included there with `#[path]`). Each generator writes raw bytes by hand —
//! the encoder would sort and dedupe, which is exactly what these inputs must not be.

#![allow(dead_code)] // each includer uses a different subset

use cablebridge_protocol::cbor::{MAX_ARRAY_ITEMS, MAX_MAP_ENTRIES};

/// One MiB: the largest tunnel frame a peer can send.
pub const MIB: usize = 1 << 20;

/// Appends a head with an explicit additional-information width (24..=27 force a long form even
/// for small values, i.e. non-canonical input that lenient decoding accepts).
pub fn head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    if n < 24 {
        out.push(m | n as u8);
    } else if n <= 0xff {
        out.extend_from_slice(&[m | 24, n as u8]);
    } else if n <= 0xffff {
        out.push(m | 25);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(m | 26);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

/// The issue-8 frame: ONE map of as many distinct integer keys (null values) as fit in `size`
/// bytes (~262k at 1 MiB). Before the entry cap and the sort-based check, every key was compared
/// with every earlier one: minutes of CPU. Now: rejected at the head.
pub fn one_huge_map(size: usize) -> (Vec<u8>, usize) {
    // Keys >= 256 take 3 bytes, +1 for the null value; the head takes 5.
    let n = (size - 5) / 4;
    let mut out = Vec::with_capacity(size);
    head(&mut out, 5, n as u64);
    for k in 0..n as u64 {
        out.push(0x19); // u16 key, always 3 bytes so the size is exact
        out.extend_from_slice(&((k + 256) as u16).to_be_bytes());
        out.push(0xf6);
    }
    (out, n)
}

/// How the keys of a [`capped_maps`] map are written.
#[derive(Clone, Copy, Debug)]
pub enum Keys {
    /// Descending integer keys in shortest form: not canonical order, so every map is sorted.
    Descending,
    /// Descending integer keys in a 4-byte head (non-shortest): every key is re-encoded too.
    DescendingLongForm,
    /// Descending 64-byte text keys sharing a 60-byte prefix: maximal bytes per comparison.
    DescendingSharedPrefix,
    /// Ascending shortest-form keys (canonical): the fast path, for reference.
    Ascending,
}

fn write_key(out: &mut Vec<u8>, keys: Keys, k: u64) {
    match keys {
        Keys::Descending | Keys::Ascending => head(out, 0, k),
        Keys::DescendingLongForm => {
            out.push(0x1a);
            out.extend_from_slice(&(k as u32).to_be_bytes());
        }
        Keys::DescendingSharedPrefix => {
            head(out, 3, 64);
            out.extend_from_slice(&[b'k'; 60]);
            out.extend_from_slice(format!("{k:04}").as_bytes());
        }
    }
}

/// One map of `MAX_MAP_ENTRIES` distinct keys (or a duplicate of its first key as the last key).
fn capped_map(out: &mut Vec<u8>, keys: Keys, duplicate_last: bool) {
    let n = MAX_MAP_ENTRIES as u64;
    head(out, 5, n);
    let key_at = |i: u64| match keys {
        Keys::Ascending => i,
        _ => n - 1 - i,
    };
    for i in 0..n {
        let k = if duplicate_last && i == n - 1 { key_at(0) } else { key_at(i) };
        write_key(out, keys, k);
        out.push(0xf6);
    }
}

/// An array of as many full-size maps (at the entry cap) as fit in `size` bytes. Returns the
/// bytes and the number of maps. With `duplicate_last`, the very last key of the last map repeats
/// that map's first key, so the whole input must be read before the error.
pub fn capped_maps(size: usize, keys: Keys, duplicate_last: bool) -> (Vec<u8>, usize) {
    let mut one = Vec::new();
    capped_map(&mut one, keys, false);
    let maps = ((size - 3) / one.len()).min(MAX_ARRAY_ITEMS);
    let mut out = Vec::with_capacity(size);
    head(&mut out, 4, maps as u64);
    for m in 0..maps {
        if duplicate_last && m == maps - 1 {
            capped_map(&mut out, keys, true);
        } else {
            out.extend_from_slice(&one);
        }
    }
    (out, maps)
}

/// Arrays at the item cap of one-byte items (`null`): the most values per input byte.
pub fn capped_arrays(size: usize) -> (Vec<u8>, usize) {
    let per = 3 + MAX_ARRAY_ITEMS;
    let arrays = (size - 3) / per;
    let mut out = Vec::with_capacity(size);
    head(&mut out, 4, arrays as u64);
    for _ in 0..arrays {
        head(&mut out, 4, MAX_ARRAY_ITEMS as u64);
        out.resize(out.len() + MAX_ARRAY_ITEMS, 0xf6);
    }
    (out, arrays)
}
