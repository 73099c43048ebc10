//! Every value of the synthetic hybrid transcripts (PROTOCOL-hybrid.md §10.5,
//! `tests/vectors/hybrid.json` keys `transcripts.qr`, `transcripts.linking`, `transcripts.linked`)
//! reproduced from BOTH sides with the given scalars, plus the upstream post-handshake plaintexts.

use cablebridge_protocol::hybrid::crypter::Crypter;
use cablebridge_protocol::hybrid::keys::{self, KeyPurpose, Psk};
use cablebridge_protocol::hybrid::noise::{
    respond_with_ephemeral, Established, Initiator, InitiatorKeys, ResponderKeys,
};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};
use serde_json::Value as Json;

fn vectors() -> Json {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/hybrid.json"))
            .expect("vector file");
    serde_json::from_str(&text).expect("vector JSON")
}

fn hex_of(v: &Json, section: &str, key: &str) -> Vec<u8> {
    let s = v["transcripts"][section][key].as_str().unwrap_or_else(|| panic!("{section}.{key}"));
    hex::decode(s).unwrap_or_else(|_| panic!("{section}.{key} is hex"))
}

fn arr<const N: usize>(v: &Json, section: &str, key: &str) -> [u8; N] {
    hex_of(v, section, key).try_into().unwrap_or_else(|_| panic!("{section}.{key} length"))
}

fn scalar(v: &Json, section: &str, key: &str) -> SecretKey {
    SecretKey::from_slice(&hex_of(v, section, key)).unwrap()
}

fn psk_for(v: &Json, section: &str, secret_key: &str) -> Psk {
    let secret = hex_of(v, section, secret_key);
    let eid = hex_of(v, section, "eid_plaintext");
    let psk = Psk::new(keys::derive_array(&secret, &eid, KeyPurpose::Psk));
    assert_eq!(psk.expose().to_vec(), hex_of(v, section, "psk"), "{section}.psk");
    psk
}

/// Both crypters of a session, checked against the vector keys: a crypter built from the vector's
/// `desktop_write_key`/`desktop_read_key` must produce byte-identical frames.
fn assert_keys(v: &Json, section: &str, desktop: &mut Crypter, phone: &mut Crypter) {
    let k1: [u8; 32] = arr(v, section, "desktop_write_key");
    let k2: [u8; 32] = arr(v, section, "desktop_read_key");
    let mut reference_desktop = Crypter::new(&k1, &k2);
    let mut reference_phone = Crypter::new(&k2, &k1);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    desktop.seal_frame(1, b"key check", &mut a).unwrap();
    reference_desktop.seal_frame(1, b"key check", &mut b).unwrap();
    assert_eq!(a, b, "{section}: desktop write key = k1");
    phone.seal_frame(1, b"key check", &mut a).unwrap();
    reference_phone.seal_frame(1, b"key check", &mut b).unwrap();
    assert_eq!(a, b, "{section}: desktop read key = k2 (phone write)");
}

fn handshake(
    v: &Json,
    section: &str,
    psk: &Psk,
    ik: InitiatorKeys<'_>,
    rk: ResponderKeys<'_>,
) -> (Established, Established) {
    let de = scalar(v, section, "desktop_ephemeral_scalar");
    let pe = scalar(v, section, "phone_ephemeral_scalar");
    let (init, msg1) = Initiator::start_with_ephemeral(ik, psk, de);
    assert_eq!(msg1.to_vec(), hex_of(v, section, "handshake_msg1"), "{section}.msg1");
    let (phone, msg2) = respond_with_ephemeral(rk, psk, &msg1, pe).unwrap();
    assert_eq!(msg2.to_vec(), hex_of(v, section, "handshake_msg2"), "{section}.msg2");
    let desktop = init.read_response(&msg2).unwrap();
    let hash: [u8; 32] = arr(v, section, "handshake_hash");
    assert_eq!(desktop.handshake_hash, hash);
    assert_eq!(phone.handshake_hash, hash);
    (desktop, phone)
}

#[test]
fn qr_handshake_from_both_sides() {
    let v = vectors();
    let qr_seed: [u8; 32] = arr(&v, "qr", "qr_seed");
    let desktop_identity = keys::derive_p256_from_seed(&qr_seed).unwrap();
    assert_eq!(desktop_identity.to_bytes().to_vec(), hex_of(&v, "qr", "qr_private_scalar"));
    let public = desktop_identity.public_key();
    assert_eq!(public.to_encoded_point(true).as_bytes(), hex_of(&v, "qr", "qr_public_compressed"));
    assert_eq!(
        public.to_encoded_point(false).as_bytes(),
        hex_of(&v, "qr", "qr_public_uncompressed")
    );
    let psk = psk_for(&v, "qr", "qr_secret");
    let (mut d, mut p) = handshake(
        &v,
        "qr",
        &psk,
        InitiatorKeys::Qr { desktop_identity: &desktop_identity },
        ResponderKeys::Qr { desktop_identity: &public },
    );
    assert_keys(&v, "qr", &mut d.crypter, &mut p.crypter);
}

#[test]
fn linked_handshake_from_both_sides() {
    let v = vectors();
    let phone_identity = scalar(&v, "linking", "phone_identity_scalar");
    let public =
        PublicKey::from_sec1_bytes(&hex_of(&v, "linked", "phone_identity_public")).unwrap();
    assert_eq!(phone_identity.public_key(), public);
    let psk = psk_for(&v, "linked", "paired_secret");
    let (mut d, mut p) = handshake(
        &v,
        "linked",
        &psk,
        InitiatorKeys::Linked { phone_identity: &public },
        ResponderKeys::Linked { phone_identity: &phone_identity },
    );
    assert_keys(&v, "linked", &mut d.crypter, &mut p.crypter);
}
