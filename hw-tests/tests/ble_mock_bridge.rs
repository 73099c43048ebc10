//! Sim tier: the bridge (a USB key served as a phone) over the mock radio.
//!
//! The virtual USB key (UDP-HID) sits behind `cablebridged::bridge`, which plays the phone role and
//! advertises through BlueZ (`--advert-sink bluez`: the mock's LEAdvertisingManager1 loops the
//! advert back as a Device1 advert); the desktop scans through btleplug (`--advert-source bluez`);
//! both meet on our tunnel server on loopback. The desktop must receive the *key's* AAGUID and
//! packed attestation, unchanged.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cablebridge_hw_tests::mock_bluez::AdapterSpec;
use cablebridged::advert::AdvertSource;
use cablebridged::bridge::{self, BridgeConfig, KeyBackend};
use cablebridged::ceremony::{
    AuthenticateOptions, CeremonyOutcome, CeremonyRequest, HybridTransport, RegisterOptions,
    Transport,
};
use cablebridged::desktop::DesktopConfig;
use cablebridged::hid::DeviceAddress;
use cablebridged::phone::sink::AdvertSinkSpec;
use cablebridged::phone::PhoneConfig;
use cablebridged::testkit::{with_phone, EventLog};
use cablebridged::tunnel::server::{TunnelServer, TunnelServerConfig};
use cablebridged::virtual_key::{VirtualKey, VirtualKeyConfig};
use common::{mock_with, serial, STEP};
use std::time::Duration;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

const T: Duration = Duration::from_secs(20);
const KEY_AAGUID: [u8; 16] = *b"mock-radio-key!!";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_serves_the_virtual_key_over_the_mock_radio() {
    let _g = serial().await;
    let mock = mock_with(&[AdapterSpec::new("hci0")]).await;
    mock.set_loopback(Some("hci0"));
    let server = TunnelServer::bind(TunnelServerConfig::default()).await.unwrap();

    let mut kc = VirtualKeyConfig::new("127.0.0.1:0".parse().unwrap());
    kc.aaguid = KEY_AAGUID;
    let key = VirtualKey::bind(kc).await.unwrap();
    let address: DeviceAddress = key.device_address().parse().unwrap();

    let mut desktop_config = DesktopConfig::new(AdvertSource::Bluez);
    desktop_config.tunnel_url = Some(server.base_url());
    desktop_config.timeouts.advert = Duration::from_secs(10);
    desktop_config.timeouts.user = Duration::from_secs(10);
    desktop_config.timeouts.late_updates = Duration::from_millis(300);

    let mut credential = None;
    for round in 0..2 {
        let mut pc = PhoneConfig::new(server.base_url());
        pc.sink = AdvertSinkSpec::Bluez(None);
        pc.advert_interval = Duration::from_millis(50);
        pc.desktop_timeout = Duration::from_secs(10);
        pc.idle_timeout = Duration::from_secs(10);
        let backend =
            KeyBackend::open(&address, &BridgeConfig::default(), &CancellationToken::new())
                .await
                .unwrap();
        let mut bridge = bridge::bridge(pc, backend, None);

        let request = match &credential {
            None => CeremonyRequest::Register(RegisterOptions::new("example.com", "alice")),
            Some((id, _)) => {
                let mut a = AuthenticateOptions::new("example.com");
                a.allow_credentials = vec![Vec::clone(id)];
                CeremonyRequest::Authenticate(a)
            }
        };
        let transport = Transport::Hybrid(HybridTransport::new(desktop_config.clone()));
        let mut log = EventLog::new();
        let phone = |qr| async move {
            let _ = bridge.run_qr(&qr).await;
        };
        let outcome = timeout(T, with_phone(transport, request, &mut log, phone)).await.unwrap().0;
        match (round, outcome) {
            (0, Ok(CeremonyOutcome::Registered(reg))) => {
                // Hardware-backed passthrough: the key's own AAGUID and packed attestation.
                assert_eq!(reg.aaguid.0, KEY_AAGUID);
                assert_eq!(reg.attestation_format, "packed");
                reg.verify().unwrap();
                credential = Some((reg.credential_id.clone(), reg.public_key.clone()));
            }
            (1, Ok(CeremonyOutcome::Authenticated(auth))) => {
                let (id, public_key) = credential.as_ref().unwrap();
                assert_eq!(&auth.credential_id, id);
                auth.verify(public_key).unwrap();
            }
            (r, other) => panic!("round {r}: unexpected outcome {other:?}"),
        }
        // The bridge stopped advertising once the handshake started.
        timeout(STEP, mock.wait_for_adverts(|a| a.is_empty())).await.unwrap();
    }
}
