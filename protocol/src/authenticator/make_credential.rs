//! authenticatorMakeCredential (0x01, CTAP 2.1 §6.1).
//!
//! ES256 only: the first `pubKeyCredParams` entry that is `{type: "public-key", alg: -7}` wins, and
//! none → CTAP2_ERR_UNSUPPORTED_ALGORITHM. `rk: true` stores a resident credential (replacing one
//! with the same RP and user.id); otherwise the credential ID is the wrapped key (see `keys`) and
//! nothing is stored. An excludeList hit is reported only after user presence, as the spec
//! requires, so a page cannot probe for credentials silently.

use super::keys::{self, rp_id_hash, CredentialKey};
use super::store::ResidentCredential;
use super::{
    attestation, auth_data, flags, opt_bool, opt_text, Authenticator, CmdResult, Continuation,
    CredentialStore, Ctx, Flow, PresenceKind, PresenceRequest,
};
use crate::cbor::{field, Value};
use crate::ctap2::StatusCode;

/// A validated makeCredential waiting for presence.
pub(super) struct Plan {
    rp_id: String,
    rp_name: Option<String>,
    user_id: Vec<u8>,
    user_name: Option<String>,
    user_display_name: Option<String>,
    client_data_hash: Vec<u8>,
    resident: bool,
    uv: bool,
    excluded: bool,
}

/// Credential IDs of a list of PublicKeyCredentialDescriptors (non-"public-key" types skipped).
pub(super) fn descriptor_ids(list: Option<&Value>) -> Result<Vec<Vec<u8>>, StatusCode> {
    let Some(list) = list else { return Ok(Vec::new()) };
    let items = list.as_array().ok_or(StatusCode::CborUnexpectedType)?;
    let mut ids = Vec::with_capacity(items.len());
    for d in items {
        let id = field::bytes(d.get_text("id"), "id").map_err(super::error::cbor_status)?;
        let ty = field::text(d.get_text("type"), "type").map_err(super::error::cbor_status)?;
        if ty == "public-key" {
            ids.push(id.to_vec());
        }
    }
    Ok(ids)
}

impl<S: CredentialStore> Authenticator<S> {
    /// Whether `id` names one of our credentials for `rp_id` (resident or wrapped).
    pub(super) fn owns_credential(&self, rp_id: &str, id: &[u8]) -> bool {
        let state = self.store.state();
        state.credentials.iter().any(|c| c.id == id && c.rp_id == rp_id)
            || state.master_key.unwrap(id, &rp_id_hash(rp_id)).is_some()
    }

