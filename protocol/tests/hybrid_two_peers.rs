//! Desktop and phone session state machines run against each other in memory (STYLE.md
//! principle 8): a QR session that creates a link, a linked session that uses it, and faults.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers, not peer input

use cablebridge_protocol::ctap2::{Command, StatusCode};
use cablebridge_protocol::error::{Classify, Fault, Stage};
use cablebridge_protocol::hybrid::crypter::{Crypter, CrypterError};
use cablebridge_protocol::hybrid::keys::{self, KeyPurpose, LinkSecret, Psk};
use cablebridge_protocol::hybrid::messages::{FrameType, LinkingInfo, MessageError, PostHandshake};
use cablebridge_protocol::hybrid::noise::HandshakeError;
use cablebridge_protocol::hybrid::noise::{respond, IdentityKeyPair, ResponderKeys};
use cablebridge_protocol::hybrid::session::{
    DesktopEvent, DesktopHandshake, DesktopOpen, PhoneEvent, PhoneHandshaken, PhoneOpen,
    SessionError,
};
use p256::SecretKey;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

const GET_INFO: &[u8] = &[0xa1, 0x01, 0x81, 0x68, b'F', b'I', b'D', b'O', b'_', b'2', b'_', b'0'];

struct Qr {
    rng: ChaCha20Rng,
    desktop_identity: IdentityKeyPair,
    psk: Psk,
}

fn qr(seed: u64) -> Qr {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let desktop_identity = IdentityKeyPair::new(SecretKey::random(&mut rng));
    let secret = keys::QrSecret::random(&mut rng);
    let eid_plaintext = [0u8; 16];
    let psk = Psk::new(keys::derive_array(secret.expose(), &eid_plaintext, KeyPurpose::Psk));
    Qr { rng, desktop_identity, psk }
}

/// Handshake + post-handshake for a QR session.
fn open_qr(q: &mut Qr) -> (DesktopOpen, PhoneOpen) {
    let (desktop, msg1) = DesktopHandshake::start_qr(&q.psk, &q.desktop_identity, &mut q.rng);
    let (phone, msg2) =
        PhoneHandshaken::respond_qr(&q.psk, &q.desktop_identity.public_key(), &msg1, &mut q.rng)
            .unwrap();
    let desktop = desktop.read_response(&msg2).unwrap();
    assert_eq!(desktop.handshake_hash(), phone.handshake_hash());
    let (phone, post) = phone.send_post_handshake(&PostHandshake::ctap(GET_INFO.to_vec())).unwrap();
    let desktop = desktop.read_post_handshake(&post).unwrap();
    (desktop, phone)
}

