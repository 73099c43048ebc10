//! Every value of the synthetic hybrid transcripts (PROTOCOL-hybrid.md §10.5,
//! `tests/vectors/hybrid.json` keys `transcripts.qr`, `transcripts.linking`, `transcripts.linked`)
//! reproduced from BOTH sides with the given scalars, plus the upstream post-handshake plaintexts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers, not peer input

use cablebridge_protocol::ctap2::{Command, StatusCode};
use cablebridge_protocol::hybrid::crypter::Crypter;
use cablebridge_protocol::hybrid::keys::{self, KeyPurpose, Psk};
use cablebridge_protocol::hybrid::messages::FrameType;
use cablebridge_protocol::hybrid::noise::{
    respond_with_ephemeral, Established, IdentityKeyPair, Initiator, InitiatorKeys, ResponderKeys,
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
    desktop.seal_frame(FrameType::Ctap, b"key check", &mut a).unwrap();
    reference_desktop.seal_frame(FrameType::Ctap, b"key check", &mut b).unwrap();
    assert_eq!(a, b, "{section}: desktop write key = k1");
    phone.seal_frame(FrameType::Ctap, b"key check", &mut a).unwrap();
    reference_phone.seal_frame(FrameType::Ctap, b"key check", &mut b).unwrap();
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
        InitiatorKeys::Qr { desktop_identity: &IdentityKeyPair::new(desktop_identity.clone()) },
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

use cablebridge_protocol::hybrid::messages::{Feature, LinkingInfo, PostHandshake, Update};
use cablebridge_protocol::hybrid::session::{
    DesktopEvent, DesktopHandshake, PhoneEvent, PhoneHandshaken,
};

/// The whole QR data phase through the session state machines: every ciphertext equals the
/// vector when the phone/desktop seals it, and decrypts to the vector plaintext on the other side.
#[test]
fn qr_data_phase_from_both_sides() {
    let v = vectors();
    let desktop_identity = scalar(&v, "qr", "qr_private_scalar");
    let public = desktop_identity.public_key();
    let psk = psk_for(&v, "qr", "qr_secret");
    let desktop_identity = IdentityKeyPair::new(desktop_identity);
    let (desktop, msg1) = DesktopHandshake::start_with_ephemeral(
        InitiatorKeys::Qr { desktop_identity: &desktop_identity },
        &psk,
        scalar(&v, "qr", "desktop_ephemeral_scalar"),
    );
    let (phone, msg2) = PhoneHandshaken::respond_with_ephemeral(
        ResponderKeys::Qr { desktop_identity: &public },
        &psk,
        &msg1,
        scalar(&v, "qr", "phone_ephemeral_scalar"),
    )
    .unwrap();
    assert_eq!(msg2.to_vec(), hex_of(&v, "qr", "handshake_msg2"));
    let desktop = desktop.read_response(&msg2).unwrap();

    // Post-handshake: phone encrypts the vector plaintext → vector ciphertext.
    let post_plain = hex_of(&v, "qr", "post_handshake_plain");
    let post = PostHandshake::decode(&post_plain).unwrap();
    assert_eq!(post.get_info.as_deref(), Some(&hex_of(&v, "qr", "phone_getinfo")[..]));
    assert_eq!(post.features, vec![Feature::Ctap]);
    assert_eq!(post.encode(), post_plain, "post-handshake re-encodes byte-exactly");
    let (mut phone, post_ct) = phone.send_post_handshake(&post).unwrap();
    assert_eq!(post_ct, hex_of(&v, "qr", "post_handshake_ct"));
    let mut desktop = desktop.read_post_handshake(&post_ct).unwrap();
    assert_eq!(desktop.get_info(), post.get_info.as_deref());

    // Update (phone seq 1): padding-only, 528-byte ciphertext.
    let update_plain = hex_of(&v, "qr", "update_plain");
    assert_eq!(cablebridge_protocol::hybrid::messages::encode_padded_update(None), update_plain);
    let update_ct = phone.send_update(None).unwrap();
    assert_eq!(update_ct, hex_of(&v, "qr", "update_ct"));
    assert_eq!(update_ct.len(), 528);
    assert_eq!(desktop.receive(&update_ct), Ok(DesktopEvent::PaddingOnlyUpdate));
    assert_eq!(Update::decode(&update_plain[1..]), Ok(Update { linking: None }));

    // Request (desktop seq 0).
    let request_plain = hex_of(&v, "qr", "request_plain");
    assert_eq!(request_plain[0], 1);
    let (mut desktop, request_ct) =
        desktop.send_ctap(Command::from_u8(request_plain[1]), &request_plain[2..]).unwrap();
    assert_eq!(request_ct, hex_of(&v, "qr", "request_ct"));
    assert_eq!(
        phone.receive(&request_ct),
        Ok(PhoneEvent::CtapRequest {
            command: Command::from_u8(request_plain[1]),
            params: request_plain[2..].to_vec()
        })
    );
    // Desktop still reads the phone's reply after the update.
    let reply = phone.respond_ctap(StatusCode::Ok, &[0xa0]).unwrap();
    assert_eq!(
        desktop.receive(&reply),
        Ok(DesktopEvent::CtapResponse { status: StatusCode::Ok, body: vec![0xa0] })
    );

    // Shutdown (desktop seq 1).
    let (_closed, shutdown_ct) = desktop.shutdown().unwrap();
    assert_eq!(shutdown_ct, hex_of(&v, "qr", "shutdown_ct"));
    assert_eq!(phone.receive(&shutdown_ct), Ok(PhoneEvent::Shutdown));
}

#[test]
fn raw_crypter_reproduces_qr_frames_from_vector_keys() {
    let v = vectors();
    let k1: [u8; 32] = arr(&v, "qr", "desktop_write_key");
    let k2: [u8; 32] = arr(&v, "qr", "desktop_read_key");
    let mut desktop = Crypter::new(&k1, &k2);
    let mut phone = Crypter::new(&k2, &k1);
    let mut out = Vec::new();
    phone.seal_plain(&hex_of(&v, "qr", "post_handshake_plain"), &mut out).unwrap();
    assert_eq!(out, hex_of(&v, "qr", "post_handshake_ct"));
    let mut ct = hex_of(&v, "qr", "update_ct");
    let n = {
        let mut d2 = Crypter::new(&k1, &k2);
        d2.set_sequences_for_tests(0, 1);
        d2.open_in_place(&mut ct).unwrap()
    };
    assert_eq!(ct[..n].to_vec(), hex_of(&v, "qr", "update_plain"));
    let mut ct = hex_of(&v, "qr", "request_ct");
    let mut p2 = Crypter::new(&k2, &k1);
    let n = p2.open_in_place(&mut ct).unwrap();
    assert_eq!(ct[..n].to_vec(), hex_of(&v, "qr", "request_plain"));
    let mut ct = hex_of(&v, "qr", "shutdown_ct");
    let n = p2.open_in_place(&mut ct).unwrap();
    assert_eq!(&ct[..n], &[0u8]);
    desktop.seal_frame(FrameType::Ctap, &hex_of(&v, "qr", "request_plain")[1..], &mut out).unwrap();
    assert_eq!(out, hex_of(&v, "qr", "request_ct"));
}

#[test]
fn linking_derivations_signature_and_map() {
    let v = vectors();
    let root = keys::PhoneRootSecret::new(arr(&v, "linking", "root_secret"));
    let contact_id = hex_of(&v, "linking", "contact_id");
    let link_id: [u8; 8] = arr(&v, "linking", "pairing_id");
    let per_contact = keys::per_contact_secret(&root, &contact_id);
    assert_eq!(per_contact.expose().to_vec(), hex_of(&v, "linking", "per_contact_id_secret"));
    let link_secret = keys::paired_secret(&per_contact, &link_id);
    assert_eq!(link_secret.expose().to_vec(), hex_of(&v, "linking", "paired_secret"));
    let seed = keys::identity_key_seed(&root);
    assert_eq!(seed.expose().to_vec(), hex_of(&v, "linking", "identity_key_seed"));
    let identity = keys::derive_p256_from_seed(seed.expose()).unwrap();
    assert_eq!(identity.to_bytes().to_vec(), hex_of(&v, "linking", "phone_identity_scalar"));
    assert_eq!(
        identity.public_key().to_encoded_point(false).as_bytes(),
        hex_of(&v, "linking", "phone_identity_public")
    );

    let qr = scalar(&v, "qr", "qr_private_scalar");
    let hash: [u8; 32] = arr(&v, "linking", "handshake_hash_signed");
    assert_eq!(hash.to_vec(), hex_of(&v, "qr", "handshake_hash"));
    let signature = LinkingInfo::sign(&identity, &qr.public_key(), &hash);
    assert_eq!(signature.to_vec(), hex_of(&v, "linking", "pairing_signature"));

    let map = hex_of(&v, "linking", "linking_map_cbor");
    let link = LinkingInfo::decode(&map).unwrap();
    assert_eq!(link.contact_id, contact_id);
    assert_eq!(link.link_id, link_id);
    assert_eq!(link.link_secret, link_secret);
    assert_eq!(link.phone_public_key, identity.public_key());
    assert_eq!(link.signature, signature);
    assert_eq!(link.gms_marker, None);
    assert_eq!(link.encode(), map, "linking map re-encodes byte-exactly");
    link.verify(&qr, &hash).unwrap();
}

#[test]
fn upstream_post_handshake_plaintexts_decode() {
    let v = vectors();
    let cases = v["upstream"]["post_handshake"].as_array().unwrap();
    assert_eq!(cases.len(), 2);
    for case in cases {
        let plain = hex::decode(case["plaintext"].as_str().unwrap()).unwrap();
        let post =
            PostHandshake::decode(&plain).unwrap_or_else(|e| panic!("{}: {e}", case["source"]));
        assert_eq!(post.features, vec![Feature::Ctap], "absent key 3 ⇒ [\"ctap\"]");
        let info =
            cablebridge_protocol::cbor::Value::decode(post.get_info.as_deref().unwrap()).unwrap();
        let versions = info.get(1).and_then(|x| x.as_array()).unwrap();
        assert_eq!(versions[0].as_text(), Some("FIDO_2_0"));
        assert!(info.get(4).is_some(), "options present");
    }
}
