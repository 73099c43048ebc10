//! In-memory benches: EID matching, the session crypter, the Noise handshake, CTAPHID framing.
//! Each takes its baseline in the same run (see the module docs of `bench`).

use super::{ns, time_interleaved, time_per_op, Measurement, Options, Stats};
use crate::advert::matcher::{AdvertMatcher, MatchOutcome};
use aes::cipher::{BlockDecrypt, KeyInit};
use aes_gcm::aead::AeadInPlace;
use aes_gcm::Aes256Gcm;
use cablebridge_protocol::ctaphid::{fragment, Cid, Command, Packet, Reassembler, ReportLen};
use cablebridge_protocol::hybrid::crypter::{sealed_len, Crypter};
use cablebridge_protocol::hybrid::ecdh::{P256Backend, Selected};
use cablebridge_protocol::hybrid::eid::{EidKey, EidMode, EidPlaintext, TrialOpen};
use cablebridge_protocol::hybrid::keys::QrSecret;
use cablebridge_protocol::hybrid::keys::{self, EidKeyBytes, KeyPurpose, Psk};
use cablebridge_protocol::hybrid::noise::{
    respond, IdentityKeyPair, Initiator, InitiatorKeys, ResponderKeys,
};
use cablebridge_protocol::hybrid::session::DesktopPairing;
use cablebridge_protocol::hybrid::tunnel::RoutingId;
use hmac::{Hmac, Mac};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::SecretKey;
use rand::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};
use std::hint::black_box;
use std::time::{Duration, Instant};

fn rng(seed: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed)
}

/// The straightforward EID check (the baseline): HMAC keyed afresh, tag first, then an AES key
/// schedule and one block decrypt, then the plaintext rules.
fn naive_open(key: &[u8; 64], advert: &[u8]) -> bool {
    let Some((ct, rest)) = advert.split_first_chunk::<16>() else { return false };
    let Some(tag) = rest.get(..4) else { return false };
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(&key[32..]) else { return false };
    mac.update(&ct[..]);
    if mac.finalize().into_bytes()[..4] != *tag {
        return false;
    }
    let Ok(aes) = aes::Aes256::new_from_slice(&key[..32]) else { return false };
    let mut block = aes::Block::from(*ct);
    aes.decrypt_block(&mut block);
    let domain = u16::from_le_bytes([block[14], block[15]]);
    block[0] == 0 && !(2..=255).contains(&domain)
}

