//! Vector tests for the QR, digits, KDF, domain, EID and tunnel-addressing modules, driven by
//! `tests/vectors/hybrid.json` (upstream vectors plus the synthetic transcripts of §10.5).

// Test helpers outside `#[test]` fns: a malformed vector file should fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cablebridge_protocol::cbor::Value;
use cablebridge_protocol::hybrid::digits;
use cablebridge_protocol::hybrid::domain::{tunnel_domain, DomainError};
use cablebridge_protocol::hybrid::eid::{EidKey, EidMode, EidPlaintext, TrialOpen};
use cablebridge_protocol::hybrid::keys::{self, EidKeyBytes, KeyPurpose, LinkSecret, QrSecret};
use cablebridge_protocol::hybrid::qr::{QrPayload, RequestHint};
use cablebridge_protocol::hybrid::tunnel::{self, ClientPayload, RoutingId, TunnelId, TunnelPath};
use proptest::prelude::*;
use serde_json::Value as Json;

fn vectors() -> Json {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/hybrid.json"))
            .expect("vector file");
    serde_json::from_str(&text).expect("vector JSON")
}

fn s<'a>(v: &'a Json, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("vector field {key} missing"))
}

fn h(v: &Json, key: &str) -> Vec<u8> {
    hex::decode(s(v, key)).unwrap()
}

fn arr<const N: usize>(v: &Json, key: &str) -> [u8; N] {
    h(v, key).try_into().unwrap()
}

fn match_of(t: TrialOpen) -> cablebridge_protocol::hybrid::eid::OpenedAdvert {
    match t {
        TrialOpen::Match(o) => o,
        other => panic!("expected a match, got {other:?}"),
    }
}

#[test]
fn upstream_digits() {
    let v = vectors();
    let cases = v["upstream"]["digits"].as_array().unwrap();
    assert!(cases.len() >= 11);
    for c in cases {
        let bytes = h(c, "bytes_hex");
        assert_eq!(digits::encode(&bytes), s(c, "digits"));
        assert_eq!(digits::decode(s(c, "digits")).unwrap(), bytes);
    }
    let rejects = v["upstream"]["digits_reject"].as_array().unwrap();
    assert!(!rejects.is_empty());
    for r in rejects {
        let r = r.as_str().unwrap();
        assert!(digits::decode(r).is_err(), "{r} must be rejected");
    }
}

#[test]
fn upstream_qr_urls_round_trip_byte_exactly() {
    let v = vectors();
    for c in v["upstream"]["qr_urls"].as_array().unwrap() {
        let qr = QrPayload::from_url(s(c, "url")).unwrap();
        assert_eq!(qr.to_cbor(), h(c, "cbor"), "{}", s(c, "source"));
        assert_eq!(qr.to_url(), s(c, "url"));
        assert_eq!(qr.hint, Some(RequestHint::MakeCredential));
        assert_eq!(qr.known_domains, 2);
        assert!(qr.unknown_keys.is_empty());
        // Lower-case prefix is accepted too.
        let lower = s(c, "url").replacen("FIDO:/", "fido:/", 1);
        assert_eq!(QrPayload::from_url(&lower).unwrap(), qr);
    }
}

#[test]
fn upstream_kdf_tunnel_ids_domains() {
    let v = vectors();
    let u = &v["upstream"];
    for c in u["kdf"].as_array().unwrap() {
        assert_eq!(c["purpose"].as_u64(), Some(1));
        let out: [u8; 64] = keys::derive_array(&h(c, "secret"), &h(c, "salt"), KeyPurpose::EidKey);
        assert_eq!(out.to_vec(), h(c, "out"));
    }
    for c in u["tunnel_ids"].as_array().unwrap() {
        let id = TunnelId::derive(&QrSecret::new(arr(c, "qr_secret")));
        assert_eq!(id.to_hex(), s(c, "tunnel_id"));
    }
    for c in u["domains"].as_array().unwrap() {
        let id = u16::try_from(c["id"].as_u64().unwrap()).unwrap();
        match c["host"].as_str() {
            Some(host) => assert_eq!(tunnel_domain(id).unwrap(), host),
            None => assert_eq!(tunnel_domain(id), Err(DomainError::Reserved(id))),
        }
    }
}

#[test]
fn upstream_adverts() {
    let v = vectors();
    for c in v["upstream"]["adverts"].as_array().unwrap() {
        let secret = QrSecret::new(arr(c, "qr_secret"));
        let key = EidKey::from_qr_secret(&secret);
        let opened = match_of(key.trial_open(&h(c, "advert"), EidMode::Qr));
        let pt = opened.plaintext;
        assert_eq!(pt.0.to_vec(), h(c, "eid_plaintext"));
        assert_eq!(pt.nonce().to_vec(), h(c, "nonce"));
        assert_eq!(pt.routing_id().to_hex().to_lowercase(), s(c, "routing_id"));
        assert_eq!(u64::from(pt.domain_id()), c["domain_id"].as_u64().unwrap());
        let host = pt.tunnel_host().unwrap();
        let url =
            tunnel::url(&tunnel::wss_base(&host), &pt.connect_path(TunnelId::derive(&secret)));
        assert_eq!(url, s(c, "connect_url"));
        assert_eq!(opened.psk(&secret).expose().to_vec(), h(c, "psk"));
        assert_eq!(key.seal(&pt).to_vec(), h(c, "advert"));
    }
}

