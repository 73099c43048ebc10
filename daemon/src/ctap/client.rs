//! A CTAP2 client over CTAPHID (CTAP 2.1 §6): getInfo, makeCredential, getAssertion (with
//! getNextAssertion), selection (with the CTAP 2.0 fallback), wink and reset.
//!
//! Every request is `command ‖ canonical CBOR` in one CTAPHID_CBOR message
//! ([`cablebridge_protocol::ctap2::framing`]); every non-OK status becomes a
//! [`CtapError::Status`] naming the command. PIN/UV flows are in [`super::pin`], credential
//! management in [`super::cred_mgmt`]; both extend this type.
//!
//! Not here: choosing *which* key (see [`super::select`]) or building WebAuthn client data.

use cablebridge_protocol::cbor::Value;
use cablebridge_protocol::ctap2::framing::{decode_response, encode_request};
use cablebridge_protocol::ctap2::{
    self, CoseAlgorithm, CredentialParameters, GetAssertionRequest, GetAssertionResponse, GetInfo,
    MakeCredentialRequest, MakeCredentialResponse, RelyingParty, StatusCode, User,
};
use cablebridge_protocol::ctaphid::{Capabilities, Command as HidCommand};
use sha2::{Digest, Sha256};

use super::error::{CtapError, Result};
use super::hid_channel::{Call, CtapHidDevice};
use crate::hid::HidTransport;

/// The rp id libfido2 uses for its touch request on CTAP 2.0 keys; never a real site.
pub const DUMMY_RP_ID: &str = ".dummy";

/// A CTAP2 session with one key.
#[derive(Debug)]
pub struct Ctap2Client<T: HidTransport> {
    dev: CtapHidDevice<T>,
    info: GetInfo,
    /// CTAP1/U2F only: makeCredential/getAssertion go through [`super::u2f`], every other
    /// CTAP2 command is refused.
    u2f: bool,
}

impl<T: HidTransport> Ctap2Client<T> {
    /// Reads getInfo over an open device. Keys without CTAPHID_CBOR, or whose getInfo fails as
    /// an unknown command, are driven with CTAP1/U2F APDUs instead when they accept CTAPHID_MSG
    /// ([`super::u2f`], as libfido2 falls back); keys with neither are refused.
    pub async fn connect(dev: CtapHidDevice<T>, call: &mut Call<'_>) -> Result<Self> {
        let caps = dev.info().capabilities;
        let msg = !caps.contains(Capabilities::NMSG);
        if !caps.contains(Capabilities::CBOR) {
            if !msg {
                return Err(CtapError::Unsupported {
                    device: dev.path().to_owned(),
                    what: "the key supports neither CTAP2 (no CBOR) nor U2F (NMSG)".to_owned(),
                });
            }
            return Ok(Self::u2f_only(dev));
        }
        let mut client = Ctap2Client { dev, info: GetInfo::default(), u2f: false };
        match client.refresh_info(call).await {
            Ok(_) => Ok(client),
            Err(e) if msg && is_invalid_command(&e) => {
                tracing::info!(device = client.path(), "getInfo unknown: falling back to U2F");
                Ok(Self::u2f_only(client.dev))
            }
            Err(e) => Err(e),
        }
    }

    fn u2f_only(dev: CtapHidDevice<T>) -> Self {
        let info =
            GetInfo { versions: vec![super::u2f::U2F_VERSION.to_owned()], ..GetInfo::default() };
        Ctap2Client { dev, info, u2f: true }
    }

    /// Whether this key is driven with CTAP1/U2F APDUs ([`super::u2f`]).
    pub fn is_u2f_only(&self) -> bool {
        self.u2f
    }

    /// The last getInfo answer.
    pub fn info(&self) -> &GetInfo {
        &self.info
    }

    /// The CTAPHID layer (INIT info, stats, path).
    pub fn device(&self) -> &CtapHidDevice<T> {
        &self.dev
    }

    /// Device path or address.
    pub fn path(&self) -> &str {
        self.dev.path()
    }

