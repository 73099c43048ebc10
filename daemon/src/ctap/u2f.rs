//! The CTAP1/U2F fallback for keys that do not speak CTAP2, the way libfido2 does it
//! (`u2f.c`: `u2f_register`, `u2f_authenticate`), over CTAPHID_MSG.
//!
//! When is a key driven this way? [`super::Ctap2Client::connect`] decides: the INIT
//! capabilities lack `CBOR` (and `NMSG` is clear, so MSG works), or `CBOR` is advertised but
//! getInfo fails with "invalid command" (some early FIDO2 firmware).
//!
//! * makeCredential → `U2F_REGISTER(clientDataHash, rpIdHash)`, repeated every
//!   [`TOUCH_POLL`] while the key answers 0x6985 (conditions not satisfied = "touch me") until
//!   it answers 0x9000, the deadline passes or the caller cancels. An exclude list is checked
//!   first with check-only authenticates; a match waits for a touch (a dummy registration, so the
//!   user sees why) and fails with CREDENTIAL_EXCLUDED, as CTAP2 keys do.
//! * getAssertion → for each allow-list entry, `U2F_AUTHENTICATE` check-only (0x07): 0x6985
//!   means "this handle is mine", 0x6A80 "not mine"; the first match is then signed with
//!   enforce-user-presence (0x03), polled like registration. No match → NO_CREDENTIALS.
//! * The answers become CTAP2-shaped responses ([`cablebridge_protocol::ctap1::convert`]):
//!   `fido-u2f` attestation (x5c = the key's U2F attestation certificate), which the attestation
//!   verifier checks like any other format.
//!
//! What U2F cannot do is refused before anything is sent, with [`CtapError::U2fOnly`]:
//! discoverable (resident) credentials, an empty allow list, user verification, a PIN,
//! extensions, algorithms other than ES256.

use std::time::Duration;

use cablebridge_protocol::ctap1::apdu::{CommandApdu, ResponseApdu, StatusWord};
use cablebridge_protocol::ctap1::convert::{get_assertion_response, make_credential_response};
use cablebridge_protocol::ctap1::messages::{
    version_request, AuthenticateRequest, AuthenticateResponse, Control, RegisterRequest,
    RegisterResponse,
};
use cablebridge_protocol::ctap1::U2fError;
use cablebridge_protocol::ctap2::{
    self, CoseAlgorithm, GetAssertionRequest, GetAssertionResponse, MakeCredentialRequest,
    MakeCredentialResponse, StatusCode,
};
use cablebridge_protocol::ctaphid::Command as HidCommand;
use cablebridge_protocol::ctaphid::Waiting;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::error::{CtapError, Result};
use super::hid_channel::{Call, CtapHidDevice, DeviceProgress};
use crate::hid::HidTransport;

/// How often a key answering 0x6985 is asked again (libfido2 polls similarly).
pub const TOUCH_POLL: Duration = Duration::from_millis(100);

/// The version a U2F-only key is reported with (getInfo `versions`).
pub const U2F_VERSION: &str = "U2F_V2";

fn u2f_only(device: &str, what: impl Into<String>) -> CtapError {
    CtapError::U2fOnly { device: device.to_owned(), what: what.into() }
}

/// Refuses, before anything is sent, a ceremony a U2F key cannot perform: a required
/// discoverable credential or user verification, a PIN, or (authentication) no allow list.
pub fn check_ceremony(
    device: &str,
    request: &crate::ceremony::CeremonyRequest,
    pin_given: bool,
) -> Result<()> {
    use crate::ceremony::{CeremonyRequest, Requirement};
    let uv = match request {
        CeremonyRequest::Register(o) => {
            if o.resident_key == Requirement::Required {
                return Err(u2f_only(
                    device,
                    "it cannot store discoverable (resident) credentials",
                ));
            }
            o.uv
        }
        CeremonyRequest::Authenticate(o) => {
            if o.allow_credentials.is_empty() {
                return Err(u2f_only(
                    device,
                    "it has no discoverable credentials; pass the credential id \
                     (--allow-credential)",
                ));
            }
            o.uv
        }
    };
    if uv == Requirement::Required || pin_given {
        return Err(u2f_only(
            device,
            "it cannot verify the user (no PIN, no built-in UV); drop the PIN / --uv required",
        ));
    }
    Ok(())
}