/// `eid`: foreign adverts against P pending sessions through [`AdvertMatcher`], against the
/// straightforward check over the same (advert, key) pairs; plus the matching-advert cost.
pub fn eid(opts: &Options<'_>) -> Vec<Measurement> {
    let mut rng = rng(0xE1D);
    // (advert, key) pairs per repetition for the fast path; the baseline (~100x slower) gets 1/32.
    let budget: usize = if opts.quick { 64 * 1024 } else { 1024 * 1024 };
    let mut out = Vec::new();
    for pending in [1usize, 16, 64, 1000] {
        // Pending QR sessions as the desktop holds them (one pairing per QR secret); the
        // baseline gets the same EID keys as raw bytes.
        let identity = IdentityKeyPair::new(SecretKey::random(&mut rng));
        let secrets: Vec<[u8; 16]> = (0..pending)
            .map(|_| {
                let mut secret = [0u8; 16];
                rng.fill_bytes(&mut secret);
                secret
            })
            .collect();
        let key_bytes: Vec<[u8; 64]> = secrets
            .iter()
            .map(|secret| keys::derive_array(secret, &[], KeyPurpose::EidKey))
            .collect();
        let mut matcher = AdvertMatcher::new(false);
        for (i, secret) in secrets.iter().enumerate() {
            matcher.add(i, DesktopPairing::from_qr(&QrSecret::new(*secret), &identity));
        }
        let n_adverts = (budget / pending).max(8);
        let foreign: Vec<[u8; 20]> = (0..n_adverts)
            .map(|_| {
                let mut a = [0u8; 20];
                rng.fill_bytes(&mut a);
                a
            })
            .collect();
        let pairs = (n_adverts * pending) as u64;
        let n_base = (n_adverts / 32).max(1);
        let base_pairs = (n_base * pending) as u64;
        let mut fast_run = || {
            for a in &foreign {
                if !matches!(matcher.offer(black_box(a)), MatchOutcome::NotOurs) {
                    return 0; // a random advert matched: astronomically unlikely
                }
            }
            pairs
        };
        let mut naive_run = || {
            let mut hits = 0u64;
            for a in &foreign[..n_base] {
                for k in &key_bytes {
                    hits += u64::from(naive_open(k, black_box(a)));
                }
            }
            black_box(hits);
            base_pairs
        };
        let (stats, ratios) = time_interleaved(opts.reps(), &mut [&mut fast_run, &mut naive_run]);
        let (fast, naive) = (stats[0], stats[1]);
        // time_interleaved's ratio is first/other = fast/naive time: the fraction of the baseline.
        let ratio = ratios[1];
        let allocs = opts.count_allocs(|| {
            for a in &foreign[..foreign.len().min(64)] {
                black_box(matcher.offer(a));
            }
        });
        out.push(
            Measurement::new("eid", format!("foreign advert x {pending} pending"))
                .field("pending", pending as f64)
                .stats("ns", &fast)
                .field("baseline_median_ns", naive.median)
                .field("ratio_to_baseline", ratio)
                .field("per_advert_ns", fast.median * pending as f64)
                .opt_field(
                    "allocs_per_advert",
                    allocs.map(|a| a as f64 / foreign.len().min(64) as f64),
                )
                .note(
                    "ns per (advert, pending key), AdvertMatcher; baseline: HMAC keyed afresh, \
                     tag first, then AES; goal <= 60 ns and <= 0.1x",
                ),
        );
    }
    // A matching advert: one key, the full check (AES + HMAC + plaintext rules), both ways.
    let mut secret = [0u8; 16];
    rng.fill_bytes(&mut secret);
    let kb: [u8; 64] = keys::derive_array(&secret, &[], KeyPurpose::EidKey);
    let key = EidKey::from_bytes(&EidKeyBytes::new(kb));
    let matching: Vec<[u8; 20]> = (0..256)
        .map(|i| {
            let mut nonce = [0u8; 10];
            rng.fill_bytes(&mut nonce);
            key.seal(&EidPlaintext::new(nonce, RoutingId([1, 2, 3]), (i % 2) as u16))
        })
        .collect();
    let rounds = if opts.quick { 4 } else { 40 };
    let fast = time_per_op(opts.reps(), || {
        let mut n = 0;
        for _ in 0..rounds {
            for a in &matching {
                n += u64::from(matches!(
                    key.trial_open(black_box(a), EidMode::Qr),
                    TrialOpen::Match(_)
                ));
            }
        }
        n
    });
    let naive = time_per_op(opts.reps(), || {
        let mut n = 0;
        for _ in 0..rounds {
            for a in &matching {
                n += u64::from(naive_open(&kb, black_box(a)));
            }
        }
        n
    });
    out.push(
        Measurement::new("eid", "matching advert, 1 key")
            .field("pending", 1.0)
            .stats("ns", &fast)
            .field("baseline_median_ns", naive.median)
            .field("ratio_to_baseline", fast.median / naive.median)
            .note("ns per matching advert (AES + HMAC + plaintext rules)"),
    );
    out
}