    /// Re-reads getInfo (after setting a PIN or a reset, options change).
    pub async fn refresh_info(&mut self, call: &mut Call<'_>) -> Result<&GetInfo> {
        let body = self.command(ctap2::Command::GetInfo, None, call).await?;
        let command = ctap2::Command::GetInfo;
        let body = self.require_body(command, body)?;
        self.info = GetInfo::from_cbor(&body).map_err(|e| self.decode_err(command, e))?;
        Ok(&self.info)
    }

    /// Sends one CTAP2 command; returns the body of an OK answer.
    pub async fn command(
        &mut self,
        command: ctap2::Command,
        params: Option<&Value>,
        call: &mut Call<'_>,
    ) -> Result<Option<Value>> {
        if self.u2f {
            return Err(CtapError::U2fOnly {
                device: self.path().to_owned(),
                what: format!("{} needs CTAP2", command.name()),
            });
        }
        let request = encode_request(command, params);
        let answer = self.dev.transact(HidCommand::Cbor, &request, call).await?;
        match decode_response(&answer) {
            Ok((StatusCode::Ok, body)) => Ok(body),
            Ok((status, _)) => Err(self.status_err(command, status)),
            Err(e) => Err(self.decode_err(command, e)),
        }
    }

    pub(crate) fn status_err(&self, command: ctap2::Command, status: StatusCode) -> CtapError {
        CtapError::Status { device: self.path().to_owned(), command, status, retries: None }
    }

    pub(crate) fn decode_err(
        &self,
        command: ctap2::Command,
        source: ctap2::Ctap2Error,
    ) -> CtapError {
        CtapError::Decode { device: self.path().to_owned(), command, source }
    }

    pub(crate) fn require_body(
        &self,
        command: ctap2::Command,
        body: Option<Value>,
    ) -> Result<Value> {
        body.ok_or_else(|| {
            self.decode_err(command, ctap2::Ctap2Error::MissingField("response body"))
        })
    }

    /// authenticatorMakeCredential.
    pub async fn make_credential(
        &mut self,
        request: &MakeCredentialRequest,
        call: &mut Call<'_>,
    ) -> Result<MakeCredentialResponse> {
        if self.u2f {
            return super::u2f::make_credential(&mut self.dev, request, call).await;
        }
        let command = ctap2::Command::MakeCredential;
        let body = self.command(command, Some(&request.to_cbor()), call).await?;
        let body = self.require_body(command, body)?;
        MakeCredentialResponse::from_cbor(&body).map_err(|e| self.decode_err(command, e))
    }

    /// authenticatorGetAssertion, then getNextAssertion for every further credential the key
    /// says it has (discoverable credentials without an allow list). At least one element.
    pub async fn get_assertion(
        &mut self,
        request: &GetAssertionRequest,
        call: &mut Call<'_>,
    ) -> Result<Vec<GetAssertionResponse>> {
        if self.u2f {
            return super::u2f::get_assertion(&mut self.dev, request, call).await;
        }
        let command = ctap2::Command::GetAssertion;
        let body = self.command(command, Some(&request.to_cbor()), call).await?;
        let body = self.require_body(command, body)?;
        let first =
            GetAssertionResponse::from_cbor(&body).map_err(|e| self.decode_err(command, e))?;
        // A hostile key could claim billions; the spec bounds real ones by their storage.
        let total = first.number_of_credentials.unwrap_or(1).clamp(1, 256);
        let mut all = vec![first];
        let next = ctap2::Command::GetNextAssertion;
        for _ in 1..total {
            let body = self.command(next, None, call).await?;
            let body = self.require_body(next, body)?;
            all.push(GetAssertionResponse::from_cbor(&body).map_err(|e| self.decode_err(next, e))?);
        }
        Ok(all)
    }

