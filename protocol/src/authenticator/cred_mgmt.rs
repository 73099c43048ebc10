//! authenticatorCredentialManagement (0x0A, CTAP 2.1 §6.8): metadata, enumerate RPs, enumerate
//! credentials, delete, updateUserInformation.
//!
//! Every subcommand except the two `GetNext…` ones needs a pinUvAuthParam over
//! `subCommand ‖ subCommandParams` made with a token holding the `cm` permission, or, for the
//! read-only ones (metadata, enumerate RPs, enumerate credentials), the persistent `pcmr` token. Enumeration
//! cursors are volatile and dropped by any other command.
//!
//! The authenticated message is built from the parameters *as received* (canonical CBOR
//! re-encoding of the raw map) rather than from [`CredentialManagementRequest::auth_message`]:
//! the typed `User` / `CredentialDescriptor` drop members they do not know (a user `icon`, say),
//! and the platform signed those too.

use super::keys::rp_id_hash;
use super::{decoded, Authenticator, CmdResult, CredentialStore, Ctx, Flow};
use crate::cbor::Value;
use crate::ctap2::{
    CredMgmtSubcommand as Sub, CredentialDescriptor, CredentialManagementRequest,
    CredentialManagementResponse as Resp, Permissions, RelyingParty, StatusCode,
};

/// Enumeration state between Begin and GetNext calls.
pub(super) enum Cursor {
    None,
    Rps(Vec<RelyingParty>),
    Credentials(Vec<Vec<u8>>),
}

fn rp_entry(rp: RelyingParty) -> Resp {
    Resp { rp_id_hash: Some(rp_id_hash(&rp.id)), rp: Some(rp), ..Resp::default() }
}

impl<S: CredentialStore> Authenticator<S> {
    /// The enumeration entry for resident credential `id`.
    fn credential_entry(&self, id: &[u8]) -> Result<Resp, StatusCode> {
        let state = self.store.state();
        let c = state.credentials.iter().find(|c| c.id == id).ok_or(StatusCode::NoCredentials)?;
        Ok(Resp {
            user: Some(c.user()),
            credential_id: Some(CredentialDescriptor::public_key(c.id.clone())),
            public_key: Some(c.key.public_cose().ok_or(StatusCode::OtherError)?),
            // credProtect level 1 (userVerificationOptional): we implement no credProtect.
            cred_protect: Some(1),
            ..Resp::default()
        })
    }

    pub(super) fn credential_management(&mut self, p: &Value, ctx: &mut Ctx<'_>) -> CmdResult {
        let req = CredentialManagementRequest::from_cbor(p);
        let req = decoded(req, "subCommand", StatusCode::InvalidSubcommand)?;
        let sub = req.sub_command;
        if sub.needs_auth() {
            let param = req.pin_uv_auth_param.as_deref().ok_or(StatusCode::MissingParameter)?;
            let mut message = vec![sub.to_u8()];
            if let Some(raw) = p.get(2) {
                raw.encode_into(&mut message);
            }
            let proto = req.pin_uv_auth_protocol;
            let cm = Permissions::CREDENTIAL_MANAGEMENT;
            let verified = self.verify_pin_uv_auth(param, proto, &message, cm, None, ctx.now);
            // The persistent pcmr token (CTAP 2.2) may read, never change.
            let read_only = matches!(
                sub,
                Sub::GetCredsMetadata | Sub::EnumerateRpsBegin | Sub::EnumerateCredentialsBegin
            );
            if let Err(status) = verified {
                if !read_only || self.verify_persistent_token(param, proto, &message).is_err() {
                    return Err(status);
                }
            }
        }
        let params = req.params.unwrap_or_default();
        let state = self.store.state();
        let reply = match sub {
            Sub::GetCredsMetadata => {
                let n = state.credentials.len();
                Resp {
                    existing_resident_credentials_count: Some(n as u64),
                    max_possible_remaining_resident_credentials_count: Some(
                        self.config.max_credentials.saturating_sub(n) as u64,
                    ),
                    ..Resp::default()
                }
            }
            Sub::EnumerateRpsBegin => {
                let mut rps: Vec<RelyingParty> = Vec::new();
                for c in &state.credentials {
                    if !rps.iter().any(|rp| rp.id == c.rp_id) {
                        rps.push(RelyingParty { id: c.rp_id.clone(), name: c.rp_name.clone() });
                    }
                }
                if rps.is_empty() {
                    return Err(StatusCode::NoCredentials);
                }
                let total = rps.len() as u64;
                let first = rps.remove(0);
                self.volatile.enumeration = Cursor::Rps(rps);
                Resp { total_rps: Some(total), ..rp_entry(first) }
            }
            Sub::EnumerateRpsGetNextRp => match &mut self.volatile.enumeration {
                Cursor::Rps(rps) if !rps.is_empty() => rp_entry(rps.remove(0)),
                _ => return Err(StatusCode::NotAllowed),
            },
            Sub::EnumerateCredentialsBegin => {
                let hash = params.rp_id_hash.ok_or(StatusCode::MissingParameter)?;
                let mut ids: Vec<Vec<u8>> = state
                    .credentials
                    .iter()
                    .filter(|c| rp_id_hash(&c.rp_id) == hash)
                    .map(|c| c.id.clone())
                    .collect();
                if ids.is_empty() {
                    return Err(StatusCode::NoCredentials);
                }
                let total = ids.len() as u64;
                let first = ids.remove(0);
                let entry = self.credential_entry(&first)?;
                self.volatile.enumeration = Cursor::Credentials(ids);
                Resp { total_credentials: Some(total), ..entry }
            }
            Sub::EnumerateCredentialsGetNextCredential => {
                let id = match &mut self.volatile.enumeration {
                    Cursor::Credentials(ids) if !ids.is_empty() => ids.remove(0),
                    _ => return Err(StatusCode::NotAllowed),
                };
                self.credential_entry(&id)?
            }
            Sub::DeleteCredential | Sub::UpdateUserInformation => {
                let id = params.credential_id.ok_or(StatusCode::MissingParameter)?.id;
                let mut next = state.clone();
                let pos = next
                    .credentials
                    .iter()
                    .position(|c| c.id == id)
                    .ok_or(StatusCode::NoCredentials)?;
                if sub == Sub::DeleteCredential {
                    next.credentials.remove(pos);
                } else {
                    let user = params.user.ok_or(StatusCode::MissingParameter)?;
                    let cred = next.credentials.get_mut(pos).ok_or(StatusCode::NoCredentials)?;
                    if cred.user_id != user.id {
                        return Err(StatusCode::InvalidParameter);
                    }
                    cred.user_name = user.name;
                    cred.user_display_name = user.display_name;
                }
                self.commit(next)?;
                return Ok(Flow::Reply(None));
            }
            _ => return Err(StatusCode::InvalidSubcommand),
        };
        Ok(Flow::Reply(Some(reply.to_cbor())))
    }
}
