//! The software authenticator's extensions driven by the independent platform half in the test
//! support module (its PIN/UV protocol code is written from the spec text, not ours):
//! hmac-secret with protocols 1 and 2 and one or two salts, hmac-secret-mc, phone-style prf,
//! credProtect enforcement, credBlob, and getInfo advertising them.
#![allow(clippy::unwrap_used)]

mod authenticator_support;

use authenticator_support::*;
use cablebridge_protocol::authenticator::Config;
use cablebridge_protocol::cbor::Value;
use cablebridge_protocol::ctap2::{AuthenticatorData, StatusCode};

fn ext(req: Value, key: i64, e: Value) -> Value {
    with(req, key, e)
}

/// hmac-secret input for `salts` under a fresh key agreement; returns it with the platform.
fn hmac_input(h: &mut Harness, protocol: u64, salts: &[u8]) -> (Value, Platform) {
    let p = Platform::new(h, protocol);
    let salt_enc = p.encrypt(salts);
    let input = Value::int_map([
        (1, p.key_agreement.clone()),
        (2, Value::bytes(salt_enc.clone())),
        (3, Value::bytes(p.authenticate(&salt_enc))),
        (4, Value::int(protocol as i64)),
    ]);
    (input, p)
}

fn auth_data_ext(resp: &Value, key: i64) -> Value {
    let ad = resp.get(key).unwrap().as_bytes().unwrap();
    assert_eq!(ad[32] & 0x80, 0x80, "ED flag");
    // Skip the attested credential data, if any, by decoding items from the end.
    let mut pos = 37;
    if ad[32] & 0x40 != 0 {
        let id_len = u16::from_be_bytes([ad[53], ad[54]]) as usize;
        pos = 55 + id_len;
        let (_, used) = Value::decode_prefix(&ad[pos..]).unwrap();
        pos += used;
    }
    Value::decode(&ad[pos..]).unwrap()
}

/// The credential ID of a makeCredential response (parsed with the crate's own authData parser:
/// the support module's parser does not expect extensions after the key).
fn new_id(att: &Value) -> Vec<u8> {
    let ad = AuthenticatorData::parse(att.get(2).unwrap().as_bytes().unwrap()).unwrap();
    ad.attested_credential.unwrap().credential_id
}

fn hmac_get(h: &mut Harness, protocol: u64, id: &[u8], salts: &[u8]) -> Vec<u8> {
    let (input, p) = hmac_input(h, protocol, salts);
    let ga = ext(get_assertion("example.com", &[id]), 4, Value::text_map([("hmac-secret", input)]));
    let resp = h.ok(0x02, Some(ga));
    let enc = auth_data_ext(&resp, 2).get_text("hmac-secret").unwrap().as_bytes().unwrap().to_vec();
    p.decrypt(&enc)
}

#[test]
fn hmac_secret_is_stable_per_credential_and_salt_for_both_protocols() {
    let mut h = Harness::new(Config::virtual_key());
    let info = h.ok(0x04, None);
    let exts: Vec<_> =
        info.get(2).unwrap().as_array().unwrap().iter().filter_map(Value::as_text).collect();
    for e in ["hmac-secret", "hmac-secret-mc", "credProtect", "credBlob", "largeBlobKey"] {
        assert!(exts.contains(&e), "{e} in {exts:?}");
    }
    for rk in [true, false] {
        let mc = ext(
            make_credential("example.com", b"u", rk),
            6,
            Value::text_map([("hmac-secret", Value::Bool(true))]),
        );
        let att = h.ok(0x01, Some(mc));
        assert_eq!(auth_data_ext(&att, 2).get_text("hmac-secret"), Some(&Value::Bool(true)));
        let id = new_id(&att);
        let salts = [[1u8; 32], [2u8; 32]].concat();
        let one_v2 = hmac_get(&mut h, 2, &id, &salts[..32]);
        let two_v1 = hmac_get(&mut h, 1, &id, &salts);
        let two_v2 = hmac_get(&mut h, 2, &id, &salts);
        assert_eq!(one_v2.len(), 32);
        assert_eq!(two_v1.len(), 64);
        assert_eq!(two_v1, two_v2, "protocol only changes the wrapping");
        assert_eq!(&two_v2[..32], &one_v2[..]);
        assert_ne!(&two_v2[..32], &two_v2[32..]);
        // Another credential gives other outputs.
        let other = h.ok(0x01, Some(make_credential("example.com", b"v", rk)));
        let other_id = new_id(&other);
        assert_ne!(hmac_get(&mut h, 2, &other_id, &salts[..32]), one_v2);
    }
}

