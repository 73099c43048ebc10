//! Digital Credentials over hybrid on the session state machines (PROTOCOL-hybrid.md §8.1 key 3,
//! §8.2 type 3): feature negotiation (absent features ⇒ CTAP only), one JSON request and its
//! JSON reply, type matching of the reply, and typed errors naming the stage.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers, not peer input

use cablebridge_protocol::cbor::Value;
use cablebridge_protocol::ctap2::{Command, StatusCode};
use cablebridge_protocol::error::{Classify, Fault, Stage};
use cablebridge_protocol::hybrid::keys::{self, KeyPurpose, Psk};
use cablebridge_protocol::hybrid::messages::{Feature, PostHandshake, Revision};
use cablebridge_protocol::hybrid::noise::IdentityKeyPair;
use cablebridge_protocol::hybrid::session::{
    DesktopEvent, DesktopHandshake, DesktopOpen, PhoneEvent, PhoneHandshaken, PhoneOpen,
    SessionError,
};
use p256::SecretKey;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

const GET_INFO: &[u8] = &[0xa1, 0x01, 0x81, 0x68, b'F', b'I', b'D', b'O', b'_', b'2', b'_', b'0'];
const REQUEST: &[u8] = br#"{"requests":[{"protocol":"openid4vp","data":{"nonce":"n"}}]}"#;
const REPLY: &[u8] = br#"{"protocol":"openid4vp","data":{"vp_token":"eyJ..."}}"#;

fn open(post: &PostHandshake, revision: Revision) -> (DesktopOpen, PhoneOpen) {
    let mut rng = ChaCha20Rng::seed_from_u64(15);
    let identity = IdentityKeyPair::new(SecretKey::random(&mut rng));
    let psk = Psk::new(keys::derive_array(&[1; 16], &[0; 16], KeyPurpose::Psk));
    let (desktop, msg1) = DesktopHandshake::start_qr(&psk, &identity, &mut rng);
    let (phone, msg2) =
        PhoneHandshaken::respond_qr(&psk, &identity.public_key(), &msg1, &mut rng).unwrap();
    let desktop = desktop.read_response(&msg2).unwrap();
    let (phone, ct) = phone.send_post_handshake_revision(post, revision).unwrap();
    (desktop.read_post_handshake(&ct).unwrap(), phone)
}

#[test]
fn dc_phone_answers_one_json_request() {
    let (desktop, mut phone) = open(&PostHandshake::ctap_and_dc(GET_INFO.to_vec()), Revision::One);
    assert!(desktop.post_handshake().supports_dc());
    let (mut desktop, ct) = desktop.send_json(REQUEST).unwrap();
    assert_eq!(phone.receive(&ct), Ok(PhoneEvent::Json(REQUEST.to_vec())));
    let reply = phone.respond_json(REPLY).unwrap();
    assert_eq!(desktop.receive(&reply), Ok(DesktopEvent::JsonResponse(REPLY.to_vec())));
    assert!(desktop.answered());
    // A second answer is not expected any more.
    let again = phone.respond_json(REPLY).unwrap();
    assert!(matches!(desktop.receive(&again), Err(SessionError::UnexpectedFrame { .. })));
}

#[test]
fn a_dc_only_phone_takes_json_but_not_ctap() {
    let dc_only =
        PostHandshake { get_info: None, features: vec![Feature::Dc], legacy_linking: None };
    let (desktop, _) = open(&dc_only, Revision::One);
    assert_eq!(
        desktop.send_ctap(Command::GetAssertion, &[0xa0]).unwrap_err(),
        SessionError::CtapNotSupported
    );
    let (desktop, _) = open(&dc_only, Revision::One);
    assert!(desktop.send_json(REQUEST).is_ok());
}

#[test]
fn without_the_dc_feature_no_json_is_sent() {
    // Key 3 absent on the wire ⇒ ["ctap"] only (§8.1).
    let absent = Value::int_map([(1, Value::bytes(GET_INFO.to_vec()))]).to_vec();
    let decoded = PostHandshake::decode(&absent).unwrap();
    assert_eq!(decoded.features, vec![Feature::Ctap]);
    for (post, revision) in [
        (decoded.clone(), Revision::One),
        (PostHandshake::ctap(GET_INFO.to_vec()), Revision::One),
        // Revision 0 has no typed frames, so no JSON even if "dc" were listed.
        (PostHandshake::ctap_and_dc(GET_INFO.to_vec()), Revision::Zero),
    ] {
        let (desktop, _) = open(&post, revision);
        let e = desktop.send_json(REQUEST).unwrap_err();
        assert_eq!(e, SessionError::DcNotSupported);
        assert_eq!((e.stage(), e.fault()), (Stage::PostHandshake, Fault::Peer));
        assert!(e.to_string().contains("\"dc\""), "{e}");
    }
}

#[test]
fn reply_type_must_match_and_json_must_be_utf8() {
    let post = PostHandshake::ctap_and_dc(GET_INFO.to_vec());
    let (desktop, mut phone) = open(&post, Revision::One);
    let (mut desktop, ct) = desktop.send_json(REQUEST).unwrap();
    phone.receive(&ct).unwrap();
    // A CTAP reply to a JSON request is a peer error (§8.2: same type as the request).
    let wrong = phone.respond_ctap(StatusCode::Ok, &[0xa0]).unwrap();
    let e = desktop.receive(&wrong).unwrap_err();
    assert!(matches!(e, SessionError::UnexpectedFrame { .. }), "{e:?}");
    assert_eq!(e.fault(), Fault::Peer);

    let (desktop, _) = open(&post, Revision::One);
    assert_eq!(desktop.send_json(b"").unwrap_err(), SessionError::BadJson);
    let (desktop, _) = open(&post, Revision::One);
    assert_eq!(desktop.send_json(&[0xff, 0xfe]).unwrap_err(), SessionError::BadJson);
    let (_, mut phone) = open(&post, Revision::One);
    assert_eq!(phone.respond_json(&[0xc3]).unwrap_err(), SessionError::BadJson);
}
