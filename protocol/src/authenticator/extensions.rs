//! The software authenticator's extensions (CTAP 2.1 §12, CTAP 2.2 §12.7): which inputs it
//! accepts at makeCredential / getAssertion, the per-credential state they create, and the
//! outputs (authenticator-data extensions, unsigned outputs, `largeBlobKey`).
//!
//! | extension | makeCredential | getAssertion |
//! |---|---|---|
//! | `hmac-secret` | `true` → output `true` | salts (PIN/UV protocol 1 or 2) → encrypted outputs |
//! | `hmac-secret-mc` | salts → encrypted outputs | — |
//! | `prf` (phone style) | `{}` / `eval` → unsigned `{enabled, results?}` | `eval` / `evalByCredential` → unsigned `{results}` |
//! | `credProtect` | 1..3 → output level | enforced (see `get_assertion`) |
//! | `credBlob` | ≤ [`MAX_CRED_BLOB_LENGTH`] bytes, resident only → `true`/`false` | `true` → the blob |
//! | `largeBlobKey` | `true` (resident only) → response key 5 | `true` → response key 7 |
//!
//! Every credential gets a `CredRandom` (with and without UV): resident credentials store a random
//! one, wrapped credentials derive it from the master key and their ID
//! ([`super::MasterKey::derived_cred_random`]). Salts are opened with the authenticator's current
//! key-agreement key before user presence, so a bad saltAuth fails without a touch.

use super::store::{CredRandom, CredentialExtensions, LargeBlobKey};
use super::{Authenticator, CredentialStore};
use crate::cbor::Value;
use crate::ctap2::extensions::hmac_secret::{evaluate, seal_outputs};
use crate::ctap2::extensions::{
    self as ext, CredProtect, HmacSecretInput, PrfRequest, PrfResponse, Salts,
};
use crate::ctap2::pin::SharedSecret;
use crate::ctap2::StatusCode;
use rand_core::CryptoRngCore;

/// maxCredBlobLength advertised in getInfo (the spec's minimum).
pub const MAX_CRED_BLOB_LENGTH: usize = 32;

/// Extension identifiers in getInfo: a key (with key agreement) gets hmac-secret; a phone (no
/// PIN/UV protocol a platform could use) gets `prf`, as hybrid phones advertise it.
/// largeBlobKey only where authenticatorLargeBlobs exists (PIN-capable keys).
pub(super) fn advertised(key_agreement: bool, large_blobs: bool) -> Vec<String> {
    let mut v = vec![ext::CRED_PROTECT, ext::CRED_BLOB];
    if large_blobs {
        v.push(ext::LARGE_BLOB_KEY);
    }
    if key_agreement {
        v.extend([ext::HMAC_SECRET, ext::HMAC_SECRET_MC]);
    } else {
        v.push(ext::PRF);
    }
    v.into_iter().map(str::to_owned).collect()
}

/// Opened hmac-secret salts and the secret to encrypt the outputs with.
pub(super) struct OpenedSalts {
    shared: SharedSecret,
    salts: Salts,
}

/// makeCredential extension inputs, validated.
#[derive(Default)]
pub(super) struct McInputs {
    hmac_secret: bool,
    hmac_secret_mc: Option<OpenedSalts>,
    prf: Option<PrfRequest>,
    cred_protect: Option<CredProtect>,
    cred_blob: Option<Vec<u8>>,
    large_blob_key: bool,
}

/// getAssertion extension inputs, validated.
#[derive(Default)]
pub(super) struct GaInputs {
    hmac_secret: Option<OpenedSalts>,
    prf: Option<PrfRequest>,
    cred_blob: bool,
    large_blob_key: bool,
}

/// What makeCredential returns for the extensions.
pub(super) struct McOutputs {
    /// authenticator-data extensions map.
    pub(super) auth_data: Option<Value>,
    /// Unsigned extension outputs (response key 6).
    pub(super) unsigned: Option<Value>,
    /// Response key 5.
    pub(super) large_blob_key: Option<Vec<u8>>,
}

