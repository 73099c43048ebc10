//! authenticatorConfig (toggleAlwaysUv, setMinPINLength, enableEnterpriseAttestation), the
//! `minPinLength` extension, enterprise attestation and the persistent `pcmr` token on the
//! software authenticator, driven through the independent platform half in the test support
//! module (its HMAC and encryption are written from the spec, not shared with the crate).

// Helpers outside #[test] fns unwrap too; this is test code.
#![allow(clippy::unwrap_used)]

mod authenticator_support;

use authenticator_support::*;
use cablebridge_protocol::authenticator::{Config, CredentialStore, PersistentState};
use cablebridge_protocol::cbor::Value;
use cablebridge_protocol::ctap2::StatusCode;

const ACFG: u8 = 0x20;
const CM: u8 = 0x04;
const PCMR: u8 = 0x40;

fn key() -> Harness {
    Harness::new(Config::virtual_key())
}

/// `32×0xff ‖ 0x0d ‖ sub ‖ params` written out by hand (CTAP 2.1 §6.11.1).
fn config_request(sub: u8, params: Option<Value>, token: Option<&[u8]>) -> Value {
    let mut m = vec![(1, Value::int(sub.into()))];
    let mut msg = vec![0xffu8; 32];
    msg.extend([0x0d, sub]);
    if let Some(p) = params {
        msg.extend(p.to_vec());
        m.push((2, p));
    }
    if let Some(t) = token {
        m.push((3, Value::int(2)));
        m.push((4, Value::bytes(auth_with(2, t, &msg))));
    }
    Value::int_map(m)
}

fn info_option(h: &mut Harness, name: &str) -> Option<bool> {
    h.ok(0x04, None).get(4).unwrap().get_text(name).and_then(Value::as_bool)
}

fn acfg_token(h: &mut Harness, pin: &str) -> Vec<u8> {
    let (r, t) = get_token(h, 2, pin, Some(ACFG), None);
    assert_eq!(r.status(), StatusCode::Ok);
    t.unwrap()
}

fn change_pin(h: &mut Harness, old: &str, new: &str) -> StatusCode {
    let p = Platform::new(h, 2);
    let new_enc = p.encrypt(&Platform::padded_pin(new));
    let hash_enc = p.pin_hash_enc(old);
    let param = p.authenticate(&[new_enc.clone(), hash_enc.clone()].concat());
    h.call(
        0x06,
        Some(Value::int_map([
            (1, Value::int(2)),
            (2, Value::int(4)),
            (3, p.key_agreement.clone()),
            (4, Value::bytes(param)),
            (5, Value::bytes(new_enc)),
            (6, Value::bytes(hash_enc)),
        ])),
    )
    .status()
}

fn set_min(len: Option<i64>, rp_ids: &[&str], force: Option<bool>) -> Value {
    let mut m = Vec::new();
    if let Some(n) = len {
        m.push((1, Value::int(n)));
    }
    if !rp_ids.is_empty() {
        m.push((2, Value::Array(rp_ids.iter().map(|s| Value::text(*s)).collect())));
    }
    if let Some(f) = force {
        m.push((3, Value::Bool(f)));
    }
    Value::int_map(m)
}

#[test]
fn get_info_advertises_config_options_and_min_pin_length() {
    let mut h = key();
    let info = h.ok(0x04, None);
    let opts = info.get(4).unwrap();
    for (name, v) in [
        ("authnrCfg", true),
        ("alwaysUv", false),
        ("setMinPINLength", true),
        ("ep", false),
        ("perCredMgmtRO", true),
    ] {
        assert_eq!(opts.get_text(name), Some(&Value::Bool(v)), "{name}");
    }
    assert_eq!(info.get(0x0C), Some(&Value::Bool(false)), "forcePINChange");
    assert_eq!(info.get(0x0D).and_then(Value::as_u64), Some(4), "minPINLength");
    assert!(info.get(0x10).and_then(Value::as_u64).unwrap() >= 1, "maxRPIDsForSetMinPINLength");
    let exts = info.get(2).unwrap().as_array().unwrap();
    assert!(exts.contains(&Value::text("minPinLength")));
    // The virtual phone has no authenticatorConfig (phones over hybrid do not offer it).
    let mut phone = Harness::new(Config::virtual_phone());
    assert_eq!(phone.call(0x0D, Some(config_request(2, None, None))).status(), {
        StatusCode::InvalidCommand
    });
}

