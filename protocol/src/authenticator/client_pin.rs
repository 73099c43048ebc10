//! authenticatorClientPIN (0x06, CTAP 2.1 §6.5) policy and pinUvAuthParam verification.
//!
//! The cryptography and wire shapes are [`crate::ctap2::pin`] and [`ClientPinRequest`]; this
//! module keeps the state and the rules. Policy: 8 retries persisted with the PIN hash; every
//! wrong PIN costs one retry and forces a new key-agreement key; 3 consecutive mismatches latch
//! PIN_AUTH_BLOCKED until a power cycle; 0 retries → PIN_BLOCKED (only reset recovers). Tokens
//! are 32 random bytes with permissions and an optional RP binding, usable for
//! [`super::Config::token_lifetime`] after issue; issuing a new token invalidates the previous
//! one. getPinToken (0x05) grants `mc | ga` without an RP binding.
//!
//! Which subcommands exist depends on the configuration: the PIN ones (getPINRetries, setPIN,
//! changePIN, getPinToken, getPinUvAuthTokenUsingPinWithPermissions) on PIN-capable configs;
//! getPinUvAuthTokenUsingUvWithPermissions (0x06) and getUVRetries (0x07) on configs with
//! [`super::Config::builtin_uv_token`]; getKeyAgreement on both. Built-in UV is the presence
//! hook with `user_verification: true` ([`PresenceKind::UserVerification`]): approval issues
//! the token, any other outcome is the usual presence error. It never fails by mismatch, so
//! uvRetries stays at [`MAX_UV_RETRIES`].

use super::auth_config::PersistentToken;
use super::store::{PinHash, MAX_PIN_RETRIES};
use super::{
    decoded, request_status, Authenticator, CmdResult, Continuation, CredentialStore, Ctx, Flow,
    PresenceKind, PresenceRequest,
};
use crate::cbor::Value;
use crate::ctap2::pin::authenticator::{
    decrypt_new_pin, decrypt_pin_hash, key_agreement_response, open_change_pin, open_set_pin,
    shared_secret_for, token_response,
};
use crate::ctap2::pin::pin_code::{Pin, DEFAULT_MIN_PIN_LENGTH};
use crate::ctap2::pin::{KeyAgreementKey, PinUvAuthProtocol, PinUvAuthToken, SharedSecret};
use crate::ctap2::{
    ClientPinRequest, ClientPinResponse, ClientPinSubcommand as Sub, Ctap2Error, Permissions,
    StatusCode,
};
use crate::secret::{Secret, SecretBytes};
use rand_core::CryptoRngCore;
use std::time::Instant;

/// The permissions our tokens can carry (CTAP 2.1 §6.5.5.7): mc, ga, cm, lbw everywhere; acfg
/// where authenticatorConfig exists; pcmr (CTAP 2.2, alone: it yields the persistent read-only
/// token) on PIN-capable configs; be only with a fingerprint sensor.
fn perms_supported(c: &super::Config) -> Permissions {
    let mut p = Permissions::MAKE_CREDENTIAL
        | Permissions::GET_ASSERTION
        | Permissions::CREDENTIAL_MANAGEMENT
        | Permissions::LARGE_BLOB_WRITE;
    if c.configurable() {
        p = p | Permissions::AUTHENTICATOR_CONFIG;
    }
    if c.pin_capable {
        p = p | PCMR;
    }
    if c.bio {
        p = p | Permissions::BIO_ENROLLMENT;
    }
    p
}
const PCMR: Permissions = Permissions::PERSISTENT_CREDENTIAL_MANAGEMENT_READ_ONLY;
const MAX_CONSECUTIVE_MISMATCHES: u8 = 3;
/// getUVRetries answer: built-in UV here is a yes/no from the user, never a failed match.
pub(super) const MAX_UV_RETRIES: u64 = 8;

struct Token {
    value: PinUvAuthToken,
    permissions: Permissions,
    rp_id: Option<String>,
    issued_at: Instant,
}

/// Volatile PIN state.
pub(super) struct PinRuntime {
    pub(super) key_agreement: KeyAgreementKey,
    token: Option<Token>,
    mismatches: u8,
    auth_blocked: bool,
}

impl PinRuntime {
    pub(super) fn new(rng: &mut impl CryptoRngCore) -> Self {
        PinRuntime {
            key_agreement: KeyAgreementKey::generate(rng),
            token: None,
            mismatches: 0,
            auth_blocked: false,
        }
    }
}

