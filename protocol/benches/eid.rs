//! EID trial-open throughput: the cached-key fast path against the straightforward baseline
//! (fresh HMAC key and AES key schedule per advert, tag first, then decrypt), measured in the
//! same run because this machine class is noisy (notes/performance-anchors.md).
//!
//! `cargo bench -p cablebridge-protocol --bench eid`. Without `--bench` (e.g. `cargo test
//! --benches`) it runs a few iterations as a smoke test only.

use aes::cipher::{BlockDecrypt, KeyInit};
use cablebridge_protocol::hybrid::eid::{EidKey, EidMode, EidPlaintext, TrialOpen};
use cablebridge_protocol::hybrid::keys::{self, EidKeyBytes, KeyPurpose};
use cablebridge_protocol::hybrid::tunnel::RoutingId;
use hmac::{Hmac, Mac};
use rand::{RngCore, SeedableRng};
use sha2::Sha256;
use std::hint::black_box;
use subtle::ConstantTimeEq;

/// The straightforward check: key everything afresh, verify the tag, then decrypt.
fn naive_open(key: &[u8; 64], advert: &[u8]) -> Option<[u8; 16]> {
    let (ct, rest) = advert.split_first_chunk::<16>()?;
    let tag = rest.get(..4)?;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key[32..]).ok()?;
    mac.update(&ct[..]);
    let full = mac.finalize().into_bytes();
    if !bool::from(full[..4].ct_eq(tag)) {
        return None;
    }
    let aes = aes::Aes256::new_from_slice(&key[..32]).ok()?;
    let mut block = aes::Block::from(*ct);
    aes.decrypt_block(&mut block);
    let domain = u16::from_le_bytes([block[14], block[15]]);
    (block[0] == 0 && !(2..=255).contains(&domain)).then(|| block.into())
}

/// Minimum ns/op over `rounds` passes of `f` over `inputs`.
#[allow(clippy::disallowed_methods)] // a bench is allowed to read the clock
fn measure(rounds: usize, inputs: &[[u8; 20]], mut f: impl FnMut(&[u8]) -> bool) -> (f64, usize) {
    let mut best = f64::MAX;
    let mut hits = 0;
    for _ in 0..rounds {
        hits = 0;
        let start = std::time::Instant::now();
        for advert in inputs {
            hits += usize::from(f(black_box(advert)));
        }
        let ns = start.elapsed().as_nanos() as f64 / inputs.len() as f64;
        best = best.min(ns);
    }
    (best, hits)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (n_foreign, n_match, rounds) = if full { (8192, 1024, 15) } else { (64, 16, 1) };

    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(0xE1D);
    let mut secret = [0u8; 16];
    rng.fill_bytes(&mut secret);
    let key_bytes: [u8; 64] = keys::derive_array(&secret, &[], KeyPurpose::EidKey);
    let key = EidKey::from_bytes(&EidKeyBytes::new(key_bytes));

    let foreign: Vec<[u8; 20]> = (0..n_foreign)
        .map(|_| {
            let mut a = [0u8; 20];
            rng.fill_bytes(&mut a);
            a
        })
        .collect();
    let matching: Vec<[u8; 20]> = (0..n_match)
        .map(|i| {
            let mut nonce = [0u8; 10];
            rng.fill_bytes(&mut nonce);
            key.seal(&EidPlaintext::new(nonce, RoutingId([1, 2, 3]), (i % 2) as u16))
        })
        .collect();

    let fast = |a: &[u8]| matches!(key.trial_open(a, EidMode::Qr), TrialOpen::Match(_));
    let naive = |a: &[u8]| naive_open(&key_bytes, a).is_some();

    println!("eid trial_open, min ns/op over {rounds} rounds (lower is better)");
    for (name, inputs, expect_hits) in
        [("foreign adverts", &foreign, 0usize), ("matching adverts", &matching, n_match)]
    {
        let (f_ns, f_hits) = measure(rounds, inputs, fast);
        let (n_ns, n_hits) = measure(rounds, inputs, naive);
        assert_eq!((f_hits, n_hits), (expect_hits, expect_hits), "{name}: wrong verdicts");
        println!(
            "  {name:<17} cached: {f_ns:8.1} ns/op   naive: {n_ns:8.1} ns/op   speed-up: {:5.1}x",
            n_ns / f_ns
        );
    }
}
