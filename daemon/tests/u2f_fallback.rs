//! The CTAP1/U2F fallback of the engine, decided at connect time the way libfido2 does: a key
//! whose INIT lacks CBOR, and a key that claims CBOR but answers getInfo "invalid command"
//! (early FIDO2 firmware; the virtual key's `u2f_claims_cbor` lab switch), are both driven with
//! U2F APDUs; a CTAP2 key is not. Through `ceremony::run` the registration carries a verified
//! `fido-u2f` attestation and `protocol: "ctap1/u2f"`, the assertion verifies with its key, and
//! CTAP2-only commands are refused as U2F-only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use cablebridged::ceremony::{
    self, AuthenticateOptions, CeremonyOutcome, CeremonyRequest, CtapProtocol, RegisterOptions,
    Transport, UsbTransport,
};
use cablebridged::ctap::{open_client, Call, CtapError, DeviceProgress, OpenOptions};
use cablebridged::hid::DeviceAddress;
use cablebridged::virtual_key::{VirtualKey, VirtualKeyConfig};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

fn usb(device: &DeviceAddress) -> Transport {
    Transport::Usb(UsbTransport {
        devices: vec![device.clone()],
        timeout: Duration::from_secs(20),
        ..Default::default()
    })
}

async fn is_u2f(device: &DeviceAddress) -> bool {
    let cancel = CancellationToken::new();
    let mut ignore = |_: DeviceProgress| {};
    let mut call = Call {
        deadline: Instant::now() + Duration::from_secs(10),
        cancel: &cancel,
        progress: &mut ignore,
    };
    let mut client = open_client(device, &OpenOptions::default(), &mut call).await.unwrap();
    let u2f = client.is_u2f_only();
    if u2f {
        assert_eq!(client.info().versions, ["U2F_V2"]);
        // CTAP2-only commands are refused before anything is sent, naming the key U2F-only.
        let e = client.reset(&mut call).await.unwrap_err();
        assert!(matches!(e, CtapError::U2fOnly { .. }), "{e}");
        assert!(e.to_string().contains("U2F-only (CTAP1) key"), "{e}");
    }
    u2f
}

#[tokio::test]
async fn keys_without_cbor_or_with_a_failing_get_info_fall_back_to_u2f() {
    let plain =
        VirtualKey::bind(VirtualKeyConfig::new("127.0.0.1:0".parse().unwrap())).await.unwrap();
    let no_cbor =
        VirtualKey::bind(VirtualKeyConfig::new("127.0.0.1:0".parse().unwrap()).u2f_only())
            .await
            .unwrap();
    let mut claims = VirtualKeyConfig::new("127.0.0.1:0".parse().unwrap()).u2f_only();
    claims.u2f_claims_cbor = true;
    claims.presence_delay = Duration::from_millis(120);
    let claims_cbor = VirtualKey::bind(claims).await.unwrap();
    let address = |k: &cablebridged::virtual_key::VirtualKeyHandle| {
        k.device_address().parse::<DeviceAddress>().unwrap()
    };
    assert!(!is_u2f(&address(&plain)).await, "a CTAP2 key stays CTAP2");
    assert!(is_u2f(&address(&no_cbor)).await, "INIT without CBOR → U2F");
    assert!(is_u2f(&address(&claims_cbor)).await, "getInfo invalid command → U2F");

    // A whole ceremony on the key that claimed CBOR.
    let device = address(&claims_cbor);
    let cancel = CancellationToken::new();
    let register = CeremonyRequest::Register(RegisterOptions::new("example.com", "alice"));
    let outcome = ceremony::run(usb(&device), register, None, cancel.clone()).await.unwrap();
    let CeremonyOutcome::Registered(reg) = outcome else { panic!("not a registration") };
    assert_eq!(reg.protocol, Some(CtapProtocol::Ctap1U2f));
    assert_eq!(reg.attestation_format, "fido-u2f");
    let report = reg.attestation.as_ref().unwrap();
    assert!(report.outcome.is_ok(), "fido-u2f verified: {:?}", report.outcome);
    reg.verify().unwrap();

    let mut options = AuthenticateOptions::new("example.com");
    options.allow_credentials = vec![vec![0xaa; 61], reg.credential_id.clone()];
    let outcome = ceremony::run(usb(&device), CeremonyRequest::Authenticate(options), None, cancel)
        .await
        .unwrap();
    let CeremonyOutcome::Authenticated(auth) = outcome else { panic!("not an assertion") };
    assert_eq!(auth.protocol, Some(CtapProtocol::Ctap1U2f));
    assert_eq!(auth.credential_id, reg.credential_id, "the key's own handle was found");
    auth.verify(&reg.public_key).unwrap();

    // excludeCredentials: the key's own handle → a touch, then CREDENTIAL_EXCLUDED (as CTAP2
    // keys answer); a foreign one is ignored.
    let mut again = RegisterOptions::new("example.com", "alice");
    again.exclude_credentials = vec![vec![0xbb; 61], reg.credential_id.clone()];
    let cancel = CancellationToken::new();
    let e = ceremony::run(usb(&device), CeremonyRequest::Register(again), None, cancel.clone())
        .await
        .unwrap_err();
    assert!(e.message.contains("excludeCredentials"), "{e}");
    let mut other = RegisterOptions::new("example.com", "bob");
    other.exclude_credentials = vec![vec![0xbb; 61]];
    ceremony::run(usb(&device), CeremonyRequest::Register(other), None, cancel).await.unwrap();
}