/// A getPinUvAuthTokenUsingUvWithPermissions waiting for built-in UV.
pub(super) struct UvTokenPlan {
    pub(super) shared: SharedSecret,
    pub(super) permissions: Permissions,
    pub(super) rp_id: Option<String>,
}

/// The request's pinUvAuthProtocol: required, 1 or 2.
fn protocol(p: Option<u64>) -> Result<PinUvAuthProtocol, StatusCode> {
    PinUvAuthProtocol::from_u64(p.ok_or(StatusCode::MissingParameter)?)
        .ok_or(StatusCode::InvalidParameter)
}

/// Required, non-zero and within what we support (§6.5.5.7.2 steps 3–4); `pcmr` only alone.
fn requested_permissions(
    req: &ClientPinRequest,
    config: &super::Config,
) -> Result<Permissions, StatusCode> {
    let perms = req.permissions.ok_or(StatusCode::MissingParameter)?;
    if perms.is_empty() {
        return Err(StatusCode::InvalidParameter);
    }
    if !perms_supported(config).contains(perms) || (perms.contains(PCMR) && perms != PCMR) {
        return Err(StatusCode::UnauthorizedPermission);
    }
    Ok(perms)
}

/// setPIN / changePIN check their mandatory members before touching any state (§6.5.5.5 step 1).
fn require(present: &[bool]) -> Result<(), StatusCode> {
    present.iter().all(|p| *p).then_some(()).ok_or(StatusCode::MissingParameter)
}

impl<S: CredentialStore> Authenticator<S> {
    /// Checks a pinUvAuthParam over `message` against the current token, its permissions and RP
    /// binding; binds an unbound token to `rp_id`.
    pub(super) fn verify_pin_uv_auth(
        &mut self,
        param: &[u8],
        proto: Option<u64>,
        message: &[u8],
        permission: Permissions,
        rp_id: Option<&str>,
        now: Instant,
    ) -> Result<(), StatusCode> {
        let proto = protocol(proto)?;
        // Without a PIN only a built-in-UV token can exist; a zero-length param is the platform
        // probing (CTAP 2.1 §6.1.2 step 1) and answers PIN_NOT_SET / PIN_INVALID.
        let pin_set = self.store.state().pin_hash.is_some();
        if !pin_set && (param.is_empty() || !self.uv_token_available()) {
            return Err(StatusCode::PinNotSet);
        }
        if param.is_empty() {
            return Err(StatusCode::PinInvalid);
        }
        let lifetime = self.config.token_lifetime;
        let token = self.volatile.pin.token.as_mut().ok_or(StatusCode::PinAuthInvalid)?;
        if now.saturating_duration_since(token.issued_at) > lifetime {
            self.volatile.pin.token = None;
            return Err(StatusCode::PinAuthInvalid);
        }
        // One token serves both protocols; the request says which one made the param.
        if token.value.with_protocol(proto).verify(message, param).is_err()
            || !token.permissions.contains(permission)
        {
            return Err(StatusCode::PinAuthInvalid);
        }
        match (&token.rp_id, rp_id) {
            (Some(bound), Some(rp)) if bound != rp => return Err(StatusCode::PinAuthInvalid),
            (None, Some(rp)) => token.rp_id = Some(rp.to_owned()),
            _ => {}
        }
        Ok(())
    }

    /// Checks a pinUvAuthParam over `message` against the persistent `pcmr` token (CTAP 2.2):
    /// it does not expire with [`super::Config::token_lifetime`] and survives power cycles, but
    /// a PIN change or reset revokes it.
    pub(super) fn verify_persistent_token(
        &self,
        param: &[u8],
        proto: Option<u64>,
        message: &[u8],
    ) -> Result<(), StatusCode> {
        let proto = protocol(proto)?;
        let stored = self.store.state().settings.persistent_token.as_ref();
        let stored = stored.ok_or(StatusCode::PinAuthInvalid)?;
        let token = PinUvAuthToken::new(proto, SecretBytes::new(stored.expose().to_vec()))
            .map_err(|_| StatusCode::OtherError)?;
        token.verify(message, param).map_err(|_| StatusCode::PinAuthInvalid)
    }

    /// getPinUvAuthTokenUsingUvWithPermissions exists: configured, or a finger is enrolled on
    /// the simulated sensor.
    fn uv_token_available(&self) -> bool {
        self.config.uv_token() || self.bio_enrolled()
    }