/// Refuses what a U2F key cannot do in a makeCredential request.
pub fn check_make_credential(device: &str, request: &MakeCredentialRequest) -> Result<()> {
    if request.options.rk == Some(true) {
        return Err(u2f_only(device, "it cannot store discoverable (resident) credentials"));
    }
    check_common(device, request.options.uv, &request.pin_uv_auth_param, &request.extensions)?;
    if !request.pub_key_cred_params.iter().any(|p| p.alg == CoseAlgorithm::Es256) {
        return Err(u2f_only(device, "it only makes ES256 (P-256) credentials"));
    }
    Ok(())
}

/// Refuses what a U2F key cannot do in a getAssertion request.
pub fn check_get_assertion(device: &str, request: &GetAssertionRequest) -> Result<()> {
    if request.allow_list.is_empty() {
        return Err(u2f_only(
            device,
            "it has no discoverable credentials; pass the credential id (--allow-credential)",
        ));
    }
    check_common(device, request.options.uv, &request.pin_uv_auth_param, &request.extensions)
}

fn check_common(
    device: &str,
    uv: Option<bool>,
    pin_uv_auth_param: &Option<Vec<u8>>,
    extensions: &Option<cablebridge_protocol::cbor::Value>,
) -> Result<()> {
    if uv == Some(true) || pin_uv_auth_param.is_some() {
        return Err(u2f_only(device, "it cannot verify the user (no PIN, no built-in UV)"));
    }
    if extensions.is_some() {
        return Err(u2f_only(device, "it supports no extensions"));
    }
    Ok(())
}

/// One APDU over CTAPHID_MSG: the response data and status word.
async fn exchange<T: HidTransport>(
    dev: &mut CtapHidDevice<T>,
    apdu: &CommandApdu,
    op: &'static str,
    call: &mut Call<'_>,
) -> Result<(Vec<u8>, StatusWord)> {
    let device = dev.path().to_owned();
    let bytes = apdu.encode().map_err(|source| CtapError::U2f { device, op, source })?;
    let answer = dev.transact(HidCommand::Msg, &bytes, call).await?;
    let response = ResponseApdu::parse(&answer).map_err(|source| CtapError::U2f {
        device: dev.path().to_owned(),
        op,
        source,
    })?;
    Ok((response.data.to_vec(), response.status))
}

/// Sends `apdu` until the key stops answering 0x6985 (the user touched it): its data on
/// 0x9000, a typed error otherwise, [`CtapError::Timeout`] / [`CtapError::Cancelled`] at the
/// deadline or on cancel.
async fn until_touched<T: HidTransport>(
    dev: &mut CtapHidDevice<T>,
    apdu: &CommandApdu,
    op: &'static str,
    call: &mut Call<'_>,
) -> Result<Vec<u8>> {
    let mut asked = false;
    loop {
        let (data, status) = exchange(dev, apdu, op, call).await?;
        match status {
            StatusWord::NoError => return Ok(data),
            StatusWord::ConditionsNotSatisfied => {}
            other => {
                return Err(CtapError::U2f {
                    device: dev.path().to_owned(),
                    op,
                    source: U2fError::Status(other),
                })
            }
        }
        if !asked {
            asked = true;
            (call.progress)(DeviceProgress::TouchNeeded);
        }
        let now = Instant::now();
        if now >= call.deadline {
            return Err(CtapError::Timeout {
                device: dev.path().to_owned(),
                command: HidCommand::Msg,
                ctap: None,
                waiting: Waiting::Response,
                touch_needed: true,
            });
        }
        tokio::select! {
            _ = tokio::time::sleep_until((now + TOUCH_POLL).min(call.deadline)) => {}
            _ = call.cancel.cancelled() => {
                return Err(CtapError::Cancelled {
                    device: dev.path().to_owned(),
                    command: HidCommand::Msg,
                    ctap: None,
                });
            }
        }
    }
}

/// A registration for a throw-away application, polled until touched: how a U2F key is asked
/// for a touch (libfido2 `u2f_get_touch_begin`, and the "you already registered" wait).
pub async fn wait_for_touch<T: HidTransport>(
    dev: &mut CtapHidDevice<T>,
    call: &mut Call<'_>,
) -> Result<()> {
    let dummy = |s: &[u8]| -> [u8; 32] { Sha256::digest(s).into() };
    let request = RegisterRequest {
        challenge: dummy(b"cablebridge u2f touch"),
        application: dummy(super::client::DUMMY_RP_ID.as_bytes()),
    };
    until_touched(dev, &request.to_apdu(), "touch request", call).await.map(|_| ())
}

