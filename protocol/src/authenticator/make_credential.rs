//! authenticatorMakeCredential (0x01, CTAP 2.1 §6.1).
//!
//! ES256 only: the first `pubKeyCredParams` entry that is `{type: "public-key", alg: -7}` wins, and
//! none → CTAP2_ERR_UNSUPPORTED_ALGORITHM. `rk: true` stores a resident credential (replacing one
//! with the same RP and user.id); otherwise the credential ID is the wrapped key (see `keys`) and
//! nothing is stored. An excludeList hit is reported only after user presence, as the spec
//! requires, so a page cannot probe for credentials silently.

use super::auth_config::min_pin_length_extension;
use super::keys::{self, rp_id_hash, CredentialKey};
use super::store::ResidentCredential;
use super::{
    attestation, auth_data_flags, request_status, Authenticator, CmdResult, Continuation,
    CredentialStore, Ctx, Flow, PresenceKind, UvInputs,
};
use crate::cbor::Value;
use crate::ctap2::entities::PUBLIC_KEY;
use crate::ctap2::{
    AttestedCredentialData, AuthenticatorData, CoseAlgorithm, CredentialDescriptor,
    MakeCredentialRequest, MakeCredentialResponse, Permissions, RelyingParty, StatusCode, User,
};

/// WebAuthn §5.4.3: user handles are at most 64 bytes.
const MAX_USER_ID_LEN: usize = 64;

/// A validated makeCredential waiting for presence.
pub(super) struct Plan {
    rp: RelyingParty,
    user: User,
    client_data_hash: [u8; 32],
    resident: bool,
    uv: bool,
    excluded: bool,
    /// Return an enterprise attestation (`epAtt`), see `auth_config`.
    ep: bool,
    /// The `minPinLength` extension output, see `auth_config`.
    min_pin_length: Option<u64>,
    /// Boxed: opened hmac-secret salts and their shared secret are large.
    extensions: Box<super::extensions::McInputs>,
}

/// Credential IDs of the `public-key` descriptors of an allow/exclude list (others are ignored,
/// as WebAuthn requires for unknown types).
pub(super) fn public_key_ids(list: &[CredentialDescriptor]) -> Vec<Vec<u8>> {
    list.iter().filter(|d| d.cred_type == PUBLIC_KEY).map(|d| d.id.clone()).collect()
}

impl<S: CredentialStore> Authenticator<S> {
    /// Whether `id` names one of our credentials for `rp_id` (resident or wrapped).
    pub(super) fn owns_credential(&self, rp_id: &str, id: &[u8]) -> bool {
        let state = self.store.state();
        state.credentials.iter().any(|c| c.id == id && c.rp_id == rp_id)
            || state.master_key.unwrap(id, &rp_id_hash(rp_id)).is_some()
    }

    pub(super) fn make_credential(&mut self, p: &Value, ctx: &mut Ctx<'_>) -> CmdResult {
        let req = MakeCredentialRequest::from_cbor(p).map_err(request_status)?;
        if req.user.id.len() > MAX_USER_ID_LEN {
            return Err(StatusCode::InvalidLength);
        }
        let es256 = req
            .pub_key_cred_params
            .iter()
            .any(|c| c.cred_type == PUBLIC_KEY && c.alg == CoseAlgorithm::Es256);
        if !es256 {
            return Err(StatusCode::UnsupportedAlgorithm);
        }
        if req.options.up == Some(false) {
            return Err(StatusCode::InvalidOption);
        }
        let extensions = self.mc_extensions(req.extensions.as_ref())?;
        let uv = self.user_verification(
            UvInputs::of(
                (&req.pin_uv_auth_param, req.pin_uv_auth_protocol),
                req.options,
                &req.client_data_hash,
                &req.rp.id,
            ),
            Permissions::MAKE_CREDENTIAL,
            ctx.now,
        )?;
        let excluded =
            public_key_ids(&req.exclude_list).iter().any(|id| self.owns_credential(&req.rp.id, id));
        let ep = self.enterprise_attestation_for(req.enterprise_attestation, &req.rp.id)?;
        let min_pin_length = self.min_pin_length_output(req.extensions.as_ref(), &req.rp.id);
        let request = self.ceremony_presence(PresenceKind::MakeCredential, &req.rp.id, uv);
        let plan = Plan {
            rp: req.rp,
            user: req.user,
            client_data_hash: req.client_data_hash,
            resident: req.options.rk.unwrap_or(false),
            uv,
            excluded,
            ep,
            min_pin_length,
            extensions: Box::new(extensions),
        };
        Ok(Flow::Presence(request, Continuation::MakeCredential(plan)))
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
        let rp_hash = rp_id_hash(&plan.rp.id);
        let mut next = None;
        let mut stored = None;
        let credential_id = if plan.resident {
            let mut state = self.store.state().clone();
            state.credentials.retain(|c| !(c.rp_id == plan.rp.id && c.user_id == plan.user.id));
            if state.credentials.len() >= self.config.max_credentials {
                return Err(StatusCode::KeyStoreFull);
            }
            let id = keys::resident_id(&mut rng);
            let extensions = plan.extensions.new_state(true, &mut rng);
            stored = Some(extensions.clone());
            state.credentials.push(ResidentCredential {
                id: id.clone(),
                rp_id: plan.rp.id.clone(),
                rp_name: plan.rp.name.clone(),
                user_id: plan.user.id.clone(),
                user_name: plan.user.name.clone(),
                user_display_name: plan.user.display_name.clone(),
                key: key.clone(),
                sign_count: 0,
                extensions,
            });
            next = Some(state);
            id
        } else {
            let protect = plan.extensions.cred_protect();
            self.store.state().master_key.wrap_protected(&key, &rp_hash, protect, &mut rng)
        };
        let cred_random = match stored.as_ref().and_then(|s| s.cred_random.clone()) {
            Some(r) => r,
            None => self.store.state().master_key.derived_cred_random(&credential_id),
        };
        let outputs = plan.extensions.outputs(stored.as_ref(), &cred_random, plan.uv, &mut rng)?;
        let public_key = key.public_cose().ok_or(StatusCode::OtherError)?;
        let auth_data = AuthenticatorData {
            rp_id_hash: rp_hash,
            flags: auth_data_flags(true, plan.uv, self.config.backup_eligible),
            sign_count: 0,
            attested_credential: Some(AttestedCredentialData {
                aaguid: self.config.aaguid,
                credential_id,
                public_key,
            }),
            extensions: super::extensions::merge_output_maps(
                outputs.auth_data,
                min_pin_length_extension(plan.min_pin_length),
            ),
        }
        .to_bytes()
        .map_err(|_| StatusCode::OtherError)?;
        // An enterprise attestation is always a certificate chain (never `none`).
        let mode =
            if plan.ep { super::AttestationMode::PackedTestCa } else { self.config.attestation };
        let statement = attestation::statement(
            mode,
            self.test_ca.as_ref(),
            &key,
            &auth_data,
            &plan.client_data_hash,
        )
        .ok_or(StatusCode::OtherError)?;
        // Persist last: a refused commit means no credential and an error response.
        if let Some(state) = next {
            self.commit(state)?;
        }
        let response = MakeCredentialResponse {
            fmt: statement.fmt().to_owned(),
            auth_data,
            att_stmt: statement.to_cbor(),
            ep_att: plan.ep.then_some(true),
            large_blob_key: outputs.large_blob_key,
            unsigned_extension_outputs: outputs.unsigned,
        };
        Ok(Some(response.to_cbor()))
    }
}
