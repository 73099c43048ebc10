//! WebAuthn client extensions of a ceremony (WebAuthn L3 §10.1): what the user asked for
//! ([`ExtensionInputs`]: `prf`, `credProtect`, `credBlob` / `getCredBlob`, `largeBlob`), how
//! they map onto the CTAP extension inputs an authenticator's getInfo allows, and the outputs
//! the result reports ([`ExtensionOutputs`], the result event's `prf`, `cred_protect`,
//! `cred_blob` and `large_blob` fields).
//!
//! PRF (WebAuthn §10.1.4): each input becomes an hmac-secret salt
//! `SHA-256("WebAuthn PRF" ‖ 0x00 ‖ input)`. Towards an authenticator that lists `prf` (a
//! hybrid phone) the hashed salts go in the CTAP `prf` extension and the results come back in
//! the unsigned extension outputs; towards one that lists `hmac-secret` (a security key) the
//! request says `hmac-secret: true` here and the transport adds the encrypted salts, which need
//! a key agreement with the key (`crate::ctap::extensions`).
//!
//! PRF outputs are secrets: [`PrfOutputs`] redacts its `Debug`, nothing here logs them, and they
//! leave only in the result JSON the user asked for.

use cablebridge_protocol::cbor::Value;
use cablebridge_protocol::ctap2::extensions::{
    self as ext, prf::salts_for_inputs, CredProtect, PrfOutputs, PrfRequest, PrfResponse, Salts,
};
use cablebridge_protocol::ctap2::{
    AuthenticatorData, GetAssertionResponse, GetInfo, MakeCredentialResponse,
};

use super::b64url;

/// PRF inputs as the relying party gives them (hashed into salts by [`PrfInputs::salts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrfInputs {
    /// `eval.first`.
    pub first: Vec<u8>,
    /// `eval.second`.
    pub second: Option<Vec<u8>>,
}

impl PrfInputs {
    /// The hmac-secret salts of these inputs.
    pub fn salts(&self) -> Salts {
        salts_for_inputs(&self.first, self.second.as_deref())
    }
}

/// What to do with the credential's large blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LargeBlobInput {
    /// register: ask for large-blob support (`largeBlobKey`).
    Support,
    /// authenticate: read the blob.
    Read,
    /// authenticate: write this blob.
    Write(Vec<u8>),
}

/// Extension inputs of a ceremony (all off by default).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExtensionInputs {
    /// WebAuthn `prf` (`eval`); at registration the key may evaluate it too (hmac-secret-mc).
    pub prf: Option<PrfInputs>,
    /// register: `credProtect` level 1..3.
    pub cred_protect: Option<CredProtect>,
    /// register: `credBlob` to store.
    pub cred_blob: Option<Vec<u8>>,
    /// authenticate: `getCredBlob`.
    pub get_cred_blob: bool,
    /// `largeBlob`.
    pub large_blob: Option<LargeBlobInput>,
}

impl ExtensionInputs {
    /// True when nothing is asked for.
    pub fn is_empty(&self) -> bool {
        *self == ExtensionInputs::default()
    }

    /// The CTAP makeCredential extensions map for an authenticator described by `info`.
    /// Extensions it does not list are left out (their outputs then report "unsupported").
    pub fn make_credential_map(&self, info: &GetInfo) -> Option<Value> {
        let has = |name: &str| info.extensions.iter().any(|e| e == name);
        let mut m = Vec::new();
        if let Some(prf) = &self.prf {
            if has(ext::PRF) {
                let req = PrfRequest { eval: Some(prf.salts()), eval_by_credential: Vec::new() };
                m.push((Value::text(ext::PRF), req.to_cbor()));
            } else if has(ext::HMAC_SECRET) {
                m.push((Value::text(ext::HMAC_SECRET), Value::Bool(true)));
            }
        }
        if let Some(level) = self.cred_protect.filter(|_| has(ext::CRED_PROTECT)) {
            m.push((Value::text(ext::CRED_PROTECT), Value::Unsigned(level.to_u64())));
        }
        if let Some(blob) = self.cred_blob.as_ref().filter(|_| has(ext::CRED_BLOB)) {
            m.push((Value::text(ext::CRED_BLOB), Value::bytes(blob.clone())));
        }
        if self.large_blob.is_some() && has(ext::LARGE_BLOB_KEY) {
            m.push((Value::text(ext::LARGE_BLOB_KEY), Value::Bool(true)));
        }
        (!m.is_empty()).then_some(Value::Map(m))
    }

