//! CTAP2 responses as a platform receives them from a hostile key or phone: the framing and every
//! typed response decoder in protocol/src/ctap2 (getInfo, makeCredential with its attestation
//! object and authenticator data, getAssertion, clientPIN, credential management, COSE keys).
#![no_main]

use cablebridge_protocol::cbor::Value;
use cablebridge_protocol::ctap2::{
    decode_response, AttestationObject, AuthenticatorData, ClientPinResponse, CoseKey,
    CredentialManagementResponse, GetAssertionResponse, GetInfo, MakeCredentialResponse,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    match selector % 4 {
        // A whole response: status byte + CBOR body, through every decoder.
        0 => {
            if let Ok((_status, Some(body))) = decode_response(rest) {
                decode_all(&body);
            }
        }
        // Raw authenticator data (it is a byte string inside the CBOR, parsed separately).
        1 => {
            if let Ok(ad) = AuthenticatorData::parse(rest) {
                // Re-serialising keeps every fixed field and is stable after one pass (COSE key
                // and extension maps come out canonically ordered, so the first pass may reorder
                // them; signatures are always checked over the raw bytes, never these).
                if let Ok(bytes) = ad.to_bytes() {
                    let Ok(again) = AuthenticatorData::parse(&bytes) else {
                        panic!("to_bytes output does not parse: {ad:?}")
                    };
                    assert_eq!(
                        (again.rp_id_hash, again.flags, again.sign_count),
                        (ad.rp_id_hash, ad.flags, ad.sign_count)
                    );
                    assert_eq!(
                        again.attested_credential.as_ref().map(|c| (c.aaguid, &c.credential_id)),
                        ad.attested_credential.as_ref().map(|c| (c.aaguid, &c.credential_id))
                    );
                    assert_eq!(again.to_bytes().ok(), Some(bytes), "second pass changed the bytes");
                }
            }
        }
        // A bare attestation object (WebAuthn's attestationObject).
        2 => {
            let _ = AttestationObject::from_bytes(rest);
        }
        // A bare COSE key.
        _ => {
            if let Ok(v) = Value::decode(rest) {
                let _ = CoseKey::from_cbor(&v);
            }
        }
    }
});

fn decode_all(body: &Value) {
    let _ = GetInfo::from_cbor(body);
    if let Ok(mc) = MakeCredentialResponse::from_cbor(body) {
        let _ = format!("{mc:?}");
    }
    let _ = GetAssertionResponse::from_cbor(body);
    let _ = ClientPinResponse::from_cbor(body);
    let _ = CredentialManagementResponse::from_cbor(body);
    let _ = AttestationObject::from_cbor(body);
}
