//! clientPIN, pinUvAuthToken permissions, credential management and reset, driven through a
//! platform-side PIN protocol implementation written independently in the test support module.

// Helpers outside #[test] fns unwrap too; this is test code.
#![allow(clippy::unwrap_used)]

mod authenticator_support;

use authenticator_support::*;
use cablebridge_protocol::authenticator::{Config, CredentialStore, PresencePolicy};
use cablebridge_protocol::cbor::Value;
use cablebridge_protocol::ctap2::StatusCode;
use std::time::Duration;

fn key() -> Harness {
    Harness::new(Config::virtual_key())
}

fn retries(h: &mut Harness) -> u64 {
    h.ok(0x06, Some(Value::int_map([(1, Value::int(2)), (2, Value::int(1))])))
        .get(3)
        .unwrap()
        .as_u64()
        .unwrap()
}

fn mc_with_token(token: &[u8], protocol: u64, rp: &str, user: &[u8], rk: bool) -> Value {
    let req = make_credential(rp, user, rk);
    let req = with(req, 8, Value::bytes(auth_with(protocol, token, &CDH)));
    with(req, 9, Value::int(protocol as i64))
}

#[test]
fn set_pin_then_token_gates_make_credential() {
    for protocol in [2u64, 1] {
        let mut h = key();
        assert_eq!(set_pin(&mut h, protocol, "12").status(), StatusCode::PinPolicyViolation);
        assert_eq!(set_pin(&mut h, protocol, "1234").status(), StatusCode::Ok);
        assert_eq!(
            set_pin(&mut h, protocol, "5678").status(),
            StatusCode::PinAuthInvalid,
            "already set"
        );
        let info = h.ok(0x04, None);
        assert_eq!(info.get(4).unwrap().get_text("clientPin"), Some(&Value::Bool(true)));
        // No UV → a PIN-protected key demands a token.
        assert_eq!(
            h.call(0x01, Some(make_credential("example.com", b"u", true))).status(),
            StatusCode::PuatRequired
        );
        let (r, token) =
            get_token(&mut h, protocol, "1234", Some(0x01 | 0x02), Some("example.com"));
        assert_eq!(r.status(), StatusCode::Ok);
        let token = token.unwrap();
        assert_eq!(token.len(), 32);
        let att = h.ok(0x01, Some(mc_with_token(&token, protocol, "example.com", b"u", true)));
        let cred = parse_attested(att.get(2).unwrap().as_bytes().unwrap());
        assert_eq!(cred.flags & 0x04, 0x04, "UV set with a token");
        // Bound to example.com.
        let r = h.call(0x01, Some(mc_with_token(&token, protocol, "other.com", b"u", true)));
        assert_eq!(r.status(), StatusCode::PinAuthInvalid);
        // Wrong MAC.
        let r = h.call(0x01, Some(mc_with_token(&[0u8; 32], protocol, "example.com", b"u", true)));
        assert_eq!(r.status(), StatusCode::PinAuthInvalid);
        // getAssertion with the token: UV flag; without: UP only.
        let ga = with(
            get_assertion("example.com", &[]),
            6,
            Value::bytes(auth_with(protocol, &token, &CDH)),
        );
        let a = h.ok(0x02, Some(with(ga, 7, Value::int(protocol as i64))));
        assert_eq!(verify_assertion(&a, &cred.public_key, "example.com").0, 0x05);
        let a = h.ok(0x02, Some(get_assertion("example.com", &[])));
        assert_eq!(verify_assertion(&a, &cred.public_key, "example.com").0, 0x01);
        // Tokens expire.
        h.advance(Duration::from_secs(601));
        let r = h.call(0x01, Some(mc_with_token(&token, protocol, "example.com", b"u", true)));
        assert_eq!(r.status(), StatusCode::PinAuthInvalid);
    }
}

#[test]
fn permissions_are_enforced() {
    let mut h = key();
    set_pin(&mut h, 2, "1234");
    let (r, _) = get_token(&mut h, 2, "1234", Some(0), None);
    assert_eq!(r.status(), StatusCode::InvalidParameter);
    // bioEnrollment: this key has no fingerprint sensor (acfg and pcmr are supported now).
    let (r, _) = get_token(&mut h, 2, "1234", Some(0x08), None);
    assert_eq!(r.status(), StatusCode::UnauthorizedPermission);
    // A ga-only token cannot make credentials; a cm token cannot get assertions.
    let (_, ga_token) = get_token(&mut h, 2, "1234", Some(0x02), Some("example.com"));
    let r = h.call(0x01, Some(mc_with_token(&ga_token.unwrap(), 2, "example.com", b"u", true)));
    assert_eq!(r.status(), StatusCode::PinAuthInvalid);
    // Legacy getPinToken grants mc|ga.
    let (_, legacy) = get_token(&mut h, 2, "1234", None, None);
    let legacy = legacy.unwrap();
    assert_eq!(
        h.call(0x01, Some(mc_with_token(&legacy, 2, "example.com", b"u", true))).status(),
        StatusCode::Ok
    );
    // Issuing a new token invalidates the old one.
    get_token(&mut h, 2, "1234", Some(0x04), None);
    let r = h.call(0x01, Some(mc_with_token(&legacy, 2, "example.com", b"u2", true)));
    assert_eq!(r.status(), StatusCode::PinAuthInvalid);
}