/// What getAssertion returns for the extensions of one credential.
pub(super) struct GaOutputs {
    pub(super) auth_data: Option<Value>,
    pub(super) unsigned: Option<Value>,
    pub(super) large_blob_key: Option<Vec<u8>>,
}

fn bool_input(v: Option<&Value>) -> Result<bool, StatusCode> {
    match v {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(StatusCode::InvalidParameter),
    }
}

fn map_or_none(entries: Vec<(Value, Value)>) -> Option<Value> {
    (!entries.is_empty()).then_some(Value::Map(entries))
}

/// Joins two authenticator-data extension maps (ours and `minPinLength` from `auth_config`);
/// `AuthenticatorData::to_bytes` writes the result in canonical order.
pub(super) fn merge_output_maps(a: Option<Value>, b: Option<Value>) -> Option<Value> {
    match (a, b) {
        (Some(Value::Map(mut x)), Some(Value::Map(y))) => {
            x.extend(y);
            Some(Value::Map(x))
        }
        (x, None) => x,
        (None, y) => y,
        (Some(x), Some(_)) => Some(x),
    }
}

impl<S: CredentialStore> Authenticator<S> {
    fn open_salts(&self, v: &Value) -> Result<OpenedSalts, StatusCode> {
        let input = HmacSecretInput::from_cbor(v).map_err(|e| e.to_status())?;
        let shared = self
            .volatile
            .pin
            .key_agreement
            .shared_secret(input.protocol, &input.key_agreement)
            .map_err(|e| e.to_status())?;
        let salts = input.open(&shared)?;
        Ok(OpenedSalts { shared, salts })
    }

    /// Validates makeCredential extension inputs (unknown extensions are ignored).
    pub(super) fn mc_extensions(&self, e: Option<&Value>) -> Result<McInputs, StatusCode> {
        let Some(e) = e else { return Ok(McInputs::default()) };
        let cred_protect = match ext::get(Some(e), ext::CRED_PROTECT) {
            None => None,
            Some(v) => Some(
                v.as_u64().and_then(CredProtect::from_u64).ok_or(StatusCode::InvalidParameter)?,
            ),
        };
        let cred_blob = match ext::get(Some(e), ext::CRED_BLOB) {
            None => None,
            Some(v) => Some(v.as_bytes().ok_or(StatusCode::InvalidParameter)?.to_vec()),
        };
        let hmac_secret_mc =
            ext::get(Some(e), ext::HMAC_SECRET_MC).map(|v| self.open_salts(v)).transpose()?;
        let prf = ext::get(Some(e), ext::PRF)
            .map(|v| PrfRequest::from_cbor(v).map_err(|e| e.to_status()))
            .transpose()?;
        Ok(McInputs {
            hmac_secret: bool_input(ext::get(Some(e), ext::HMAC_SECRET))?,
            hmac_secret_mc,
            prf,
            cred_protect,
            cred_blob,
            large_blob_key: bool_input(ext::get(Some(e), ext::LARGE_BLOB_KEY))?,
        })
    }

    /// Validates getAssertion extension inputs.
    pub(super) fn ga_extensions(&self, e: Option<&Value>) -> Result<GaInputs, StatusCode> {
        let Some(e) = e else { return Ok(GaInputs::default()) };
        let hmac_secret =
            ext::get(Some(e), ext::HMAC_SECRET).map(|v| self.open_salts(v)).transpose()?;
        let prf = ext::get(Some(e), ext::PRF)
            .map(|v| PrfRequest::from_cbor(v).map_err(|e| e.to_status()))
            .transpose()?;
        Ok(GaInputs {
            hmac_secret,
            prf,
            cred_blob: bool_input(ext::get(Some(e), ext::CRED_BLOB))?,
            large_blob_key: bool_input(ext::get(Some(e), ext::LARGE_BLOB_KEY))?,
        })
    }
}

impl McInputs {
    /// The credProtect level the new credential gets.
    pub(super) fn cred_protect(&self) -> CredProtect {
        self.cred_protect.unwrap_or_default()
    }