/// `U2F_VERSION`: the version string (`"U2F_V2"` on every key in the field).
pub async fn version<T: HidTransport>(
    dev: &mut CtapHidDevice<T>,
    call: &mut Call<'_>,
) -> Result<String> {
    let (data, status) = exchange(dev, &version_request(), "version", call).await?;
    let u2f_err = |source| CtapError::U2f { device: dev.path().to_owned(), op: "version", source };
    if status != StatusWord::NoError {
        return Err(u2f_err(U2fError::Status(status)));
    }
    cablebridge_protocol::ctap1::messages::parse_version(&data).map(str::to_owned).map_err(u2f_err)
}

/// Whether `key_handle` belongs to this key for `application` (check-only authenticate).
async fn owns<T: HidTransport>(
    dev: &mut CtapHidDevice<T>,
    application: &[u8; 32],
    key_handle: &[u8],
    call: &mut Call<'_>,
) -> Result<bool> {
    let op = "authenticate (check-only)";
    let request = AuthenticateRequest {
        control: Control::CheckOnly,
        challenge: [0; 32],
        application: *application,
        key_handle: key_handle.to_vec(),
    };
    let apdu = match request.to_apdu() {
        Ok(a) => a,
        // A credential id longer than 255 bytes cannot be a U2F key handle of this key.
        Err(U2fError::TooLong { .. }) => return Ok(false),
        Err(source) => return Err(CtapError::U2f { device: dev.path().to_owned(), op, source }),
    };
    match exchange(dev, &apdu, op, call).await?.1 {
        StatusWord::ConditionsNotSatisfied => Ok(true),
        StatusWord::WrongData => Ok(false),
        // Some keys answer 0x9000 with a signature even for check-only: it is theirs.
        StatusWord::NoError => Ok(true),
        other => Err(CtapError::U2f {
            device: dev.path().to_owned(),
            op,
            source: U2fError::Status(other),
        }),
    }
}

/// makeCredential on a U2F-only key.
pub async fn make_credential<T: HidTransport>(
    dev: &mut CtapHidDevice<T>,
    request: &MakeCredentialRequest,
    call: &mut Call<'_>,
) -> Result<MakeCredentialResponse> {
    check_make_credential(dev.path(), request)?;
    let application: [u8; 32] = Sha256::digest(request.rp.id.as_bytes()).into();
    for excluded in &request.exclude_list {
        if owns(dev, &application, &excluded.id, call).await? {
            wait_for_touch(dev, call).await?;
            return Err(status(
                dev.path(),
                ctap2::Command::MakeCredential,
                StatusCode::CredentialExcluded,
            ));
        }
    }
    let apdu = RegisterRequest { challenge: request.client_data_hash, application }.to_apdu();
    let op = "register";
    let data = until_touched(dev, &apdu, op, call).await?;
    let u2f_err = |source| CtapError::U2f { device: dev.path().to_owned(), op, source };
    let response = RegisterResponse::parse(&data).map_err(u2f_err)?;
    make_credential_response(&application, &response).map_err(u2f_err)
}

/// getAssertion on a U2F-only key: one assertion, for the first allow-list entry the key owns.
pub async fn get_assertion<T: HidTransport>(
    dev: &mut CtapHidDevice<T>,
    request: &GetAssertionRequest,
    call: &mut Call<'_>,
) -> Result<Vec<GetAssertionResponse>> {
    check_get_assertion(dev.path(), request)?;
    let application: [u8; 32] = Sha256::digest(request.rp_id.as_bytes()).into();
    let mut found = None;
    for allowed in &request.allow_list {
        if owns(dev, &application, &allowed.id, call).await? {
            found = Some(allowed.id.clone());
            break;
        }
    }
    let Some(key_handle) = found else {
        return Err(status(dev.path(), ctap2::Command::GetAssertion, StatusCode::NoCredentials));
    };
    let op = "authenticate";
    let u2f_err = |device: &str, source| CtapError::U2f { device: device.to_owned(), op, source };
    let apdu = AuthenticateRequest {
        control: Control::EnforceUserPresence,
        challenge: request.client_data_hash,
        application,
        key_handle: key_handle.clone(),
    }
    .to_apdu()
    .map_err(|e| u2f_err(dev.path(), e))?;
    let data = until_touched(dev, &apdu, op, call).await?;
    let response = AuthenticateResponse::parse(&data).map_err(|e| u2f_err(dev.path(), e))?;
    Ok(vec![get_assertion_response(&application, &key_handle, &response)])
}

fn status(device: &str, command: ctap2::Command, status: StatusCode) -> CtapError {
    CtapError::Status { device: device.to_owned(), command, status, retries: None }
}