#[test]
fn toggle_always_uv_needs_acfg_once_a_pin_is_set_and_is_enforced() {
    let mut h = key();
    // No PIN, alwaysUv off: nothing to authenticate with, the platform may omit the param.
    assert_eq!(h.call(0x0D, Some(config_request(2, None, None))).status(), StatusCode::Ok);
    assert_eq!(info_option(&mut h, "alwaysUv"), Some(true));
    // alwaysUv without a PIN: no ceremony at all until one is set.
    let mc = make_credential("example.com", b"u", false);
    assert_eq!(h.call(0x01, Some(mc.clone())).status(), StatusCode::PuatRequired);
    assert_eq!(
        h.call(0x02, Some(get_assertion("example.com", &[b"x"]))).status(),
        StatusCode::PuatRequired
    );
    // alwaysUv on: config commands need a token now.
    assert_eq!(h.call(0x0D, Some(config_request(2, None, None))).status(), {
        StatusCode::PuatRequired
    });
    assert_eq!(set_pin(&mut h, 2, "1234").status(), StatusCode::Ok);
    // A token without acfg does not do.
    let (_, mc_token) = get_token(&mut h, 2, "1234", Some(0x01), Some("example.com"));
    let wrong = config_request(2, None, Some(&mc_token.unwrap()));
    assert_eq!(h.call(0x0D, Some(wrong)).status(), StatusCode::PinAuthInvalid);
    let token = acfg_token(&mut h, "1234");
    // A param over other bytes (the subcommand changed) does not verify.
    let mut forged = config_request(2, None, Some(&token));
    if let Value::Map(m) = &mut forged {
        m[0].1 = Value::int(1);
    }
    assert_eq!(h.call(0x0D, Some(forged)).status(), StatusCode::PinAuthInvalid);
    assert_eq!(h.call(0x0D, Some(config_request(2, None, Some(&token)))).status(), StatusCode::Ok);
    assert_eq!(info_option(&mut h, "alwaysUv"), Some(false));
    assert_eq!(h.call(0x0D, Some(config_request(9, None, Some(&token)))).status(), {
        StatusCode::InvalidSubcommand
    });
}

#[test]
fn set_min_pin_length_is_enforced_and_forces_a_change() {
    let mut h = key();
    assert_eq!(set_pin(&mut h, 2, "12345").status(), StatusCode::Ok);
    let token = acfg_token(&mut h, "12345");
    let req = |p| config_request(3, Some(p), Some(&token));
    assert_eq!(h.call(0x0D, Some(req(set_min(Some(6), &[], None)))).status(), StatusCode::Ok);
    let info = h.ok(0x04, None);
    assert_eq!(info.get(0x0D).and_then(Value::as_u64), Some(6));
    // The current PIN (5 code points) is now too short: a change is forced.
    assert_eq!(info.get(0x0C), Some(&Value::Bool(true)), "forcePINChange");
    let (r, _) = get_token(&mut h, 2, "12345", Some(CM), None);
    assert_eq!(r.status(), StatusCode::PinPolicyViolation, "tokens refused until changed");
    let (r, _) = get_token(&mut h, 2, "12345", None, None);
    assert_eq!(r.status(), StatusCode::PinPolicyViolation, "getPinToken too");
    // Shorter than the new minimum: refused; long enough: accepted and the flag clears.
    assert_eq!(change_pin(&mut h, "12345", "98765"), StatusCode::PinPolicyViolation);
    assert_eq!(change_pin(&mut h, "12345", "987654"), StatusCode::Ok);
    assert_eq!(h.ok(0x04, None).get(0x0C), Some(&Value::Bool(false)));
    let token = acfg_token(&mut h, "987654");
    let req = |p| config_request(3, Some(p), Some(&token));
    // The minimum never shrinks.
    assert_eq!(
        h.call(0x0D, Some(req(set_min(Some(5), &[], None)))).status(),
        StatusCode::PinPolicyViolation
    );
    // forceChangePin alone, same length: forced; the same PIN again is refused.
    assert_eq!(h.call(0x0D, Some(req(set_min(None, &[], Some(true))))).status(), StatusCode::Ok);
    assert_eq!(h.ok(0x04, None).get(0x0C), Some(&Value::Bool(true)));
    assert_eq!(change_pin(&mut h, "987654", "987654"), StatusCode::PinPolicyViolation);
    assert_eq!(change_pin(&mut h, "987654", "abcdef"), StatusCode::Ok);
    // Reset restores the defaults.
    assert_eq!(h.call(0x07, None).status(), StatusCode::Ok);
    let info = h.ok(0x04, None);
    assert_eq!(info.get(0x0D).and_then(Value::as_u64), Some(4));
    assert_eq!(set_pin(&mut h, 2, "1234").status(), StatusCode::Ok);
}

