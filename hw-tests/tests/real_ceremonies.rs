//! Real-device tier: full ceremonies against a real USB security key and real phones.
//!
//! Every test is `#[ignore]`d — CI has no USB, no Bluetooth and no internet. The procedures are in
//! hw-tests/README.md ("Real ceremonies"). Each successful test writes a JSON **evidence record**
//! (the same result JSON the CLI prints, plus what was expected and what was observed) to
//! `$CABLEBRIDGE_EVIDENCE_DIR` (default `target/evidence/`), so a lab run leaves a file per
//! ceremony that can be attached to a rollout report.
//!
//! Environment:
//! - `CABLEBRIDGE_HIDRAW` — the key's node (default: every attached key, touch-to-select).
//! - `CABLEBRIDGE_PIN` — the key's PIN when it has one.
//! - `CABLEBRIDGE_RP_ID` — relying party id (default `cablebridge.test`).
//! - `CABLEBRIDGE_PHONE` — a label for the phone in the evidence ("Pixel 8 / Android 15").
//! - `CABLEBRIDGE_EXPECT_AAGUID` — fail unless the authenticator reports this AAGUID (e.g. the
//!   Microsoft Authenticator ones: Android `de1e552d-db1d-4423-a619-566b625cdc84`, iOS
//!   `90a3ccdf-635c-4729-a248-9b709135078f`).
//! - `CABLEBRIDGE_TUNNEL_URL` — use this tunnel instead of the one the phone names (labs only).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cablebridge_protocol::ctap2::pin::Pin;
use cablebridged::advert::AdvertSource;
use cablebridged::ceremony::{
    self, AuthenticateOptions, CeremonyError, CeremonyEvent, CeremonyOutcome, CeremonyRequest,
    EventSink, HybridTransport, RegisterOptions, Transport, UsbTransport,
};
use cablebridged::desktop::DesktopConfig;
use cablebridged::hid::DeviceAddress;
use common::write_evidence;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn rp_id() -> String {
    std::env::var("CABLEBRIDGE_RP_ID").unwrap_or_else(|_| "cablebridge.test".to_owned())
}

/// Prints every stage to stderr, and the QR code in the terminal when one is shown.
fn console_sink() -> Arc<dyn EventSink> {
    Arc::new(|e: &CeremonyEvent| match e {
        CeremonyEvent::Qr { url } => {
            match qrcode::QrCode::new(url.as_bytes()) {
                Ok(code) => eprintln!(
                    "{}",
                    code.render::<qrcode::render::unicode::Dense1x2>().quiet_zone(true).build()
                ),
                Err(err) => eprintln!("(cannot render QR: {err})"),
            }
            eprintln!("Scan with the phone's camera: {url}");
        }
        CeremonyEvent::Progress(p) => {
            eprintln!("[{:>6} ms] {} {:?}", p.elapsed_ms, p.stage.as_str(), p.detail)
        }
        other => eprintln!("{}", other.to_json()),
    })
}

async fn run_hybrid(
    config: &DesktopConfig,
    request: CeremonyRequest,
) -> Result<CeremonyOutcome, CeremonyError> {
    let transport = Transport::Hybrid(HybridTransport::new(config.clone()));
    ceremony::run(transport, request, Some(console_sink()), CancellationToken::new()).await
}

fn check_expected_aaguid(observed: &str) {
    if let Ok(want) = std::env::var("CABLEBRIDGE_EXPECT_AAGUID") {
        assert_eq!(observed, want.to_lowercase(), "authenticator AAGUID differs from the expected");
    }
}

