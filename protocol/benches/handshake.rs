//! Noise handshake cost per side (KNpsk0 and NKpsk0): desktop = build msg 1 + read msg 2,
//! phone = read msg 1 + build msg 2. Bounded: a fixed number of handshakes, printed as µs each,
//! with the P-256 backend that ran (`p256`, or `aws-lc-rs` with `--features aws-lc`).
#![allow(clippy::disallowed_methods)] // a bench measures wall time
#![allow(clippy::expect_used)] // a failed bench run should stop loudly

use cablebridge_protocol::hybrid::ecdh::{P256Backend, Selected};
use cablebridge_protocol::hybrid::keys::Psk;
use cablebridge_protocol::hybrid::noise::{
    respond, IdentityKeyPair, Initiator, InitiatorKeys, ResponderKeys,
};
use p256::SecretKey;
use rand::SeedableRng;
use std::time::{Duration, Instant};

const ROUNDS: u32 = 300;

fn main() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    let psk = Psk::new([7; 32]);
    let desktop_key = IdentityKeyPair::new(SecretKey::random(&mut rng));
    let phone_key = SecretKey::random(&mut rng);
    let (desktop_pub, phone_pub) = (desktop_key.public_key(), phone_key.public_key());
    for (name, ik, rk) in [
        (
            "KNpsk0 (QR)",
            InitiatorKeys::Qr { desktop_identity: &desktop_key },
            ResponderKeys::Qr { desktop_identity: &desktop_pub },
        ),
        (
            "NKpsk0 (linked)",
            InitiatorKeys::Linked { phone_identity: &phone_pub },
            ResponderKeys::Linked { phone_identity: &phone_key },
        ),
    ] {
        let (mut desktop, mut phone) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..ROUNDS {
            let t = Instant::now();
            let (init, msg1) = Initiator::start(ik, &psk, &mut rng);
            desktop += t.elapsed();
            let t = Instant::now();
            let (est_phone, msg2) = respond(rk, &psk, &msg1, &mut rng).expect("respond");
            phone += t.elapsed();
            let t = Instant::now();
            let est_desktop = init.read_response(&msg2).expect("read_response");
            desktop += t.elapsed();
            assert_eq!(est_desktop.handshake_hash, est_phone.handshake_hash);
        }
        println!(
            "handshake {name:<16} desktop {:>7.1} µs   phone {:>7.1} µs   ({ROUNDS} rounds, {})",
            desktop.as_secs_f64() * 1e6 / f64::from(ROUNDS),
            phone.as_secs_f64() * 1e6 / f64::from(ROUNDS),
            Selected::NAME,
        );
    }
}
