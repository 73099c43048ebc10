//! authenticatorGetAssertion (0x02, CTAP 2.1 §6.2) and authenticatorGetNextAssertion (0x08, §6.3).
//!
//! With an allowList the first listed credential we own (resident, or a wrapped ID that opens for
//! this RP) is used. Without one, the RP's discoverable credentials are offered newest first:
//! the first response carries `numberOfCredentials` when there are several, and the rest are
//! fetched with getNextAssertion within [`super::Config::next_assertion_timeout`]; any other
//! command in between discards that state. Each assertion increments the credential's counter
//! (resident) or the global counter (non-resident) and is persisted before it is returned.

use super::keys::{rp_id_hash, CredentialKey};
use super::make_credential::public_key_ids;
use super::{
    auth_data_flags, request_status, Authenticator, CmdResult, Continuation, CredentialStore, Ctx,
    Flow, PresenceKind, UvInputs,
};
use crate::cbor::Value;
use crate::ctap2::{
    AuthenticatorData, CredentialDescriptor, GetAssertionRequest, GetAssertionResponse,
    Permissions, StatusCode,
};
use std::time::Instant;

/// A credential chosen for an assertion.
#[derive(Clone)]
enum Candidate {
    Resident(Vec<u8>),
    Wrapped { id: Vec<u8>, key: CredentialKey },
}

/// A validated getAssertion waiting for presence.
pub(super) struct Plan {
    rp_id_hash: [u8; 32],
    client_data_hash: [u8; 32],
    candidates: Vec<Candidate>,
    discoverable: bool,
    up: bool,
    uv: bool,
    /// Boxed: opened hmac-secret salts and their shared secret are large.
    extensions: Box<super::extensions::GaInputs>,
}

/// getNextAssertion state.
pub(super) struct NextState {
    plan: Plan,
    expires: Instant,
}

impl<S: CredentialStore> Authenticator<S> {
    pub(super) fn get_assertion(&mut self, p: &Value, ctx: &mut Ctx<'_>) -> CmdResult {
        let req = GetAssertionRequest::from_cbor(p).map_err(request_status)?;
        if req.options.rk.is_some() {
            return Err(StatusCode::UnsupportedOption);
        }
        let up = req.options.up.unwrap_or(true);
        let uv = self.user_verification(
            UvInputs::of(
                (&req.pin_uv_auth_param, req.pin_uv_auth_protocol),
                req.options,
                &req.client_data_hash,
                &req.rp_id,
            ),
            Permissions::GET_ASSERTION,
            ctx.now,
        )?;
        let extensions = self.ga_extensions(req.extensions.as_ref())?;
        let allow = public_key_ids(&req.allow_list);
        let rp_id = req.rp_id;
        let rp_hash = rp_id_hash(&rp_id);
        let state = self.store.state();
        let discoverable = allow.is_empty();
        // credProtect (CTAP 2.1 §12.1): a credential the level hides is not there at all.
        let candidates: Vec<Candidate> = if discoverable {
            state
                .credentials
                .iter()
                .rev()
                .filter(|c| c.rp_id == rp_id && c.extensions.cred_protect.allows(uv, false))
                .map(|c| Candidate::Resident(c.id.clone()))
                .collect()
        } else {
            allow
                .into_iter()
                .find_map(|id| {
                    if let Some(c) =
                        state.credentials.iter().find(|c| c.id == id && c.rp_id == rp_id)
                    {
                        c.extensions
                            .cred_protect
                            .allows(uv, true)
                            .then_some(Candidate::Resident(id))
                    } else {
                        let (key, protect) = state.master_key.unwrap_protected(&id, &rp_hash)?;
                        protect.allows(uv, true).then_some(Candidate::Wrapped { id, key })
                    }
                })
                .into_iter()
                .collect()
        };
        if candidates.is_empty() {
            return Err(StatusCode::NoCredentials);
        }
        let plan = Plan {
            rp_id_hash: rp_hash,
            client_data_hash: req.client_data_hash,
            candidates,
            discoverable,
            up,
            uv,
            extensions: Box::new(extensions),
        };
        if !up {
            return self.finish_get_assertion(plan, ctx).map(Flow::Reply);
        }
        let request = self.ceremony_presence(PresenceKind::GetAssertion, &rp_id, uv);
        Ok(Flow::Presence(request, Continuation::GetAssertion(plan)))
    }