#[test]
fn bad_salt_auth_is_refused_before_presence() {
    let mut h = Harness::new(Config::virtual_key());
    let att = h.ok(0x01, Some(make_credential("example.com", b"u", true)));
    let id = new_id(&att);
    let (mut input, _) = hmac_input(&mut h, 2, &[7; 32]);
    if let Value::Map(m) = &mut input {
        m.retain(|(k, _)| *k != Value::int(3));
        m.push((Value::int(3), Value::bytes(vec![0; 32])));
    }
    let ga =
        ext(get_assertion("example.com", &[&id]), 4, Value::text_map([("hmac-secret", input)]));
    assert_eq!(h.call(0x02, Some(ga)).status(), StatusCode::PinAuthInvalid);
    let (input, _) = hmac_input(&mut h, 2, &[7; 48]);
    let ga =
        ext(get_assertion("example.com", &[&id]), 4, Value::text_map([("hmac-secret", input)]));
    assert_eq!(h.call(0x02, Some(ga)).status(), StatusCode::InvalidLength);
}

#[test]
fn hmac_secret_mc_equals_the_later_assertion_output() {
    let mut h = Harness::new(Config::virtual_key());
    let salt = [9u8; 32];
    let (input, p) = hmac_input(&mut h, 2, &salt);
    let mc = ext(
        make_credential("example.com", b"u", true),
        6,
        Value::text_map([("hmac-secret", Value::Bool(true)), ("hmac-secret-mc", input)]),
    );
    let att = h.ok(0x01, Some(mc));
    let exts = auth_data_ext(&att, 2);
    let at_mc = p.decrypt(exts.get_text("hmac-secret-mc").unwrap().as_bytes().unwrap());
    let id = new_id(&att);
    assert_eq!(hmac_get(&mut h, 1, &id, &salt), at_mc);
}

#[test]
fn phone_style_prf_answers_in_unsigned_outputs() {
    let mut h = Harness::new(Config::virtual_phone());
    let info = h.ok(0x04, None);
    let exts: Vec<_> =
        info.get(2).unwrap().as_array().unwrap().iter().filter_map(Value::as_text).collect();
    assert!(exts.contains(&"prf") && !exts.contains(&"hmac-secret"), "{exts:?}");
    let eval = |first: u8| Value::text_map([("first", Value::bytes(vec![first; 32]))]);
    let mc = ext(
        make_credential("example.com", b"u", true),
        6,
        Value::text_map([("prf", Value::text_map([("eval", eval(1))]))]),
    );
    let att = h.ok(0x01, Some(mc));
    let prf = att.get(6).unwrap().get_text("prf").unwrap();
    assert_eq!(prf.get_text("enabled"), Some(&Value::Bool(true)));
    let at_mc = prf.get_text("results").unwrap().get_text("first").unwrap().clone();
    let id = new_id(&att);
    // evalByCredential wins over eval for the named credential.
    let by_cred = Value::Map(vec![(Value::bytes(id.clone()), eval(1))]);
    let ga = ext(
        get_assertion("example.com", &[]),
        4,
        Value::text_map([(
            "prf",
            Value::text_map([("eval", eval(2)), ("evalByCredential", by_cred)]),
        )]),
    );
    let resp = h.ok(0x02, Some(ga));
    let results = resp.get(8).unwrap().get_text("prf").unwrap().get_text("results").unwrap();
    assert_eq!(results.get_text("first"), Some(&at_mc));
    assert!(results.get_text("second").is_none());
}

