//! The FIDO hybrid transport ("caBLE v2"), sans-IO. Reference: `PROTOCOL-hybrid.md` (copied
//! facts; section numbers below refer to it).
//!
//! | module | what | § |
//! |---|---|---|
//! | [`digits`] | `FIDO:/` decimal digit encoding | 2.2 |
//! | [`qr`] | QR payload (CBOR keys 0–5, unknown keys tolerated) | 2.1 |
//! | [`keys`] | HKDF `Derive` with 4-byte LE purposes | 3 |
//! | [`domain`] | tunnel-server domain ids (assigned / hashed) | 4 |
//! | [`eid`] | BLE advert seal (phone) and trial-open (desktop) | 5 |
//! | [`advert_suffix`] | CTAP 2.3 advert suffix after the 20 bytes (parsed, reported, never trusted) | 12 |
//! | [`tunnel`] | tunnel ids, routing ids, `/cable/new`, `/cable/connect`, `/cable/contact` | 6 |
//! | [`noise`] | Noise KNpsk0 / NKpsk0 over P-256, both roles | 7 |
//! | `ecdh` | the handshake's P-256 backend: p256, or aws-lc-rs with feature `aws-lc` (hidden) | 7 |
//! | [`crypter`] | 32-byte padding + AES-256-GCM in place, per-direction counters | 7.5 |
//! | [`messages`] | post-handshake, typed frames, update/linking, handshake signature | 8, 9 |
//! | [`session`] | desktop and phone session state machines over all of the above | 1.1 |

pub mod advert_suffix;
pub mod crypter;
pub mod digits;
pub mod domain;
#[doc(hidden)]
pub mod ecdh;
pub mod eid;
pub mod keys;
pub mod messages;
pub mod noise;
pub mod qr;
pub mod session;
pub mod tunnel;
