//! Crypter seal+open throughput at 64 B, 1 KiB and 16 KiB, against a same-run naive baseline that
//! allocates a fresh Vec and re-creates the AES-GCM cipher (key schedule) for every frame.
//! Bounded: a fixed frame count per size.
#![allow(clippy::disallowed_methods)] // a bench measures wall time
#![allow(clippy::expect_used)] // a failed bench run should stop loudly

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::Aes256Gcm;
use cablebridge_protocol::hybrid::crypter::{padded_len, sealed_len, Crypter, TAG_LEN};
use std::hint::black_box;
use std::time::Instant;

/// Per frame: new Vec, new cipher for each side, pad, seal, then open with another new cipher.
fn naive_round_trip(k: &[u8; 32], seq: u32, plaintext: &[u8]) -> usize {
    let mut nonce = [0u8; 12];
    nonce[8..].copy_from_slice(&seq.to_be_bytes());
    let mut frame = plaintext.to_vec();
    let padded = padded_len(plaintext.len());
    frame.resize(padded, 0);
    frame[padded - 1] = (padded - plaintext.len() - 1) as u8;
    let tag = Aes256Gcm::new(k.into())
        .encrypt_in_place_detached(&nonce.into(), &[], &mut frame)
        .expect("seal");
    frame.extend_from_slice(&tag);
    let (body, tag) = frame.split_at_mut(padded);
    let tag = aes_gcm::Tag::from(<[u8; TAG_LEN]>::try_from(&*tag).expect("tag"));
    Aes256Gcm::new(k.into())
        .decrypt_in_place_detached(&nonce.into(), &[], body, &tag)
        .expect("open");
    body.len() - usize::from(body[padded - 1]) - 1
}

fn main() {
    let key = [9u8; 32];
    for (size, frames) in [(64usize, 200_000u32), (1024, 50_000), (16 * 1024, 5_000)] {
        let plaintext = vec![0x42u8; size];
        let mut desktop = Crypter::new(&key, &key);
        let mut phone = Crypter::new(&key, &key);
        let mut buf = vec![0u8; sealed_len(size)];

        let t = Instant::now();
        for _ in 0..frames {
            buf[..size].copy_from_slice(&plaintext);
            let n = desktop.seal_in_place(&mut buf, size).expect("seal");
            black_box(phone.open_in_place(&mut buf[..n]).expect("open"));
        }
        let ours = t.elapsed().as_secs_f64();

        let t = Instant::now();
        for seq in 0..frames {
            black_box(naive_round_trip(&key, seq, black_box(&plaintext)));
        }
        let naive = t.elapsed().as_secs_f64();

        let mib = f64::from(frames) * size as f64 / (1024.0 * 1024.0);
        println!(
            "crypter {size:>6} B  in-place {:>7.0} ns/frame {:>8.0} MiB/s | naive {:>7.0} ns/frame {:>8.0} MiB/s | naive/in-place {:.2}x",
            ours * 1e9 / f64::from(frames),
            mib / ours,
            naive * 1e9 / f64::from(frames),
            mib / naive,
            naive / ours,
        );
    }
}