#[test]
fn qr_session_links_then_linked_session_uses_the_link() {
    let mut q = qr(1);
    let (mut desktop, mut phone) = open_qr(&mut q);
    assert_eq!(desktop.get_info(), Some(GET_INFO));

    // Phone sends linking info signed over this session's hash.
    let phone_identity = SecretKey::random(&mut q.rng);
    let link = LinkingInfo {
        contact_id: b"contact".to_vec(),
        link_id: [7; 8],
        link_secret: LinkSecret::random(&mut q.rng),
        phone_public_key: phone_identity.public_key(),
        name: "Pixel".into(),
        signature: phone.linking_signature(&phone_identity).unwrap(),
        gms_marker: Some(true),
    };
    let update = phone.send_update(Some(&link)).unwrap();
    assert_eq!(update.len(), 528, "constant-size update hides linking");
    let stored = match desktop.receive(&update).unwrap() {
        DesktopEvent::LinkingInfo(l) => l,
        other => panic!("expected linking info, got {other:?}"),
    };
    assert_eq!(stored, link);

    // One CTAP request and its response; updates after the response still arrive.
    let (mut desktop, req) = desktop.send_ctap(Command::GetAssertion, &[0xa0]).unwrap();
    assert_eq!(
        phone.receive(&req),
        Ok(PhoneEvent::CtapRequest { command: Command::GetAssertion, params: vec![0xa0] })
    );
    let resp = phone.respond_ctap(StatusCode::Ok, &[0xa1, 0x01, 0x02]).unwrap();
    let late = phone.send_update(None).unwrap();
    assert_eq!(
        desktop.receive(&resp),
        Ok(DesktopEvent::CtapResponse { status: StatusCode::Ok, body: vec![0xa1, 0x01, 0x02] })
    );
    assert!(desktop.answered());
    assert_eq!(desktop.receive(&late), Ok(DesktopEvent::PaddingOnlyUpdate));
    // An update still in flight when the desktop shuts down is read after the shutdown (§8.4).
    let in_flight = phone.send_update(None).unwrap();
    let (mut closed, bye) = desktop.shutdown().unwrap();
    assert_eq!(closed.receive(&in_flight), Ok(DesktopEvent::PaddingOnlyUpdate));
    assert_eq!(phone.receive(&bye), Ok(PhoneEvent::Shutdown));
    // After shutdown the phone session is over.
    assert_eq!(phone.respond_ctap(StatusCode::Ok, &[]), Err(SessionError::Failed));
    assert_eq!(phone.receive(&bye), Err(SessionError::Failed));

    // Linked session with the stored link (NKpsk0 against the phone identity).
    let client_nonce = [0x40u8; 16];
    let eid_plaintext = [0x51u8; 16];
    let _eid_key: [u8; 64] =
        keys::derive_array(stored.link_secret.expose(), &client_nonce, KeyPurpose::EidKey);
    let psk =
        Psk::new(keys::derive_array(stored.link_secret.expose(), &eid_plaintext, KeyPurpose::Psk));
    let (desktop, msg1) =
        DesktopHandshake::start_linked(&psk, &stored.phone_public_key, &mut q.rng);
    let (phone, msg2) =
        PhoneHandshaken::respond_linked(&psk, &phone_identity, &msg1, &mut q.rng).unwrap();
    let desktop = desktop.read_response(&msg2).unwrap();
    let (mut phone, post) =
        phone.send_post_handshake(&PostHandshake::ctap(GET_INFO.to_vec())).unwrap();
    let mut desktop = desktop.read_post_handshake(&post).unwrap();
    assert_eq!(phone.send_update(Some(&link)), Err(SessionError::LinkingNeedsQrSession));
    assert_eq!(
        desktop.receive(&phone.send_update(None).unwrap()),
        Ok(DesktopEvent::UpdateDiscarded)
    );
    let (mut desktop, req) = desktop.send_ctap(Command::MakeCredential, &[0xa0]).unwrap();
    assert!(matches!(
        phone.receive(&req),
        Ok(PhoneEvent::CtapRequest { command: Command::MakeCredential, .. })
    ));
    let resp = phone.respond_ctap(StatusCode::OperationDenied, &[]).unwrap();
    assert_eq!(
        desktop.receive(&resp),
        Ok(DesktopEvent::CtapResponse { status: StatusCode::OperationDenied, body: vec![] })
    );

    // A linked session with the wrong phone key fails the handshake.
    let other = SecretKey::random(&mut q.rng);
    let (_d, msg1) = DesktopHandshake::start_linked(&psk, &other.public_key(), &mut q.rng);
    let e = PhoneHandshaken::respond_linked(&psk, &phone_identity, &msg1, &mut q.rng).unwrap_err();
    assert_eq!(e, SessionError::Handshake(HandshakeError::TagMismatch));
}

#[test]
fn tampered_msg2_is_a_handshake_error() {
    let mut q = qr(2);
    for (index, expected) in [(70, HandshakeError::TagMismatch), (3, HandshakeError::BadPoint)] {
        let (desktop, msg1) = DesktopHandshake::start_qr(&q.psk, &q.desktop_identity, &mut q.rng);
        let (_, mut msg2) = PhoneHandshaken::respond_qr(
            &q.psk,
            &q.desktop_identity.public_key(),
            &msg1,
            &mut q.rng,
        )
        .unwrap();
        msg2[index] ^= 0x01;
        let e = desktop.read_response(&msg2).unwrap_err();
        assert_eq!(e, SessionError::Handshake(expected));
        assert_eq!((e.stage(), e.fault()), (Stage::Handshake, Fault::Peer));
    }
    let (desktop, _) = DesktopHandshake::start_qr(&q.psk, &q.desktop_identity, &mut q.rng);
    let e = desktop.read_response(&[4u8; 82]).unwrap_err();
    assert_eq!(e, SessionError::Handshake(HandshakeError::WrongLength(82)));
}

#[test]
fn replayed_reordered_and_truncated_frames_are_transport_errors() {
    let mut q = qr(3);
    // Replay: the same update twice.
    let (mut desktop, mut phone) = open_qr(&mut q);
    let u1 = phone.send_update(None).unwrap();
    assert!(desktop.receive(&u1).is_ok());
    let e = desktop.receive(&u1).unwrap_err();
    assert_eq!(e, SessionError::Crypter(CrypterError::TagMismatch { sequence: 2 }));
    assert_eq!((e.stage(), e.fault()), (Stage::Transport, Fault::Peer));
    assert_eq!(desktop.receive(&u1), Err(SessionError::Failed), "errors are fatal");

    // Reorder: the second frame first.
    let (mut desktop, mut phone) = open_qr(&mut q);
    let _first = phone.send_update(None).unwrap();
    let second = phone.send_update(None).unwrap();
    assert!(matches!(
        desktop.receive(&second),
        Err(SessionError::Crypter(CrypterError::TagMismatch { .. }))
    ));

    // Truncation: a frame missing its last byte, and one shorter than a tag.
    let (mut desktop, mut phone) = open_qr(&mut q);
    let u = phone.send_update(None).unwrap();
    assert!(matches!(desktop.receive(&u[..u.len() - 1]), Err(SessionError::Crypter(_))));
    let (mut desktop, _phone) = open_qr(&mut q);
    assert_eq!(
        desktop.receive(&u[..10]),
        Err(SessionError::Crypter(CrypterError::FrameTooShort(10)))
    );
}

