//! The pairing stage run by both peers in memory, from the QR code to a CTAP answer, with no
//! secret handled outside the protocol types: QR → phone advert → desktop matcher → handshake →
//! post-handshake → linking → CTAP; then a linked session from the stored link (client nonce →
//! linked advert → NKpsk0 → CTAP). Foreign and mismatched adverts are not taken for ours.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers, not peer input

use cablebridge_protocol::ctap2::{Command, StatusCode};
use cablebridge_protocol::hybrid::eid::TrialOpen;
use cablebridge_protocol::hybrid::keys::LinkSecret;
use cablebridge_protocol::hybrid::messages::{LinkingInfo, PostHandshake};
use cablebridge_protocol::hybrid::qr::QrPayload;
use cablebridge_protocol::hybrid::session::{
    AdvertMatcher, DesktopEvent, DesktopPairing, MatchOutcome, PhoneEvent, PhonePairing,
};
use cablebridge_protocol::hybrid::tunnel::{RequestHint, RoutingId};
use p256::SecretKey;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

const GET_INFO: &[u8] = &[0xa1, 0x01, 0x81, 0x68, b'F', b'I', b'D', b'O', b'_', b'2', b'_', b'0'];

#[test]
fn qr_then_linked_session_from_advert_to_ctap() {
    let mut rng = ChaCha20Rng::seed_from_u64(11);

    // Desktop shows a QR code; the phone scans it (through its URL form).
    let (identity, qr) =
        QrPayload::generate(&mut rng, 1_700_000_000, RequestHint::MakeCredential, true);
    let scanned = QrPayload::from_url(&qr.to_url()).unwrap();

    // Two sessions wait at once: a stale QR session and ours. The advert matches ours only.
    let mut matcher = AdvertMatcher::new(true);
    let (stale_identity, stale) =
        QrPayload::generate(&mut rng, 0, RequestHint::GetAssertion, false);
    matcher.add(1, DesktopPairing::from_qr(&stale.secret, &stale_identity));
    matcher.add(2, DesktopPairing::from_qr(&qr.secret, &identity));

    let phone_pairing = PhonePairing::qr(&scanned, RoutingId([1, 2, 3]), 0, &mut rng);
    let advert = *phone_pairing.advert();
    let opened = match matcher.offer(&advert) {
        MatchOutcome::Matched { session: 2, advert } => advert,
        other => panic!("expected session 2 to match, got {other:?}"),
    };
    assert_eq!(opened.plaintext.routing_id(), RoutingId([1, 2, 3]));
    assert_eq!(matcher.offer(&advert), MatchOutcome::Duplicate { session: 2 });
    let desktop_pairing = matcher.take(2).unwrap();

    // Handshake: each side derives the PSK from the same advert inside its pairing.
    let (desktop, msg1) = desktop_pairing.start_handshake(&opened, &mut rng);
    let (phone, msg2) = phone_pairing.respond(&msg1, &mut rng).unwrap();
    let desktop = desktop.read_response(&msg2).unwrap();
    assert_eq!(desktop.handshake_hash(), phone.handshake_hash());
    let (mut phone, post) =
        phone.send_post_handshake(&PostHandshake::ctap(GET_INFO.to_vec())).unwrap();
    let mut desktop = desktop.read_post_handshake(&post).unwrap();
    assert_eq!(desktop.get_info(), Some(GET_INFO));

    // The phone links; the desktop verifies it against this session.
    let phone_identity = SecretKey::random(&mut rng);
    let link = LinkingInfo {
        contact_id: b"contact".to_vec(),
        link_id: [7; 8],
        link_secret: LinkSecret::random(&mut rng),
        phone_public_key: phone_identity.public_key(),
        name: "Pixel".into(),
        signature: phone.linking_signature(&phone_identity).unwrap(),
        gms_marker: None,
    };
    let stored = match desktop.receive(&phone.send_update(Some(&link)).unwrap()).unwrap() {
        DesktopEvent::LinkingInfo(l) => l,
        other => panic!("expected linking info, got {other:?}"),
    };

    // CTAP over the QR session.
    let (mut desktop, req) = desktop.send_ctap(Command::MakeCredential, &[0xa0]).unwrap();
    assert_eq!(
        phone.receive(&req),
        Ok(PhoneEvent::CtapRequest { command: Command::MakeCredential, params: vec![0xa0] })
    );
    let resp = phone.respond_ctap(StatusCode::Ok, &[0xa1, 0x01, 0x02]).unwrap();
    assert_eq!(
        desktop.receive(&resp),
        Ok(DesktopEvent::CtapResponse { status: StatusCode::Ok, body: vec![0xa1, 0x01, 0x02] })
    );

    // Linked session: the desktop sends a fresh client nonce; the phone advertises under the link.
    let client_nonce = [0x33u8; 16];
    let desktop_pairing =
        DesktopPairing::from_link(&stored.link_secret, &client_nonce, &stored.phone_public_key);
    let phone_pairing =
        PhonePairing::linked(&link.link_secret, &client_nonce, 1, &phone_identity, &mut rng);
    // An advert for another client nonce (an older connection) is not ours.
    let old = PhonePairing::linked(&link.link_secret, &[0x34; 16], 1, &phone_identity, &mut rng);
    assert_eq!(desktop_pairing.offer_advert(old.advert()), TrialOpen::NotOurs);
    let opened = match desktop_pairing.offer_advert(phone_pairing.advert()) {
        TrialOpen::Match(a) => a,
        other => panic!("the linked advert must match, got {other:?}"),
    };
    assert_eq!(opened.plaintext.reserved(), 0);
    assert_eq!(opened.plaintext.domain_id(), 1, "a valid domain id (pitfall 16)");
    let (desktop, msg1) = desktop_pairing.start_handshake(&opened, &mut rng);
    let (phone, msg2) = phone_pairing.respond(&msg1, &mut rng).unwrap();
    let desktop = desktop.read_response(&msg2).unwrap();
    let (mut phone, post) =
        phone.send_post_handshake(&PostHandshake::ctap(GET_INFO.to_vec())).unwrap();
    let desktop = desktop.read_post_handshake(&post).unwrap();
    let (mut desktop, req) = desktop.send_ctap(Command::GetAssertion, &[0xa0]).unwrap();
    assert_eq!(
        phone.receive(&req),
        Ok(PhoneEvent::CtapRequest { command: Command::GetAssertion, params: vec![0xa0] })
    );
    let resp = phone.respond_ctap(StatusCode::NoCredentials, &[]).unwrap();
    assert_eq!(
        desktop.receive(&resp),
        Ok(DesktopEvent::CtapResponse { status: StatusCode::NoCredentials, body: vec![] })
    );
}

#[test]
fn a_phone_answering_with_another_secret_fails_the_handshake() {
    let mut rng = ChaCha20Rng::seed_from_u64(12);
    let (identity, qr) = QrPayload::generate(&mut rng, 0, RequestHint::GetAssertion, false);
    let pairing = DesktopPairing::from_qr(&qr.secret, &identity);
    let phone = PhonePairing::qr(&qr, RoutingId([0; 3]), 0, &mut rng);
    let TrialOpen::Match(opened) = pairing.offer_advert(phone.advert()) else {
        panic!("own advert must match")
    };
    // Same QR public key, different secret: a foreign advert, and a different PSK.
    let (_, mut other) = QrPayload::generate(&mut rng, 0, RequestHint::GetAssertion, false);
    other.public_key = qr.public_key;
    let impostor = PhonePairing::qr(&other, RoutingId([0; 3]), 0, &mut rng);
    assert_eq!(pairing.offer_advert(impostor.advert()), TrialOpen::NotOurs);
    let (_desktop, msg1) = pairing.start_handshake(&opened, &mut rng);
    assert!(impostor.respond(&msg1, &mut rng).is_err(), "the PSKs differ");
}