/// `crypter`: seal+open in place through [`Crypter`] against bare `aes-gcm` in-place calls on the
/// same plaintext size (and, as an explanation, on the crypter's padded size).
pub fn crypter(opts: &Options<'_>) -> Vec<Measurement> {
    let key = [9u8; 32];
    let mut out = Vec::new();
    for bytes in [64usize, 1024, 16 * 1024] {
        let frames: u32 = (if opts.quick { 256 * 1024 } else { 4 * 1024 * 1024 } / bytes) as u32;
        let frames = frames.max(16);
        let mut desktop = Crypter::new(&key, &key);
        let mut phone = Crypter::new(&key, &key);
        let mut buf = vec![0x42u8; sealed_len(bytes)];
        let round = |d: &mut Crypter, p: &mut Crypter, buf: &mut [u8]| -> bool {
            match d.seal_in_place(buf, bytes) {
                Ok(n) => p.open_in_place(&mut buf[..n]).is_ok(),
                Err(_) => false,
            }
        };
        let mut ours_run = || {
            // Fresh counters per repetition stay far below the 2^24 frame limit.
            desktop = Crypter::new(&key, &key);
            phone = Crypter::new(&key, &key);
            let mut ok = 0;
            for _ in 0..frames {
                ok += u64::from(round(&mut desktop, &mut phone, black_box(&mut buf)));
            }
            ok
        };
        // Bare aes-gcm on `len` bytes; `two`: seal with one cipher instance and open with another
        // (the crypter's shape: each side holds its own key state), else one instance for both.
        let bare = |len: usize, two: bool| {
            let seal = Aes256Gcm::new((&key).into());
            let open = Aes256Gcm::new((&key).into());
            let mut body = vec![0x42u8; len];
            move || {
                let opener = if two { &open } else { &seal };
                let mut ok = 0;
                for seq in 0..frames {
                    let mut nonce = [0u8; 12];
                    nonce[8..].copy_from_slice(&seq.to_be_bytes());
                    let nonce = aes_gcm::Nonce::from(nonce);
                    if let Ok(tag) = seal.encrypt_in_place_detached(&nonce, &[], &mut body) {
                        ok += u64::from(
                            opener.decrypt_in_place_detached(&nonce, &[], &mut body, &tag).is_ok(),
                        );
                    }
                    black_box(&mut body);
                }
                ok
            }
        };
        let padded = sealed_len(bytes) - 16;
        let (mut base_run, mut padded_run, mut two_run) =
            (bare(bytes, false), bare(padded, false), bare(padded, true));
        let (stats, ratios) = time_interleaved(
            opts.reps(),
            &mut [&mut ours_run, &mut base_run, &mut padded_run, &mut two_run],
        );
        let (ours, base, base_padded, base_two) = (stats[0], stats[1], stats[2], stats[3]);
        // ratios[i] = ours / variant time per repetition; throughput ratio = its reciprocal.
        let tput = |i: usize| if ratios[i] > 0.0 { 1.0 / ratios[i] } else { 0.0 };
        let allocs = opts.count_allocs(|| {
            for _ in 0..64 {
                black_box(round(&mut desktop, &mut phone, &mut buf));
            }
        });
        out.push(
            Measurement::new("crypter", format!("seal+open {bytes} B in place"))
                .field("bytes", bytes as f64)
                .field("padded_bytes", padded as f64)
                .stats("ns", &ours)
                .field("mib_per_s", bytes as f64 / ours.median * 1e9 / (1024.0 * 1024.0))
                .field("baseline_median_ns", base.median)
                .field("throughput_ratio", tput(1))
                .field("baseline_padded_median_ns", base_padded.median)
                .field("throughput_ratio_padded", tput(2))
                .field("baseline_two_ciphers_median_ns", base_two.median)
                .field("throughput_ratio_two_ciphers", tput(3))
                .opt_field("allocs_per_frame", allocs.map(|a| a as f64 / 64.0))
                .note(
                    "baseline: bare aes-gcm encrypt/decrypt_in_place_detached, cached key; \
                     goal >= 0.9x throughput at 1 KiB, 0 allocs",
                ),
        );
    }
    out
}

