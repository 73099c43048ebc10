//! WebAuthn `prf` through the bridge: a desktop's CTAP-level `prf` request (hashed salts, as
//! Chrome sends it to a hybrid phone) is translated to the USB key's `hmac-secret`, and the key's
//! encrypted outputs back to plain `prf` results in the unsigned extension outputs, so a key
//! behind the bridge serves PRF to a browser (issue 15).
//!
//! * makeCredential `prf` → `hmac-secret: true`, plus `hmac-secret-mc` with the salts when the
//!   desktop sent `eval` and the key lists it; answer `prf: {enabled, results?}` (key 6).
//! * getAssertion `prf` → `hmac-secret` with the salts of `evalByCredential` for the single
//!   allowed credential, else `eval`; answer `prf: {results}` (key 8).
//!
//! The salts are the desktop's (already `SHA-256("WebAuthn PRF" ‖ 0x00 ‖ input)`), so the key's
//! outputs equal what a USB ceremony with the same PRF inputs returns. The salts are encrypted
//! under a fresh getKeyAgreement shared secret with the key (clientPIN 0x02 needs no PIN); the
//! request and response are decoded and re-encoded canonically, the authenticator data and
//! attestation statement travel byte for byte (signatures still verify). With several allowed
//! credentials and only `evalByCredential`, the first allowed credential that has salts is used
//! (hmac-secret takes one set of salts per request). Outputs are secrets: never logged.

use cablebridge_protocol::cbor::Value;
use cablebridge_protocol::ctap2::extensions::hmac_secret::open_outputs;
use cablebridge_protocol::ctap2::extensions::{
    self as ext, HmacSecretInput, PrfRequest, PrfResponse, Salts,
};
use cablebridge_protocol::ctap2::framing::{decode_response, encode_request};
use cablebridge_protocol::ctap2::pin::client::key_agreement_request;
use cablebridge_protocol::ctap2::pin::key_agreement::encapsulate;
use cablebridge_protocol::ctap2::pin::{PinUvAuthProtocol, SharedSecret};
use cablebridge_protocol::ctap2::{
    AuthenticatorData, ClientPinResponse, Command, Ctap2Error, GetAssertionRequest,
    GetAssertionResponse, GetInfo, MakeCredentialRequest, MakeCredentialResponse, StatusCode,
};

use crate::ctap::extensions::insert;

/// Whether the bridge can offer `prf`: the key has hmac-secret and a PIN/UV protocol for the
/// key agreement.
pub fn can_serve(key: &GetInfo) -> bool {
    key.extensions.iter().any(|e| e == ext::HMAC_SECRET) && protocol(key).is_some()
}

/// The PIN/UV protocol for the key agreement with the key.
pub fn protocol(key: &GetInfo) -> Option<PinUvAuthProtocol> {
    PinUvAuthProtocol::preferred(&key.pin_uv_auth_protocols).or_else(|| {
        (key.pin_uv_auth_protocols.is_empty() && key.option("clientPin").is_some())
            .then_some(PinUvAuthProtocol::One)
    })
}

/// The getKeyAgreement request (`command ‖ CBOR`) to send the key.
pub fn key_agreement(p: PinUvAuthProtocol) -> Vec<u8> {
    encode_request(Command::ClientPin, Some(&key_agreement_request(p).to_cbor()))
}

/// A prf request found in a desktop's makeCredential / getAssertion.
#[derive(Debug)]
pub struct Found {
    command: Command,
    prf: PrfRequest,
    params: Value,
}

/// Finds `prf` in a request; `None` when there is none (the request is forwarded as it is).
pub fn find(request: &[u8]) -> Result<Option<Found>, Ctap2Error> {
    let (&byte, body) = request.split_first().ok_or(Ctap2Error::EmptyResponse)?;
    let command = Command::from_u8(byte);
    if !matches!(command, Command::MakeCredential | Command::GetAssertion) || body.is_empty() {
        return Ok(None);
    }
    let params = Value::decode(body)?;
    let key = if command == Command::MakeCredential { 6 } else { 4 };
    let Some(prf) = params.get(key).and_then(|e| e.get_text(ext::PRF)) else { return Ok(None) };
    let prf = PrfRequest::from_cbor(prf)?;
    Ok(Some(Found { command, prf, params }))
}

/// A translated request: what to send the key and how to translate its answer.
#[derive(Debug)]
pub struct Translated {
    /// `command ‖ CBOR` for the key.
    pub request: Vec<u8>,
    command: Command,
    shared: Option<(SharedSecret, bool)>,
}

