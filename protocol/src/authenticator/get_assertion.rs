//! authenticatorGetAssertion (0x02, CTAP 2.1 §6.2) and authenticatorGetNextAssertion (0x08, §6.3).
//!
//! With an allowList the first listed credential we own (resident, or a wrapped ID that opens for
//! this RP) is used. Without one, the RP's discoverable credentials are offered newest first:
//! the first response carries `numberOfCredentials` when there are several, and the rest are
//! fetched with getNextAssertion within [`super::Config::next_assertion_timeout`]; any other
//! command in between discards that state. Each assertion increments the credential's counter
//! (resident) or the global counter (non-resident) and is persisted before it is returned.

use super::keys::{rp_id_hash, CredentialKey};
use super::make_credential::descriptor_ids;
use super::{
    auth_data, flags, opt_bool, Authenticator, CmdResult, Continuation, CredentialStore, Ctx, Flow,
    PresenceKind, PresenceRequest,
};
use crate::cbor::{field, Value};
use crate::ctap2::StatusCode;
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
    client_data_hash: Vec<u8>,
    candidates: Vec<Candidate>,
    discoverable: bool,
    up: bool,
    uv: bool,
}

/// getNextAssertion state.
pub(super) struct NextState {
    plan: Plan,
    expires: Instant,
}

impl<S: CredentialStore> Authenticator<S> {
    pub(super) fn get_assertion(&mut self, p: &Value, ctx: &mut Ctx<'_>) -> CmdResult {
        let cs = super::error::cbor_status;
        let rp_id = field::text(p.get(1), "rpId").map_err(cs)?.to_owned();
        let client_data_hash = field::bytes(p.get(2), "clientDataHash").map_err(cs)?.to_vec();
        let allow = descriptor_ids(p.get(3))?;
        let options = match p.get(5) {
            None => None,
            Some(o) if o.as_map().is_some() => Some(o),
            Some(_) => return Err(StatusCode::CborUnexpectedType),
        };
        if opt_bool(options, "rk")?.is_some() {
            return Err(StatusCode::UnsupportedOption);
        }
        let up = opt_bool(options, "up")?.unwrap_or(true);
        let uv_option = opt_bool(options, "uv")?.unwrap_or(false);
        let uv = match p.get(6) {
            Some(param) => {
                let param = param.as_bytes().ok_or(StatusCode::CborUnexpectedType)?;
                self.verify_pin_uv_auth(
                    param,
                    p.get(7),
                    &client_data_hash,
                    super::client_pin::PERM_GA,
                    Some(&rp_id),
                    ctx.now,
                )?;
                true
            }
            None if self.config.builtin_uv => true,
            None if uv_option => return Err(StatusCode::InvalidOption),
            None => false,
        };
        let rp_hash = rp_id_hash(&rp_id);
        let state = self.store.state();
        let discoverable = allow.is_empty();
        let candidates: Vec<Candidate> = if discoverable {
            state
                .credentials
                .iter()
                .rev()
                .filter(|c| c.rp_id == rp_id)
                .map(|c| Candidate::Resident(c.id.clone()))
                .collect()
        } else {
            allow
                .iter()
                .find_map(|id| {
                    if state.credentials.iter().any(|c| c.id == *id && c.rp_id == rp_id) {
                        Some(Candidate::Resident(id.clone()))
                    } else {
                        let key = state.master_key.unwrap(id, &rp_hash)?;
                        Some(Candidate::Wrapped { id: id.clone(), key })
                    }
                })
                .into_iter()
                .collect()
        };
        if candidates.is_empty() {
            return Err(StatusCode::NoCredentials);
        }
        let plan = Plan { rp_id_hash: rp_hash, client_data_hash, candidates, discoverable, up, uv };
        if !up {
            return self.finish_get_assertion(plan, ctx).map(Flow::Reply);
        }
        Ok(Flow::Presence(
            PresenceRequest {
                kind: PresenceKind::GetAssertion,
                rp_id: Some(rp_id),
                user_verification: uv && self.config.builtin_uv,
            },
            Continuation::GetAssertion(plan),
        ))
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
        let mut response = self.sign_one(&plan, first)?;
        if plan.discoverable && total > 1 {
            if let Value::Map(m) = &mut response {
                m.push((Value::int(5), Value::int(total as i64)));
            }
            self.volatile.next_assertion =
                Some(NextState { plan, expires: ctx.now + self.config.next_assertion_timeout });
        }
        Ok(Some(response))
    }

    pub(super) fn get_next_assertion(&mut self, ctx: &mut Ctx<'_>) -> CmdResult {
        let Some(mut next) = self.volatile.next_assertion.take() else {
            return Err(StatusCode::NotAllowed);
        };
        if ctx.now > next.expires || next.plan.candidates.is_empty() {
            return Err(StatusCode::NotAllowed);
        }
        let candidate = next.plan.candidates.remove(0);
        let response = self.sign_one(&next.plan, candidate)?;
        if !next.plan.candidates.is_empty() {
            self.volatile.next_assertion = Some(next);
        }
        Ok(Flow::Reply(Some(response)))
    }

    /// Signs one assertion, persisting the incremented counter first.
    fn sign_one(&mut self, plan: &Plan, candidate: Candidate) -> Result<Value, StatusCode> {
        let mut state = self.store.state().clone();
        let (id, key, count, user) = match candidate {
            Candidate::Resident(id) => {
                let c = state
                    .credentials
                    .iter_mut()
                    .find(|c| c.id == id)
                    .ok_or(StatusCode::NoCredentials)?;
                c.sign_count = c.sign_count.saturating_add(1);
                let mut user = vec![("id", Value::bytes(c.user_id.clone()))];
                if let Some(n) = &c.user_name {
                    user.push(("name", Value::text(n.clone())));
                }
                if let Some(n) = &c.user_display_name {
                    user.push(("displayName", Value::text(n.clone())));
                }
                (id, c.key.clone(), c.sign_count, Some(Value::text_map(user)))
            }
            Candidate::Wrapped { id, key } => {
                state.global_sign_count = state.global_sign_count.saturating_add(1);
                (id, key, state.global_sign_count, None)
            }
        };
        let f = if plan.up { flags::UP } else { 0 } | if plan.uv { flags::UV } else { 0 };
        let data = auth_data(&plan.rp_id_hash, f, count);
        let mut signed = data.clone();
        signed.extend_from_slice(&plan.client_data_hash);
        let sig = key.sign_der(&signed).ok_or(StatusCode::OtherError)?;
        self.commit(state)?;
        let mut out = vec![
            (1, Value::text_map([("id", Value::Bytes(id)), ("type", Value::text("public-key"))])),
            (2, Value::Bytes(data)),
            (3, Value::Bytes(sig)),
        ];
        if let (true, Some(user)) = (plan.discoverable, user) {
            out.push((4, user));
        }
        Ok(Value::int_map(out))
    }
}