/// Register on the phone via QR, then sign in with the new credential (a second QR), and write
/// both results as evidence. Used by the Android, iPhone and Microsoft Authenticator procedures.
async fn phone_register_then_authenticate(label: &str) {
    let mut config = DesktopConfig::new(AdvertSource::Bluez);
    config.tunnel_url = std::env::var("CABLEBRIDGE_TUNNEL_URL").ok();
    let phone = std::env::var("CABLEBRIDGE_PHONE").unwrap_or_else(|_| label.to_owned());

    let reg = RegisterOptions::new(rp_id(), "hw-test-user");
    let outcome = run_hybrid(&config, CeremonyRequest::Register(reg))
        .await
        .unwrap_or_else(|e| panic!("registration failed at stage {}: {e}", e.stage));
    let CeremonyOutcome::Registered(registered) = outcome else { panic!("expected a credential") };
    let attestation = registered.verify().map(|t| format!("{t:?}")).map_err(|e| e.to_string());
    check_expected_aaguid(&registered.aaguid.to_string());

    let mut auth = AuthenticateOptions::new(rp_id());
    auth.allow_credentials = vec![registered.credential_id.clone()];
    let outcome = run_hybrid(&config, CeremonyRequest::Authenticate(auth))
        .await
        .unwrap_or_else(|e| panic!("authentication failed at stage {}: {e}", e.stage));
    let CeremonyOutcome::Authenticated(assertion) = outcome else {
        panic!("expected an assertion")
    };
    assertion.verify(&registered.public_key).expect("assertion signature verifies");

    write_evidence(
        label,
        json!({
            "test": label,
            "phone": phone,
            "transport": "hybrid",
            "registration": registered.to_json(),
            "attestation_verification": match &attestation { Ok(t) => json!(t), Err(e) => json!({"error": e}) },
            "authentication": assertion.to_json(),
            "assertion_verification": "OK",
        }),
    );
}

#[tokio::test]
#[ignore = "needs an Android phone, Bluetooth and internet (cable.ua5v.com); see hw-tests/README.md"]
async fn real_android_phone_qr_register_and_authenticate() {
    phone_register_then_authenticate("android-hybrid").await;
}

#[tokio::test]
#[ignore = "needs an iPhone, Bluetooth and internet (cable.auth.com); see hw-tests/README.md"]
async fn real_iphone_qr_register_and_authenticate() {
    phone_register_then_authenticate("iphone-hybrid").await;
}

#[tokio::test]
#[ignore = "needs a phone with Microsoft Authenticator as passkey provider; see hw-tests/README.md"]
async fn real_microsoft_authenticator_qr_register_and_authenticate() {
    if std::env::var("CABLEBRIDGE_EXPECT_AAGUID").is_err() {
        panic!(
            "set CABLEBRIDGE_EXPECT_AAGUID to de1e552d-db1d-4423-a619-566b625cdc84 (Android) or \
             90a3ccdf-635c-4729-a248-9b709135078f (iOS)"
        );
    }
    phone_register_then_authenticate("microsoft-authenticator-hybrid").await;
}

#[tokio::test]
#[ignore = "needs a real FIDO2 USB key (touch twice); see hw-tests/README.md"]
async fn real_usb_key_register_and_authenticate() {
    let devices = match std::env::var("CABLEBRIDGE_HIDRAW") {
        Ok(p) => vec![p.parse::<DeviceAddress>().expect("CABLEBRIDGE_HIDRAW is a device path")],
        Err(_) => Vec::new(),
    };
    let pin = std::env::var("CABLEBRIDGE_PIN").ok().map(|p| Pin::new(&p).expect("valid PIN"));
    let usb = || {
        Transport::Usb(UsbTransport {
            devices: devices.clone(),
            timeout: Duration::from_secs(60),
            pin: pin.clone(),
            open: Default::default(),
            ..Default::default()
        })
    };
    let cancel = CancellationToken::new();
    eprintln!("Touch the key when it blinks (twice: register, then authenticate).");

    let reg = RegisterOptions::new(rp_id(), "hw-test-user");
    let outcome =
        ceremony::run(usb(), CeremonyRequest::Register(reg), Some(console_sink()), cancel.clone())
            .await
            .unwrap_or_else(|e| panic!("registration failed at stage {}: {e}", e.stage));
    let CeremonyOutcome::Registered(registered) = outcome else { panic!("expected a credential") };
    let attestation = registered.verify().expect("the key's attestation verifies");
    check_expected_aaguid(&registered.aaguid.to_string());

    let mut auth = AuthenticateOptions::new(rp_id());
    auth.allow_credentials = vec![registered.credential_id.clone()];
    let outcome =
        ceremony::run(usb(), CeremonyRequest::Authenticate(auth), Some(console_sink()), cancel)
            .await
            .unwrap_or_else(|e| panic!("authentication failed at stage {}: {e}", e.stage));
    let CeremonyOutcome::Authenticated(assertion) = outcome else {
        panic!("expected an assertion")
    };
    assertion.verify(&registered.public_key).expect("assertion signature verifies");

    write_evidence(
        "usb-key",
        json!({
            "test": "usb-key",
            "transport": "usb",
            "registration": registered.to_json(),
            "attestation_verification": format!("{attestation:?}"),
            "authentication": assertion.to_json(),
            "assertion_verification": "OK",
        }),
    );
}
