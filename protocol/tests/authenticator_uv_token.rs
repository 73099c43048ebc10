//! getPinUvAuthTokenUsingUvWithPermissions (0x06) and getUVRetries (0x07) on a built-in-UV
//! configuration, driven by the independent platform-side PIN protocol in the test support
//! module; plus the BE/BS flags being 0.

// Helpers outside #[test] fns unwrap too; this is test code.
#![allow(clippy::unwrap_used, clippy::panic)]

mod authenticator_support;

use authenticator_support::*;
use cablebridge_protocol::authenticator::{
    Config, Ctx, PresenceKind, PresenceOutcome, PresencePolicy, Step,
};
use cablebridge_protocol::cbor::Value;
use cablebridge_protocol::ctap2::StatusCode;

fn uv_phone() -> Harness {
    Harness::new(Config { builtin_uv_token: true, ..Config::virtual_phone() })
}

/// The 0x06 request body; `permissions: None` leaves the member out.
fn uv_token_request(p: &Platform, permissions: Option<i64>, rp_id: Option<&str>) -> Value {
    let mut m =
        vec![(1, Value::int(p.protocol as i64)), (2, Value::int(6)), (3, p.key_agreement.clone())];
    if let Some(perm) = permissions {
        m.push((9, Value::int(perm)));
    }
    if let Some(rp) = rp_id {
        m.push((10, Value::text(rp)));
    }
    Value::int_map(m)
}

fn mc_with_token(token: &[u8], protocol: u64, rp: &str) -> Value {
    let req =
        with(make_credential(rp, b"u", true), 8, Value::bytes(auth_with(protocol, token, &CDH)));
    with(req, 9, Value::int(protocol as i64))
}

#[test]
fn get_info_advertises_uv_token_only_when_configured() {
    let info = uv_phone().ok(0x04, None);
    let opts = info.get(4).unwrap();
    assert_eq!(opts.get_text("pinUvAuthToken"), Some(&Value::Bool(true)));
    assert_eq!(opts.get_text("uv"), Some(&Value::Bool(true)));
    assert_eq!(opts.get_text("clientPin"), None, "no PIN on a phone");
    assert_eq!(info.get(6), Some(&Value::Array(vec![Value::int(2), Value::int(1)])));
    // The default phone has no clientPIN command at all.
    let mut plain = Harness::new(Config::virtual_phone());
    let body = Value::int_map([(1, Value::int(2)), (2, Value::int(7))]);
    assert_eq!(plain.call(0x06, Some(body)).status(), StatusCode::InvalidCommand);
    // A UV token needs built-in UV: on the key the flag is ignored.
    let mut key = Harness::new(Config { builtin_uv_token: true, ..Config::virtual_key() });
    let body = Value::int_map([(1, Value::int(2)), (2, Value::int(7))]);
    assert_eq!(key.call(0x06, Some(body)).status(), StatusCode::InvalidSubcommand);
}

#[test]
fn uv_retries_and_pin_subcommands() {
    let mut h = uv_phone();
    let r = h.ok(0x06, Some(Value::int_map([(1, Value::int(2)), (2, Value::int(7))])));
    assert_eq!(r.get(5).and_then(Value::as_u64), Some(8));
    for pin_sub in [1, 3, 4, 5, 9] {
        let body = Value::int_map([(1, Value::int(2)), (2, Value::int(pin_sub))]);
        assert_eq!(h.call(0x06, Some(body)).status(), StatusCode::InvalidSubcommand, "{pin_sub}");
    }
}

#[test]
fn uv_token_asks_for_verification_then_gates_ceremonies() {
    for protocol in [2u64, 1] {
        let mut h = uv_phone();
        // Without a token, a pinUvAuthParam on a phone is refused like on a key without a PIN.
        let r = h.call(0x01, Some(mc_with_token(&[7; 32], protocol, "example.com")));
        assert_eq!(r.status(), StatusCode::PinAuthInvalid);
        let p = Platform::new(&mut h, protocol);
        h.presence = PresencePolicy::Deferred;
        let Step::Pending(op) =
            h.step(0x06, Some(uv_token_request(&p, Some(0x01 | 0x02), Some("example.com"))))
        else {
            panic!("built-in UV must be asked for")
        };
        assert_eq!(op.request().kind, PresenceKind::UserVerification);
        assert!(op.request().user_verification);
        assert_eq!(op.request().rp_id.as_deref(), Some("example.com"));
        let mut ctx = Ctx { rng: &mut h.rng, now: h.now, presence: &mut h.presence };
        let r = h.auth.complete(op, PresenceOutcome::Approved, &mut ctx).unwrap();
        assert_eq!(r.status(), StatusCode::Ok);
        let body = Value::decode(r.body()).unwrap();
        let token = p.decrypt(body.get(2).unwrap().as_bytes().unwrap());
        assert_eq!(token.len(), 32);
        h.presence = PresencePolicy::AlwaysApprove;
        let att = h.ok(0x01, Some(mc_with_token(&token, protocol, "example.com")));
        let cred = parse_attested(att.get(2).unwrap().as_bytes().unwrap());
        assert_eq!(cred.flags, 0x45, "UP | UV | AT; BE and BS clear");
        let r = h.call(0x01, Some(mc_with_token(&token, protocol, "other.com")));
        assert_eq!(r.status(), StatusCode::PinAuthInvalid, "token bound to example.com");
        let a = h.ok(0x02, Some(get_assertion("example.com", &[])));
        let (flags, _) = verify_assertion(&a, &cred.public_key, "example.com");
        assert_eq!(flags & 0x18, 0, "BE and BS clear");
    }
}

#[test]
fn uv_token_refusals() {
    let mut h = uv_phone();
    let p = Platform::new(&mut h, 2);
    let cases = [
        (None, StatusCode::MissingParameter),
        (Some(0), StatusCode::InvalidParameter),
        (Some(0x20), StatusCode::UnauthorizedPermission),
        (Some(1 << 40), StatusCode::UnauthorizedPermission),
    ];
    for (perm, status) in cases {
        assert_eq!(h.call(0x06, Some(uv_token_request(&p, perm, None))).status(), status);
    }
    let no_protocol = Value::int_map([(2, Value::int(6)), (3, p.key_agreement.clone())]);
    assert_eq!(h.call(0x06, Some(no_protocol)).status(), StatusCode::MissingParameter);
    // The user declining built-in UV issues nothing.
    h.presence = PresencePolicy::AlwaysDeny;
    let r = h.call(0x06, Some(uv_token_request(&p, Some(0x01), None)));
    assert_eq!(r.status(), StatusCode::OperationDenied);
    assert!(r.body().is_empty());
}