#[test]
fn min_pin_length_extension_answers_listed_rps_only() {
    let mut h = key();
    let ext = Value::text_map([("minPinLength", Value::Bool(true))]);
    let mc = |rp: &str| with(make_credential(rp, b"u", false), 6, ext.clone());
    // Not listed yet: no output.
    let att = h.ok(0x01, Some(mc("example.com")));
    let auth_data = att.get(2).unwrap().as_bytes().unwrap();
    assert_eq!(auth_data[32] & 0x80, 0, "no ED flag");
    let params = set_min(Some(7), &["example.com"], None);
    assert_eq!(h.call(0x0D, Some(config_request(3, Some(params), None))).status(), {
        StatusCode::Ok
    });
    let att = h.ok(0x01, Some(mc("example.com")));
    let parsed = cablebridge_protocol::ctap2::AuthenticatorData::parse(
        att.get(2).unwrap().as_bytes().unwrap(),
    )
    .unwrap();
    let exts = parsed.extensions.unwrap();
    assert_eq!(exts.get_text("minPinLength").and_then(Value::as_u64), Some(7));
    let att = h.ok(0x01, Some(mc("other.com")));
    assert_eq!(att.get(2).unwrap().as_bytes().unwrap()[32] & 0x80, 0, "other RP: nothing");
}

#[test]
fn enterprise_attestation_needs_ep_and_follows_the_rp_list() {
    let mut config = Config::virtual_key();
    config.enterprise_rp_ids = vec!["corp.example".into()];
    let mut h = Harness::new(config);
    let ep = |rp: &str, kind: i64| with(make_credential(rp, b"u", false), 0x0A, Value::int(kind));
    assert_eq!(h.call(0x01, Some(ep("corp.example", 1))).status(), StatusCode::InvalidParameter);
    assert_eq!(h.call(0x0D, Some(config_request(1, None, None))).status(), StatusCode::Ok);
    assert_eq!(info_option(&mut h, "ep"), Some(true));
    let att = h.ok(0x01, Some(ep("corp.example", 1)));
    assert_eq!(att.get(4), Some(&Value::Bool(true)), "listed RP: epAtt");
    assert_eq!(att.get(1).and_then(Value::as_text), Some("packed"));
    let att = h.ok(0x01, Some(ep("other.example", 1)));
    assert_eq!(att.get(4), None, "vendor-facilitated, unlisted RP: ordinary attestation");
    let att = h.ok(0x01, Some(ep("other.example", 2)));
    assert_eq!(att.get(4), Some(&Value::Bool(true)), "platform-managed: any RP");
    assert_eq!(h.call(0x01, Some(ep("corp.example", 3))).status(), StatusCode::InvalidOption);
    // A key without the capability refuses enableEnterpriseAttestation.
    let mut no_ep = Harness::new(Config { enterprise_attestation: false, ..Config::virtual_key() });
    assert_eq!(no_ep.call(0x0D, Some(config_request(1, None, None))).status(), {
        StatusCode::InvalidCommand
    });
}

fn cred_mgmt(sub: u8, params: Option<Value>, token: &[u8]) -> Value {
    let mut msg = vec![sub];
    let mut m = vec![(1, Value::int(sub.into()))];
    if let Some(p) = params {
        msg.extend(p.to_vec());
        m.push((2, p));
    }
    m.push((3, Value::int(2)));
    m.push((4, Value::bytes(auth_with(2, token, &msg))));
    Value::int_map(m)
}

