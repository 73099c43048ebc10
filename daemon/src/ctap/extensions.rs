//! Extensions on a security key that need more than a request field: `hmac-secret` /
//! `hmac-secret-mc` under WebAuthn `prf` (CTAP 2.1 §12.5, CTAP 2.2 §12.7).
//!
//! The salts travel encrypted under a PIN/UV auth protocol shared secret: one getKeyAgreement
//! (clientPIN 0x02, no PIN needed), an ephemeral platform key, and [`HmacSecretInput::seal`].
//! The key answers with the encrypted outputs in its authenticator-data extensions, which
//! [`HmacSecretSession::open`] decrypts. The key-agreement key survives token acquisition (it is
//! regenerated only at power-up and after a wrong PIN), so this runs before the PIN/UV step,
//! as libfido2 shares one key agreement between the token and hmac-secret.
//!
//! Also used by the bridge (`crate::bridge`) to serve a desktop's `prf` with a key's
//! hmac-secret. Outputs are secrets and are never logged.

use cablebridge_protocol::cbor::Value;
use cablebridge_protocol::ctap2::extensions::hmac_secret::open_outputs;
use cablebridge_protocol::ctap2::extensions::{self as ext, HmacSecretInput, PrfOutputs, Salts};
use cablebridge_protocol::ctap2::pin::client::key_agreement_request;
use cablebridge_protocol::ctap2::pin::key_agreement::encapsulate;
use cablebridge_protocol::ctap2::pin::SharedSecret;
use cablebridge_protocol::ctap2::{self, AuthenticatorData, Ctap2Error};
use rand_core::CryptoRngCore;

use super::error::Result;
use super::{Call, Ctap2Client};
use crate::hid::HidTransport;

/// The secret to open one request's hmac-secret answer with.
#[derive(Debug)]
pub struct HmacSecretSession {
    shared: SharedSecret,
    two: bool,
    /// `hmac-secret` (getAssertion) or `hmac-secret-mc` (makeCredential).
    name: &'static str,
}

impl HmacSecretSession {
    /// Decrypts the outputs from a response's authenticator data; `Ok(None)` when the key
    /// returned none (the credential was made without hmac-secret, or the key ignored it).
    pub fn open(&self, auth_data: &[u8]) -> std::result::Result<Option<PrfOutputs>, Ctap2Error> {
        let ad = AuthenticatorData::parse(auth_data)?;
        let Some(enc) = ad.extensions.as_ref().and_then(|e| e.get_text(self.name)) else {
            return Ok(None);
        };
        let enc = enc.as_bytes().ok_or(Ctap2Error::InvalidField {
            field: "hmac-secret output",
            problem: "not a byte string",
        })?;
        open_outputs(&self.shared, enc, self.two).map(Some)
    }
}

/// Seals `salts` for the key's hmac-secret (getAssertion) or hmac-secret-mc (makeCredential,
/// when the key lists it) and adds them to `extensions`. `None` when the key lists neither.
pub async fn add_hmac_secret<T: HidTransport>(
    client: &mut Ctap2Client<T>,
    rng: &mut (impl CryptoRngCore + Send),
    salts: &Salts,
    make_credential: bool,
    extensions: &mut Option<Value>,
    call: &mut Call<'_>,
) -> Result<Option<HmacSecretSession>> {
    let has = |name: &str| client.info().extensions.iter().any(|e| e == name);
    let name = if make_credential { ext::HMAC_SECRET_MC } else { ext::HMAC_SECRET };
    if !has(ext::HMAC_SECRET) || !has(name) {
        return Ok(None);
    }
    let protocol = client.pin_protocol()?;
    let command = ctap2::Command::ClientPin;
    let answer = client.client_pin(&key_agreement_request(protocol), call).await?;
    let peer = answer
        .key_agreement
        .ok_or_else(|| client.decode_err(command, Ctap2Error::MissingField("keyAgreement")))?;
    let (platform_key, shared) =
        encapsulate(protocol, rng, &peer).map_err(|e| client.decode_err(command, e))?;
    let input = HmacSecretInput::seal(&shared, platform_key, salts, rng)
        .map_err(|e| client.decode_err(command, e))?;
    insert(extensions, name, input.to_cbor());
    if make_credential {
        insert(extensions, ext::HMAC_SECRET, Value::Bool(true));
    }
    Ok(Some(HmacSecretSession { shared, two: salts.second.is_some(), name }))
}

/// Sets `name` in an extensions map (creating it).
pub fn insert(extensions: &mut Option<Value>, name: &str, value: Value) {
    let map = extensions.get_or_insert_with(|| Value::Map(Vec::new()));
    if let Value::Map(m) = map {
        m.retain(|(k, _)| k.as_text() != Some(name));
        m.push((Value::text(name), value));
    }
}
