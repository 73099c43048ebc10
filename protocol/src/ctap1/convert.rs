//! U2F answers as CTAP2-shaped responses (CTAP 2.1 §10.3 "Interoperating with CTAP1/U2F
//! authenticators", WebAuthn §8.6), so the rest of the engine — result JSON, relying-party
//! checks, the attestation verifier — sees one shape whatever protocol the key speaks.
//!
//! * Registration → a makeCredential response with `fmt: "fido-u2f"`,
//!   `attStmt = {"sig": signature, "x5c": [attestation certificate]}` and authenticator data
//!   `rpIdHash ‖ flags (UP|AT) ‖ counter 0 ‖ AAGUID 0…0 ‖ L ‖ keyHandle ‖ COSE_Key(public key)`.
//!   The U2F signature covers `0x00 ‖ rpIdHash ‖ clientDataHash ‖ keyHandle ‖ publicKey`,
//!   which is exactly what WebAuthn §8.6 verifies.
//! * Authentication → a getAssertion response with authenticator data
//!   `rpIdHash ‖ userPresence ‖ counter` and the U2F signature unchanged (it already covers
//!   `authenticatorData ‖ clientDataHash`), the key handle as the credential.

use super::messages::{AuthenticateResponse, RegisterResponse, U2fError};
use crate::cbor::Value;
use crate::ctap2::{
    AttestedCredentialData, AuthDataFlags, AuthenticatorData, CoseKey, CredentialDescriptor,
    GetAssertionResponse, MakeCredentialResponse,
};

/// The attestation format of converted registrations.
pub const FIDO_U2F_FORMAT: &str = "fido-u2f";

/// A registration as a makeCredential response.
pub fn make_credential_response(
    rp_id_hash: &[u8; 32],
    response: &RegisterResponse<'_>,
) -> Result<MakeCredentialResponse, U2fError> {
    let key =
        p256::PublicKey::from_sec1_bytes(response.public_key).map_err(|_| U2fError::Malformed {
            message: "register response",
            field: "public key",
            problem: "is not a point on P-256",
        })?;
    let auth_data = AuthenticatorData {
        rp_id_hash: *rp_id_hash,
        flags: AuthDataFlags::UP.with(AuthDataFlags::AT, true),
        sign_count: 0,
        attested_credential: Some(AttestedCredentialData {
            aaguid: [0; 16],
            credential_id: response.key_handle.to_vec(),
            public_key: CoseKey::es256(key),
        }),
        extensions: None,
    }
    .to_bytes()
    .map_err(|_| U2fError::Malformed {
        message: "register response",
        field: "key handle",
        problem: "does not fit authenticator data",
    })?;
    let att_stmt = Value::text_map([
        ("sig", Value::bytes(response.signature)),
        ("x5c", Value::Array(vec![Value::bytes(response.certificate)])),
    ]);
    Ok(MakeCredentialResponse {
        fmt: FIDO_U2F_FORMAT.to_owned(),
        auth_data,
        att_stmt,
        ep_att: None,
        large_blob_key: None,
        unsigned_extension_outputs: None,
    })
}

/// An authentication as a getAssertion response for `key_handle`.
pub fn get_assertion_response(
    rp_id_hash: &[u8; 32],
    key_handle: &[u8],
    response: &AuthenticateResponse<'_>,
) -> GetAssertionResponse {
    let mut auth_data = Vec::with_capacity(37);
    auth_data.extend_from_slice(rp_id_hash);
    auth_data.push(response.user_presence);
    auth_data.extend_from_slice(&response.counter.to_be_bytes());
    GetAssertionResponse {
        credential: Some(CredentialDescriptor::public_key(key_handle.to_vec())),
        auth_data,
        signature: response.signature.to_vec(),
        user: None,
        number_of_credentials: None,
        user_selected: None,
        large_blob_key: None,
        unsigned_extension_outputs: None,
    }
}