impl Found {
    /// Builds the key's request, with the key's getKeyAgreement answer (`status ‖ CBOR`).
    pub fn translate(
        self,
        key: &GetInfo,
        key_agreement_answer: &[u8],
        rng: &mut impl rand_core::CryptoRngCore,
    ) -> Result<Translated, Ctap2Error> {
        let p =
            protocol(key).ok_or(Ctap2Error::InvalidArgument("the key has no PIN/UV protocol"))?;
        let peer = match decode_response(key_agreement_answer)? {
            (StatusCode::Ok, Some(body)) => ClientPinResponse::from_cbor(&body)?
                .key_agreement
                .ok_or(Ctap2Error::MissingField("keyAgreement"))?,
            (StatusCode::Ok, None) => return Err(Ctap2Error::MissingField("keyAgreement")),
            (status, _) => return Err(Ctap2Error::Status(status)),
        };
        let mc = self.command == Command::MakeCredential;
        let has_mc = key.extensions.iter().any(|e| e == ext::HMAC_SECRET_MC);
        let salts: Option<Salts> = if mc {
            self.prf.eval.clone().filter(|_| has_mc)
        } else {
            let req = GetAssertionRequest::from_cbor(&self.params)?;
            req.allow_list
                .iter()
                .find_map(|d| {
                    self.prf.eval_by_credential.iter().find(|(id, _)| *id == d.id).map(|(_, s)| s)
                })
                .or(self.prf.eval.as_ref())
                .cloned()
        };
        let mut shared = None;
        let sealed = match &salts {
            Some(s) => {
                let (platform_key, secret) = encapsulate(p, rng, &peer)?;
                let input = HmacSecretInput::seal(&secret, platform_key, s, rng)?;
                shared = Some((secret, s.second.is_some()));
                Some(input.to_cbor())
            }
            None => None,
        };
        let body = if mc {
            let mut req = MakeCredentialRequest::from_cbor(&self.params)?;
            strip_prf(&mut req.extensions);
            insert(&mut req.extensions, ext::HMAC_SECRET, Value::Bool(true));
            if let Some(v) = sealed {
                insert(&mut req.extensions, ext::HMAC_SECRET_MC, v);
            }
            req.to_cbor()
        } else {
            let mut req = GetAssertionRequest::from_cbor(&self.params)?;
            strip_prf(&mut req.extensions);
            if let Some(v) = sealed {
                insert(&mut req.extensions, ext::HMAC_SECRET, v);
            }
            req.to_cbor()
        };
        Ok(Translated {
            request: encode_request(self.command, Some(&body)),
            command: self.command,
            shared,
        })
    }
}

fn strip_prf(extensions: &mut Option<Value>) {
    if let Some(Value::Map(m)) = extensions {
        m.retain(|(k, _)| k.as_text() != Some(ext::PRF));
    }
}

impl Translated {
    /// The desktop's answer body from the key's OK answer body: `prf` added to the unsigned
    /// extension outputs, everything else as the key sent it.
    pub fn answer(&self, key_body: &[u8]) -> Result<Vec<u8>, Ctap2Error> {
        let v = Value::decode(key_body)?;
        let (auth_data, mc) = match self.command {
            Command::MakeCredential => (MakeCredentialResponse::from_cbor(&v)?.auth_data, true),
            _ => (GetAssertionResponse::from_cbor(&v)?.auth_data, false),
        };
        let ad = AuthenticatorData::parse(&auth_data)?;
        let exts = ad.extensions.as_ref();
        let enabled =
            exts.and_then(|e| e.get_text(ext::HMAC_SECRET)).and_then(Value::as_bool) == Some(true);
        let name = if mc { ext::HMAC_SECRET_MC } else { ext::HMAC_SECRET };
        let results = match (&self.shared, exts.and_then(|e| e.get_text(name))) {
            (Some((secret, two)), Some(enc)) => {
                let enc = enc.as_bytes().ok_or(Ctap2Error::InvalidField {
                    field: "hmac-secret output",
                    problem: "not a byte string",
                })?;
                Some(open_outputs(secret, enc, *two)?)
            }
            _ => None,
        };
        let prf = PrfResponse { enabled: mc.then_some(enabled), results };
        let key = if mc { 6 } else { 8 };
        let Value::Map(mut m) = v else {
            return Err(Ctap2Error::InvalidField { field: "response", problem: "not a map" });
        };
        let mut unsigned = match m.iter().position(|(k, _)| *k == Value::int(key)) {
            Some(i) => m.remove(i).1,
            None => Value::Map(Vec::new()),
        };
        if let Value::Map(u) = &mut unsigned {
            u.retain(|(k, _)| k.as_text() != Some(ext::PRF));
            u.push((Value::text(ext::PRF), prf.to_cbor()));
        }
        m.push((Value::int(key), unsigned));
        Ok(Value::Map(m).to_vec())
    }
}