#[test]
fn change_pin_and_wrong_pin_retries_blocking() {
    let mut h = key();
    assert_eq!(set_pin(&mut h, 2, "1234").status(), StatusCode::Ok);
    assert_eq!(retries(&mut h), 8);
    // changePIN with the right current PIN.
    let p = Platform::new(&mut h, 2);
    let new_enc = p.encrypt(&Platform::padded_pin("abcdef"));
    let hash_enc = p.pin_hash_enc("1234");
    let param = p.authenticate(&[new_enc.clone(), hash_enc.clone()].concat());
    let change = Value::int_map([
        (1, Value::int(2)),
        (2, Value::int(4)),
        (3, p.key_agreement.clone()),
        (4, Value::bytes(param)),
        (5, Value::bytes(new_enc)),
        (6, Value::bytes(hash_enc)),
    ]);
    assert_eq!(h.call(0x06, Some(change)).status(), StatusCode::Ok);
    assert_eq!(get_token(&mut h, 2, "1234", None, None).0.status(), StatusCode::PinInvalid);
    assert_eq!(
        get_token(&mut h, 1, "abcdef", None, None).0.status(),
        StatusCode::Ok,
        "retries reset"
    );
    assert_eq!(retries(&mut h), 8);
    // Three consecutive mismatches latch PIN_AUTH_BLOCKED until power cycle.
    assert_eq!(get_token(&mut h, 2, "0000", None, None).0.status(), StatusCode::PinInvalid);
    assert_eq!(get_token(&mut h, 2, "0000", None, None).0.status(), StatusCode::PinInvalid);
    assert_eq!(get_token(&mut h, 2, "0000", None, None).0.status(), StatusCode::PinAuthBlocked);
    assert_eq!(get_token(&mut h, 2, "abcdef", None, None).0.status(), StatusCode::PinAuthBlocked);
    assert_eq!(retries(&mut h), 5);
    h.auth.power_cycle(&mut h.rng, h.now);
    assert_eq!(get_token(&mut h, 2, "0000", None, None).0.status(), StatusCode::PinInvalid);
    assert_eq!(get_token(&mut h, 2, "0000", None, None).0.status(), StatusCode::PinInvalid);
    assert_eq!(get_token(&mut h, 2, "0000", None, None).0.status(), StatusCode::PinAuthBlocked);
    assert_eq!(retries(&mut h), 2);
    h.auth.power_cycle(&mut h.rng, h.now);
    assert_eq!(get_token(&mut h, 2, "0000", None, None).0.status(), StatusCode::PinInvalid);
    assert_eq!(get_token(&mut h, 2, "0000", None, None).0.status(), StatusCode::PinBlocked);
    assert_eq!(retries(&mut h), 0);
    h.auth.power_cycle(&mut h.rng, h.now);
    assert_eq!(get_token(&mut h, 2, "abcdef", None, None).0.status(), StatusCode::PinBlocked);
    // Reset recovers.
    h.ok(0x07, None);
    assert_eq!(h.ok(0x04, None).get(4).unwrap().get_text("clientPin"), Some(&Value::Bool(false)));
    assert_eq!(retries(&mut h), 8);
}

fn cm(
    h: &mut Harness,
    token: &[u8],
    sub: u8,
    params: Option<Value>,
) -> cablebridge_protocol::authenticator::Response {
    let mut msg = vec![sub];
    if let Some(p) = &params {
        p.encode_into(&mut msg);
    }
    let mut m = vec![
        (1, Value::int(sub.into())),
        (3, Value::int(2)),
        (4, Value::bytes(auth_with(2, token, &msg))),
    ];
    if let Some(p) = params {
        m.push((2, p));
    }
    h.call(0x0A, Some(Value::int_map(m)))
}

