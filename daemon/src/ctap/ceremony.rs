//! A whole WebAuthn ceremony on a security key with the shared ceremony model
//! ([`crate::ceremony`]): options → client data → CTAP2 request (built from the key's getInfo) →
//! user verification ([`super::uv`]) → [`RegistrationResult`] /
//! [`AuthenticationResult`] with `transport: "usb"`, the same JSON as hybrid.
//!
//! Stages: `setup` → `device_select` (open, or touch-to-select among several keys) →
//! (with no key attached and no `--device`: "insert your security key", waiting for a hot-plug
//! event until the deadline) → `user_presence` (the CTAP2 command; keepalives are noted as progress text: "touch your key")
//! → `done`. Every [`CtapError`] becomes a [`CeremonyError`] naming the stage in progress; a
//! Ctrl-C (the cancel token) sends CTAPHID_CANCEL and fails as
//! [`CeremonyErrorKind::Cancelled`]. A hot-plug `remove` of the selected key while a
//! transaction is in flight ends the ceremony at once with [`HidError::DeviceGone`] at the stage
//! in progress (an environment error saying the key was unplugged), not at its deadline as a
//! timeout: the event source opened for "insert your key" stays open for that (see
//! [`super::arrival`]). Reached through [`crate::ceremony::run`]
//! (`Transport::Usb`).

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::arrival::{select_attached_with, KeyArrivals};
use super::error::CtapError;
use super::extensions::{add_hmac_secret, large_blob, HmacSecretSession};
use super::hid_channel::{Call, DeviceProgress};
use super::select::{open_client, select_device};
use super::uv::{authenticate, register, UserVerification};
use super::Ctap2Client;
use crate::ceremony::{
    AuthenticationResult, Candidate, CeremonyError, CeremonyErrorKind, CeremonyOutcome,
    CeremonyRequest, CeremonyStage, CtapProtocol, Events, ExtensionOutputs, LargeBlobInput,
    LargeBlobOutput, PrfInputs, ProgressDetail, RegistrationResult, Requirement, StageClock,
    TransportKind, UsbTransport,
};
use crate::hid::{HidDevice, HidError};
use cablebridge_protocol::cbor::Value;
use rand_core::CryptoRngCore;

fn uv(r: Requirement) -> UserVerification {
    match r {
        Requirement::Required => UserVerification::Required,
        Requirement::Discouraged => UserVerification::Discouraged,
        _ => UserVerification::Preferred,
    }
}

/// Maps a key error onto the ceremony's error, at `stage`.
pub fn ceremony_error(stage: CeremonyStage, e: &CtapError) -> CeremonyError {
    match e {
        CtapError::Cancelled { .. } => CeremonyError::new(
            stage,
            CeremonyErrorKind::Cancelled,
            format!("{e} (CANCEL sent to the key)"),
        ),
        CtapError::Timeout { .. } | CtapError::NoKeyInserted { cancelled: false, .. } => {
            CeremonyError::new(stage, CeremonyErrorKind::Timeout, e.to_string())
        }
        // Ctrl-C while waiting for a key: like a cancelled transaction.
        CtapError::NoKeyInserted { cancelled: true, .. } => {
            CeremonyError::new(stage, CeremonyErrorKind::Cancelled, e.to_string())
        }
        CtapError::Status { .. } => {
            CeremonyError::new(stage, CeremonyErrorKind::Authenticator, e.to_string())
        }
        other => CeremonyError::classified(stage, "security key", other),
    }
}

/// Runs one register/authenticate ceremony on a security key. Without `config.devices` and with
/// no key attached, waits for one to be plugged in (kernel hot-plug events; see
/// [`super::arrival`]).
pub(crate) async fn run(
    config: &UsbTransport,
    request: CeremonyRequest,
    sink: Events,
    cancel: &CancellationToken,
) -> Result<CeremonyOutcome, CeremonyError> {
    run_with_arrivals(config, request, sink, cancel, || {
        KeyArrivals::kernel(&config.open.hidraw.roots)
    })
    .await
}

