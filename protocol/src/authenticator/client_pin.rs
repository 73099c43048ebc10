//! authenticatorClientPIN (0x06, CTAP 2.1 §6.5) and pinUvAuthParam verification.
//!
//! Policy: 8 retries persisted with the PIN hash; every wrong PIN costs one retry and forces a new
//! key-agreement key; 3 consecutive mismatches latch PIN_AUTH_BLOCKED until a power cycle; 0
//! retries → PIN_BLOCKED (only reset recovers). Tokens are 32 random bytes with permissions and an
//! optional RP binding, usable for [`super::Config::token_lifetime`] after issue; issuing a new
//! token invalidates the previous one. getPinToken (0x05) grants `mc | ga` without an RP binding.
//!
//! Not implemented: getPinUvAuthTokenUsingUvWithPermissions (0x06) and getUVRetries (0x07) — the
//! PIN-capable virtual key has no built-in UV.

use super::pin_protocol::{PinProtocol, SharedSecret};
use super::store::{PinHash, MAX_PIN_RETRIES};
use super::{Authenticator, CmdResult, CredentialStore, Ctx, Flow};
use crate::cbor::{field, Value};
use crate::ctap2::{CoseKey, StatusCode};
use crate::secret::Secret;
use rand_core::CryptoRngCore;
use sha2::{Digest, Sha256};
use std::time::Instant;

/// Permission bits (CTAP 2.1 §6.5.5.7).
pub(super) const PERM_MC: u8 = 0x01;
pub(super) const PERM_GA: u8 = 0x02;
pub(super) const PERM_CM: u8 = 0x04;
const PERMS_SUPPORTED: u8 = PERM_MC | PERM_GA | PERM_CM;
const MAX_CONSECUTIVE_MISMATCHES: u8 = 3;

struct Token {
    value: Secret<32>,
    permissions: u8,
    rp_id: Option<String>,
    issued_at: Instant,
}

/// Volatile PIN state.
pub(super) struct PinRuntime {
    key_agreement: p256::SecretKey,
    token: Option<Token>,
    mismatches: u8,
    auth_blocked: bool,
}

impl PinRuntime {
    pub(super) fn new(rng: &mut impl CryptoRngCore) -> Self {
        PinRuntime {
            key_agreement: p256::SecretKey::random(rng),
            token: None,
            mismatches: 0,
            auth_blocked: false,
        }
    }
}

fn protocol(v: Option<&Value>) -> Result<PinProtocol, StatusCode> {
    let n = field::uint(v, "pinUvAuthProtocol").map_err(super::error::cbor_status)?;
    PinProtocol::from_u64(n).ok_or(StatusCode::InvalidParameter)
}

