//! WebAuthn `prf` (WebAuthn L3 §10.1.4) over CTAP: the client's salt hashing and the CTAP-level
//! `prf` extension that phones take over hybrid.
//!
//! A WebAuthn client turns each PRF input into an hmac-secret salt with
//! `SHA-256("WebAuthn PRF" ‖ 0x00 ‖ input)` ([`prf_salt`]), so a site's PRF never equals a raw
//! hmac-secret output. Towards a security key the salts go into `hmac-secret`
//! ([`super::hmac_secret`]). Towards a hybrid phone that lists `prf` in getInfo, Chrome sends
//! the *hashed* salts in the CTAP request's extensions map and the phone answers with the
//! results in the clear (the tunnel is already encrypted), in the response's unsigned extension
//! outputs (makeCredential key 6, getAssertion key 8):
//!
//! ```text
//! request  "prf": {"eval": {"first": salt1, "second"?: salt2},
//!                  "evalByCredential"?: {credentialId (bstr): {"first": …, "second"?: …}}}
//! response "prf": {"enabled"?: bool, "results"?: {"first": out1, "second"?: out2}}
//! ```
//!
//! (Chromium `device/fido/prf_input.cc` `PRFInput::ToCBOR` sends `salt1`/`salt2`, its virtual
//! authenticator answers in unsigned extension output key 8.)

use super::hmac_secret::{PrfOutputs, Salts};
use crate::cbor::Value;
use crate::ctap2::error::Ctap2Error;
use crate::secret::Secret;
use sha2::{Digest, Sha256};

/// `SHA-256("WebAuthn PRF" ‖ 0x00 ‖ input)`.
pub fn prf_salt(input: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"WebAuthn PRF");
    h.update([0u8]);
    h.update(input);
    h.finalize().into()
}

/// Hashes one or two PRF inputs into hmac-secret salts.
pub fn salts_for_inputs(first: &[u8], second: Option<&[u8]>) -> Salts {
    Salts { first: prf_salt(first), second: second.map(prf_salt) }
}

fn salts_to_cbor(s: &Salts) -> Value {
    let mut m = vec![(Value::text("first"), Value::bytes(s.first.to_vec()))];
    if let Some(second) = &s.second {
        m.push((Value::text("second"), Value::bytes(second.to_vec())));
    }
    Value::Map(m)
}

fn bytes32(v: Option<&Value>, field: &'static str) -> Result<[u8; 32], Ctap2Error> {
    v.and_then(Value::as_bytes)
        .ok_or(Ctap2Error::InvalidField { field, problem: "not a byte string" })?
        .try_into()
        .map_err(|_| Ctap2Error::InvalidField { field, problem: "wrong length" })
}

fn salts_from_cbor(v: &Value) -> Result<Salts, Ctap2Error> {
    if v.as_map().is_none() {
        return Err(Ctap2Error::InvalidField { field: "prf values", problem: "not a map" });
    }
    Ok(Salts {
        first: bytes32(v.get_text("first"), "prf.first")?,
        second: match v.get_text("second") {
            None => None,
            some => Some(bytes32(some, "prf.second")?),
        },
    })
}

/// The CTAP-level `prf` extension input.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PrfRequest {
    /// Salts for whichever credential is used.
    pub eval: Option<Salts>,
    /// Salts per credential ID (takes precedence over `eval` for that credential).
    pub eval_by_credential: Vec<(Vec<u8>, Salts)>,
}

impl PrfRequest {
    /// The wire map (an empty map when nothing is evaluated: makeCredential's "is PRF
    /// supported?").
    pub fn to_cbor(&self) -> Value {
        let mut m = Vec::new();
        if let Some(e) = &self.eval {
            m.push((Value::text("eval"), salts_to_cbor(e)));
        }
        if !self.eval_by_credential.is_empty() {
            let by = self
                .eval_by_credential
                .iter()
                .map(|(id, s)| (Value::bytes(id.clone()), salts_to_cbor(s)))
                .collect();
            m.push((Value::text("evalByCredential"), Value::Map(by)));
        }
        Value::Map(m)
    }

    /// Decodes the wire map. Credential IDs may be byte strings or base64url text.
    pub fn from_cbor(v: &Value) -> Result<Self, Ctap2Error> {
        if v.as_map().is_none() {
            return Err(Ctap2Error::InvalidField { field: "prf", problem: "not a map" });
        }
        let eval = v.get_text("eval").map(salts_from_cbor).transpose()?;
        let mut eval_by_credential = Vec::new();
        if let Some(by) = v.get_text("evalByCredential") {
            let entries = by.as_map().ok_or(Ctap2Error::InvalidField {
                field: "prf.evalByCredential",
                problem: "not a map",
            })?;
            for (k, s) in entries {
                let id = match k {
                    Value::Bytes(b) => b.clone(),
                    Value::Text(t) => {
                        use base64::Engine as _;
                        base64::engine::general_purpose::URL_SAFE_NO_PAD
                            .decode(t.trim_end_matches('='))
                            .map_err(|_| Ctap2Error::InvalidField {
                                field: "prf.evalByCredential",
                                problem: "key is not base64url",
                            })?
                    }
                    _ => {
                        return Err(Ctap2Error::InvalidField {
                            field: "prf.evalByCredential",
                            problem: "key is not a credential ID",
                        })
                    }
                };
                eval_by_credential.push((id, salts_from_cbor(s)?));
            }
        }
        Ok(PrfRequest { eval, eval_by_credential })
    }

