//! Sim tier: full hybrid ceremonies over the real radio code paths, through the mock BlueZ.
//!
//! The desktop (`cablebridged::ceremony::run`, `--advert-source bluez`) scans with btleplug; the
//! virtual phone (`--advert-sink bluez`) registers its advert with the mock's
//! LEAdvertisingManager1, which loops it back as a Device1 advert on hci0; both then meet on our
//! tunnel server on loopback. Also: BlueZ vanishing while the desktop waits for the advert, and an
//! advert flood of foreign service data that must not starve the phone's advert.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cablebridge_hw_tests::mock_bluez::{AdapterSpec, MockBluez};
use cablebridge_protocol::error::Fault;
use cablebridge_protocol::hybrid::qr::QrPayload;
use cablebridged::advert::AdvertSource;
use cablebridged::ceremony::{
    self, AuthenticateOptions, CeremonyError, CeremonyErrorKind, CeremonyEvent, CeremonyOutcome,
    CeremonyRequest, CeremonyStage, EventSink, HybridTransport, ProgressDetail, RegisterOptions,
    Transport,
};
use cablebridged::desktop::DesktopConfig;
use cablebridged::phone::sink::AdvertSinkSpec;
use cablebridged::phone::{PhoneConfig, PhoneState, VirtualPhone};
use cablebridged::testkit::{with_phone, EventLog};
use cablebridged::tunnel::server::{TunnelServer, TunnelServerConfig, TunnelServerHandle};
use common::{mock_with, serial, STEP};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

/// Bound for one whole ceremony.
const T: Duration = Duration::from_secs(20);
const FFF9: &str = "0000fff9-0000-1000-8000-00805f9b34fb";

fn desktop_config(server: &TunnelServerHandle) -> DesktopConfig {
    let mut c = DesktopConfig::new(AdvertSource::Bluez);
    c.tunnel_url = Some(server.base_url());
    c.timeouts.advert = Duration::from_secs(10);
    c.timeouts.user = Duration::from_secs(10);
    c.timeouts.late_updates = Duration::from_millis(300);
    c
}

fn bluez_phone(server: &TunnelServerHandle) -> VirtualPhone {
    let mut c = PhoneConfig::new(server.base_url());
    c.sink = AdvertSinkSpec::Bluez(None);
    c.advert_interval = Duration::from_millis(50);
    c.desktop_timeout = Duration::from_secs(10);
    c.idle_timeout = Duration::from_secs(10);
    let state = PhoneState::new(&mut rand::rngs::OsRng);
    VirtualPhone::new(c, state, None, None)
}

/// Progress of one desktop run: the QR URL as it is shown, and when the advert was accepted.
struct Watch {
    qr: mpsc::UnboundedReceiver<String>,
    advert_accepted: Arc<Mutex<Option<Instant>>>,
    sink: Arc<dyn EventSink>,
}

fn watch() -> Watch {
    let (tx, qr) = mpsc::unbounded_channel();
    let advert_accepted = Arc::new(Mutex::new(None));
    let accepted = Arc::clone(&advert_accepted);
    let sink = move |e: &CeremonyEvent| match e {
        CeremonyEvent::Qr { url } => {
            let _ = tx.send(url.clone());
        }
        CeremonyEvent::Progress(p) if matches!(p.detail, ProgressDetail::Advert { .. }) => {
            accepted.lock().unwrap().get_or_insert_with(Instant::now);
        }
        _ => {}
    };
    Watch { qr, advert_accepted, sink: Arc::new(sink) }
}

/// One hybrid ceremony through the engine's entry point, nobody answering by itself.
async fn run(
    config: &DesktopConfig,
    request: CeremonyRequest,
    sink: Arc<dyn EventSink>,
) -> Result<CeremonyOutcome, CeremonyError> {
    let transport = Transport::Hybrid(HybridTransport::new(config.clone()));
    ceremony::run(transport, request, Some(sink), CancellationToken::new()).await
}

/// One QR ceremony: desktop scanning through the mock, phone advertising through it.
async fn ceremony(
    config: &DesktopConfig,
    request: CeremonyRequest,
    phone: &mut VirtualPhone,
) -> Result<CeremonyOutcome, CeremonyError> {
    let transport = Transport::Hybrid(HybridTransport::new(config.clone()));
    let mut log = EventLog::new();
    let phone_side = |qr| async move {
        let _ = phone.run_qr(&qr).await;
    };
    timeout(T, with_phone(transport, request, &mut log, phone_side)).await.unwrap().0
}

