//! clientPIN flows over a [`Ctap2Client`] (CTAP 2.1 §6.5): retries, setPIN, changePIN and
//! obtaining a pinUvAuthToken with the right permissions.
//!
//! Token acquisition follows the spec's preference order (§6.5.5.7): built-in user verification
//! (`getPinUvAuthTokenUsingUvWithPermissions`) when the key has both `uv` and `pinUvAuthToken`,
//! falling back to the PIN when UV is blocked or fails; with a PIN,
//! `getPinUvAuthTokenUsingPinWithPermissions` (permissions + rpId) on keys with
//! `pinUvAuthToken`, the legacy `getPinToken` on CTAP 2.0 keys. Every secret-carrying request
//! uses a fresh key agreement ([`PinSession`] is consumed per request). PINs and tokens are
//! secret types; nothing here logs them.

use cablebridge_protocol::ctap2::client_pin::{ClientPinRequest, ClientPinResponse, Permissions};
use cablebridge_protocol::ctap2::pin::client::{
    key_agreement_request, pin_retries_request, PinSession,
};
use cablebridge_protocol::ctap2::pin::{Pin, PinUvAuthProtocol, PinUvAuthToken};
use cablebridge_protocol::ctap2::{self, StatusCode};
use rand_core::CryptoRngCore;

use super::client::Ctap2Client;
use super::error::{CtapError, Result};
use super::hid_channel::Call;
use crate::hid::HidTransport;

/// getPINRetries answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinRetries {
    /// Attempts left before the PIN blocks.
    pub retries: u64,
    /// True when the key must be power-cycled before the next attempt.
    pub power_cycle_required: bool,
}

/// How a token was obtained (reported in results).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// Built-in user verification (fingerprint, on-key PIN pad).
    BuiltInUv,
    /// The clientPIN with permissions (CTAP 2.1).
    PinWithPermissions,
    /// The CTAP 2.0 getPinToken.
    LegacyPinToken,
}

/// A token plus how it was obtained.
#[derive(Debug)]
pub struct Token {
    /// The pinUvAuthToken (secret).
    pub token: PinUvAuthToken,
    /// Its origin.
    pub source: TokenSource,
}

impl<T: HidTransport> Ctap2Client<T> {
    /// The PIN/UV auth protocol to use: the key's first supported one; protocol one for
    /// CTAP 2.0 keys that have clientPin but do not list protocols.
    pub fn pin_protocol(&self) -> Result<PinUvAuthProtocol> {
        if let Some(p) = PinUvAuthProtocol::preferred(&self.info().pin_uv_auth_protocols) {
            return Ok(p);
        }
        if self.info().pin_uv_auth_protocols.is_empty() && self.info().option("clientPin").is_some()
        {
            return Ok(PinUvAuthProtocol::One);
        }
        Err(CtapError::Unsupported {
            device: self.path().to_owned(),
            what: "this key supports no PIN/UV auth protocol we implement (1 or 2)".to_owned(),
        })
    }

    /// Whether a PIN is set (`clientPin` option true).
    pub fn pin_is_set(&self) -> bool {
        self.info().option("clientPin") == Some(true)
    }

    pub(crate) async fn client_pin(
        &mut self,
        request: &ClientPinRequest,
        call: &mut Call<'_>,
    ) -> Result<ClientPinResponse> {
        let command = ctap2::Command::ClientPin;
        let body = self.command(command, Some(&request.to_cbor()), call).await?;
        match body {
            None => Ok(ClientPinResponse::default()),
            Some(v) => ClientPinResponse::from_cbor(&v).map_err(|e| self.decode_err(command, e)),
        }
    }

    async fn session(
        &mut self,
        rng: &mut (impl CryptoRngCore + Send),
        call: &mut Call<'_>,
    ) -> Result<PinSession> {
        let protocol = self.pin_protocol()?;
        let answer = self.client_pin(&key_agreement_request(protocol), call).await?;
        PinSession::new(protocol, rng, &answer)
            .map_err(|e| self.decode_err(ctap2::Command::ClientPin, e))
    }

    /// getPINRetries.
    pub async fn pin_retries(&mut self, call: &mut Call<'_>) -> Result<PinRetries> {
        let protocol = self.pin_protocol().ok();
        let answer = self.client_pin(&pin_retries_request(protocol), call).await?;
        let retries = answer.pin_retries.ok_or_else(|| {
            self.decode_err(
                ctap2::Command::ClientPin,
                ctap2::Ctap2Error::MissingField("pinRetries"),
            )
        })?;
        Ok(PinRetries { retries, power_cycle_required: answer.power_cycle_state.unwrap_or(false) })
    }

