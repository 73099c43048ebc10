//! The legacy revision-0 post-handshake (PROTOCOL-hybrid.md §8.1, §11.3) on the session state
//! machines: the QR transcript of `tests/vectors/hybrid.json` (§10.5) replayed with the phone
//! speaking revision 0 — the same handshake (msg1/msg2/hash byte-exact), then the vector's
//! post-handshake plaintext padded the legacy way, and untyped request/response frames checked
//! against a raw Crypter built from the vector's traffic keys. No public revision-0 transcript
//! exists (§10.6), so the padded frames are built here from the vector plaintexts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers, not peer input

use cablebridge_protocol::ctap2::{Command, StatusCode};
use cablebridge_protocol::hybrid::crypter::Crypter;
use cablebridge_protocol::hybrid::keys::{self, KeyPurpose, Psk};
use cablebridge_protocol::hybrid::messages::{LinkingInfo, MessageError, PostHandshake, Revision};
use cablebridge_protocol::hybrid::noise::{IdentityKeyPair, InitiatorKeys, ResponderKeys};
use cablebridge_protocol::hybrid::session::{
    DesktopEvent, DesktopHandshake, PhoneEvent, PhoneHandshaken, SessionError,
};
use p256::SecretKey;
use serde_json::Value as Json;

fn vectors() -> Json {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/hybrid.json"))
            .expect("vector file");
    serde_json::from_str(&text).expect("vector JSON")
}

fn hex_of(v: &Json, key: &str) -> Vec<u8> {
    hex::decode(v["transcripts"]["qr"][key].as_str().unwrap()).unwrap()
}

fn scalar(v: &Json, key: &str) -> SecretKey {
    SecretKey::from_slice(&hex_of(v, key)).unwrap()
}

/// Both sides of the vector QR session right after message 2, plus the vector traffic keys.
fn handshaken(v: &Json) -> (DesktopHandshake, PhoneHandshaken, [u8; 81], Crypter, Crypter) {
    let identity = IdentityKeyPair::new(scalar(v, "qr_private_scalar"));
    let psk = Psk::new(keys::derive_array(
        &hex_of(v, "qr_secret"),
        &hex_of(v, "eid_plaintext"),
        KeyPurpose::Psk,
    ));
    let (desktop, msg1) = DesktopHandshake::start_with_ephemeral(
        InitiatorKeys::Qr { desktop_identity: &identity },
        &psk,
        scalar(v, "desktop_ephemeral_scalar"),
    );
    assert_eq!(msg1.to_vec(), hex_of(v, "handshake_msg1"));
    let (phone, msg2) = PhoneHandshaken::respond_with_ephemeral(
        ResponderKeys::Qr { desktop_identity: &identity.public_key() },
        &psk,
        &msg1,
        scalar(v, "phone_ephemeral_scalar"),
    )
    .unwrap();
    assert_eq!(msg2.to_vec(), hex_of(v, "handshake_msg2"));
    let k1: [u8; 32] = hex_of(v, "desktop_write_key").try_into().unwrap();
    let k2: [u8; 32] = hex_of(v, "desktop_read_key").try_into().unwrap();
    // Reference crypters: what a legacy phone (k2 write) and our desktop (k1 write) seal.
    (desktop, phone, msg2, Crypter::new(&k2, &k1), Crypter::new(&k1, &k2))
}

#[test]
fn desktop_completes_a_revision0_session_from_the_vector_transcript() {
    let v = vectors();
    let (desktop, _, msg2, mut legacy_phone, _) = handshaken(&v);
    let desktop = desktop.read_response(&msg2).unwrap();

    // The vector post-handshake plaintext, padded with the 16-bit scheme to 512 bytes.
    let plain = hex_of(&v, "post_handshake_plain");
    let mut padded = plain.clone();
    padded.resize(510, 0);
    padded.extend_from_slice(&u16::try_from(510 - plain.len()).unwrap().to_le_bytes());
    let post = PostHandshake::decode(&plain).unwrap();
    assert_eq!(post.encode_revision0(), padded, "our encoder pads the same way");
    let mut ct = Vec::new();
    legacy_phone.seal_plain(&padded, &mut ct).unwrap();
    let desktop = desktop.read_post_handshake(&ct).unwrap();
    assert_eq!(desktop.revision(), Revision::Zero);
    assert_eq!(desktop.get_info(), Some(&hex_of(&v, "phone_getinfo")[..]));

    // The vector request, sent untyped: the phone opens `command ‖ CBOR` (no 0x01).
    let request_plain = hex_of(&v, "request_plain");
    let (mut desktop, request_ct) =
        desktop.send_ctap(Command::from_u8(request_plain[1]), &request_plain[2..]).unwrap();
    assert_ne!(request_ct, hex_of(&v, "request_ct"), "revision 1 framing would match the vector");
    let mut opened = request_ct.clone();
    let n = legacy_phone.open_in_place(&mut opened).unwrap();
    assert_eq!(&opened[..n], &request_plain[1..]);

    // The untyped reply `status ‖ CBOR`.
    let mut reply = Vec::new();
    legacy_phone.seal_plain(&[0x00, 0xa0], &mut reply).unwrap();
    assert_eq!(
        desktop.receive(&reply),
        Ok(DesktopEvent::CtapResponse { status: StatusCode::Ok, body: vec![0xa0] })
    );
    // Revision 0 has no shutdown message: nothing to send.
    let (_closed, bye) = desktop.shutdown().unwrap();
    assert!(bye.is_empty());
}

