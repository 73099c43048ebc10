//! Platform-side clientPIN flows (CTAP 2.1 §6.5.5): from a getKeyAgreement answer to the
//! setPIN / changePIN / token requests and the decrypted token.
//!
//! Typical use, each step one CTAP round trip:
//!
//! 1. send [`key_agreement_request`], decode the answer as a `ClientPinResponse`;
//! 2. [`PinSession::new`] with it (fresh ephemeral key, ECDH, KDF);
//! 3. send [`PinSession::set_pin`] / [`PinSession::change_pin`] (no body back), or
//!    [`PinSession::get_pin_token`] / [`PinSession::get_pin_uv_auth_token_using_pin`] and feed
//!    the answer to [`PinSession::decrypt_token`];
//! 4. put `token.authenticate(client_data_hash)` in makeCredential/getAssertion.
//!
//! A session is good for one command: the spec has the platform use a fresh key agreement for
//! each clientPIN request that carries secrets, so this type is consumed by the builders.

use super::key_agreement::KeyAgreementKey;
use super::pin_code::Pin;
use super::protocol::{PinUvAuthProtocol, PinUvAuthToken, SharedSecret};
use crate::ctap2::client_pin::{
    ClientPinRequest, ClientPinResponse, ClientPinSubcommand, Permissions,
};
use crate::ctap2::cose::CoseKey;
use crate::ctap2::error::Ctap2Error;

/// getKeyAgreement (0x02).
pub fn key_agreement_request(protocol: PinUvAuthProtocol) -> ClientPinRequest {
    ClientPinRequest::new(ClientPinSubcommand::GetKeyAgreement, Some(protocol.to_u64()))
}

/// getPINRetries (0x01).
pub fn pin_retries_request(protocol: Option<PinUvAuthProtocol>) -> ClientPinRequest {
    ClientPinRequest::new(ClientPinSubcommand::GetPinRetries, protocol.map(|p| p.to_u64()))
}

/// getUVRetries (0x07).
pub fn uv_retries_request(protocol: Option<PinUvAuthProtocol>) -> ClientPinRequest {
    ClientPinRequest::new(ClientPinSubcommand::GetUvRetries, protocol.map(|p| p.to_u64()))
}

/// One key agreement's worth of state on the platform.
#[derive(Debug)]
pub struct PinSession {
    protocol: PinUvAuthProtocol,
    platform_key: CoseKey,
    shared: SharedSecret,
}

impl PinSession {
    /// Runs the platform half of key agreement against a getKeyAgreement response.
    pub fn new(
        protocol: PinUvAuthProtocol,
        rng: &mut impl rand_core::CryptoRngCore,
        response: &ClientPinResponse,
    ) -> Result<Self, Ctap2Error> {
        let eph = KeyAgreementKey::generate(rng);
        Self::with_key(protocol, &eph, response)
    }

    /// [`PinSession::new`] with a given platform key pair (known-answer tests).
    pub fn with_key(
        protocol: PinUvAuthProtocol,
        platform: &KeyAgreementKey,
        response: &ClientPinResponse,
    ) -> Result<Self, Ctap2Error> {
        let peer =
            response.key_agreement.as_ref().ok_or(Ctap2Error::MissingField("keyAgreement"))?;
        Ok(PinSession {
            protocol,
            platform_key: platform.public_cose(),
            shared: platform.shared_secret(protocol, peer)?,
        })
    }

    /// The shared secret (for extensions such as hmac-secret that reuse it).
    pub fn shared_secret(&self) -> &SharedSecret {
        &self.shared
    }

    fn base(&self, sub: ClientPinSubcommand) -> ClientPinRequest {
        ClientPinRequest {
            key_agreement: Some(self.platform_key.clone()),
            ..ClientPinRequest::new(sub, Some(self.protocol.to_u64()))
        }
    }

    fn pin_hash_enc(
        &self,
        rng: &mut impl rand_core::CryptoRngCore,
        pin: &Pin,
    ) -> Result<Vec<u8>, Ctap2Error> {
        self.shared.encrypt(rng, pin.hash16().expose())
    }