#[test]
fn cred_protect_levels_are_enforced_without_uv() {
    let mut h = Harness::new(Config::virtual_key());
    let mut ids = Vec::new();
    for (level, user) in [(1, b"a"), (2, b"b"), (3, b"c")] {
        let mc = ext(
            make_credential("example.com", user, true),
            6,
            Value::text_map([("credProtect", Value::int(level))]),
        );
        let att = h.ok(0x01, Some(mc));
        assert_eq!(auth_data_ext(&att, 2).get_text("credProtect"), Some(&Value::int(level)));
        ids.push(new_id(&att));
    }
    // Discoverable without UV: only level 1 exists.
    let resp = h.ok(0x02, Some(get_assertion("example.com", &[])));
    assert!(resp.get(5).is_none(), "one credential");
    assert_eq!(credential_id(&resp), ids[0]);
    // Allow list without UV: level 2 is returned, level 3 is not there.
    let resp = h.ok(0x02, Some(get_assertion("example.com", &[&ids[1]])));
    assert_eq!(credential_id(&resp), ids[1]);
    let r = h.call(0x02, Some(get_assertion("example.com", &[&ids[2]])));
    assert_eq!(r.status(), StatusCode::NoCredentials);
    // A non-resident level-3 credential is hidden the same way.
    let mc = ext(
        make_credential("example.com", b"d", false),
        6,
        Value::text_map([("credProtect", Value::int(3))]),
    );
    let att = h.ok(0x01, Some(mc));
    let wrapped = new_id(&att);
    let r = h.call(0x02, Some(get_assertion("example.com", &[&wrapped])));
    assert_eq!(r.status(), StatusCode::NoCredentials);
    // Out-of-range level: invalid parameter.
    let mc = ext(
        make_credential("example.com", b"e", true),
        6,
        Value::text_map([("credProtect", Value::int(4))]),
    );
    assert_eq!(h.call(0x01, Some(mc)).status(), StatusCode::InvalidParameter);
}

#[test]
fn cred_protect_3_is_returned_with_uv() {
    let mut h = Harness::new(Config::virtual_phone());
    let mc = ext(
        make_credential("example.com", b"u", true),
        6,
        Value::text_map([("credProtect", Value::int(3))]),
    );
    let att = h.ok(0x01, Some(mc));
    let id = new_id(&att);
    let resp = h.ok(0x02, Some(get_assertion("example.com", &[])));
    assert_eq!(credential_id(&resp), id, "built-in UV: level 3 is usable");
}

#[test]
fn cred_blob_is_stored_for_resident_credentials_only() {
    let mut h = Harness::new(Config::virtual_key());
    let info = h.ok(0x04, None);
    assert_eq!(info.get(0x0F).and_then(Value::as_u64), Some(32), "maxCredBlobLength");
    let blob = b"lab fixture blob".to_vec();
    let mut ids = Vec::new();
    for (rk, user, want) in [(true, b"u", true), (false, b"v", false)] {
        let mc = ext(
            make_credential("example.com", user, rk),
            6,
            Value::text_map([("credBlob", Value::bytes(blob.clone()))]),
        );
        let att = h.ok(0x01, Some(mc));
        assert_eq!(auth_data_ext(&att, 2).get_text("credBlob"), Some(&Value::Bool(want)));
        ids.push(new_id(&att));
    }
    let too_long = ext(
        make_credential("example.com", b"w", true),
        6,
        Value::text_map([("credBlob", Value::bytes(vec![0; 33]))]),
    );
    let att = h.ok(0x01, Some(too_long));
    assert_eq!(auth_data_ext(&att, 2).get_text("credBlob"), Some(&Value::Bool(false)));
    for (id, want) in [(&ids[0], blob.clone()), (&ids[1], Vec::new())] {
        let ga = ext(
            get_assertion("example.com", &[id]),
            4,
            Value::text_map([("credBlob", Value::Bool(true))]),
        );
        let resp = h.ok(0x02, Some(ga));
        assert_eq!(auth_data_ext(&resp, 2).get_text("credBlob"), Some(&Value::bytes(want)));
    }
}