    /// Extension state of a new resident credential.
    pub(super) fn new_state(
        &self,
        resident: bool,
        rng: &mut impl CryptoRngCore,
    ) -> CredentialExtensions {
        CredentialExtensions {
            cred_random: Some(CredRandom::random(rng)),
            cred_protect: self.cred_protect(),
            cred_blob: self
                .cred_blob
                .clone()
                .filter(|b| resident && b.len() <= MAX_CRED_BLOB_LENGTH),
            large_blob_key: (resident && self.large_blob_key).then(|| LargeBlobKey::random(rng)),
        }
    }

    /// The outputs for the new credential (`state` from [`McInputs::new_state`] for resident
    /// credentials; `cred_random` always).
    pub(super) fn outputs(
        &self,
        state: Option<&CredentialExtensions>,
        cred_random: &CredRandom,
        uv: bool,
        rng: &mut impl CryptoRngCore,
    ) -> Result<McOutputs, StatusCode> {
        let mut signed = Vec::new();
        if let Some(level) = self.cred_protect {
            signed.push((Value::text(ext::CRED_PROTECT), Value::Unsigned(level.to_u64())));
        }
        if self.cred_blob.is_some() {
            let stored = state.is_some_and(|s| s.cred_blob.is_some());
            signed.push((Value::text(ext::CRED_BLOB), Value::Bool(stored)));
        }
        if self.hmac_secret || self.hmac_secret_mc.is_some() {
            signed.push((Value::text(ext::HMAC_SECRET), Value::Bool(true)));
        }
        if let Some(o) = &self.hmac_secret_mc {
            let out = evaluate(&cred_random.for_uv(uv), &o.salts);
            let enc = seal_outputs(&o.shared, &out, rng).map_err(|_| StatusCode::OtherError)?;
            signed.push((Value::text(ext::HMAC_SECRET_MC), Value::bytes(enc)));
        }
        let mut unsigned = Vec::new();
        if let Some(prf) = &self.prf {
            let results = prf.eval.as_ref().map(|s| evaluate(&cred_random.for_uv(uv), s));
            let resp = PrfResponse { enabled: Some(true), results };
            unsigned.push((Value::text(ext::PRF), resp.to_cbor()));
        }
        Ok(McOutputs {
            auth_data: map_or_none(signed),
            unsigned: map_or_none(unsigned),
            large_blob_key: state
                .and_then(|s| s.large_blob_key.as_ref())
                .filter(|_| self.large_blob_key)
                .map(|k| k.expose().to_vec()),
        })
    }
}

impl GaInputs {
    /// The outputs for the credential `credential_id` (`state`: its stored extension state,
    /// `None` for a wrapped credential).
    pub(super) fn outputs(
        &self,
        credential_id: &[u8],
        state: Option<&CredentialExtensions>,
        cred_random: &CredRandom,
        uv: bool,
        rng: &mut impl CryptoRngCore,
    ) -> Result<GaOutputs, StatusCode> {
        let mut signed = Vec::new();
        if self.cred_blob {
            let blob = state.and_then(|s| s.cred_blob.clone()).unwrap_or_default();
            signed.push((Value::text(ext::CRED_BLOB), Value::bytes(blob)));
        }
        if let Some(o) = &self.hmac_secret {
            let out = evaluate(&cred_random.for_uv(uv), &o.salts);
            let enc = seal_outputs(&o.shared, &out, rng).map_err(|_| StatusCode::OtherError)?;
            signed.push((Value::text(ext::HMAC_SECRET), Value::bytes(enc)));
        }
        let mut unsigned = Vec::new();
        if let Some(salts) = self.prf.as_ref().and_then(|p| p.salts_for(credential_id)) {
            let resp = PrfResponse {
                enabled: None,
                results: Some(evaluate(&cred_random.for_uv(uv), salts)),
            };
            unsigned.push((Value::text(ext::PRF), resp.to_cbor()));
        }
        Ok(GaOutputs {
            auth_data: map_or_none(signed),
            unsigned: map_or_none(unsigned),
            large_blob_key: state
                .and_then(|s| s.large_blob_key.as_ref())
                .filter(|_| self.large_blob_key)
                .map(|k| k.expose().to_vec()),
        })
    }
}
