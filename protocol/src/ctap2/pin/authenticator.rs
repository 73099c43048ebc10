//! Authenticator-side halves of the clientPIN subcommands (CTAP 2.1 §6.5.5): recover the shared
//! secret from a request, check pinUvAuthParam, decrypt newPinEnc / pinHashEnc, encrypt the
//! token. The state (stored PIN hash, retry counters, token permissions) is the caller's.

use super::key_agreement::AuthenticatorKeyAgreement;
use super::pin_code::{Pin, PADDED_PIN_LEN};
use super::protocol::{PinUvAuthProtocol, PinUvAuthToken, SharedSecret};
use crate::ctap2::client_pin::{ClientPinRequest, ClientPinResponse};
use crate::ctap2::error::Ctap2Error;
use crate::secret::Secret;

/// The getKeyAgreement answer.
pub fn key_agreement_response(key: &AuthenticatorKeyAgreement) -> ClientPinResponse {
    ClientPinResponse { key_agreement: Some(key.public_cose()), ..Default::default() }
}

/// The request's protocol (required, 1 or 2) and `decapsulate(keyAgreement)`.
pub fn shared_secret_for(
    key: &AuthenticatorKeyAgreement,
    request: &ClientPinRequest,
) -> Result<SharedSecret, Ctap2Error> {
    let p = request.pin_uv_auth_protocol.ok_or(Ctap2Error::MissingField("pinUvAuthProtocol"))?;
    let protocol = PinUvAuthProtocol::from_u64(p)
        .ok_or(Ctap2Error::field("pinUvAuthProtocol", "unsupported protocol"))?;
    let peer = request.key_agreement.as_ref().ok_or(Ctap2Error::MissingField("keyAgreement"))?;
    key.shared_secret(protocol, peer)
}

fn present<'a>(v: &'a Option<Vec<u8>>, name: &'static str) -> Result<&'a [u8], Ctap2Error> {
    v.as_deref().ok_or(Ctap2Error::MissingField(name))
}

/// setPIN: verifies pinUvAuthParam over newPinEnc, then decrypts and checks the new PIN.
pub fn open_set_pin(
    shared: &SharedSecret,
    request: &ClientPinRequest,
    min_pin_length: usize,
) -> Result<Pin, Ctap2Error> {
    let new_pin_enc = present(&request.new_pin_enc, "newPinEnc")?;
    let param = present(&request.pin_uv_auth_param, "pinUvAuthParam")?;
    shared.verify(new_pin_enc, param)?;
    decrypt_new_pin(shared, new_pin_enc, min_pin_length)
}

/// changePIN, first half: verifies pinUvAuthParam over newPinEnc ‖ pinHashEnc and returns the
/// decrypted pinHash for the caller to compare (in constant time: it is a [`Secret`]) with the
/// stored one before calling [`decrypt_new_pin`].
pub fn open_change_pin(
    shared: &SharedSecret,
    request: &ClientPinRequest,
) -> Result<Secret<16>, Ctap2Error> {
    let new_pin_enc = present(&request.new_pin_enc, "newPinEnc")?;
    let pin_hash_enc = present(&request.pin_hash_enc, "pinHashEnc")?;
    let param = present(&request.pin_uv_auth_param, "pinUvAuthParam")?;
    shared.verify(&[new_pin_enc, pin_hash_enc].concat(), param)?;
    decrypt_pin_hash(shared, pin_hash_enc)
}

/// Decrypts and validates newPinEnc (64 padded bytes, plus a 16-byte IV under protocol two).
pub fn decrypt_new_pin(
    shared: &SharedSecret,
    new_pin_enc: &[u8],
    min_pin_length: usize,
) -> Result<Pin, Ctap2Error> {
    if new_pin_enc.len() != shared.protocol().ciphertext_len(PADDED_PIN_LEN) {
        return Err(Ctap2Error::field("newPinEnc", "wrong length"));
    }
    let padded = shared.decrypt(new_pin_enc)?;
    Pin::from_padded(padded.expose(), min_pin_length)
}

/// Decrypts pinHashEnc into LEFT(SHA-256(PIN), 16).
pub fn decrypt_pin_hash(
    shared: &SharedSecret,
    pin_hash_enc: &[u8],
) -> Result<Secret<16>, Ctap2Error> {
    if pin_hash_enc.len() != shared.protocol().ciphertext_len(16) {
        return Err(Ctap2Error::field("pinHashEnc", "wrong length"));
    }
    let plain = shared.decrypt(pin_hash_enc)?;
    Secret::from_slice(plain.expose()).ok_or(Ctap2Error::field("pinHashEnc", "wrong length"))
}

/// The token answer: `{2: encrypt(shared, token)}`.
pub fn token_response(
    shared: &SharedSecret,
    rng: &mut impl rand_core::CryptoRngCore,
    token: &PinUvAuthToken,
) -> Result<ClientPinResponse, Ctap2Error> {
    Ok(ClientPinResponse {
        pin_uv_auth_token: Some(shared.encrypt(rng, token.expose())?),
        ..Default::default()
    })
}
