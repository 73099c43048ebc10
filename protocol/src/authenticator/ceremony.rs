//! What makeCredential and getAssertion share: how user verification is established, the
//! presence request they raise, and the authenticator-data flags they set. Not the commands
//! themselves (`make_credential`, `get_assertion`).

use super::{Authenticator, CredentialStore, PresenceKind, PresenceRequest};
use crate::ctap2::{AuthDataFlags, CommandOptions, Permissions, StatusCode};
use std::time::Instant;

/// The UV-relevant members of a makeCredential / getAssertion request.
pub(super) struct UvInputs<'a> {
    param: Option<&'a [u8]>,
    protocol: Option<u64>,
    uv_option: bool,
    client_data_hash: &'a [u8; 32],
    rp_id: &'a str,
}

impl<'a> UvInputs<'a> {
    pub(super) fn of(
        (param, protocol): (&'a Option<Vec<u8>>, Option<u64>),
        options: CommandOptions,
        client_data_hash: &'a [u8; 32],
        rp_id: &'a str,
    ) -> Self {
        let uv_option = options.uv.unwrap_or(false);
        UvInputs { param: param.as_deref(), protocol, uv_option, client_data_hash, rp_id }
    }
}

/// Authenticator-data flags for our credentials. BE (backup eligible) and BS (backed up) are 0
/// unless [`super::Config::backup_eligible`] models a synced passkey provider: by default
/// credential keys live only in this authenticator's store and are never synced (an exported
/// [`super::PersistentState`] is an operator's copy, not a sync fabric), so relying parties must
/// treat them as device-bound (WebAuthn §6.1, flags bits 3 and 4). With `backup_eligible` both
/// are set, as synced providers report a passkey that is already backed up. AT and ED follow the
/// optional parts when [`crate::ctap2::AuthenticatorData::to_bytes`] serialises.
pub(super) fn auth_data_flags(up: bool, uv: bool, backup_eligible: bool) -> AuthDataFlags {
    AuthDataFlags::default()
        .with(AuthDataFlags::UP, up)
        .with(AuthDataFlags::UV, uv)
        .with(AuthDataFlags::BE, backup_eligible)
        .with(AuthDataFlags::BS, backup_eligible)
}

impl<S: CredentialStore> Authenticator<S> {
    /// How makeCredential / getAssertion establish UV (CTAP 2.1 §6.1.2 steps 6–11, §6.2.2): a
    /// pinUvAuthParam must verify; otherwise built-in UV counts; otherwise `uv: true` is an
    /// invalid option, `alwaysUv` demands a token (PUAT_REQUIRED; OPERATION_DENIED without
    /// clientPIN) and a PIN-protected key demands a token for makeCredential.
    pub(super) fn user_verification(
        &mut self,
        inputs: UvInputs<'_>,
        permission: Permissions,
        now: Instant,
    ) -> Result<bool, StatusCode> {
        match inputs.param {
            Some(param) => {
                let (message, rp) = (inputs.client_data_hash, Some(inputs.rp_id));
                self.verify_pin_uv_auth(param, inputs.protocol, message, permission, rp, now)?;
                Ok(true)
            }
            None if self.builtin_uv_available() => Ok(true),
            None if inputs.uv_option => Err(StatusCode::InvalidOption),
            // alwaysUv (authenticatorConfig): no ceremony without user verification.
            None if self.store.state().settings.always_uv => Err(if self.config.pin_capable {
                StatusCode::PuatRequired
            } else {
                StatusCode::OperationDenied
            }),
            None if permission == Permissions::MAKE_CREDENTIAL
                && self.store.state().pin_hash.is_some() =>
            {
                Err(StatusCode::PuatRequired)
            }
            None => Ok(false),
        }
    }

    /// Built-in UV right now: configured, or a simulated fingerprint sensor with a finger
    /// enrolled ([`super::Config::bio`]).
    pub(super) fn builtin_uv_available(&self) -> bool {
        self.config.builtin_uv || self.bio_enrolled()
    }

    /// The presence request of a makeCredential / getAssertion.
    pub(super) fn ceremony_presence(
        &self,
        kind: PresenceKind,
        rp_id: &str,
        uv: bool,
    ) -> PresenceRequest {
        PresenceRequest {
            kind,
            rp_id: Some(rp_id.to_owned()),
            user_verification: uv && self.builtin_uv_available(),
        }
    }
}