#[test]
fn credential_management_enumerates_updates_and_deletes() {
    let mut h = key();
    set_pin(&mut h, 2, "1234");
    for (rp, user) in [("a.com", &b"u1"[..]), ("b.com", b"u2"), ("b.com", b"u3")] {
        // The mc token binds to the first RP it is used with, so mint one per RP.
        let (_, t) = get_token(&mut h, 2, "1234", Some(0x01), Some(rp));
        h.ok(0x01, Some(mc_with_token(&t.unwrap(), 2, rp, user, true)));
    }
    let (_, cm_token) = get_token(&mut h, 2, "1234", Some(0x04), None);
    let t = cm_token.unwrap();
    let meta = Value::decode(cm(&mut h, &t, 0x01, None).body()).unwrap();
    assert_eq!(meta.get(1).and_then(Value::as_u64), Some(3));
    assert_eq!(meta.get(2).and_then(Value::as_u64), Some(61));
    let first = Value::decode(cm(&mut h, &t, 0x02, None).body()).unwrap();
    assert_eq!(first.get(5).and_then(Value::as_u64), Some(2));
    let rp1 = first.get(3).unwrap().get_text("id").unwrap().as_text().unwrap().to_owned();
    let second = h.ok(0x0A, Some(Value::int_map([(1, Value::int(3))])));
    let rp2 = second.get(3).unwrap().get_text("id").unwrap().as_text().unwrap().to_owned();
    assert_eq!((rp1.as_str(), rp2.as_str()), ("a.com", "b.com"));
    assert_eq!(
        h.call(0x0A, Some(Value::int_map([(1, Value::int(3))]))).status(),
        StatusCode::NotAllowed
    );

    let params =
        Value::int_map([(1, Value::bytes(second.get(4).unwrap().as_bytes().unwrap().to_vec()))]);
    let c1 = Value::decode(cm(&mut h, &t, 0x04, Some(params)).body()).unwrap();
    assert_eq!(c1.get(9).and_then(Value::as_u64), Some(2));
    let c2 = h.ok(0x0A, Some(Value::int_map([(1, Value::int(5))])));
    let id_of = |c: &Value| c.get(7).unwrap().get_text("id").unwrap().as_bytes().unwrap().to_vec();
    let users: Vec<Vec<u8>> = [&c1, &c2]
        .iter()
        .map(|c| c.get(6).unwrap().get_text("id").unwrap().as_bytes().unwrap().to_vec())
        .collect();
    assert_eq!(users, vec![b"u2".to_vec(), b"u3".to_vec()]);

    // Update user information of u2.
    let upd = Value::int_map([
        (2, descriptor(&id_of(&c1))),
        (
            3,
            Value::text_map([
                ("id", Value::bytes(b"u2".to_vec())),
                ("name", Value::text("bob")),
                ("displayName", Value::text("Bob")),
            ]),
        ),
    ]);
    assert_eq!(cm(&mut h, &t, 0x07, Some(upd)).status(), StatusCode::Ok);
    let a = h.ok(0x02, Some(get_assertion("b.com", &[&id_of(&c1)])));
    assert_eq!(credential_id(&a), id_of(&c1));
    let stored =
        h.auth.store().state().credentials.iter().find(|c| c.id == id_of(&c1)).unwrap().clone();
    assert_eq!(stored.user_name.as_deref(), Some("bob"));

    // Delete u3; a wrong MAC or a token without cm is refused.
    let del = Value::int_map([(2, descriptor(&id_of(&c2)))]);
    assert_eq!(
        cm(&mut h, &[0u8; 32], 0x06, Some(del.clone())).status(),
        StatusCode::PinAuthInvalid
    );
    assert_eq!(cm(&mut h, &t, 0x06, Some(del.clone())).status(), StatusCode::Ok);
    assert_eq!(cm(&mut h, &t, 0x06, Some(del)).status(), StatusCode::NoCredentials);
    assert_eq!(h.auth.store().state().credentials.len(), 2);
    let (_, ga_only) = get_token(&mut h, 2, "1234", Some(0x02), None);
    assert_eq!(cm(&mut h, &ga_only.unwrap(), 0x01, None).status(), StatusCode::PinAuthInvalid);
}

#[test]
fn reset_wipes_credentials_and_honours_window_and_presence() {
    let mut h = Harness::new(Config {
        reset_window: Some(Duration::from_secs(10)),
        ..Config::virtual_key()
    });
    let att = h.ok(0x01, Some(make_credential("example.com", b"u", false)));
    let id = parse_attested(att.get(2).unwrap().as_bytes().unwrap()).credential_id;
    h.presence = PresencePolicy::AlwaysDeny;
    assert_eq!(h.call(0x07, None).status(), StatusCode::OperationDenied);
    h.presence = PresencePolicy::AlwaysApprove;
    h.advance(Duration::from_secs(11));
    assert_eq!(h.call(0x07, None).status(), StatusCode::NotAllowed);
    h.auth.power_cycle(&mut h.rng, h.now);
    assert_eq!(h.call(0x07, None).status(), StatusCode::Ok);
    // New master key: the old non-resident credential no longer opens.
    assert_eq!(
        h.call(0x02, Some(get_assertion("example.com", &[&id]))).status(),
        StatusCode::NoCredentials
    );
    assert_eq!(h.call(0x0B, None).status(), StatusCode::Ok, "selection needs only presence");
}