#[test]
fn both_state_machines_speak_revision0_with_8_bit_padding_accepted_too() {
    let v = vectors();
    let (desktop, phone, msg2, _, _) = handshaken(&v);
    let desktop = desktop.read_response(&msg2).unwrap();
    let post = PostHandshake::ctap(hex_of(&v, "phone_getinfo"));
    let (mut phone, post_ct) = phone.send_post_handshake_revision(&post, Revision::Zero).unwrap();
    let desktop = desktop.read_post_handshake(&post_ct).unwrap();
    assert_eq!(desktop.revision(), Revision::Zero);
    // No update messages in revision 0.
    assert!(matches!(phone.send_update(None), Err(SessionError::UnexpectedFrame { .. })));
    let (mut desktop, req) = desktop.send_ctap(Command::GetAssertion, &[0xa0]).unwrap();
    assert_eq!(
        phone.receive(&req),
        Ok(PhoneEvent::CtapRequest { command: Command::GetAssertion, params: vec![0xa0] })
    );
    let reply = phone.respond_ctap(StatusCode::Ok, &[0xa1, 0x01, 0x02]).unwrap();
    assert_eq!(
        desktop.receive(&reply),
        Ok(DesktopEvent::CtapResponse { status: StatusCode::Ok, body: vec![0xa1, 0x01, 0x02] })
    );
    // A second untyped frame after the answer is an error naming the frame, not a response.
    let again = phone.respond_ctap(StatusCode::Ok, &[0xa0]).unwrap();
    assert!(matches!(desktop.receive(&again), Err(SessionError::UnexpectedFrame { .. })));

    // The 8-bit scheme (256-byte blocks) from a raw legacy phone.
    let (desktop, _, msg2, mut legacy_phone, _) = handshaken(&v);
    let desktop = desktop.read_response(&msg2).unwrap();
    let cbor = post.encode();
    let mut padded = cbor.clone();
    padded.resize(255, 0);
    padded.push(u8::try_from(255 - cbor.len()).unwrap());
    let mut ct = Vec::new();
    legacy_phone.seal_plain(&padded, &mut ct).unwrap();
    assert_eq!(desktop.read_post_handshake(&ct).unwrap().revision(), Revision::Zero);
}

#[test]
fn bad_revision0_padding_is_a_post_handshake_error_and_legacy_linking_verifies() {
    let v = vectors();
    let (desktop, _, msg2, mut legacy_phone, _) = handshaken(&v);
    let desktop = desktop.read_response(&msg2).unwrap();
    let mut padded = PostHandshake::ctap(hex_of(&v, "phone_getinfo")).encode_revision0();
    padded[300] = 7; // a non-zero "zero"
    let mut ct = Vec::new();
    legacy_phone.seal_plain(&padded, &mut ct).unwrap();
    let e = desktop.read_post_handshake(&ct).unwrap_err();
    assert_eq!(e, SessionError::Message(MessageError::Revision0PostHandshake));
    assert!(e.to_string().contains("revision 0"), "{e}");

    // Linking info in key 2 of a revision-0 message (the only place it can go) is kept when
    // its signature verifies over this session's handshake hash.
    let (desktop, phone, msg2, _, _) = handshaken(&v);
    let desktop = desktop.read_response(&msg2).unwrap();
    let phone_identity = SecretKey::from_slice(&[0x42; 32]).unwrap();
    let qr_public = scalar(&v, "qr_private_scalar").public_key();
    let mut post = PostHandshake::ctap(hex_of(&v, "phone_getinfo"));
    post.legacy_linking = Some(LinkingInfo {
        contact_id: b"contact".to_vec(),
        link_id: [1; 8],
        link_secret: cablebridge_protocol::hybrid::keys::LinkSecret::new([9; 32]),
        phone_public_key: phone_identity.public_key(),
        name: "legacy".into(),
        signature: LinkingInfo::sign(&phone_identity, &qr_public, phone.handshake_hash()),
        gms_marker: None,
    });
    let (_, ct) = phone.send_post_handshake_revision(&post, Revision::Zero).unwrap();
    let open = desktop.read_post_handshake(&ct).unwrap();
    assert_eq!(open.post_handshake().legacy_linking.as_ref().unwrap().name, "legacy");
}

#[test]
fn phone_may_send_a_late_update_after_the_shutdown_but_no_ctap_reply() {
    let v = vectors();
    let (desktop, phone, msg2, _, _) = handshaken(&v);
    let desktop = desktop.read_response(&msg2).unwrap();
    let (mut phone, post) =
        phone.send_post_handshake(&PostHandshake::ctap(hex_of(&v, "phone_getinfo"))).unwrap();
    let desktop = desktop.read_post_handshake(&post).unwrap();
    assert_eq!(desktop.revision(), Revision::One);
    let (mut desktop, req) = desktop.send_ctap(Command::GetAssertion, &[0xa0]).unwrap();
    phone.receive(&req).unwrap();
    let reply = phone.respond_ctap(StatusCode::Ok, &[0xa0]).unwrap();
    desktop.receive(&reply).unwrap();
    let (mut closed, bye) = desktop.shutdown().unwrap();
    assert_eq!(phone.receive(&bye), Ok(PhoneEvent::Shutdown));
    assert_eq!(phone.respond_ctap(StatusCode::Ok, &[]), Err(SessionError::Failed));
    // §8.4: the desktop keeps reading after its shutdown, so a late update still arrives.
    let late = phone.send_update(None).unwrap();
    assert_eq!(closed.receive(&late), Ok(DesktopEvent::PaddingOnlyUpdate));
}