#[test]
fn transcript_qr() {
    let v = vectors();
    let t = &v["transcripts"]["qr"];
    let sk = p256::SecretKey::from_slice(&h(t, "qr_private_scalar")).unwrap();
    let secret = QrSecret::new(arr(t, "qr_secret"));
    // Field values are read from the vector's CBOR, then the payload is rebuilt from parts.
    let wire = Value::decode(&h(t, "qr_cbor")).unwrap();
    let qr = QrPayload {
        public_key: sk.public_key(),
        secret: secret.clone(),
        known_domains: wire.get(2).and_then(Value::as_u64).unwrap(),
        timestamp: wire.get(3).and_then(Value::as_u64),
        linking: wire.get(4).and_then(Value::as_bool),
        hint: wire.get(5).and_then(Value::as_text).map(RequestHint::from_wire),
        unknown_keys: vec![],
    };
    assert_eq!(qr.timestamp, Some(1_700_000_000));
    assert_eq!(qr.public_key_compressed().to_vec(), h(t, "qr_public_compressed"));
    assert_eq!(qr.public_key_uncompressed().to_vec(), h(t, "qr_public_uncompressed"));
    assert_eq!(qr.to_cbor(), h(t, "qr_cbor"));
    assert_eq!(qr.to_url(), s(t, "qr_url"));
    assert_eq!(QrPayload::from_url(s(t, "qr_url")).unwrap(), qr);

    let eid_bytes: [u8; 64] = keys::derive_array(secret.expose(), &[], KeyPurpose::EidKey);
    assert_eq!(eid_bytes.to_vec(), h(t, "eid_key"));
    let tunnel_id = qr.tunnel_id();
    assert_eq!(tunnel_id.to_hex(), s(t, "tunnel_id"));
    let host = tunnel_domain(0).unwrap();
    let new_url = tunnel::url(&tunnel::wss_base(&host), &TunnelPath::New { tunnel_id });
    assert_eq!(new_url, s(t, "new_tunnel_url"));

    let routing = RoutingId::parse_hex(s(t, "routing_id")).unwrap();
    let pt = EidPlaintext::new(arr(t, "ble_nonce"), routing, 0);
    assert_eq!(pt.0.to_vec(), h(t, "eid_plaintext"));
    let key = EidKey::from_qr_secret(&secret);
    assert_eq!(key.seal(&pt).to_vec(), h(t, "advert_service_data"));
    let from_bytes = EidKey::from_bytes(&EidKeyBytes::new(eid_bytes));
    assert_eq!(from_bytes.seal(&pt), key.seal(&pt));
    let opened = match_of(key.trial_open(&h(t, "advert_service_data"), EidMode::Qr));
    assert_eq!(opened.plaintext, pt);
    let url = tunnel::url(&tunnel::wss_base(&host), &pt.connect_path(tunnel_id));
    assert_eq!(url, s(t, "connect_url"));
    assert_eq!(opened.psk(&secret).expose().to_vec(), h(t, "psk"));
}

#[test]
fn transcript_linked() {
    let v = vectors();
    let t = &v["transcripts"]["linked"];
    let linking = &v["transcripts"]["linking"];
    let client_nonce: [u8; 16] = arr(t, "client_nonce");
    let payload = ClientPayload {
        link_id: arr(linking, "pairing_id"),
        client_nonce,
        hint: RequestHint::GetAssertion,
    };
    assert_eq!(payload.to_cbor(), h(t, "client_payload_cbor"));
    assert_eq!(payload.header_value(), s(t, "X-caBLE-Client-Payload"));
    assert_eq!(ClientPayload::parse_header(s(t, "X-caBLE-Client-Payload")).unwrap(), payload);

    let contact = TunnelPath::Contact { contact_id: h(linking, "contact_id") };
    let url = tunnel::url(&tunnel::wss_base(&tunnel_domain(0).unwrap()), &contact);
    assert_eq!(url, s(t, "contact_url"));

    let link_secret = LinkSecret::new(arr(t, "paired_secret"));
    let eid_bytes: [u8; 64] =
        keys::derive_array(link_secret.expose(), &client_nonce, KeyPurpose::EidKey);
    assert_eq!(eid_bytes.to_vec(), h(t, "eid_key"));
    let key = EidKey::from_link(&link_secret, &client_nonce);
    let pt = EidPlaintext(arr(t, "eid_plaintext"));
    assert_eq!(key.seal(&pt).to_vec(), h(t, "advert_service_data"));
    let opened = match_of(key.trial_open(&h(t, "advert_service_data"), EidMode::Linked));
    assert_eq!(opened.plaintext, pt);
    assert_eq!(opened.psk(&link_secret).expose().to_vec(), h(t, "psk"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cablebridge_protocol::proptest_cases!(128), ..ProptestConfig::default() })]

    #[test]
    fn digits_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let d = digits::encode(&bytes);
        prop_assert!(d.bytes().all(|c| c.is_ascii_digit()));
        prop_assert_eq!(digits::decode(&d).unwrap(), bytes);
    }

    #[test]
    fn digits_decode_never_panics(s in "[0-9a]{0,60}") {
        let _ = digits::decode(&s);
    }

    #[test]
    fn tampered_advert_never_matches(
        secret in any::<[u8; 16]>(),
        nonce in any::<[u8; 10]>(),
        routing in any::<[u8; 3]>(),
        domain in prop_oneof![0u16..2, 256u16..=u16::MAX],
        bit in 0usize..160,
    ) {
        let key = EidKey::from_qr_secret(&QrSecret::new(secret));
        let pt = EidPlaintext::new(nonce, RoutingId(routing), domain);
        let mut advert = key.seal(&pt);
        prop_assert!(matches!(key.trial_open(&advert, EidMode::Qr), TrialOpen::Match(_)));
        advert[bit / 8] ^= 1 << (bit % 8);
        for mode in [EidMode::Qr, EidMode::Linked] {
            prop_assert!(!matches!(key.trial_open(&advert, mode), TrialOpen::Match(_)));
            prop_assert!(!matches!(key.trial_open_diagnostic(&advert, mode), TrialOpen::Match(_)));
        }
    }
}