/// [`crate::ceremony::run`] on a USB key with the source of hot-plug events chosen by the
/// caller (tests inject events). `arrivals` is called once, before the key is chosen: its
/// `add` events are waited for when no key is attached, and its `remove` events end the
/// ceremony when they name the chosen key. Where it fails (no netlink socket), a key that
/// vanishes silently ends at the deadline instead.
pub async fn run_with_arrivals(
    config: &UsbTransport,
    request: CeremonyRequest,
    sink: Events,
    cancel: &CancellationToken,
    arrivals: impl FnOnce() -> Result<KeyArrivals, HidError>,
) -> Result<CeremonyOutcome, CeremonyError> {
    let mut progress = StageClock::new(CeremonyStage::Setup, sink);
    request.validate()?;
    progress.finish(CeremonyStage::Setup, CeremonyStage::DeviceSelect, ProgressDetail::None);
    let deadline = Instant::now() + config.timeout;
    let noter = progress.clone();
    let mut last = None;
    let mut on_progress = move |p: DeviceProgress| {
        if last == Some(p) {
            return;
        }
        last = Some(p);
        let (stage, text) = match p {
            DeviceProgress::TouchNeeded => (CeremonyStage::UserPresence, "touch your key"),
            DeviceProgress::Processing => (CeremonyStage::KeepaliveProcessing, "key is processing"),
            DeviceProgress::BusyRetry { .. } => {
                (CeremonyStage::DeviceSelect, "key busy with another client; retrying")
            }
            DeviceProgress::InsertKey => (CeremonyStage::DeviceSelect, "insert your security key"),
            _ => return,
        };
        noter.note(stage, ProgressDetail::Text(text.to_owned()));
    };
    let mut call = Call { deadline, cancel, progress: &mut on_progress };
    let stage = CeremonyStage::DeviceSelect;
    let mut arrivals = arrivals();
    if let Err(e) = &arrivals {
        tracing::debug!(error = %e, "no hot-plug events: an unplugged key ends at the deadline");
    }
    let mut client = if let [one] = config.devices.as_slice() {
        open_client(one, &config.open, &mut call).await
    } else if config.devices.is_empty() {
        select_attached_with(&config.open, arrivals.as_mut(), &mut call).await
    } else {
        select_device(&config.devices, &config.open, &mut call, None).await
    }
    .map_err(|e| ceremony_error(stage, &e))?;
    progress.finish(
        CeremonyStage::DeviceSelect,
        CeremonyStage::UserPresence,
        ProgressDetail::Text(client.path().to_owned()),
    );
    let stage = CeremonyStage::UserPresence;
    let u2f = client.is_u2f_only();
    if u2f {
        super::u2f::check_ceremony(client.path(), &request, config.pin.is_some())
            .map_err(|e| ceremony_error(CeremonyStage::DeviceSelect, &e))?;
    }
    let protocol = if u2f { CtapProtocol::Ctap1U2f } else { CtapProtocol::Ctap2 };
    let device = client.path().to_owned();
    let mut unplugged = std::pin::pin!(async {
        match arrivals.as_mut() {
            Ok(a) => a.removed(&device).await,
            Err(_) => std::future::pending().await,
        }
        CtapError::Hid(HidError::DeviceGone { device: device.clone() })
    });
    let mut rng = rand::rngs::OsRng;
    let outcome = match request {
        CeremonyRequest::Register(options) => {
            let client_data = options.client_data();
            let mut req = options.to_request(client.info(), &client_data)?;
            let prf = options.extensions.prf.as_ref();
            let hmac =
                prf_session(&mut client, &mut rng, prf, true, &mut req.extensions, &mut call)
                    .await
                    .map_err(|e| ceremony_error(stage, &e))?;
            let pin = config.pin.as_ref();
            let work = register(&mut client, &mut rng, req, uv(options.uv), pin, &mut call);
            let (response, _) = unless_unplugged(work, unplugged.as_mut())
                .await
                .map_err(|e| ceremony_error(stage, &e))?;
            progress.finish(stage, CeremonyStage::Done, ProgressDetail::None);
            let mut extensions = ExtensionOutputs::of_registration(&options.extensions, &response);
            open_prf(hmac.as_ref(), &mut extensions, &response.auth_data)?;
            let mut result = RegistrationResult::from_response(
                TransportKind::Usb,
                &options.rp_id,
                response,
                &client_data,
                &config.aaguids,
                progress.timings().clone(),
            )?;
            result.protocol = Some(protocol);
            result.extensions = extensions;
            CeremonyOutcome::Registered(result)
        }
        CeremonyRequest::Authenticate(options) => {
            let client_data = options.client_data();
            let mut req = options.to_request(client.info(), &client_data)?;
            let prf = options.extensions.prf.as_ref();
            let hmac =
                prf_session(&mut client, &mut rng, prf, false, &mut req.extensions, &mut call)
                    .await
                    .map_err(|e| ceremony_error(stage, &e))?;
            let allow = req.allow_list.clone();
            let pin = config.pin.as_ref();
            let work = authenticate(&mut client, &mut rng, req, uv(options.uv), pin, &mut call);
            let (responses, _) = unless_unplugged(work, unplugged.as_mut())
                .await
                .map_err(|e| ceremony_error(stage, &e))?;
            progress.finish(stage, CeremonyStage::Done, ProgressDetail::None);
            // Several discoverable credentials: `--pick N`, else the first (most recent) one as
            // a platform without an account picker does; all of them are listed.
            let candidates: Vec<Candidate> = if responses.len() > 1 {
                responses.iter().map(Candidate::from_response).collect()
            } else {
                Vec::new()
            };
            let index = options.pick.unwrap_or(1);
            let count = responses.len();
            let Some(chosen) = responses.into_iter().nth(index.saturating_sub(1)) else {
                return Err(if count == 0 {
                    CeremonyError::peer(stage, "the key returned no assertion")
                } else {
                    CeremonyError::usage(
                        stage,
                        format!(
                            "--pick {index}, but the key has {count} discoverable credential(s) \
                             for {}",
                            options.rp_id
                        ),
                    )
                });
            };
            let mut extensions = ExtensionOutputs::of_assertion(&options.extensions, &chosen);
            open_prf(hmac.as_ref(), &mut extensions, &chosen.auth_data)?;
            if let Some(op) = &options.extensions.large_blob {
                extensions.large_blob = Some(match &chosen.large_blob_key {
                    Some(key) => {
                        large_blob(&mut client, &mut rng, key, op, config.pin.as_ref(), &mut call)
                            .await
                            .map_err(|e| ceremony_error(CeremonyStage::UserResponse, &e))?
                    }
                    None if matches!(op, LargeBlobInput::Write(_)) => {
                        LargeBlobOutput::Written(false)
                    }
                    None => LargeBlobOutput::Blob(None),
                });
            }
            let mut result = AuthenticationResult::from_response(
                TransportKind::Usb,
                &options.rp_id,
                chosen,
                &allow,
                &client_data,
                progress.timings().clone(),
            )?;
            result.candidates = candidates;
            result.protocol = Some(protocol);
            result.extensions = extensions;
            CeremonyOutcome::Authenticated(result)
        }
    };
    Ok(outcome)
}