#[test]
fn large_blob_key_and_the_large_blob_array() {
    use cablebridge_protocol::ctap2::extensions::large_blob;
    let mut h = Harness::new(Config::virtual_key());
    let info = h.ok(0x04, None);
    assert_eq!(info.get(4).unwrap().get_text("largeBlobs"), Some(&Value::Bool(true)));
    assert_eq!(info.get(0x0B).and_then(Value::as_u64), Some(4096));
    let mc = ext(
        make_credential("example.com", b"u", true),
        6,
        Value::text_map([("largeBlobKey", Value::Bool(true))]),
    );
    let att = h.ok(0x01, Some(mc));
    let key: [u8; 32] = att.get(5).unwrap().as_bytes().unwrap().try_into().unwrap();
    let id = new_id(&att);
    let ga = ext(
        get_assertion("example.com", &[&id]),
        4,
        Value::text_map([("largeBlobKey", Value::Bool(true))]),
    );
    assert_eq!(h.ok(0x02, Some(ga)).get(7).unwrap().as_bytes(), Some(&key[..]));
    // Initially the empty array.
    let read = |h: &mut Harness, offset: i64, n: i64| {
        h.ok(0x0C, Some(Value::int_map([(1, Value::int(n)), (3, Value::int(offset))])))
            .get(1)
            .unwrap()
            .as_bytes()
            .unwrap()
            .to_vec()
    };
    assert_eq!(read(&mut h, 0, 1000), large_blob::EMPTY_ARRAY);
    // Write a new array in two fragments (no PIN set: no pinUvAuthParam needed).
    let blob = b"lab large blob".to_vec();
    let array = large_blob::serialize_array(vec![large_blob::seal(&key, &blob, &mut h.rng)]);
    let (a, b) = array.split_at(10);
    let set = |frag: &[u8], offset: usize, length: Option<usize>| {
        let mut m = vec![(2, Value::bytes(frag.to_vec())), (3, Value::int(offset as i64))];
        if let Some(l) = length {
            m.push((4, Value::int(l as i64)));
        }
        Value::int_map(m)
    };
    assert_eq!(h.call(0x0C, Some(set(b, 10, None))).status(), StatusCode::InvalidSeq);
    h.ok(0x0C, Some(set(a, 0, Some(array.len()))));
    assert_eq!(read(&mut h, 0, 1000), large_blob::EMPTY_ARRAY, "not committed yet");
    h.ok(0x0C, Some(set(b, 10, None)));
    let back = [read(&mut h, 0, 7), read(&mut h, 7, 1000)].concat();
    assert_eq!(back, array);
    let entries = large_blob::parse_array(&back).unwrap();
    assert_eq!(large_blob::open(&key, &entries[0]), Some(blob));
    // A corrupt trailer is refused and changes nothing.
    let mut bad = array.clone();
    *bad.last_mut().unwrap() ^= 1;
    let r = h.call(0x0C, Some(set(&bad, 0, Some(bad.len()))));
    assert_eq!(r.status(), StatusCode::IntegrityFailure);
    assert_eq!(read(&mut h, 0, 1000), array);
    // With a PIN set, writes need a token with lbw.
    assert_eq!(set_pin(&mut h, 2, "1234").status(), StatusCode::Ok);
    let r = h.call(0x0C, Some(set(&array, 0, Some(array.len()))));
    assert_eq!(r.status(), StatusCode::PuatRequired);
    let (_, token) = get_token(&mut h, 2, "1234", Some(0x10), None);
    let token = token.unwrap();
    let param = auth_with(2, &token, &large_blob::write_auth_message(0, &array));
    let mut req = set(&array, 0, Some(array.len()));
    req = with(req, 5, Value::bytes(param));
    req = with(req, 6, Value::int(2));
    assert_eq!(h.call(0x0C, Some(req)).status(), StatusCode::Ok);
}
