//! Shared fixtures for the fuzz targets in `fuzz_targets/`: the fixed keys of the hybrid QR
//! transcript (protocol/tests/vectors/hybrid.json, `transcripts.qr`), so every input replays
//! deterministically, and a deterministic RNG.
#![allow(clippy::unwrap_used, clippy::expect_used)] // fixed, valid constants only

use cablebridge_protocol::hybrid::keys::{LinkSecret, Psk, QrSecret};
use cablebridge_protocol::hybrid::noise::IdentityKeyPair;
use p256::{PublicKey, SecretKey};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::sync::OnceLock;

/// `transcripts.qr.qr_private_scalar`: the desktop's QR identity key.
pub const QR_PRIVATE: &str = "5cb95a87ceaaae2635ff47b44ba90165a845191589b9b909ea5a15c2cdb74e63";
/// `transcripts.qr.qr_secret`.
pub const QR_SECRET: &str = "000102030405060708090a0b0c0d0e0f";
/// `transcripts.qr.psk`.
pub const QR_PSK: &str = "7668dc74d98fe39b4523b8aadef4d5a9ecb8d4edeac5d5e72bb21dfd0bbd44e8";
/// `transcripts.qr.desktop_ephemeral_scalar`.
pub const DESKTOP_EPHEMERAL: &str =
    "56b0446a9e7f2a824a6c290664ee78b6eabef42180f4d4dae3a64160e8a901c4";
/// `transcripts.qr.phone_ephemeral_scalar`.
pub const PHONE_EPHEMERAL: &str =
    "739a711e9a405b42d86a66cf690c6a3c136927359b1e9f21be84fcccc0cbf41e";
/// `transcripts.linking.phone_identity_scalar`.
pub const PHONE_IDENTITY: &str = "07db186029b4381b7ecd14216ab9d0381bf0d4a898c1e84ed0b0329a43a36db6";
/// `transcripts.linking.paired_secret`.
pub const LINK_SECRET: &str = "145ce9b642d049ef154cc6e96cd2247a051762363f046beda59b91ea80208a35";
/// `transcripts.linked.client_nonce`.
pub const CLIENT_NONCE: [u8; 16] = *b"@ABCDEFGHIJKLMNO";

fn bytes<const N: usize>(h: &str) -> [u8; N] {
    let mut out = [0u8; N];
    hex::decode_to_slice(h, &mut out).expect("fixture hex");
    out
}

/// A P-256 key from a fixture scalar.
pub fn key(h: &str) -> SecretKey {
    SecretKey::from_slice(&bytes::<32>(h)).expect("fixture scalar")
}

/// The desktop's QR identity key pair, computed once per process: its public half is a P-256
/// scalar multiplication, which per input made `advert` run at ~2,700 inputs/s while testing
/// nothing that varies with the input.
pub fn desktop_identity() -> &'static IdentityKeyPair {
    static PAIR: OnceLock<IdentityKeyPair> = OnceLock::new();
    PAIR.get_or_init(|| IdentityKeyPair::new(key(QR_PRIVATE)))
}

/// The linked phone's identity public key, computed once per process (see [`desktop_identity`]).
pub fn phone_identity_public() -> &'static PublicKey {
    static PUBLIC: OnceLock<PublicKey> = OnceLock::new();
    PUBLIC.get_or_init(|| key(PHONE_IDENTITY).public_key())
}

/// The transcript's QR secret.
pub fn qr_secret() -> QrSecret {
    QrSecret::new(bytes(QR_SECRET))
}

/// The transcript's PSK.
pub fn psk() -> Psk {
    Psk::new(bytes(QR_PSK))
}

/// The linking transcript's link secret.
pub fn link_secret() -> LinkSecret {
    LinkSecret::new(bytes(LINK_SECRET))
}

/// A deterministic RNG (inputs must replay exactly).
pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}