#[test]
fn persistent_read_only_token_enumerates_but_never_changes() {
    let mut h = key();
    assert_eq!(set_pin(&mut h, 2, "1234").status(), StatusCode::Ok);
    let (_, mc) = get_token(&mut h, 2, "1234", Some(0x01), Some("example.com"));
    let req = make_credential("example.com", b"u", true);
    let req = with(with(req, 8, Value::bytes(auth_with(2, &mc.unwrap(), &CDH))), 9, Value::int(2));
    let cred_id = credential_id_of(&h.ok(0x01, Some(req)));
    // pcmr with anything else is refused.
    let (r, _) = get_token(&mut h, 2, "1234", Some(PCMR | CM), None);
    assert_eq!(r.status(), StatusCode::UnauthorizedPermission);
    let (r, pcmr) = get_token(&mut h, 2, "1234", Some(PCMR), None);
    assert_eq!(r.status(), StatusCode::Ok);
    let pcmr = pcmr.unwrap();
    // It survives a power cycle and a newer ordinary token.
    let mut rng: rand::rngs::StdRng = rand::SeedableRng::seed_from_u64(9);
    let now = h.now;
    h.auth.power_cycle(&mut rng, now);
    let _ = get_token(&mut h, 2, "1234", Some(0x01), Some("example.com"));
    let meta = h.ok(0x0A, Some(cred_mgmt(1, None, &pcmr)));
    assert_eq!(meta.get(1).and_then(Value::as_u64), Some(1));
    let rps = h.ok(0x0A, Some(cred_mgmt(2, None, &pcmr)));
    assert_eq!(rps.get(3).unwrap().get_text("id").and_then(Value::as_text), Some("example.com"));
    let hash = rps.get(4).unwrap().clone();
    let creds = h.ok(0x0A, Some(cred_mgmt(4, Some(Value::int_map([(1, hash)])), &pcmr)));
    assert_eq!(creds.get(9).and_then(Value::as_u64), Some(1));
    // Read-only: delete is refused with it, and the credential is still there.
    let del = Value::int_map([(2, descriptor(&cred_id))]);
    assert_eq!(h.call(0x0A, Some(cred_mgmt(6, Some(del), &pcmr))).status(), {
        StatusCode::PinAuthInvalid
    });
    assert_eq!(h.auth.store().state().credentials.len(), 1);
    // Persisted with the state; revoked by a PIN change.
    let exported = h.auth.store().state().export();
    let back = PersistentState::import(exported.expose()).unwrap();
    assert_eq!(&back, h.auth.store().state());
    assert!(back.settings.persistent_token.is_some());
    assert_eq!(change_pin(&mut h, "1234", "5678"), StatusCode::Ok);
    assert_eq!(h.call(0x0A, Some(cred_mgmt(1, None, &pcmr))).status(), StatusCode::PinAuthInvalid);
}

fn credential_id_of(att: &Value) -> Vec<u8> {
    parse_attested(att.get(2).unwrap().as_bytes().unwrap()).credential_id
}

#[test]
fn settings_survive_export_and_old_files_import_with_defaults() {
    let mut h = key();
    assert_eq!(h.call(0x0D, Some(config_request(2, None, None))).status(), StatusCode::Ok);
    let params = set_min(Some(8), &["a.example"], None);
    // alwaysUv is on now, so setMinPINLength needs a token: set a PIN first.
    assert_eq!(set_pin(&mut h, 2, "12345678").status(), StatusCode::Ok);
    let t = acfg_token(&mut h, "12345678");
    assert_eq!(h.call(0x0D, Some(config_request(3, Some(params), Some(&t)))).status(), {
        StatusCode::Ok
    });
    let state = h.auth.store().state().clone();
    assert!(state.settings.always_uv);
    assert_eq!(state.settings.min_pin_length, 8);
    assert_eq!(state.settings.pin_code_points, Some(8));
    assert!(!state.settings.force_pin_change, "the PIN is long enough");
    let back = PersistentState::import(state.export().expose()).unwrap();
    assert_eq!(back, state);
    // A file written before settings existed (no key 0x20) imports with the defaults.
    let mut old = state.clone();
    old.settings = Default::default();
    let bytes = old.export();
    let v = Value::decode(bytes.expose()).unwrap();
    assert!(v.get(0x20).is_none());
    assert_eq!(PersistentState::import(bytes.expose()).unwrap().settings, Default::default());
}

fn bio(sub: u8, params: Option<Value>, token: Option<&[u8]>) -> Value {
    let mut m = vec![(1, Value::int(1)), (2, Value::int(sub.into()))];
    let mut msg = vec![0x01, sub];
    if let Some(p) = params {
        msg.extend(p.to_vec());
        m.push((3, p));
    }
    if let Some(t) = token {
        m.push((4, Value::int(2)));
        m.push((5, Value::bytes(auth_with(2, t, &msg))));
    }
    Value::int_map(m)
}