    pub(super) fn client_pin(&mut self, p: &Value, ctx: &mut Ctx<'_>) -> CmdResult {
        // A permission set no token could hold is unauthorized, not malformed.
        let req = ClientPinRequest::from_cbor(p);
        let req = decoded(req, "permissions", StatusCode::UnauthorizedPermission)?;
        let (pin, uv) = (self.config.pin_capable, self.uv_token_available());
        let reply = match req.sub_command {
            Sub::GetPinRetries if pin => ClientPinResponse {
                pin_retries: Some(self.store.state().pin_retries.into()),
                ..Default::default()
            },
            Sub::GetKeyAgreement => {
                protocol(req.pin_uv_auth_protocol)?;
                key_agreement_response(&self.volatile.pin.key_agreement)
            }
            Sub::SetPin if pin => return self.set_pin(&req),
            Sub::ChangePin if pin => return self.change_pin(&req, ctx),
            Sub::GetPinToken if pin => {
                let ss = self.shared_secret_after_pin(&req, ctx)?;
                self.check_no_forced_change()?;
                let mc_ga = Permissions::MAKE_CREDENTIAL | Permissions::GET_ASSERTION;
                self.issue_token(&ss, mc_ga, None, ctx)?
            }
            Sub::GetPinUvAuthTokenUsingPinWithPermissions if pin => {
                let perms = requested_permissions(&req, &self.config)?;
                let ss = self.shared_secret_after_pin(&req, ctx)?;
                self.check_no_forced_change()?;
                self.issue_token(&ss, perms, req.rp_id.clone(), ctx)?
            }
            Sub::GetPinUvAuthTokenUsingUvWithPermissions if uv => return self.uv_token(req),
            Sub::GetUvRetries if uv => {
                ClientPinResponse { uv_retries: Some(MAX_UV_RETRIES), ..Default::default() }
            }
            _ => return Err(StatusCode::InvalidSubcommand),
        };
        Ok(Flow::Reply(Some(reply.to_cbor())))
    }

    fn shared_secret(&self, req: &ClientPinRequest) -> Result<SharedSecret, StatusCode> {
        shared_secret_for(&self.volatile.pin.key_agreement, req).map_err(request_status)
    }

    fn set_pin(&mut self, req: &ClientPinRequest) -> CmdResult {
        let ss = self.shared_secret(req)?;
        require(&[req.new_pin_enc.is_some(), req.pin_uv_auth_param.is_some()])?;
        if self.store.state().pin_hash.is_some() {
            return Err(StatusCode::PinAuthInvalid);
        }
        let pin = open_set_pin(&ss, req, self.min_pin_length()).map_err(request_status)?;
        self.store_pin(&pin)
    }

    fn change_pin(&mut self, req: &ClientPinRequest, ctx: &mut Ctx<'_>) -> CmdResult {
        let ss = self.shared_secret(req)?;
        require(&[
            req.new_pin_enc.is_some(),
            req.pin_uv_auth_param.is_some(),
            req.pin_hash_enc.is_some(),
        ])?;
        if self.store.state().pin_hash.is_none() {
            return Err(StatusCode::PinNotSet);
        }
        // A param that does not verify costs nothing; an undecryptable pinHashEnc costs a retry.
        let hash = match open_change_pin(&ss, req) {
            Err(Ctap2Error::PinUvAuthInvalid) => return Err(StatusCode::PinAuthInvalid),
            other => other,
        };
        self.check_pin_hash(hash, ctx)?;
        let new_pin_enc = req.new_pin_enc.as_deref().unwrap_or_default();
        let pin =
            decrypt_new_pin(&ss, new_pin_enc, self.min_pin_length()).map_err(request_status)?;
        // A forced change must pick a different PIN (CTAP 2.1 §6.5.5.6).
        let state = self.store.state();
        if state.settings.force_pin_change
            && PinHash::from_slice(pin.hash16().expose()) == state.pin_hash
        {
            return Err(StatusCode::PinPolicyViolation);
        }
        self.store_pin(&pin)
    }

    /// The current minimum PIN length (authenticatorConfig setMinPINLength).
    fn min_pin_length(&self) -> usize {
        usize::from(self.store.state().settings.min_pin_length).max(DEFAULT_MIN_PIN_LENGTH)
    }

    /// While `forcePINChange` is set, PIN tokens are refused (CTAP 2.1 §6.5.5.7.2).
    fn check_no_forced_change(&self) -> Result<(), StatusCode> {
        match self.store.state().settings.force_pin_change {
            true => Err(StatusCode::PinPolicyViolation),
            false => Ok(()),
        }
    }