impl<S: CredentialStore> Authenticator<S> {
    /// Checks a pinUvAuthParam over `message` against the current token, its permissions and RP
    /// binding; binds an unbound token to `rp_id`.
    pub(super) fn verify_pin_uv_auth(
        &mut self,
        param: &[u8],
        proto: Option<&Value>,
        message: &[u8],
        permission: u8,
        rp_id: Option<&str>,
        now: Instant,
    ) -> Result<(), StatusCode> {
        let proto = protocol(proto)?;
        if self.store.state().pin_hash.is_none() {
            return Err(StatusCode::PinNotSet);
        }
        if param.is_empty() {
            // A zero-length param is the platform probing for a PIN (CTAP 2.1 §6.1.2 step 1).
            return Err(StatusCode::PinInvalid);
        }
        let lifetime = self.config.token_lifetime;
        let token = self.volatile.pin.token.as_mut().ok_or(StatusCode::PinAuthInvalid)?;
        if now.saturating_duration_since(token.issued_at) > lifetime {
            self.volatile.pin.token = None;
            return Err(StatusCode::PinAuthInvalid);
        }
        if !proto.verify(token.value.expose(), message, param)
            || token.permissions & permission == 0
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

    pub(super) fn client_pin(&mut self, p: &Value, ctx: &mut Ctx<'_>) -> CmdResult {
        let cs = super::error::cbor_status;
        let sub = field::uint(p.get(2), "subCommand").map_err(cs)?;
        let reply = match sub {
            0x01 => Value::int_map([(3, Value::int(self.store.state().pin_retries.into()))]),
            0x02 => {
                protocol(p.get(1))?;
                let public = self.volatile.pin.key_agreement.public_key();
                Value::int_map([(1, CoseKey::key_agreement(public).to_cbor())])
            }
            0x03 => return self.set_pin(p, false, ctx),
            0x04 => return self.set_pin(p, true, ctx),
            0x05 => self.pin_token(p, PERM_MC | PERM_GA, None, ctx)?,
            0x09 => {
                let perms = field::uint(p.get(9), "permissions").map_err(cs)?;
                let perms = u8::try_from(perms).map_err(|_| StatusCode::UnauthorizedPermission)?;
                if perms == 0 {
                    return Err(StatusCode::InvalidParameter);
                }
                if perms & !PERMS_SUPPORTED != 0 {
                    return Err(StatusCode::UnauthorizedPermission);
                }
                let rp_id = super::opt_text(p.get(10))?;
                self.pin_token(p, perms, rp_id, ctx)?
            }
            _ => return Err(StatusCode::InvalidSubcommand),
        };
        Ok(Flow::Reply(Some(reply)))
    }

    fn shared_secret(&self, p: &Value) -> Result<SharedSecret, StatusCode> {
        let proto = protocol(p.get(1))?;
        let platform = p.get(3).ok_or(StatusCode::MissingParameter)?;
        SharedSecret::agree(proto, &self.volatile.pin.key_agreement, platform)
    }

    /// setPIN (change = false) and changePIN (change = true).
    fn set_pin(&mut self, p: &Value, change: bool, ctx: &mut Ctx<'_>) -> CmdResult {
        let cs = super::error::cbor_status;
        let ss = self.shared_secret(p)?;
        let new_pin_enc = field::bytes(p.get(5), "newPinEnc").map_err(cs)?;
        let param = field::bytes(p.get(4), "pinUvAuthParam").map_err(cs)?;
        let mut state = self.store.state().clone();
        if change {
            let pin_hash_enc = field::bytes(p.get(6), "pinHashEnc").map_err(cs)?;
            if state.pin_hash.is_none() {
                return Err(StatusCode::PinNotSet);
            }
            let signed = [new_pin_enc, pin_hash_enc].concat();
            if !ss.verify(&signed, param) {
                return Err(StatusCode::PinAuthInvalid);
            }
            self.check_pin_hash(&ss, pin_hash_enc, ctx)?;
            state = self.store.state().clone();
        } else {
            if state.pin_hash.is_some() {
                return Err(StatusCode::PinAuthInvalid);
            }
            if !ss.verify(new_pin_enc, param) {
                return Err(StatusCode::PinAuthInvalid);
            }
        }
        let padded = ss.decrypt(new_pin_enc)?;
        if padded.len() != 64 {
            return Err(StatusCode::InvalidParameter);
        }
        let pin: &[u8] = padded.expose().split(|b| *b == 0).next().unwrap_or_default();
        let chars = core::str::from_utf8(pin).map(|s| s.chars().count()).unwrap_or(0);
        if chars < 4 || pin.len() > 63 {
            return Err(StatusCode::PinPolicyViolation);
        }
        let digest: [u8; 32] = Sha256::digest(pin).into();
        state.pin_hash = PinHash::from_slice(&digest[..16]);
        state.pin_retries = MAX_PIN_RETRIES;
        self.commit(state)?;
        self.volatile.pin.token = None;
        Ok(Flow::Reply(None))
    }

    /// Checks `pinHashEnc` against the stored hash, charging a retry first (CTAP 2.1 §6.5.5.5).
    fn check_pin_hash(
        &mut self,
        ss: &SharedSecret,
        enc: &[u8],
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
        let got = ss.decrypt(enc)?;
        if got.len() == 16 && PinHash::from_slice(got.expose()).as_ref() == Some(&stored) {
            state.pin_retries = MAX_PIN_RETRIES;
            self.commit(state)?;
            self.volatile.pin.mismatches = 0;
            return Ok(());
        }
        let mut rng = &mut *ctx.rng;
        self.volatile.pin.key_agreement = p256::SecretKey::random(&mut rng);
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

    fn pin_token(
        &mut self,
        p: &Value,
        permissions: u8,
        rp_id: Option<String>,
        ctx: &mut Ctx<'_>,
    ) -> Result<Value, StatusCode> {
        let cs = super::error::cbor_status;
        let ss = self.shared_secret(p)?;
        let enc = field::bytes(p.get(6), "pinHashEnc").map_err(cs)?;
        self.check_pin_hash(&ss, enc, ctx)?;
        let mut rng = &mut *ctx.rng;
        let value = Secret::<32>::random(&mut rng);
        let encrypted = ss.encrypt(value.expose(), &mut rng);
        self.volatile.pin.token = Some(Token { value, permissions, rp_id, issued_at: ctx.now });
        Ok(Value::int_map([(2, Value::Bytes(encrypted))]))
    }
}