#[test]
fn phone_shutdown_and_unsolicited_ctap_are_errors() {
    let mut q = qr(4);
    let (mut desktop, mut phone) = open_qr(&mut q);
    // A CTAP response nobody asked for.
    let unsolicited = phone.respond_ctap(StatusCode::Ok, &[0xa0]).unwrap();
    let e = desktop.receive(&unsolicited).unwrap_err();
    assert!(matches!(e, SessionError::UnexpectedFrame { .. }), "{e:?}");
    assert_eq!((e.stage(), e.fault()), (Stage::Transport, Fault::Peer));

    // getInfo is answered locally and never sent.
    let (desktop, _phone) = open_qr(&mut q);
    assert_eq!(desktop.send_ctap(Command::GetInfo, &[]).unwrap_err(), SessionError::GetInfoIsLocal);
}

/// A desktop session against a hand-driven phone crypter, so the phone can send frames
/// `PhoneOpen` never produces (shutdown, unknown types).
fn desktop_with_raw_phone(q: &mut Qr) -> (DesktopOpen, Crypter) {
    let public = q.desktop_identity.public_key();
    let (desktop, msg1) = DesktopHandshake::start_qr(&q.psk, &q.desktop_identity, &mut q.rng);
    let (mut est, msg2) =
        respond(ResponderKeys::Qr { desktop_identity: &public }, &q.psk, &msg1, &mut q.rng)
            .unwrap();
    let desktop = desktop.read_response(&msg2).unwrap();
    let mut out = Vec::new();
    est.crypter.seal_plain(&PostHandshake::ctap(GET_INFO.to_vec()).encode(), &mut out).unwrap();
    (desktop.read_post_handshake(&out).unwrap(), est.crypter)
}

#[test]
fn phone_sent_shutdown_and_unknown_types_are_rejected_by_the_desktop() {
    let mut q = qr(5);
    let mut out = Vec::new();

    let (mut desktop, mut phone) = desktop_with_raw_phone(&mut q);
    phone.seal_frame(FrameType::Shutdown, &[], &mut out).unwrap();
    let e = desktop.receive(&out).unwrap_err();
    assert!(matches!(e, SessionError::UnexpectedFrame { frame: FrameType::Shutdown, .. }), "{e:?}");

    let (mut desktop, mut phone) = desktop_with_raw_phone(&mut q);
    phone.seal_plain(&[4, 1], &mut out).unwrap();
    let e = desktop.receive(&out).unwrap_err();
    assert_eq!(e, SessionError::Message(MessageError::UnknownFrameType(4)));

    // An empty CTAP reply (bare type byte) after a request.
    let (desktop, mut phone) = desktop_with_raw_phone(&mut q);
    let (mut desktop, _req) = desktop.send_ctap(Command::GetAssertion, &[0xa0]).unwrap();
    phone.seal_frame(FrameType::Ctap, &[], &mut out).unwrap();
    let e = desktop.receive(&out).unwrap_err();
    assert_eq!(e, SessionError::Message(MessageError::EmptyPayload(FrameType::Ctap)));
}

#[test]
fn linking_signed_over_the_wrong_hash_is_rejected() {
    let mut q = qr(6);
    let (mut desktop, mut phone) = open_qr(&mut q);
    let phone_identity = SecretKey::random(&mut q.rng);
    let link = LinkingInfo {
        contact_id: b"c".to_vec(),
        link_id: [1; 8],
        link_secret: LinkSecret::random(&mut q.rng),
        phone_public_key: phone_identity.public_key(),
        name: "p".into(),
        signature: LinkingInfo::sign(&phone_identity, &q.desktop_identity.public_key(), &[0u8; 32]),
        gms_marker: None,
    };
    let e = desktop.receive(&phone.send_update(Some(&link)).unwrap()).unwrap_err();
    assert_eq!(e, SessionError::Message(MessageError::BadLinkingSignature));
    assert_eq!((e.stage(), e.fault()), (Stage::Linking, Fault::Peer));
}