    pub(super) fn finish_get_assertion(
        &mut self,
        mut plan: Plan,
        ctx: &mut Ctx<'_>,
    ) -> Result<Option<Value>, StatusCode> {
        let total = plan.candidates.len();
        if plan.candidates.is_empty() {
            return Err(StatusCode::NoCredentials);
        }
        let first = plan.candidates.remove(0);
        let mut response = self.sign_one(&plan, first, ctx)?;
        if plan.discoverable && total > 1 {
            response.number_of_credentials = Some(total as u64);
            self.volatile.next_assertion =
                Some(NextState { plan, expires: ctx.now + self.config.next_assertion_timeout });
        }
        Ok(Some(response.to_cbor()))
    }

    pub(super) fn get_next_assertion(&mut self, ctx: &mut Ctx<'_>) -> CmdResult {
        let Some(mut next) = self.volatile.next_assertion.take() else {
            return Err(StatusCode::NotAllowed);
        };
        if ctx.now > next.expires || next.plan.candidates.is_empty() {
            return Err(StatusCode::NotAllowed);
        }
        let candidate = next.plan.candidates.remove(0);
        let response = self.sign_one(&next.plan, candidate, ctx)?;
        if !next.plan.candidates.is_empty() {
            self.volatile.next_assertion = Some(next);
        }
        Ok(Flow::Reply(Some(response.to_cbor())))
    }

    /// Signs one assertion, persisting the incremented counter first.
    fn sign_one(
        &mut self,
        plan: &Plan,
        candidate: Candidate,
        ctx: &mut Ctx<'_>,
    ) -> Result<GetAssertionResponse, StatusCode> {
        let mut state = self.store.state().clone();
        let (id, key, count, user, stored) = match candidate {
            Candidate::Resident(id) => {
                let c = state
                    .credentials
                    .iter_mut()
                    .find(|c| c.id == id)
                    .ok_or(StatusCode::NoCredentials)?;
                c.sign_count = c.sign_count.saturating_add(1);
                (id, c.key.clone(), c.sign_count, Some(c.user()), Some(c.extensions.clone()))
            }
            Candidate::Wrapped { id, key } => {
                state.global_sign_count = state.global_sign_count.saturating_add(1);
                (id, key, state.global_sign_count, None, None)
            }
        };
        let cred_random = match stored.as_ref().and_then(|s| s.cred_random.clone()) {
            Some(r) => r,
            None => state.master_key.derived_cred_random(&id),
        };
        let mut rng = &mut *ctx.rng;
        let outputs =
            plan.extensions.outputs(&id, stored.as_ref(), &cred_random, plan.uv, &mut rng)?;
        let auth_data = AuthenticatorData {
            rp_id_hash: plan.rp_id_hash,
            flags: auth_data_flags(plan.up, plan.uv, self.config.backup_eligible),
            sign_count: count,
            attested_credential: None,
            extensions: outputs.auth_data,
        }
        .to_bytes()
        .map_err(|_| StatusCode::OtherError)?;
        let signature = key
            .sign_der(&[auth_data.as_slice(), &plan.client_data_hash].concat())
            .ok_or(StatusCode::OtherError)?;
        self.commit(state)?;
        Ok(GetAssertionResponse {
            credential: Some(CredentialDescriptor::public_key(id)),
            auth_data,
            signature,
            // The user entity only identifies a discoverable choice (§6.2.2 step 12).
            user: user.filter(|_| plan.discoverable),
            number_of_credentials: None,
            user_selected: None,
            large_blob_key: outputs.large_blob_key,
            unsigned_extension_outputs: outputs.unsigned,
        })
    }
}