/// The `hmac-secret` half of WebAuthn `prf`: when `prf` was asked for and the key supports it,
/// agrees a PIN/UV-protocol key and seals the salts into `extensions`. `None` otherwise (the
/// result then reports `enabled` and no results, as a browser would see it).
async fn prf_session(
    client: &mut Ctap2Client<HidDevice>,
    rng: &mut (impl CryptoRngCore + Send),
    prf: Option<&PrfInputs>,
    make_credential: bool,
    extensions: &mut Option<Value>,
    call: &mut Call<'_>,
) -> Result<Option<HmacSecretSession>, CtapError> {
    match prf {
        Some(prf) => {
            add_hmac_secret(client, rng, &prf.salts(), make_credential, extensions, call).await
        }
        None => Ok(None),
    }
}

/// Decrypts the key's `hmac-secret` output into the `prf` results.
fn open_prf(
    session: Option<&HmacSecretSession>,
    extensions: &mut ExtensionOutputs,
    auth_data: &[u8],
) -> Result<(), CeremonyError> {
    if let (Some(session), Some(prf)) = (session, extensions.prf.as_mut()) {
        prf.results = session
            .open(auth_data)
            .map_err(|e| CeremonyError::ctap2(CeremonyStage::UserResponse, &e))?;
    }
    Ok(())
}

/// Runs one key transaction unless the selected key is unplugged first (then the unplug's
/// [`HidError::DeviceGone`], at once rather than at the deadline).
async fn unless_unplugged<T>(
    work: impl std::future::Future<Output = Result<T, CtapError>>,
    unplugged: std::pin::Pin<&mut impl std::future::Future<Output = CtapError>>,
) -> Result<T, CtapError> {
    tokio::select! {
        done = work => done,
        gone = unplugged => Err(gone),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_key_unplugged_mid_ceremony_names_the_stage_and_the_device() {
        // hidraw reads of an unplugged key fail with ENODEV/EIO → HidError::DeviceGone.
        let gone = CtapError::Hid(HidError::DeviceGone { device: "/dev/hidraw3".into() });
        let e = ceremony_error(CeremonyStage::UserPresence, &gone);
        assert_eq!(e.stage, CeremonyStage::UserPresence);
        assert_eq!(e.kind, CeremonyErrorKind::Environment);
        assert!(e.message.contains("/dev/hidraw3 is gone (unplugged"), "{}", e.message);
    }

    #[test]
    fn waiting_for_a_key_maps_to_timeout_or_cancel() {
        let waited = Duration::from_millis(1500);
        let timed_out = CtapError::NoKeyInserted { waited, cancelled: false };
        let e = ceremony_error(CeremonyStage::DeviceSelect, &timed_out);
        assert_eq!((e.stage, e.kind), (CeremonyStage::DeviceSelect, CeremonyErrorKind::Timeout));
        assert_eq!(e.message, "no FIDO security key was plugged in within 1.5 s");
        let cancelled = CtapError::NoKeyInserted { waited, cancelled: true };
        let e = ceremony_error(CeremonyStage::DeviceSelect, &cancelled);
        assert_eq!(e.kind, CeremonyErrorKind::Cancelled);
        assert!(e.message.ends_with("(cancelled)"), "{}", e.message);
    }
}