    pub(super) fn make_credential(&mut self, p: &Value, ctx: &mut Ctx<'_>) -> CmdResult {
        let cs = super::error::cbor_status;
        let client_data_hash = field::bytes(p.get(1), "clientDataHash").map_err(cs)?.to_vec();
        let rp = field::map(p.get(2), "rp").map_err(cs)?;
        let user = field::map(p.get(3), "user").map_err(cs)?;
        let params = field::array(p.get(4), "pubKeyCredParams").map_err(cs)?;
        let rp_id = field::text(rp.get_text("id"), "rp.id").map_err(cs)?.to_owned();
        let user_id = field::bytes(user.get_text("id"), "user.id").map_err(cs)?.to_vec();
        if user_id.len() > 64 {
            return Err(StatusCode::InvalidLength);
        }
        let mut es256 = false;
        for param in params {
            let alg = field::int(param.get_text("alg"), "alg").map_err(cs)?;
            let ty = field::text(param.get_text("type"), "type").map_err(cs)?;
            if ty == "public-key" && alg == keys::ES256 {
                es256 = true;
                break;
            }
        }
        if !es256 {
            return Err(StatusCode::UnsupportedAlgorithm);
        }
        let exclude = descriptor_ids(p.get(5))?;
        let options = match p.get(7) {
            None => None,
            Some(o) if o.as_map().is_some() => Some(o),
            Some(_) => return Err(StatusCode::CborUnexpectedType),
        };
        let resident = opt_bool(options, "rk")?.unwrap_or(false);
        if opt_bool(options, "up")? == Some(false) {
            return Err(StatusCode::InvalidOption);
        }
        let uv_option = opt_bool(options, "uv")?.unwrap_or(false);
        let uv = match p.get(8) {
            Some(param) => {
                let param = param.as_bytes().ok_or(StatusCode::CborUnexpectedType)?;
                let proto = p.get(9);
                self.verify_pin_uv_auth(
                    param,
                    proto,
                    &client_data_hash,
                    super::client_pin::PERM_MC,
                    Some(&rp_id),
                    ctx.now,
                )?;
                true
            }
            None if self.config.builtin_uv => true,
            None if uv_option => return Err(StatusCode::InvalidOption),
            None if self.store.state().pin_hash.is_some() => return Err(StatusCode::PuatRequired),
            None => false,
        };
        let excluded = exclude.iter().any(|id| self.owns_credential(&rp_id, id));
        let plan = Plan {
            rp_name: opt_text(rp.get_text("name"))?,
            user_name: opt_text(user.get_text("name"))?,
            user_display_name: opt_text(user.get_text("displayName"))?,
            rp_id: rp_id.clone(),
            user_id,
            client_data_hash,
            resident,
            uv,
            excluded,
        };
        Ok(Flow::Presence(
            PresenceRequest {
                kind: PresenceKind::MakeCredential,
                rp_id: Some(rp_id),
                user_verification: uv && self.config.builtin_uv,
            },
            Continuation::MakeCredential(plan),
        ))
    }

    pub(super) fn finish_make_credential(
        &mut self,
        plan: Plan,
        ctx: &mut Ctx<'_>,
    ) -> Result<Option<Value>, StatusCode> {
        if plan.excluded {
            return Err(StatusCode::CredentialExcluded);
        }
        let mut rng = &mut *ctx.rng;
        let key = CredentialKey::generate(&mut rng);
        let rp_hash = rp_id_hash(&plan.rp_id);
        let mut next = None;
        let credential_id = if plan.resident {
            let mut state = self.store.state().clone();
            state.credentials.retain(|c| !(c.rp_id == plan.rp_id && c.user_id == plan.user_id));
            if state.credentials.len() >= self.config.max_credentials {
                return Err(StatusCode::KeyStoreFull);
            }
            let id = keys::resident_id(&mut rng);
            state.credentials.push(ResidentCredential {
                id: id.clone(),
                rp_id: plan.rp_id.clone(),
                rp_name: plan.rp_name.clone(),
                user_id: plan.user_id.clone(),
                user_name: plan.user_name.clone(),
                user_display_name: plan.user_display_name.clone(),
                key: key.clone(),
                sign_count: 0,
            });
            next = Some(state);
            id
        } else {
            self.store.state().master_key.wrap(&key, &rp_hash, &mut rng)
        };
        let id_len = u16::try_from(credential_id.len()).map_err(|_| StatusCode::OtherError)?;
        let public = key.cose_public_key().ok_or(StatusCode::OtherError)?;
        let f = flags::UP | flags::AT | if plan.uv { flags::UV } else { 0 };
        let mut data = auth_data(&rp_hash, f, 0);
        data.extend_from_slice(&self.config.aaguid);
        data.extend_from_slice(&id_len.to_be_bytes());
        data.extend_from_slice(&credential_id);
        public.encode_into(&mut data);
        let (fmt, stmt) = attestation::statement(
            self.config.attestation,
            self.test_ca.as_ref(),
            &key,
            &data,
            &plan.client_data_hash,
        )
        .ok_or(StatusCode::OtherError)?;
        // Persist last: a refused commit means no credential and an error response.
        if let Some(state) = next {
            self.commit(state)?;
        }
        Ok(Some(Value::int_map([(1, Value::text(fmt)), (2, Value::Bytes(data)), (3, stmt)])))
    }
}