    /// The CTAP getAssertion extensions map (hmac-secret salts are the transport's: they need
    /// a key agreement).
    pub fn get_assertion_map(&self, info: &GetInfo) -> Option<Value> {
        let has = |name: &str| info.extensions.iter().any(|e| e == name);
        let mut m = Vec::new();
        if let Some(prf) = self.prf.as_ref().filter(|_| has(ext::PRF)) {
            let req = PrfRequest { eval: Some(prf.salts()), eval_by_credential: Vec::new() };
            m.push((Value::text(ext::PRF), req.to_cbor()));
        }
        if self.get_cred_blob && has(ext::CRED_BLOB) {
            m.push((Value::text(ext::CRED_BLOB), Value::Bool(true)));
        }
        if self.large_blob.is_some() && has(ext::LARGE_BLOB_KEY) {
            m.push((Value::text(ext::LARGE_BLOB_KEY), Value::Bool(true)));
        }
        (!m.is_empty()).then_some(Value::Map(m))
    }
}

/// The `prf` client extension output.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PrfOutput {
    /// register: whether the credential supports PRF.
    pub enabled: Option<bool>,
    /// The evaluated results (secret).
    pub results: Option<PrfOutputs>,
}

/// The `credBlob` output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredBlobOutput {
    /// register: whether the authenticator stored it.
    Stored(bool),
    /// authenticate: the blob (empty when the credential has none).
    Blob(Vec<u8>),
}

/// The `largeBlob` output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LargeBlobOutput {
    /// register: whether the credential can have a large blob.
    Supported(bool),
    /// authenticate: the blob read (`None`: the credential has none).
    Blob(Option<Vec<u8>>),
    /// authenticate: whether the write succeeded.
    Written(bool),
}

/// Extension outputs of a ceremony (only what was asked for is set).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExtensionOutputs {
    /// `prf`.
    pub prf: Option<PrfOutput>,
    /// `credProtect` level the authenticator applied.
    pub cred_protect: Option<u64>,
    /// `credBlob`.
    pub cred_blob: Option<CredBlobOutput>,
    /// `largeBlob`.
    pub large_blob: Option<LargeBlobOutput>,
}

impl ExtensionOutputs {
    /// The outputs readable from a response: the authenticator-data extensions and the unsigned
    /// extension outputs. hmac-secret outputs (encrypted) and large blobs are the transport's.
    pub fn from_response(
        requested: &ExtensionInputs,
        register: bool,
        auth_data: Option<&Value>,
        unsigned: Option<&Value>,
        large_blob_key: bool,
    ) -> Self {
        let signed = |name: &str| auth_data.and_then(|e| e.get_text(name));
        let mut out = ExtensionOutputs::default();
        if requested.prf.is_some() {
            let phone = unsigned
                .and_then(|u| u.get_text(ext::PRF))
                .and_then(|v| PrfResponse::from_cbor(v).ok())
                .unwrap_or_default();
            let hmac = signed(ext::HMAC_SECRET).and_then(Value::as_bool).unwrap_or(false);
            out.prf = Some(PrfOutput {
                enabled: register.then_some(phone.enabled.unwrap_or(false) || hmac),
                results: phone.results,
            });
        }
        if register && requested.cred_protect.is_some() {
            out.cred_protect = signed(ext::CRED_PROTECT).and_then(Value::as_u64);
        }
        if register && requested.cred_blob.is_some() {
            let stored = signed(ext::CRED_BLOB).and_then(Value::as_bool).unwrap_or(false);
            out.cred_blob = Some(CredBlobOutput::Stored(stored));
        }
        if !register && requested.get_cred_blob {
            let blob = signed(ext::CRED_BLOB).and_then(Value::as_bytes).unwrap_or_default();
            out.cred_blob = Some(CredBlobOutput::Blob(blob.to_vec()));
        }
        if register && requested.large_blob.is_some() {
            out.large_blob = Some(LargeBlobOutput::Supported(large_blob_key));
        }
        out
    }

    /// The outputs of a makeCredential response (hmac-secret-mc results are the transport's).
    pub fn of_registration(requested: &ExtensionInputs, r: &MakeCredentialResponse) -> Self {
        let ad = AuthenticatorData::parse(&r.auth_data).ok();
        let signed = ad.as_ref().and_then(|a| a.extensions.as_ref());
        let unsigned = r.unsigned_extension_outputs.as_ref();
        Self::from_response(requested, true, signed, unsigned, r.large_blob_key.is_some())
    }