/// `handshake`: a full KNpsk0 per side, and the sum of the primitives each side performs
/// (P-256 key generation, 2 ECDH incl. point parsing, 6 HKDF-SHA256) measured in the same run.
/// The P-256 primitives are timed through the backend the handshake uses (`ecdh::Selected`:
/// p256, or aws-lc-rs when built with `--features aws-lc`); the labels name it.
pub fn handshake(opts: &Options<'_>) -> Vec<Measurement> {
    let backend = Selected::NAME;
    let mut rng = rng(1);
    let psk = Psk::new([7; 32]);
    // The QR identity key as the desktop holds it: with its public half (computed once, when
    // the QR code is made; the handshake does not compute it again).
    let desktop_key = IdentityKeyPair::new(SecretKey::random(&mut rng));
    let desktop_pub = desktop_key.public_key();
    let peer_public = SecretKey::random(&mut rng).public_key();
    let peer_bytes = peer_public.to_encoded_point(false); // 65 bytes, as on the wire
                                                          // The static key as the handshake holds it (aws-lc-rs: imported once, with the pair).
    let static_key = match Selected::identity(&desktop_key) {
        Ok(k) => k,
        Err(e) => {
            return vec![Measurement::new("handshake", format!("skipped ({backend})"))
                .note(format!("the P-256 backend failed: {e}"))]
        }
    };
    let rounds: u32 = if opts.quick { 4 } else { 20 };
    let hkdf_rounds = rounds * 64;
    // Per repetition, interleaved: handshakes, then each primitive (so load hits all alike).
    let (mut desktop, mut phone) = (Vec::new(), Vec::new());
    let (mut keygen, mut ecdh, mut hkdf, mut sha) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut d_ratio, mut p_ratio, mut sums) = (Vec::new(), Vec::new(), Vec::new());
    let per = |d: Duration, n: u32| ns(d) / f64::from(n);
    for _ in 0..opts.reps() {
        let (mut d, mut p) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..rounds {
            let t = Instant::now();
            let (init, msg1) = Initiator::start(
                InitiatorKeys::Qr { desktop_identity: &desktop_key },
                &psk,
                &mut rng,
            );
            d += t.elapsed();
            let t = Instant::now();
            let r = respond(
                ResponderKeys::Qr { desktop_identity: &desktop_pub },
                &psk,
                &msg1,
                &mut rng,
            );
            p += t.elapsed();
            let Ok((_, msg2)) = r else { continue };
            let t = Instant::now();
            black_box(init.read_response(&msg2).is_ok());
            d += t.elapsed();
        }
        let t = Instant::now();
        for _ in 0..rounds {
            black_box(Selected::key_pair(&SecretKey::random(&mut rng)).is_ok());
        }
        let kg = per(t.elapsed(), rounds);
        let t = Instant::now();
        for _ in 0..rounds {
            if let Ok(p) = Selected::parse(black_box(peer_bytes.as_bytes())) {
                black_box(Selected::agree(&static_key, &p).is_ok());
            }
        }
        let dh = per(t.elapsed(), rounds);
        let t = Instant::now();
        let ck = [3u8; 32];
        for _ in 0..hkdf_rounds {
            let mut okm = [0u8; 64];
            let _ =
                hkdf::Hkdf::<Sha256>::new(Some(&ck), black_box(&[5u8; 32])).expand(&[], &mut okm);
            black_box(okm);
        }
        let kdf = per(t.elapsed(), hkdf_rounds);
        let t = Instant::now();
        for _ in 0..hkdf_rounds {
            black_box(Sha256::new().chain_update([1u8; 32]).chain_update([2u8; 65]).finalize());
        }
        sha.push(per(t.elapsed(), hkdf_rounds));
        // Per side: 1 key generation, 2 ECDH, 6 HKDF (+ ~7 SHA-256 transcript hashes, listed apart).
        let sum = kg + 2.0 * dh + 6.0 * kdf;
        let (dn, pn) = (per(d, rounds), per(p, rounds));
        d_ratio.push(dn / sum);
        p_ratio.push(pn / sum);
        sums.push(sum / 1e3);
        desktop.push(dn / 1e3);
        phone.push(pn / 1e3);
        keygen.push(kg / 1e3);
        ecdh.push(dh / 1e3);
        hkdf.push(kdf);
    }
    let sum_us = Stats::of(sums).median;
    let mut out = Vec::new();
    for (side, s, r) in [("desktop", desktop, d_ratio), ("phone", phone, p_ratio)] {
        out.push(
            Measurement::new("handshake", format!("KNpsk0 {side} side ({backend})"))
                .stats("us", &Stats::of(s))
                .field("primitives_sum_us", sum_us)
                .field("ratio_to_primitives", Stats::of(r).median)
                .note(format!(
                    "P-256 backend {backend}; primitives: 1 P-256 keygen + 2 ECDH (parse+multiply) \
                     + 6 HKDF; goals <= 1.2x, <= 200 us per side with aws-lc-rs"
                )),
        );
    }
    out.push(
        Measurement::new("handshake", format!("primitives, medians ({backend})"))
            .field("keygen_us", Stats::of(keygen).median)
            .field("ecdh_us", Stats::of(ecdh).median)
            .field("hkdf_ns", Stats::of(hkdf).median)
            .field("sha256_ns", Stats::of(sha).median),
    );
    out
}

/// `ctaphid`: fragment a message into 64-byte reports, parse each, reassemble; per message.
pub fn ctaphid(opts: &Options<'_>) -> Vec<Measurement> {
    let Some(report_len) = ReportLen::new(64) else { return Vec::new() };
    let cid = Cid(0x1234_5678);
    let mut out = Vec::new();
    for bytes in [64usize, 256, 1024, 4096, 7 * 1024] {
        let payload = vec![0xA5u8; bytes];
        let messages = ((if opts.quick { 256 * 1024 } else { 4 * 1024 * 1024 }) / bytes).max(16);
        let one = |payload: &[u8]| -> usize {
            let mut r = Reassembler::new(report_len);
            let Ok(reports) = fragment(cid, Command::Cbor, payload, report_len) else { return 0 };
            for report in reports {
                let Ok(packet) = Packet::parse(&report) else { return 0 };
                if let Ok(Some(m)) = r.push(packet) {
                    return m.payload.len();
                }
            }
            0
        };
        let s = time_per_op(opts.reps(), || {
            let mut ok = 0;
            for _ in 0..messages {
                ok += u64::from(one(black_box(&payload)) == bytes);
            }
            ok
        });
        let allocs = opts.count_allocs(|| {
            for _ in 0..16 {
                black_box(one(&payload));
            }
        });
        out.push(
            Measurement::new("ctaphid", format!("fragment+reassemble {bytes} B"))
                .field("bytes", bytes as f64)
                .field("reports", report_len.reports_for(bytes) as f64)
                .stats("ns", &s)
                .opt_field("allocs_per_message", allocs.map(|a| a as f64 / 16.0)),
        );
    }
    out
}
