//! CTAP2 request/response types across the wire: canonical bytes against hand-assembled
//! known-good encodings, round trips through the framing helpers, and decoders that never panic
//! on arbitrary input.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use cablebridge_protocol::cbor::Value;
use cablebridge_protocol::ctap2::*;
use proptest::prelude::*;

fn mc_request() -> MakeCredentialRequest {
    MakeCredentialRequest {
        client_data_hash: [0; 32],
        rp: RelyingParty { id: "a.co".into(), name: None },
        user: User::with_id(vec![1]),
        pub_key_cred_params: vec![CredentialParameters::public_key(CoseAlgorithm::Es256)],
        exclude_list: vec![],
        extensions: None,
        options: CommandOptions { rk: Some(true), up: None, uv: None },
        pin_uv_auth_param: None,
        pin_uv_auth_protocol: None,
        enterprise_attestation: None,
    }
}

#[test]
fn make_credential_request_is_canonical_byte_for_byte() {
    let bytes = encode_request(Command::MakeCredential, Some(&mc_request().to_cbor()));
    let want = [
        "01", // authenticatorMakeCredential
        "a5", // map(5)
        "01",
        "5820",
        &"00".repeat(32), // 1: clientDataHash
        "02",
        "a1",
        "626964",
        "64612e636f", // 2: {"id": "a.co"}
        "03",
        "a1",
        "626964",
        "4101", // 3: {"id": h'01'}
        "04",
        "81",
        "a2",
        "63616c67",
        "26", // 4: [{"alg": -7,
        "6474797065",
        "6a7075626c69632d6b6579", //      "type": "public-key"}]
        "07",
        "a1",
        "62726b",
        "f5", // 7: {"rk": true}
    ]
    .concat();
    assert_eq!(hex::encode(&bytes), want);
    let (cmd, body) = decode_request(&bytes).unwrap();
    assert_eq!(cmd, Command::MakeCredential);
    assert_eq!(MakeCredentialRequest::from_cbor(&body.unwrap()).unwrap(), mc_request());
}

#[test]
fn get_assertion_round_trips_through_framing() {
    let req = GetAssertionRequest {
        rp_id: "example.com".into(),
        client_data_hash: [9; 32],
        allow_list: vec![CredentialDescriptor::public_key(vec![1, 2, 3])],
        extensions: Some(Value::text_map([("hmac-secret", Value::Bool(true))])),
        options: CommandOptions { up: Some(true), uv: Some(true), rk: None },
        pin_uv_auth_param: Some(vec![0; 32]),
        pin_uv_auth_protocol: Some(2),
    };
    let wire = encode_request(Command::GetAssertion, Some(&req.to_cbor()));
    let (_, body) = decode_request(&wire).unwrap();
    assert_eq!(GetAssertionRequest::from_cbor(&body.unwrap()).unwrap(), req);

    let resp = GetAssertionResponse {
        credential: Some(CredentialDescriptor::public_key(vec![1, 2, 3])),
        auth_data: vec![0; 37],
        signature: vec![0x30, 0],
        user: Some(User { id: vec![5], name: Some("n".into()), display_name: Some("N".into()) }),
        number_of_credentials: Some(1),
        user_selected: Some(true),
        large_blob_key: None,
        unsigned_extension_outputs: None,
    };
    let wire = encode_response(StatusCode::Ok, Some(&resp.to_cbor()));
    let body = framing::decode_ok_body(&wire).unwrap();
    assert_eq!(GetAssertionResponse::from_cbor(&body).unwrap(), resp);
}

#[test]
fn status_only_and_parameterless_commands() {
    for c in [Command::GetInfo, Command::Reset, Command::GetNextAssertion, Command::Selection] {
        assert_eq!(encode_request(c, None), [c.to_u8()]);
    }
    assert_eq!(
        framing::decode_ok_response(&[StatusCode::KeepaliveCancel.to_u8()]),
        Err(Ctap2Error::Status(StatusCode::KeepaliveCancel))
    );
    assert_eq!(decode_response(&[]), Err(Ctap2Error::EmptyResponse));
}

/// Every decoder over the same arbitrary value: none may panic.
fn decode_all(v: &Value) {
    let _ = GetInfo::from_cbor(v);
    let _ = MakeCredentialRequest::from_cbor(v);
    let _ = MakeCredentialResponse::from_cbor(v);
    let _ = GetAssertionRequest::from_cbor(v);
    let _ = GetAssertionResponse::from_cbor(v);
    let _ = ClientPinRequest::from_cbor(v);
    let _ = ClientPinResponse::from_cbor(v);
    let _ = CredentialManagementRequest::from_cbor(v);
    let _ = CredentialManagementResponse::from_cbor(v);
    let _ = CoseKey::from_cbor(v);
    let _ = AttestationObject::from_cbor(v);
    let _ = AttestationStatement::parse("packed", v);
}

fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        (0u64..40).prop_map(Value::Unsigned),
        (0u64..300).prop_map(Value::Negative),
        proptest::collection::vec(any::<u8>(), 0..70).prop_map(Value::Bytes),
        prop_oneof![Just("id"), Just("alg"), Just("type"), Just("fmt"), Just("x"), Just("rk")]
            .prop_map(Value::text),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((0i64..12, inner.clone()), 0..8)
                .prop_map(|kv| Value::int_map(dedup(kv))),
            proptest::collection::vec((-3i64..4, inner), 0..6)
                .prop_map(|kv| Value::int_map(dedup(kv))),
        ]
    })
}

fn dedup(kv: Vec<(i64, Value)>) -> Vec<(i64, Value)> {
    let mut seen = Vec::new();
    kv.into_iter()
        .filter(|(k, _)| {
            if seen.contains(k) {
                false
            } else {
                seen.push(*k);
                true
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cablebridge_protocol::proptest_cases!(256)))]

    #[test]
    fn decoders_never_panic_on_arbitrary_values(v in arb_value()) {
        decode_all(&v);
    }

    #[test]
    fn framing_and_auth_data_never_panic_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok((_, Some(v))) = decode_request(&bytes) {
            decode_all(&v);
        }
        let _ = decode_response(&bytes);
        let _ = AuthenticatorData::parse(&bytes);
        let _ = AttestationObject::from_bytes(&bytes);
    }

    #[test]
    fn auth_data_with_header_never_panics(flags in any::<u8>(), tail in proptest::collection::vec(any::<u8>(), 0..150)) {
        let mut b = vec![0u8; 32];
        b.push(flags);
        b.extend([0, 0, 0, 1]);
        b.extend(tail);
        if let Ok(ad) = AuthenticatorData::parse(&b) {
            // Whatever parses re-encodes and parses to the same value.
            let again = AuthenticatorData::parse(&ad.to_bytes().unwrap()).unwrap();
            prop_assert_eq!(again, ad);
        }
    }
}