    /// Waits for a touch: authenticatorSelection on CTAP 2.1 keys; on 2.0 keys a makeCredential
    /// for a dummy rp with an empty pinUvAuthParam, as libfido2's `fido_dev_get_touch_begin` does
    /// (the key blinks; a touch answers PIN_AUTH_INVALID / PIN_NOT_SET / PIN_INVALID / OK, all of
    /// which mean "this key was touched", and nothing is stored).
    pub async fn selection(&mut self, call: &mut Call<'_>) -> Result<()> {
        if self.u2f {
            return super::u2f::wait_for_touch(&mut self.dev, call).await;
        }
        if self.info.supports_version("FIDO_2_1") || self.info.supports_version("FIDO_2_1_PRE") {
            self.command(ctap2::Command::Selection, None, call).await?;
            return Ok(());
        }
        let request = touch_request(&self.info);
        match self.command(ctap2::Command::MakeCredential, Some(&request.to_cbor()), call).await {
            Ok(_) => Ok(()),
            Err(CtapError::Status {
                status: StatusCode::PinAuthInvalid | StatusCode::PinNotSet | StatusCode::PinInvalid,
                ..
            }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// CTAPHID_WINK: the key flashes its light.
    pub async fn wink(&mut self, call: &mut Call<'_>) -> Result<()> {
        if !self.dev.info().capabilities.contains(Capabilities::WINK) {
            return Err(CtapError::Unsupported {
                device: self.path().to_owned(),
                what: "this key does not implement wink (no CAPABILITY_WINK)".to_owned(),
            });
        }
        self.dev.transact(HidCommand::Wink, &[], call).await?;
        Ok(())
    }

    /// authenticatorReset: deletes every credential and the PIN. Real keys only accept it within
    /// about 10 s of being plugged in, and want a touch (NOT_ALLOWED otherwise).
    pub async fn reset(&mut self, call: &mut Call<'_>) -> Result<()> {
        self.command(ctap2::Command::Reset, None, call).await?;
        Ok(())
    }
}

/// getInfo answered as an unknown command: a CTAP2 status or a CTAPHID error frame.
fn is_invalid_command(e: &CtapError) -> bool {
    use cablebridge_protocol::ctaphid::{ErrorCode, HostError};
    matches!(
        e,
        CtapError::Status { status: StatusCode::InvalidCommand, .. }
            | CtapError::Channel {
                source: HostError::Device { code: ErrorCode::InvalidCmd, .. },
                ..
            }
    )
}

/// libfido2's touch request: rp ".dummy", user "dummy" (id 0x01), ES256, and, on keys with
/// clientPin, a zero-length pinUvAuthParam so the key asks for a touch without storing anything.
pub fn touch_request(info: &GetInfo) -> MakeCredentialRequest {
    let client_data_hash: [u8; 32] =
        Sha256::digest(b"{\"type\":\"webauthn.create\",\"dummy\":1}").into();
    let has_pin = info.option("clientPin").is_some();
    let protocol =
        cablebridge_protocol::ctap2::pin::PinUvAuthProtocol::preferred(&info.pin_uv_auth_protocols)
            .map_or(1, |p| p.to_u64());
    MakeCredentialRequest {
        client_data_hash,
        rp: RelyingParty { id: DUMMY_RP_ID.to_owned(), name: None },
        user: User { id: vec![1], name: Some("dummy".to_owned()), display_name: None },
        pub_key_cred_params: vec![CredentialParameters::public_key(CoseAlgorithm::Es256)],
        exclude_list: Vec::new(),
        extensions: None,
        options: Default::default(),
        pin_uv_auth_param: has_pin.then(Vec::new),
        pin_uv_auth_protocol: has_pin.then_some(protocol),
        enterprise_attestation: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touch_request_matches_libfido2_shape() {
        let mut info = GetInfo::default();
        let plain = touch_request(&info);
        assert_eq!(plain.rp.id, ".dummy");
        assert_eq!(plain.user.id, [1]);
        assert!(plain.pin_uv_auth_param.is_none());
        info.options.push(("clientPin".into(), false));
        info.pin_uv_auth_protocols = vec![2, 1];
        let pinned = touch_request(&info);
        assert_eq!(pinned.pin_uv_auth_param, Some(Vec::new()));
        assert_eq!(pinned.pin_uv_auth_protocol, Some(2));
        // The empty byte string is really on the wire (key 8).
        let cbor = pinned.to_cbor();
        assert_eq!(cbor.get(8).and_then(|v| v.as_bytes()).map(<[u8]>::len), Some(0));
    }
}