    /// Stores LEFT(SHA-256(pin), 16) with full retries and drops the current token, the
    /// persistent token and a pending forced change.
    fn store_pin(&mut self, pin: &Pin) -> CmdResult {
        let mut state = self.store.state().clone();
        state.pin_hash = PinHash::from_slice(pin.hash16().expose());
        state.pin_retries = MAX_PIN_RETRIES;
        state.settings.pin_code_points = u8::try_from(pin.code_points()).ok();
        state.settings.force_pin_change = false;
        state.settings.persistent_token = None;
        self.commit(state)?;
        self.volatile.pin.token = None;
        Ok(Flow::Reply(None))
    }

    /// Checks a decrypted pinHash against the stored one, charging a retry first
    /// (CTAP 2.1 §6.5.5.5); a decryption failure is reported after the charge.
    fn check_pin_hash(
        &mut self,
        hash: Result<Secret<16>, Ctap2Error>,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), StatusCode> {
        let mut state = self.store.state().clone();
        let stored = state.pin_hash.clone().ok_or(StatusCode::PinNotSet)?;
        if state.pin_retries == 0 {
            return Err(StatusCode::PinBlocked);
        }
        if self.volatile.pin.auth_blocked {
            return Err(StatusCode::PinAuthBlocked);
        }
        state.pin_retries -= 1;
        self.commit(state.clone())?;
        let got = hash.map_err(request_status)?;
        // PinHash equality is constant time.
        if PinHash::from_slice(got.expose()).as_ref() == Some(&stored) {
            state.pin_retries = MAX_PIN_RETRIES;
            self.commit(state)?;
            self.volatile.pin.mismatches = 0;
            return Ok(());
        }
        let mut rng = &mut *ctx.rng;
        self.volatile.pin.key_agreement.regenerate(&mut rng);
        self.volatile.pin.mismatches += 1;
        if state.pin_retries == 0 {
            return Err(StatusCode::PinBlocked);
        }
        if self.volatile.pin.mismatches >= MAX_CONSECUTIVE_MISMATCHES {
            self.volatile.pin.auth_blocked = true;
            return Err(StatusCode::PinAuthBlocked);
        }
        Err(StatusCode::PinInvalid)
    }

    /// The getPinToken / …UsingPinWithPermissions gate: the shared secret, once pinHashEnc
    /// matched the stored PIN hash.
    fn shared_secret_after_pin(
        &mut self,
        req: &ClientPinRequest,
        ctx: &mut Ctx<'_>,
    ) -> Result<SharedSecret, StatusCode> {
        let ss = self.shared_secret(req)?;
        let enc = req.pin_hash_enc.as_deref().ok_or(StatusCode::MissingParameter)?;
        self.check_pin_hash(decrypt_pin_hash(&ss, enc), ctx)?;
        Ok(ss)
    }

    /// getPinUvAuthTokenUsingUvWithPermissions (§6.5.5.7.3): validate, then ask for built-in UV.
    fn uv_token(&mut self, req: ClientPinRequest) -> CmdResult {
        let shared = self.shared_secret(&req)?;
        let permissions = requested_permissions(&req, &self.config)?;
        let request = PresenceRequest {
            kind: PresenceKind::UserVerification,
            rp_id: req.rp_id.clone(),
            user_verification: true,
        };
        let plan = UvTokenPlan { shared, permissions, rp_id: req.rp_id };
        Ok(Flow::Presence(request, Continuation::UvToken(plan)))
    }

    /// A fresh token replaces the previous one; it goes out encrypted under `shared`. Also
    /// finishes a [`UvTokenPlan`] once built-in UV is approved.
    pub(super) fn issue_token(
        &mut self,
        shared: &SharedSecret,
        permissions: Permissions,
        rp_id: Option<String>,
        ctx: &mut Ctx<'_>,
    ) -> Result<ClientPinResponse, StatusCode> {
        let mut rng = &mut *ctx.rng;
        let value = PinUvAuthToken::random(shared.protocol(), &mut rng);
        // 32-byte tokens are whole blocks, so encryption cannot fail.
        let resp = token_response(shared, &mut rng, &value).map_err(|_| StatusCode::OtherError)?;
        if permissions == PCMR {
            // The persistent token lives in the store, next to the PIN it depends on; it does
            // not replace the current (volatile) token.
            let mut state = self.store.state().clone();
            state.settings.persistent_token = PersistentToken::from_slice(value.expose());
            self.commit(state)?;
            return Ok(resp);
        }
        self.volatile.pin.token = Some(Token { value, permissions, rp_id, issued_at: ctx.now });
        Ok(resp)
    }
}