    /// Validates a user-typed PIN against the key's minPINLength.
    pub fn check_pin(&self, pin: &str) -> Result<Pin> {
        let min = self.info().min_pin_length.unwrap_or(4);
        Pin::with_min_length(pin, usize::try_from(min).unwrap_or(usize::MAX))
            .map_err(CtapError::InvalidPin)
    }

    /// setPIN (only when no PIN is set).
    pub async fn set_pin(
        &mut self,
        rng: &mut (impl CryptoRngCore + Send),
        new_pin: &Pin,
        call: &mut Call<'_>,
    ) -> Result<()> {
        let session = self.session(rng, call).await?;
        let request = session.set_pin(rng, new_pin).map_err(CtapError::InvalidPin)?;
        self.client_pin(&request, call).await?;
        self.refresh_info(call).await?;
        Ok(())
    }

    /// changePIN.
    pub async fn change_pin(
        &mut self,
        rng: &mut (impl CryptoRngCore + Send),
        current: &Pin,
        new_pin: &Pin,
        call: &mut Call<'_>,
    ) -> Result<()> {
        let session = self.session(rng, call).await?;
        let request = session.change_pin(rng, current, new_pin).map_err(CtapError::InvalidPin)?;
        let result = self.client_pin(&request, call).await;
        self.with_retries(result, call).await?;
        // forcePINChange clears; keep getInfo current.
        self.refresh_info(call).await?;
        Ok(())
    }

    /// Adds the retry count to a PIN_INVALID error (one extra getPINRetries round trip).
    async fn with_retries<V>(&mut self, result: Result<V>, call: &mut Call<'_>) -> Result<V> {
        match result {
            Err(CtapError::Status { device, command, status: StatusCode::PinInvalid, .. }) => {
                let retries = self.pin_retries(call).await.ok().map(|r| r.retries);
                Err(CtapError::Status { device, command, status: StatusCode::PinInvalid, retries })
            }
            other => other,
        }
    }

    /// Obtains a pinUvAuthToken for `permissions` (scoped to `rp_id` when given): built-in UV
    /// first when the key offers it, then the PIN. `Ok(None)` when the key has neither a PIN set
    /// nor built-in UV (the caller proceeds with user presence only).
    pub async fn get_token(
        &mut self,
        rng: &mut (impl CryptoRngCore + Send),
        pin: Option<&Pin>,
        permissions: Permissions,
        rp_id: Option<&str>,
        call: &mut Call<'_>,
    ) -> Result<Option<Token>> {
        let token_capable = self.info().option("pinUvAuthToken") == Some(true);
        if token_capable && self.info().option("uv") == Some(true) {
            let session = self.session(rng, call).await?;
            let request = session
                .get_pin_uv_auth_token_using_uv(permissions, rp_id)
                .map_err(|e| self.decode_err(ctap2::Command::ClientPin, e))?;
            match self.client_pin(&request, call).await {
                Ok(answer) => {
                    let token = session
                        .decrypt_token(&answer)
                        .map_err(|e| self.decode_err(ctap2::Command::ClientPin, e))?;
                    return Ok(Some(Token { token, source: TokenSource::BuiltInUv }));
                }
                Err(
                    e @ CtapError::Status {
                        status:
                            StatusCode::UvBlocked | StatusCode::UvInvalid | StatusCode::OperationDenied,
                        ..
                    },
                ) => {
                    if pin.is_none() || !self.pin_is_set() {
                        return Err(e);
                    }
                    tracing::info!(
                        device = self.path(),
                        "built-in UV failed; falling back to the PIN"
                    );
                }
                Err(e) => return Err(e),
            }
        }
        if !self.pin_is_set() {
            return Ok(None);
        }
        let Some(pin) = pin else {
            return Err(CtapError::PinRequired { device: self.path().to_owned() });
        };
        if self.info().force_pin_change == Some(true) {
            return Err(CtapError::PinChangeRequired { device: self.path().to_owned() });
        }
        let session = self.session(rng, call).await?;
        let (request, source) = if token_capable {
            (
                session.get_pin_uv_auth_token_using_pin(rng, pin, permissions, rp_id),
                TokenSource::PinWithPermissions,
            )
        } else {
            (session.get_pin_token(rng, pin), TokenSource::LegacyPinToken)
        };
        let request = request.map_err(CtapError::InvalidPin)?;
        let result = self.client_pin(&request, call).await;
        let answer = match self.with_retries(result, call).await {
            // The PIN matched but a change is forced (setMinPINLength since our getInfo).
            Err(CtapError::Status { status: StatusCode::PinPolicyViolation, device, .. }) => {
                return Err(CtapError::PinChangeRequired { device })
            }
            other => other?,
        };
        let token = session
            .decrypt_token(&answer)
            .map_err(|e| self.decode_err(ctap2::Command::ClientPin, e))?;
        Ok(Some(Token { token, source }))
    }
}
