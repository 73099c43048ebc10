//! authenticatorCredentialManagement (0x0A, CTAP 2.1 §6.8): metadata, enumerate RPs, enumerate
//! credentials, delete, updateUserInformation.
//!
//! Every subcommand except the two `GetNext…` ones needs a pinUvAuthParam over
//! `subCommand ‖ subCommandParams` made with a token holding the `cm` permission. Enumeration
//! cursors are volatile and dropped by any other command.

use super::keys::rp_id_hash;
use super::{Authenticator, CmdResult, CredentialStore, Ctx, Flow, ResidentCredential};
use crate::cbor::{field, Value};
use crate::ctap2::StatusCode;

/// Enumeration state between Begin and GetNext calls.
pub(super) enum Cursor {
    None,
    Rps(Vec<(String, Option<String>)>),
    Credentials(Vec<Vec<u8>>),
}

fn rp_entry(rp_id: &str, name: &Option<String>) -> Vec<(i64, Value)> {
    let mut rp = vec![("id", Value::text(rp_id))];
    if let Some(n) = name {
        rp.push(("name", Value::text(n.clone())));
    }
    vec![(3, Value::text_map(rp)), (4, Value::bytes(rp_id_hash(rp_id).to_vec()))]
}

fn credential_entry(c: &ResidentCredential) -> Result<Vec<(i64, Value)>, StatusCode> {
    let mut user = vec![("id", Value::bytes(c.user_id.clone()))];
    if let Some(n) = &c.user_name {
        user.push(("name", Value::text(n.clone())));
    }
    if let Some(n) = &c.user_display_name {
        user.push(("displayName", Value::text(n.clone())));
    }
    Ok(vec![
        (6, Value::text_map(user)),
        (
            7,
            Value::text_map([
                ("id", Value::bytes(c.id.clone())),
                ("type", Value::text("public-key")),
            ]),
        ),
        (8, c.key.cose_public_key().ok_or(StatusCode::OtherError)?),
        (10, Value::int(1)),
    ])
}

impl<S: CredentialStore> Authenticator<S> {
    pub(super) fn credential_management(&mut self, p: &Value, ctx: &mut Ctx<'_>) -> CmdResult {
        let cs = super::error::cbor_status;
        let sub = field::uint(p.get(1), "subCommand").map_err(cs)?;
        let sub_byte = u8::try_from(sub).map_err(|_| StatusCode::InvalidSubcommand)?;
        let params = p.get(2);
        if !matches!(sub, 0x03 | 0x05) {
            let param = field::bytes(p.get(4), "pinUvAuthParam").map_err(cs)?;
            let mut message = vec![sub_byte];
            if let Some(v) = params {
                v.encode_into(&mut message);
            }
            self.verify_pin_uv_auth(
                param,
                p.get(3),
                &message,
                super::client_pin::PERM_CM,
                None,
                ctx.now,
            )?;
        }
        let state = self.store.state();
        let reply = match sub {
            0x01 => {
                let n = state.credentials.len();
                let left = self.config.max_credentials.saturating_sub(n);
                vec![(1, Value::int(n as i64)), (2, Value::int(left as i64))]
            }
            0x02 => {
                let mut rps: Vec<(String, Option<String>)> = Vec::new();
                for c in &state.credentials {
                    if !rps.iter().any(|(id, _)| *id == c.rp_id) {
                        rps.push((c.rp_id.clone(), c.rp_name.clone()));
                    }
                }
                if rps.is_empty() {
                    return Err(StatusCode::NoCredentials);
                }
                let (first_id, first_name) = rps.remove(0);
                let mut out = rp_entry(&first_id, &first_name);
                out.push((5, Value::int(rps.len() as i64 + 1)));
                self.volatile.enumeration = Cursor::Rps(rps);
                out
            }
            0x03 => match &mut self.volatile.enumeration {
                Cursor::Rps(rps) if !rps.is_empty() => {
                    let (id, name) = rps.remove(0);
                    rp_entry(&id, &name)
                }
                _ => return Err(StatusCode::NotAllowed),
            },
            0x04 => {
                let params = field::map(params, "subCommandParams").map_err(cs)?;
                let hash = field::fixed::<32>(params.get(1), "rpIDHash").map_err(cs)?;
                let mut ids: Vec<Vec<u8>> = state
                    .credentials
                    .iter()
                    .filter(|c| rp_id_hash(&c.rp_id) == *hash)
                    .map(|c| c.id.clone())
                    .collect();
                if ids.is_empty() {
                    return Err(StatusCode::NoCredentials);
                }
                let total = ids.len();
                let first = ids.remove(0);
                let c = state
                    .credentials
                    .iter()
                    .find(|c| c.id == first)
                    .ok_or(StatusCode::OtherError)?;
                let mut out = credential_entry(c)?;
                out.push((9, Value::int(total as i64)));
                self.volatile.enumeration = Cursor::Credentials(ids);
                out
            }
            0x05 => {
                let Cursor::Credentials(ids) = &mut self.volatile.enumeration else {
                    return Err(StatusCode::NotAllowed);
                };
                if ids.is_empty() {
                    return Err(StatusCode::NotAllowed);
                }
                let id = ids.remove(0);
                let c = state
                    .credentials
                    .iter()
                    .find(|c| c.id == id)
                    .ok_or(StatusCode::NoCredentials)?;
                credential_entry(c)?
            }
            0x06 | 0x07 => {
                let params = field::map(params, "subCommandParams").map_err(cs)?;
                let descriptor = field::map(params.get(2), "credentialId").map_err(cs)?;
                let id = field::bytes(descriptor.get_text("id"), "credentialId.id").map_err(cs)?;
                let mut next = state.clone();
                let pos = next
                    .credentials
                    .iter()
                    .position(|c| c.id == id)
                    .ok_or(StatusCode::NoCredentials)?;
                if sub == 0x06 {
                    next.credentials.remove(pos);
                } else {
                    let user = field::map(params.get(3), "user").map_err(cs)?;
                    let user_id = field::bytes(user.get_text("id"), "user.id").map_err(cs)?;
                    let cred = next.credentials.get_mut(pos).ok_or(StatusCode::NoCredentials)?;
                    if cred.user_id != user_id {
                        return Err(StatusCode::InvalidParameter);
                    }
                    cred.user_name = super::opt_text(user.get_text("name"))?;
                    cred.user_display_name = super::opt_text(user.get_text("displayName"))?;
                }
                self.commit(next)?;
                return Ok(Flow::Reply(None));
            }
            _ => return Err(StatusCode::InvalidSubcommand),
        };
        Ok(Flow::Reply(Some(Value::int_map(reply))))
    }
}