    /// The salts that apply to `credential_id`.
    pub fn salts_for(&self, credential_id: &[u8]) -> Option<&Salts> {
        self.eval_by_credential
            .iter()
            .find(|(id, _)| id == credential_id)
            .map(|(_, s)| s)
            .or(self.eval.as_ref())
    }
}

/// The CTAP-level `prf` extension output.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PrfResponse {
    /// makeCredential: whether the credential supports PRF.
    pub enabled: Option<bool>,
    /// The evaluated outputs.
    pub results: Option<PrfOutputs>,
}

impl PrfResponse {
    /// The wire map.
    pub fn to_cbor(&self) -> Value {
        let mut m = Vec::new();
        if let Some(e) = self.enabled {
            m.push((Value::text("enabled"), Value::Bool(e)));
        }
        if let Some(r) = &self.results {
            let mut res = vec![(Value::text("first"), Value::bytes(r.first.expose().to_vec()))];
            if let Some(s) = &r.second {
                res.push((Value::text("second"), Value::bytes(s.expose().to_vec())));
            }
            m.push((Value::text("results"), Value::Map(res)));
        }
        Value::Map(m)
    }

    /// Decodes the wire map.
    pub fn from_cbor(v: &Value) -> Result<Self, Ctap2Error> {
        if v.as_map().is_none() {
            return Err(Ctap2Error::InvalidField { field: "prf output", problem: "not a map" });
        }
        let enabled = match v.get_text("enabled") {
            None => None,
            Some(b) => Some(b.as_bool().ok_or(Ctap2Error::InvalidField {
                field: "prf.enabled",
                problem: "not a boolean",
            })?),
        };
        let results = match v.get_text("results") {
            None => None,
            Some(r) => {
                let first = Secret::new(bytes32(r.get_text("first"), "prf.results.first")?);
                let second = match r.get_text("second") {
                    None => None,
                    some => Some(Secret::new(bytes32(some, "prf.results.second")?)),
                };
                Some(PrfOutputs { first, second })
            }
        };
        Ok(PrfResponse { enabled, results })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salt_is_sha256_of_the_labelled_input() {
        // Computed independently: hashlib.sha256(b"WebAuthn PRF\x00" + input).hexdigest().
        assert_eq!(
            hex::encode(prf_salt(b"")),
            "6a7e64b2aa34c92736143a062fa149aff1bd8bb3f7ee6f346885481f9414a3d3"
        );
        assert_eq!(
            hex::encode(prf_salt(&[0; 32])),
            "4f24c9221e0ed3b764b4558a0d880ecea08117d62f2bdc13ae2c6c3ea662e3a1"
        );
        let by_hand: [u8; 32] = Sha256::digest(b"WebAuthn PRF\x00abc").into();
        assert_eq!(prf_salt(b"abc"), by_hand);
        let s = salts_for_inputs(b"a", Some(b"b"));
        assert_eq!(s.second, Some(prf_salt(b"b")));
    }

    #[test]
    fn request_and_response_round_trip() {
        let r = PrfRequest {
            eval: Some(Salts { first: [1; 32], second: Some([2; 32]) }),
            eval_by_credential: vec![(vec![9; 16], Salts { first: [3; 32], second: None })],
        };
        let back = PrfRequest::from_cbor(&Value::decode(&r.to_cbor().to_vec()).unwrap()).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.salts_for(&[9; 16]).map(|s| s.first), Some([3; 32]));
        assert_eq!(back.salts_for(&[8; 16]).map(|s| s.first), Some([1; 32]));
        assert_eq!(PrfRequest::from_cbor(&Value::Map(vec![])).unwrap(), PrfRequest::default());
        let short =
            Value::text_map([("eval", Value::text_map([("first", Value::bytes(vec![0; 31]))]))]);
        assert!(PrfRequest::from_cbor(&short).is_err());

        let resp = PrfResponse { enabled: Some(true), results: PrfOutputs::from_concat(&[5; 64]) };
        assert_eq!(PrfResponse::from_cbor(&resp.to_cbor()).unwrap(), resp);
        assert!(PrfResponse::from_cbor(&Value::int(1)).is_err());
    }
}
