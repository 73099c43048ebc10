//! Worst-case CBOR decode of a 1 MiB input (issue 8 item 4), against a plain linear pass over
//! the same bytes measured in the same run (this machine class is noisy: compare ratios, see
//! notes/performance-anchors.md). Also prints a canonical (fast-path) input of the same size, and
//! how decode time scales with input size for the worst shape (near-linear is the point).
//!
//! `cargo bench -p cablebridge-protocol --bench cbor`. Without `--bench` (e.g. `cargo test
//! --benches`) it runs one iteration per input as a smoke test only.
#![allow(clippy::disallowed_methods)] // a bench measures wall time and reads /proc/cpuinfo
#![allow(clippy::expect_used)] // a failed bench run should stop loudly

#[path = "../tests/cbor_support/mod.rs"]
mod cbor_support;

use cablebridge_protocol::cbor::Value;
use cbor_support::{capped_arrays, capped_maps, one_huge_map, Keys, MIB};
use std::hint::black_box;
use std::time::Instant;

/// The baseline: touch every byte once (wrapping sum, kept from being optimised away).
fn linear_pass(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |acc, b| acc.wrapping_mul(31).wrapping_add(u64::from(*b)))
}

/// Minimum wall time in ns of `rounds` runs of `f`.
fn min_ns(rounds: usize, mut f: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..rounds {
        let start = Instant::now();
        f();
        best = best.min(start.elapsed().as_nanos() as f64);
    }
    best
}

fn cpu() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find_map(|l| l.strip_prefix("model name").map(|m| m.trim_start_matches([' ', '\t', ':'])))
        .unwrap_or("unknown CPU");
    format!("{model}, {} threads", std::thread::available_parallelism().map_or(0, |n| n.get()))
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let rounds = if full { 9 } else { 1 };
    println!("cbor decode of hostile inputs, min over {rounds} rounds; CPU: {}", cpu());

    let inputs: Vec<(&str, Vec<u8>, bool)> = vec![
        ("one map of ~262k keys (refused)", one_huge_map(MIB).0, false),
        ("1024-key maps, descending keys", capped_maps(MIB, Keys::Descending, false).0, true),
        (
            "1024-key maps, long-form keys",
            capped_maps(MIB, Keys::DescendingLongForm, false).0,
            true,
        ),
        (
            "1024-key maps, 64 B shared-prefix",
            capped_maps(MIB, Keys::DescendingSharedPrefix, false).0,
            true,
        ),
        ("1024-key maps, duplicate at end", capped_maps(MIB, Keys::Descending, true).0, false),
        ("8192-item arrays of null", capped_arrays(MIB).0, true),
        ("1024-key maps, canonical order", capped_maps(MIB, Keys::Ascending, false).0, true),
    ];

    let mut worst: Option<(&str, f64, f64)> = None;
    for (name, bytes, ok) in &inputs {
        assert_eq!(Value::decode(bytes).is_ok(), *ok, "{name}: wrong verdict");
        let scan = min_ns(rounds * 5, || {
            black_box(linear_pass(black_box(bytes)));
        });
        let decode = min_ns(rounds, || {
            let _ = black_box(Value::decode(black_box(bytes)));
        });
        println!(
            "  {name:<36} {:>7} B  decode {:>9.2} ms  linear pass {:>7.3} ms  ratio {:>6.1}x",
            bytes.len(),
            decode / 1e6,
            scan / 1e6,
            decode / scan
        );
        if worst.is_none_or(|w| decode > w.1) {
            worst = Some((name, decode, scan));
        }
    }
    if let Some((name, decode, scan)) = worst {
        println!(
            "worst case: {name}: {:.2} ms for 1 MiB, {:.1}x a linear pass over the same bytes",
            decode / 1e6,
            decode / scan
        );
    }

    // The old duplicate check (each decoded key against every earlier one) on the integer keys
    // of `one_huge_map`, at sizes this run can afford, extrapolated to the 1 MiB map (~262k).
    println!("old per-key linear scan for duplicates, one map of n distinct keys (quadratic):");
    let mut last = (0usize, 0f64);
    let sizes: &[usize] = if full { &[4096, 8192, 16384] } else { &[512, 1024] };
    for &n in sizes {
        let keys: Vec<Value> = (0..n as u64).map(|k| Value::Unsigned(k + 256)).collect();
        let t = min_ns(rounds.min(3), || {
            let mut dup = false;
            for i in 0..keys.len() {
                dup |= keys[..i].iter().any(|k| *k == keys[i]);
            }
            black_box(dup);
        });
        println!("  n = {n:>6}  {:>9.2} ms", t / 1e6);
        last = (n, t);
    }
    let (n, t) = last;
    let huge = one_huge_map(MIB).1;
    println!(
        "  extrapolated to n = {huge} (1 MiB): ~{:.0} s; the new decoder refuses it at the head",
        t * (huge as f64 / n as f64).powi(2) / 1e9
    );

    println!("scaling of the sorted-map shape (ns per input byte should stay flat):");
    for size in [MIB / 8, MIB / 4, MIB / 2, MIB] {
        let (bytes, _) = capped_maps(size, Keys::DescendingLongForm, false);
        let decode = min_ns(rounds, || {
            let _ = black_box(Value::decode(black_box(&bytes)));
        });
        println!(
            "  {:>7} B  {:>8.2} ms  {:>6.2} ns/byte",
            bytes.len(),
            decode / 1e6,
            decode / bytes.len() as f64
        );
    }
}