#[test]
fn bio_enrollment_on_the_simulated_sensor() {
    // Without a sensor: no such command (0x09 and the 0x40 preview).
    let mut plain = key();
    assert_eq!(plain.call(0x09, Some(bio(7, None, None))).status(), StatusCode::InvalidCommand);
    let mut h = Harness::new(Config { bio: true, ..Config::virtual_key() });
    assert_eq!(info_option(&mut h, "bioEnroll"), Some(false));
    assert_eq!(info_option(&mut h, "uv"), Some(false));
    let modality = h.ok(0x09, Some(Value::int_map([(6, Value::Bool(true))])));
    assert_eq!(modality.get(1).and_then(Value::as_u64), Some(1));
    let sensor = h.ok(0x40, Some(bio(7, None, None)));
    assert_eq!(sensor.get(2).and_then(Value::as_u64), Some(1), "touch sensor");
    assert_eq!(sensor.get(3).and_then(Value::as_u64), Some(4));
    // Enrolling needs a token with `be`.
    assert_eq!(h.call(0x09, Some(bio(1, None, None))).status(), StatusCode::PuatRequired);
    assert_eq!(set_pin(&mut h, 2, "1234").status(), StatusCode::Ok);
    let (_, cm) = get_token(&mut h, 2, "1234", Some(CM), None);
    assert_eq!(
        h.call(0x09, Some(bio(1, None, Some(&cm.unwrap())))).status(),
        StatusCode::PinAuthInvalid
    );
    let (_, be) = get_token(&mut h, 2, "1234", Some(0x08), None);
    let be = be.unwrap();
    let begin = h.ok(0x09, Some(bio(1, None, Some(&be))));
    let id = begin.get(4).unwrap().clone();
    assert_eq!(begin.get(5).and_then(Value::as_u64), Some(0), "FP_GOOD");
    let mut remaining = begin.get(6).and_then(Value::as_u64).unwrap();
    assert_eq!(remaining, 3);
    while remaining > 0 {
        let next = h.ok(0x09, Some(bio(2, Some(Value::int_map([(1, id.clone())])), Some(&be))));
        remaining = next.get(6).and_then(Value::as_u64).unwrap();
    }
    assert_eq!(info_option(&mut h, "bioEnroll"), Some(true));
    assert_eq!(info_option(&mut h, "uv"), Some(true), "built-in UV once enrolled");
    let rename = Value::int_map([(1, id.clone()), (2, Value::text("left thumb"))]);
    assert_eq!(h.call(0x09, Some(bio(5, Some(rename), Some(&be)))).status(), StatusCode::Ok);
    let list = h.ok(0x09, Some(bio(4, None, Some(&be))));
    let infos = list.get(7).unwrap().as_array().unwrap();
    assert_eq!(infos.len(), 1);
    assert_eq!(infos[0].get(2).and_then(Value::as_text), Some("left thumb"));
    // Built-in UV now: a ceremony without a pinUvAuthParam is user-verified.
    let att = h.ok(0x01, Some(make_credential("example.com", b"u", false)));
    assert_eq!(parse_attested(att.get(2).unwrap().as_bytes().unwrap()).flags & 0x04, 0x04);
    // A cancelled enrollment stores nothing; unknown ids are INVALID_OPTION.
    let begin = h.ok(0x09, Some(bio(1, None, Some(&be))));
    assert_eq!(h.call(0x09, Some(bio(3, None, None))).status(), StatusCode::Ok);
    let next = Value::int_map([(1, begin.get(4).unwrap().clone())]);
    assert_eq!(h.call(0x09, Some(bio(2, Some(next), Some(&be)))).status(), {
        StatusCode::InvalidParameter
    });
    let bogus = Value::int_map([(1, Value::bytes(vec![9, 9, 9]))]);
    assert_eq!(h.call(0x09, Some(bio(6, Some(bogus), Some(&be)))).status(), {
        StatusCode::InvalidOption
    });
    assert_eq!(h.call(0x09, Some(bio(6, Some(Value::int_map([(1, id)])), Some(&be)))).status(), {
        StatusCode::Ok
    });
    assert_eq!(h.call(0x09, Some(bio(4, None, Some(&be)))).status(), StatusCode::InvalidOption);
    assert_eq!(info_option(&mut h, "uv"), Some(false));
}