    /// setPIN (0x03): newPinEnc = encrypt(padded PIN), pinUvAuthParam = authenticate(newPinEnc).
    pub fn set_pin(
        self,
        rng: &mut impl rand_core::CryptoRngCore,
        new_pin: &Pin,
    ) -> Result<ClientPinRequest, Ctap2Error> {
        let new_pin_enc = self.shared.encrypt(rng, new_pin.padded().expose())?;
        Ok(ClientPinRequest {
            pin_uv_auth_param: Some(self.shared.authenticate(&new_pin_enc)),
            new_pin_enc: Some(new_pin_enc),
            ..self.base(ClientPinSubcommand::SetPin)
        })
    }

    /// changePIN (0x04): pinUvAuthParam = authenticate(newPinEnc ‖ pinHashEnc).
    pub fn change_pin(
        self,
        rng: &mut impl rand_core::CryptoRngCore,
        current: &Pin,
        new_pin: &Pin,
    ) -> Result<ClientPinRequest, Ctap2Error> {
        let pin_hash_enc = self.pin_hash_enc(rng, current)?;
        let new_pin_enc = self.shared.encrypt(rng, new_pin.padded().expose())?;
        let param = self.shared.authenticate(&[new_pin_enc.as_slice(), &pin_hash_enc].concat());
        Ok(ClientPinRequest {
            pin_uv_auth_param: Some(param),
            new_pin_enc: Some(new_pin_enc),
            pin_hash_enc: Some(pin_hash_enc),
            ..self.base(ClientPinSubcommand::ChangePin)
        })
    }

    /// getPinToken (0x05, CTAP 2.0 style; the token gets the default mc/ga permissions). Keep
    /// the session for [`PinSession::decrypt_token`].
    pub fn get_pin_token(
        &self,
        rng: &mut impl rand_core::CryptoRngCore,
        pin: &Pin,
    ) -> Result<ClientPinRequest, Ctap2Error> {
        Ok(ClientPinRequest {
            pin_hash_enc: Some(self.pin_hash_enc(rng, pin)?),
            ..self.base(ClientPinSubcommand::GetPinToken)
        })
    }

    /// getPinUvAuthTokenUsingPinWithPermissions (0x09).
    pub fn get_pin_uv_auth_token_using_pin(
        &self,
        rng: &mut impl rand_core::CryptoRngCore,
        pin: &Pin,
        permissions: Permissions,
        rp_id: Option<&str>,
    ) -> Result<ClientPinRequest, Ctap2Error> {
        if permissions.is_empty() {
            return Err(Ctap2Error::InvalidArgument("token permissions must not be empty"));
        }
        Ok(ClientPinRequest {
            pin_hash_enc: Some(self.pin_hash_enc(rng, pin)?),
            permissions: Some(permissions),
            rp_id: rp_id.map(str::to_owned),
            ..self.base(ClientPinSubcommand::GetPinUvAuthTokenUsingPinWithPermissions)
        })
    }

    /// getPinUvAuthTokenUsingUvWithPermissions (0x06).
    pub fn get_pin_uv_auth_token_using_uv(
        &self,
        permissions: Permissions,
        rp_id: Option<&str>,
    ) -> Result<ClientPinRequest, Ctap2Error> {
        if permissions.is_empty() {
            return Err(Ctap2Error::InvalidArgument("token permissions must not be empty"));
        }
        Ok(ClientPinRequest {
            permissions: Some(permissions),
            rp_id: rp_id.map(str::to_owned),
            ..self.base(ClientPinSubcommand::GetPinUvAuthTokenUsingUvWithPermissions)
        })
    }

    /// Decrypts the `pinUvAuthToken` of a token response.
    pub fn decrypt_token(
        &self,
        response: &ClientPinResponse,
    ) -> Result<PinUvAuthToken, Ctap2Error> {
        let enc = response
            .pin_uv_auth_token
            .as_ref()
            .ok_or(Ctap2Error::MissingField("pinUvAuthToken"))?;
        PinUvAuthToken::new(self.protocol, self.shared.decrypt(enc)?)
    }
}