    /// The outputs of a getAssertion response (hmac-secret results are the transport's).
    pub fn of_assertion(requested: &ExtensionInputs, r: &GetAssertionResponse) -> Self {
        let ad = AuthenticatorData::parse(&r.auth_data).ok();
        let signed = ad.as_ref().and_then(|a| a.extensions.as_ref());
        let unsigned = r.unsigned_extension_outputs.as_ref();
        Self::from_response(requested, false, signed, unsigned, r.large_blob_key.is_some())
    }

    /// Adds the result-event fields (`prf`, `cred_protect`, `cred_blob`, `large_blob`).
    pub fn add_json(&self, json: &mut serde_json::Value) {
        if let Some(prf) = &self.prf {
            let mut o = serde_json::Map::new();
            if let Some(e) = prf.enabled {
                o.insert("enabled".into(), e.into());
            }
            if let Some(r) = &prf.results {
                let mut res = serde_json::Map::new();
                res.insert("first".into(), b64url(r.first.expose()).into());
                if let Some(s) = &r.second {
                    res.insert("second".into(), b64url(s.expose()).into());
                }
                o.insert("results".into(), res.into());
            }
            json["prf"] = o.into();
        }
        if let Some(level) = self.cred_protect {
            json["cred_protect"] = level.into();
        }
        match &self.cred_blob {
            Some(CredBlobOutput::Stored(b)) => json["cred_blob"] = serde_json::json!({"stored": b}),
            Some(CredBlobOutput::Blob(b)) => {
                json["cred_blob"] = serde_json::json!({"blob": b64url(b)});
            }
            None => {}
        }
        match &self.large_blob {
            Some(LargeBlobOutput::Supported(s)) => {
                json["large_blob"] = serde_json::json!({"supported": s});
            }
            Some(LargeBlobOutput::Blob(b)) => {
                json["large_blob"] = serde_json::json!({"blob": b.as_deref().map(b64url)});
            }
            Some(LargeBlobOutput::Written(w)) => {
                json["large_blob"] = serde_json::json!({"written": w});
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn info(exts: &[&str]) -> GetInfo {
        GetInfo { extensions: exts.iter().map(|s| (*s).to_owned()).collect(), ..GetInfo::default() }
    }

    #[test]
    fn prf_maps_onto_what_the_authenticator_lists() {
        let inputs = ExtensionInputs {
            prf: Some(PrfInputs { first: b"a".to_vec(), second: None }),
            cred_protect: Some(CredProtect::UvRequired),
            ..ExtensionInputs::default()
        };
        let phone = inputs.make_credential_map(&info(&["prf"])).unwrap();
        let salts = PrfRequest::from_cbor(phone.get_text("prf").unwrap()).unwrap().eval.unwrap();
        assert_eq!(salts.first, ext::prf_salt(b"a"));
        assert!(phone.get_text("credProtect").is_none(), "not listed, not sent");
        let key = inputs.make_credential_map(&info(&["hmac-secret", "credProtect"])).unwrap();
        assert_eq!(key.get_text("hmac-secret"), Some(&Value::Bool(true)));
        assert_eq!(key.get_text("credProtect"), Some(&Value::Unsigned(3)));
        assert!(inputs.get_assertion_map(&info(&["hmac-secret"])).is_none());
        assert!(ExtensionInputs::default().make_credential_map(&info(&["prf"])).is_none());
    }

    #[test]
    fn outputs_and_their_json() {
        let inputs = ExtensionInputs {
            prf: Some(PrfInputs { first: b"a".to_vec(), second: None }),
            cred_blob: Some(vec![1]),
            ..ExtensionInputs::default()
        };
        let signed = Value::text_map([("hmac-secret", Value::Bool(true))]);
        let out = ExtensionOutputs::from_response(&inputs, true, Some(&signed), None, false);
        let mut json = serde_json::json!({});
        out.add_json(&mut json);
        assert_eq!(json["prf"], serde_json::json!({"enabled": true}));
        assert_eq!(json["cred_blob"], serde_json::json!({"stored": false}));
        let results = PrfOutputs::from_concat(&[7; 64]).unwrap();
        let unsigned = Value::text_map([(
            "prf",
            PrfResponse { enabled: None, results: Some(results) }.to_cbor(),
        )]);
        let out = ExtensionOutputs::from_response(&inputs, false, None, Some(&unsigned), false);
        let mut json = serde_json::json!({});
        out.add_json(&mut json);
        assert_eq!(json["prf"]["results"]["first"], b64url(&[7; 32]));
        assert_eq!(json["prf"]["results"]["second"], b64url(&[7; 32]));
        assert!(json["prf"].get("enabled").is_none());
        assert!(!format!("{out:?}").contains("7, 7"), "outputs are redacted in Debug");
    }
}