async fn loopback_mock() -> MockBluez {
    let mock = mock_with(&[AdapterSpec::new("hci0")]).await;
    mock.set_loopback(Some("hci0"));
    mock
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_then_authenticate_over_the_mock_radio() {
    let _g = serial().await;
    let mock = loopback_mock().await;
    let server = TunnelServer::bind(TunnelServerConfig::default()).await.unwrap();
    let config = desktop_config(&server);
    let mut phone = bluez_phone(&server);

    let o = RegisterOptions::new("example.com", "alice@example.com");
    let t0 = Instant::now();
    let reg = match ceremony(&config, CeremonyRequest::Register(o), &mut phone).await {
        Ok(CeremonyOutcome::Registered(r)) => r,
        other => panic!("expected a registration, got {other:?}"),
    };
    let reg_time = t0.elapsed();
    reg.verify().unwrap();
    // The phone stopped advertising once the handshake started: nothing left registered.
    timeout(STEP, mock.wait_for_adverts(|a| a.is_empty())).await.unwrap();

    let mut a = AuthenticateOptions::new("example.com");
    a.allow_credentials = vec![reg.credential_id.clone()];
    let t1 = Instant::now();
    let auth = match ceremony(&config, CeremonyRequest::Authenticate(a), &mut phone).await {
        Ok(CeremonyOutcome::Authenticated(r)) => r,
        other => panic!("expected an authentication, got {other:?}"),
    };
    let auth_time = t1.elapsed();
    assert_eq!(auth.credential_id, reg.credential_id);
    auth.verify(&reg.public_key).unwrap();
    let mut tampered = auth.clone();
    tampered.client_data_json.push(b' ');
    assert!(tampered.verify(&reg.public_key).is_err());
    timeout(STEP, mock.wait_for_adverts(|a| a.is_empty())).await.unwrap();
    println!("mock radio ceremony: register {reg_time:?}, authenticate {auth_time:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bluez_vanishing_while_waiting_for_the_advert_ends_with_exit_3() {
    let _g = serial().await;
    let mock = loopback_mock().await;
    let server = TunnelServer::bind(TunnelServerConfig::default()).await.unwrap();
    let config = desktop_config(&server);
    let mut w = watch();
    let o = RegisterOptions::new("example.com", "alice@example.com");
    let desktop = run(&config, CeremonyRequest::Register(o), Arc::clone(&w.sink));
    let killer = async {
        w.qr.recv().await.expect("desktop showed no QR");
        let at = Instant::now();
        mock.vanish().await;
        at
    };
    let (result, vanished_at) = timeout(T, async { tokio::join!(desktop, killer) }).await.unwrap();
    let after = vanished_at.elapsed();
    let e = result.expect_err("the ceremony cannot succeed without BlueZ");
    assert_eq!(
        (e.stage, e.kind, e.fault),
        (CeremonyStage::Advert, CeremonyErrorKind::Environment, Fault::Environment),
        "{e}"
    );
    assert!(e.message.contains("left the system bus"), "{e}");
    assert!(e.message.contains("systemctl restart bluetooth"), "remedy: {e}");
    println!("BlueZ vanished → ceremony error after {after:?}: {e}");
    // Well inside the 10 s advert timeout: the failure, not the timeout, ended it.
    assert!(after < Duration::from_secs(3), "took {after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_advert_flood_does_not_starve_the_phone() {
    const FOREIGN: usize = 32;
    const RATE: u64 = 3000; // foreign adverts per second
    const MAX_FLOOD: Duration = Duration::from_secs(4);
    const PHONE_AFTER: Duration = Duration::from_millis(1000);

    let _g = serial().await;
    let mock = loopback_mock().await;
    let server = TunnelServer::bind(TunnelServerConfig::default()).await.unwrap();
    let config = desktop_config(&server);
    let mut phone = bluez_phone(&server);
    let mut devices = vec![];
    for i in 0..FOREIGN {
        devices.push(
            mock.add_device("hci0", [0xf0, 0, 0, 0, 1, i as u8], Some(-90), &[]).await.unwrap(),
        );
    }

    let mut w = watch();
    let accepted = Arc::clone(&w.advert_accepted);
    let o = RegisterOptions::new("example.com", "alice@example.com");
    let desktop = run(&config, CeremonyRequest::Register(o), Arc::clone(&w.sink));
    let (url_tx, mut url_rx) = mpsc::unbounded_channel();
    let flood = async {
        let url = w.qr.recv().await.expect("desktop showed no QR");
        let t0 = Instant::now();
        let (mut sent, mut counter) = (0u64, 0u64);
        let mut phone_started = None;
        // Bounded in time (MAX_FLOOD) and so in count (RATE × MAX_FLOOD).
        while t0.elapsed() < MAX_FLOOD && accepted.lock().unwrap().is_none() {
            let due = RATE * t0.elapsed().as_millis() as u64 / 1000;
            while sent < due {
                counter += 1;
                // 20 bytes that look like an EID but are sealed under no session's key.
                let mut data = [0u8; 20];
                data[..8].copy_from_slice(&counter.to_le_bytes());
                data[19] = 0x5a;
                let dev = &devices[counter as usize % FOREIGN];
                mock.advertise_from(dev, None, &[(FFF9, &data)]).await.unwrap();
                sent += 1;
            }
            if phone_started.is_none() && t0.elapsed() >= PHONE_AFTER {
                phone_started = Some(Instant::now());
                url_tx.send(url.clone()).unwrap();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (sent, t0.elapsed(), phone_started)
    };
    let phone_side = async {
        if let Some(url) = url_rx.recv().await {
            let _ = phone.run_qr(&QrPayload::from_url(&url).unwrap()).await;
        }
    };
    let (result, (sent, flood_time, phone_started), ()) =
        timeout(T, async { tokio::join!(desktop, flood, phone_side) }).await.unwrap();
    let reg = match result {
        Ok(CeremonyOutcome::Registered(r)) => r,
        other => panic!("the flood starved the ceremony: {other:?}"),
    };
    reg.verify().unwrap();
    let accepted_at = accepted.lock().unwrap().expect("advert stage finished");
    let phone_started = phone_started.expect("phone started during the flood");
    let latency = accepted_at.duration_since(phone_started);
    let rate = sent as f64 / flood_time.as_secs_f64();
    println!(
        "flood: {sent} foreign adverts over {flood_time:?} ({rate:.0}/s) from {FOREIGN} devices; \
         phone advert accepted {latency:?} after the phone started"
    );
    assert!(sent >= 2000, "the flood was not a flood ({sent})");
    assert!(rate > 1000.0, "the flood was not a flood ({rate:.0}/s)");
    assert!(latency < Duration::from_secs(3), "phone advert accepted only after {latency:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bluez_sink_registers_updates_and_stop_unregisters() {
    use cablebridged::phone::sink::{AdvertSink, Advertiser};
    let _g = serial().await;
    let mock = mock_with(&[AdapterSpec::new("hci0")]).await;
    let spec: AdvertSinkSpec = "bluez:hci0".parse().unwrap();
    let mut sink = timeout(STEP, AdvertSink::open(&spec)).await.unwrap().unwrap();
    assert!(mock.advertisements().is_empty(), "opening only checks the adapter");
    sink.write_advert(&[1; 20]).await.unwrap();
    sink.write_advert(&[1; 20]).await.unwrap(); // identical repeat: no-op
    sink.write_advert(&[2; 20]).await.unwrap(); // changed: PropertiesChanged
    timeout(STEP, mock.wait_for_adverts(|a| a.first().is_some_and(|a| a.updates == 1)))
        .await
        .unwrap();
    let ads = mock.advertisements();
    assert_eq!((ads.len(), ads[0].service_data.get(FFF9)), (1, Some(&vec![2u8; 20])));
    sink.finish().await.unwrap();
    assert!(mock.advertisements().is_empty());

    // The Advertiser: registered on its first tick, unregistered by the time stop() returns.
    let sink = AdvertSink::open(&spec).await.unwrap();
    let adv = Advertiser::start(sink, vec![3; 20], Duration::from_millis(20));
    timeout(STEP, mock.wait_for_adverts(|a| a.len() == 1)).await.unwrap();
    adv.stop().await;
    assert!(mock.advertisements().is_empty(), "stop() unregistered before returning");

    // Dropped without stop(): the handle's Drop unregisters in the background.
    let sink = AdvertSink::open(&spec).await.unwrap();
    let adv = Advertiser::start(sink, vec![4; 20], Duration::from_millis(20));
    timeout(STEP, mock.wait_for_adverts(|a| a.len() == 1)).await.unwrap();
    drop(adv);
    timeout(STEP, mock.wait_for_adverts(|a| a.is_empty())).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_with_bluez_sink_and_no_bluez_fails_with_exit_3_class_error() {
    use cablebridge_protocol::error::{Classify, Fault, Stage};
    use cablebridge_protocol::hybrid::qr::RequestHint;
    let _g = serial().await;
    common::bus(cablebridge_hw_tests::bus::BusPolicy::Open); // bus up, nobody owns org.bluez
    let server = TunnelServer::bind(TunnelServerConfig::default()).await.unwrap();
    let mut phone = bluez_phone(&server);
    let (_, qr) = QrPayload::generate(
        &mut rand::rngs::OsRng,
        1_700_000_000,
        RequestHint::MakeCredential,
        false,
    );
    let e = timeout(T, phone.run_qr(&qr)).await.unwrap().unwrap_err();
    assert_eq!((e.fault(), e.stage()), (Fault::Environment, Stage::Advert), "{e}");
    assert!(e.to_string().contains("advert sink bluez"), "{e}");
    assert!(e.to_string().contains("systemctl start bluetooth"), "remedy: {e}");
    let no_adapter = "bluez:hci7".parse::<AdvertSinkSpec>().unwrap();
    let _mock = mock_with(&[AdapterSpec::new("hci0")]).await;
    let err = cablebridged::phone::sink::AdvertSink::open(&no_adapter).await.unwrap_err();
    let ble = err.get_ref().and_then(|e| e.downcast_ref::<cablebridged::ble::BleError>());
    assert_eq!(ble, Some(&cablebridged::ble::BleError::NoAdapter { wanted: Some("hci7".into()) }));
}
