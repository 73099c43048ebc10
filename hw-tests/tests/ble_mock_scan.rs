//! Sim tier: the real btleplug scanner (`cablebridged::ble::scan`) against the mock BlueZ on a
//! private bus. One bus per process; tests run one at a time (`common::serial`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cablebridge_hw_tests::mock_bluez::AdapterSpec;
use cablebridged::ble::{self, BleAddress, BleError, FidoUuid, ReceivedAdvert, ScanOptions};
use common::{mock_with, serial, STEP};
use std::time::{Duration, Instant};
use tokio::time::timeout;
use zbus::zvariant::Value;

const FFF9: &str = "0000fff9-0000-1000-8000-00805f9b34fb";
const FDE2: &str = "0000fde2-0000-1000-8000-00805f9b34fb";
const BATTERY: &str = "0000180f-0000-1000-8000-00805f9b34fb";

async fn next_advert(scan: &mut ble::BleScan) -> ReceivedAdvert {
    match timeout(STEP, scan.recv()).await {
        Ok(Some(Ok(a))) => a,
        other => panic!("expected an advert, got {other:?}"),
    }
}

async fn scan_error(result: Result<ble::BleScan, BleError>) -> BleError {
    match result {
        Ok(_) => panic!("scan started but should have failed"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn scanner_reads_first_advert_from_properties_then_properties_changed() {
    let _g = serial().await;
    let mut spec = AdapterSpec::new("hci0");
    spec.powered = false; // start_scan must power it on
    let mock = mock_with(&[spec]).await;
    let mut scan = timeout(STEP, ble::scan(ScanOptions::default())).await.unwrap().unwrap();
    assert_eq!(scan.adapters().len(), 1);
    assert!(!scan.adapters()[0].was_powered, "reported as powered off before the scan");
    assert_eq!(mock.adapter_state("hci0"), Some((true, true)), "powered and discovering");
    // Unfiltered: no UUID list (a UUID filter loses iOS adverts).
    let filters = mock.discovery_filters();
    let uuids = filters[0].get("UUIDs").map(|v| format!("{v:?}"));
    assert!(uuids.is_none() || uuids.as_deref().is_some_and(|u| !u.contains("fff9")), "{uuids:?}");

    // First advert of a new device: InterfacesAdded → DeviceDiscovered → properties().
    let phone = [0x4a, 1, 2, 3, 4, 5];
    let dev = mock.add_device("hci0", phone, Some(-60), &[(FFF9, &[1u8; 20])]).await.unwrap();
    let a = next_advert(&mut scan).await;
    assert_eq!((a.uuid, a.rssi, a.address), (FidoUuid::Fff9, Some(-60), BleAddress(phone)));
    assert_eq!((a.service_data, &*a.adapter), (vec![1u8; 20], "hci0"));

    // Later advert: PropertiesChanged → ServiceDataAdvertisement, RSSI from the same signal.
    mock.advertise_from(&dev, Some(-55), &[(FFF9, &[2u8; 20])]).await.unwrap();
    let a = next_advert(&mut scan).await;
    assert_eq!((a.service_data, a.rssi), (vec![2u8; 20], Some(-55)));

    // An exact repeat is dropped; foreign service data is ignored; legacy FDE2 is recognised.
    mock.advertise_from(&dev, None, &[(FFF9, &[2u8; 20])]).await.unwrap();
    mock.add_device("hci0", [0x11; 6], Some(-80), &[(BATTERY, &[0x64])]).await.unwrap();
    mock.add_device("hci0", [0x22; 6], Some(-70), &[(FDE2, &[3u8; 20])]).await.unwrap();
    let a = next_advert(&mut scan).await;
    assert_eq!(
        (a.uuid, a.service_data, a.address),
        (FidoUuid::Fde2, vec![3u8; 20], BleAddress([0x22; 6]))
    );
    let stats = scan.stats();
    assert_eq!(stats.duplicates_dropped, 1, "{stats:?}");
    assert!(stats.foreign_events >= 1, "{stats:?}");
    assert_eq!(stats.forwarded, 3, "{stats:?}");
}

#[tokio::test]
async fn no_org_bluez_is_bluez_not_running() {
    let _g = serial().await;
    common::bus(cablebridge_hw_tests::bus::BusPolicy::Open);
    let e = scan_error(timeout(STEP, ble::scan(ScanOptions::default())).await.unwrap()).await;
    assert_eq!(e, BleError::BluezNotRunning);
    assert!(e.to_string().contains("systemctl start bluetooth"));
}

#[tokio::test]
async fn no_adapter_and_unknown_adapter_are_no_adapter() {
    let _g = serial().await;
    let mock = mock_with(&[]).await;
    let e = scan_error(timeout(STEP, ble::scan(ScanOptions::default())).await.unwrap()).await;
    assert_eq!(e, BleError::NoAdapter { wanted: None });
    mock.add_adapter(AdapterSpec::new("hci0")).await.unwrap();
    let opts = ScanOptions { adapters: Some(vec!["hci7".into()]), ..ScanOptions::default() };
    let e = scan_error(timeout(STEP, ble::scan(opts)).await.unwrap()).await;
    assert_eq!(e, BleError::NoAdapter { wanted: Some("hci7".into()) });
}

#[tokio::test]
async fn rfkill_blocked_adapter_is_diagnosed_and_another_adapter_still_scans() {
    let _g = serial().await;
    let mut blocked = AdapterSpec::new("hci0");
    blocked.powered = false;
    blocked.rfkill_blocked = true;
    let mock = mock_with(&[blocked.clone()]).await;
    let e = scan_error(timeout(STEP, ble::scan(ScanOptions::default())).await.unwrap()).await;
    assert_eq!(e, BleError::RfkillBlocked { adapter: "hci0".into() });
    assert!(e.to_string().contains("rfkill unblock bluetooth"));

    mock.add_adapter(AdapterSpec::new("hci1")).await.unwrap();
    let scan = timeout(STEP, ble::scan(ScanOptions::default())).await.unwrap().unwrap();
    assert_eq!(scan.adapters().iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["hci1"]);
    assert_eq!(scan.skipped(), [BleError::RfkillBlocked { adapter: "hci0".into() }]);
}

/// Start a scan on hci0, break the environment with `breaker`, return the terminal error and how
/// long it took to arrive.
async fn break_mid_scan<F, Fut>(breaker: F) -> (BleError, Duration)
where
    F: FnOnce(cablebridge_hw_tests::mock_bluez::MockBluez) -> Fut,
    Fut: std::future::Future<Output = Option<cablebridge_hw_tests::mock_bluez::MockBluez>>,
{
    let mock = mock_with(&[AdapterSpec::new("hci0")]).await;
    let mut scan = timeout(STEP, ble::scan(ScanOptions::default())).await.unwrap().unwrap();
    let t0 = Instant::now();
    let _keep = breaker(mock).await;
    match timeout(STEP, scan.recv()).await {
        Ok(Some(Err(e))) => (e, t0.elapsed()),
        other => panic!("expected the scan to end with an error, got {other:?}"),
    }
}

#[tokio::test]
async fn bluez_vanishing_mid_scan_ends_the_scan_with_an_error() {
    let _g = serial().await;
    let (e, took) = break_mid_scan(|mock| async move {
        mock.vanish().await;
        None
    })
    .await;
    println!("bluez vanished -> error after {took:?}");
    assert_eq!(e, BleError::BluezVanished);
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[tokio::test]
async fn adapter_removed_mid_scan_ends_the_scan_with_an_error() {
    let _g = serial().await;
    let (e, took) = break_mid_scan(|mock| async move {
        mock.remove_adapter("hci0").await.unwrap();
        Some(mock)
    })
    .await;
    println!("adapter removed -> error after {took:?}");
    assert_eq!(e, BleError::AdapterRemoved { adapter: "hci0".into() });
}

#[tokio::test]
async fn adapter_powered_off_mid_scan_ends_the_scan_with_an_error() {
    let _g = serial().await;
    let (e, _) = break_mid_scan(|mock| async move {
        mock.set_powered("hci0", false).await.unwrap();
        Some(mock)
    })
    .await;
    assert_eq!(e, BleError::AdapterPoweredOff { adapter: "hci0".into() });
}

/// Thousands of foreign adverts per second for about a second, with one matching advert in the
/// middle sent exactly once: the matcher (trial-open against a real EID key) must see it.
#[tokio::test]
async fn advert_flood_does_not_starve_the_matching_advert() {
    use cablebridge_protocol::hybrid::eid::{EidKey, EidMode, EidPlaintext, TrialOpen};
    use cablebridge_protocol::hybrid::keys::EidKeyBytes;
    use cablebridge_protocol::hybrid::tunnel::RoutingId;

    let _g = serial().await;
    let mock = mock_with(&[AdapterSpec::new("hci0")]).await;
    let mut scan = timeout(STEP, ble::scan(ScanOptions::default())).await.unwrap().unwrap();
    let key = EidKey::from_bytes(&EidKeyBytes::new([7u8; 64]));
    let sealed = key.seal(&EidPlaintext::new([9; 10], RoutingId([1, 2, 3]), 0));

    const FOREIGN: usize = 32;
    const RATE: u64 = 4000; // adverts per second
    const DURATION_MS: u64 = 1000;
    let mut devices = vec![];
    for i in 0..FOREIGN {
        let d = mock.add_device("hci0", [0xf0, 0, 0, 0, 0, i as u8], Some(-90), &[]).await.unwrap();
        devices.push(d);
    }
    let phone = mock.add_device("hci0", [0x4a; 6], Some(-50), &[]).await.unwrap();

    let mut stream = scan.take_stream().unwrap();
    let consumer = tokio::spawn(async move {
        let (mut processed, mut matched_at) = (0u64, None);
        let deadline = Instant::now() + STEP;
        while Instant::now() < deadline {
            match timeout(Duration::from_millis(1500), stream.recv()).await {
                Ok(Some(Ok(a))) => {
                    processed += 1;
                    if let TrialOpen::Match(_) = key.trial_open(&a.service_data, EidMode::Qr) {
                        matched_at = Some((Instant::now(), a.received_at));
                        break;
                    }
                }
                _ => break,
            }
        }
        (processed, matched_at, stream.stats())
    });

    let t0 = Instant::now();
    let (mut sent, mut sent_match_at) = (0u64, None);
    let mut counter = 0u64;
    while t0.elapsed() < Duration::from_millis(DURATION_MS) {
        // Pace in 5 ms batches.
        let due = RATE * t0.elapsed().as_millis() as u64 / 1000;
        while sent < due {
            counter += 1;
            let mut data = [0u8; 20];
            data[..8].copy_from_slice(&counter.to_le_bytes());
            data[19] = 0xaa;
            let dev = &devices[(counter as usize) % FOREIGN];
            mock.advertise_from(dev, None, &[(FFF9, &data)]).await.unwrap();
            sent += 1;
        }
        if sent_match_at.is_none() && t0.elapsed() >= Duration::from_millis(DURATION_MS / 2) {
            mock.advertise_from(&phone, Some(-50), &[(FFF9, &sealed)]).await.unwrap();
            sent_match_at = Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let send_secs = t0.elapsed().as_secs_f64();
    let (processed, matched, stats) = consumer.await.unwrap();
    let total = t0.elapsed().as_secs_f64();
    let sent_match_at = sent_match_at.unwrap();
    let (seen_at, received_at) = matched.expect("the matching advert was starved by the flood");
    println!(
        "flood: sent {sent} foreign adverts in {send_secs:.2}s ({:.0}/s); matcher processed \
         {processed} ({:.0}/s); queue {stats:?}; matching advert latency: {:?} to the scanner, \
         {:?} to the matcher",
        sent as f64 / send_secs,
        processed as f64 / total,
        received_at.duration_since(sent_match_at),
        seen_at.duration_since(sent_match_at),
    );
    assert!(sent as f64 / send_secs > 1000.0, "the flood was not a flood");
    assert!(seen_at.duration_since(sent_match_at) < Duration::from_secs(5));
}

/// The phone rotates its random address: every new address is a new `Device1` whose first
/// advert is only in `InterfacesAdded`; later adverts of that address are `PropertiesChanged`.
/// Each advert is delivered with the address and RSSI of its own device, and the same data from
/// two addresses is two adverts (de-duplication is per address).
#[tokio::test]
async fn address_rotation_each_new_address_is_heard() {
    let _g = serial().await;
    let mock = mock_with(&[AdapterSpec::new("hci0")]).await;
    let mut scan = timeout(STEP, ble::scan(ScanOptions::default())).await.unwrap().unwrap();
    let mut devices = vec![];
    for i in 0..5u8 {
        let address = [0x40 | i, 0x10, 0x20, 0x30, 0x40, i];
        let rssi = -40 - i16::from(i);
        let dev = mock.add_device("hci0", address, Some(rssi), &[(FFF9, &[i; 20])]).await.unwrap();
        let a = next_advert(&mut scan).await;
        assert_eq!(
            (a.address, a.rssi, a.service_data),
            (BleAddress(address), Some(rssi), vec![i; 20])
        );
        devices.push((dev, address));
    }
    // Same payload from a new address: not a duplicate.
    mock.add_device("hci0", [0x7f; 6], None, &[(FFF9, &[4u8; 20])]).await.unwrap();
    let a = next_advert(&mut scan).await;
    assert_eq!((a.address, a.rssi), (BleAddress([0x7f; 6]), None));
    // An earlier address advertises again: its own RSSI is remembered.
    let (dev, address) = &devices[1];
    mock.advertise_from(dev, None, &[(FFF9, &[0xee; 20])]).await.unwrap();
    let a = next_advert(&mut scan).await;
    assert_eq!(
        (a.address, a.rssi, a.service_data),
        (BleAddress(*address), Some(-41), vec![0xee; 20])
    );
    let stats = scan.stats();
    assert_eq!(
        (stats.forwarded, stats.duplicates_dropped, stats.malformed),
        (7, 0, 0),
        "{stats:?}"
    );
}

/// A device whose first advert has no service data (`InterfacesAdded` without it) and whose
/// caBLE data arrives later in `PropertiesChanged`; an RSSI-only change is not an advert but
/// is used for the next one; a device announced with its data in `InterfacesAdded` is heard
/// at once.
#[tokio::test]
async fn service_data_in_interfaces_added_or_in_properties_changed() {
    let _g = serial().await;
    let mock = mock_with(&[AdapterSpec::new("hci0")]).await;
    let mut scan = timeout(STEP, ble::scan(ScanOptions::default())).await.unwrap().unwrap();
    let late = mock.add_device("hci0", [0x51; 6], Some(-70), &[]).await.unwrap();
    mock.emit_device_properties(&late, vec![("RSSI", Value::from(-33i16))]).await.unwrap();
    mock.advertise_from(&late, None, &[(FFF9, &[5u8; 20])]).await.unwrap();
    let a = next_advert(&mut scan).await;
    assert_eq!(
        (a.address, a.rssi, a.service_data),
        (BleAddress([0x51; 6]), Some(-33), vec![5; 20])
    );

    mock.add_device("hci0", [0x52; 6], Some(-60), &[(FDE2, &[6u8; 20])]).await.unwrap();
    let a = next_advert(&mut scan).await;
    assert_eq!((a.address, a.uuid, a.rssi), (BleAddress([0x52; 6]), FidoUuid::Fde2, Some(-60)));
    let stats = scan.stats();
    assert_eq!(stats.forwarded, 2, "{stats:?}");
    assert_eq!(stats.foreign_events, 1, "the data-less InterfacesAdded: {stats:?}");
}

/// ServiceData and RSSI of unexpected D-Bus types are skipped and counted; the scan keeps going
/// and the next well-formed advert is delivered.
#[tokio::test]
async fn malformed_service_data_types_are_ignored_and_counted() {
    let _g = serial().await;
    let mock = mock_with(&[AdapterSpec::new("hci0")]).await;
    let mut scan = timeout(STEP, ble::scan(ScanOptions::default())).await.unwrap().unwrap();
    let dev = mock.add_device("hci0", [0x61; 6], None, &[]).await.unwrap();
    let as_map =
        |v: Value<'static>| Value::from(std::collections::HashMap::from([(FFF9.to_owned(), v)]));
    let bad: Vec<Vec<(&str, Value<'_>)>> = vec![
        // ServiceData not a dictionary.
        vec![("ServiceData", Value::from(vec![1u8; 20]))],
        // An entry that is a string, one that is an array of u32.
        vec![("ServiceData", as_map(Value::from("0123456789")))],
        vec![("ServiceData", as_map(Value::from(vec![1u32; 20])))],
        // RSSI as a string (with no service data).
        vec![("RSSI", Value::from("-40"))],
        // A dictionary keyed by integers.
        vec![(
            "ServiceData",
            Value::from(std::collections::HashMap::from([(1u16, Value::from(vec![1u8]))])),
        )],
    ];
    for props in bad {
        mock.emit_device_properties(&dev, props).await.unwrap();
    }
    mock.advertise_from(&dev, Some(-45), &[(FFF9, &[9u8; 20])]).await.unwrap();
    let a = next_advert(&mut scan).await;
    assert_eq!((a.service_data, a.rssi), (vec![9u8; 20], Some(-45)));
    let stats = scan.stats();
    assert_eq!(stats.malformed, 5, "{stats:?}");
    assert_eq!((stats.forwarded, stats.fido_adverts), (1, 1), "{stats:?}");
}

/// Two adapters; one is unplugged mid-scan: the scan goes on with the other, then ends with
/// `AdapterRemoved` when the second goes too. Nothing from the removed adapter is delivered
/// after its removal.
#[tokio::test]
async fn adapter_removed_mid_scan_the_other_adapter_keeps_scanning() {
    let _g = serial().await;
    let mock = mock_with(&[AdapterSpec::new("hci0"), AdapterSpec::new("hci1")]).await;
    let mut scan = timeout(STEP, ble::scan(ScanOptions::default())).await.unwrap().unwrap();
    assert_eq!(scan.adapters().len(), 2);
    let d0 = mock.add_device("hci0", [0x70; 6], None, &[(FFF9, &[1u8; 20])]).await.unwrap();
    assert_eq!(&*next_advert(&mut scan).await.adapter, "hci0");
    mock.remove_adapter("hci0").await.unwrap();
    // A late advert signal for a device of the removed adapter: not delivered (the reader sees
    // the removal first, on the same connection).
    let late = std::collections::HashMap::from([(FFF9.to_owned(), Value::from(vec![0xddu8; 20]))]);
    mock.emit_device_properties(&d0, vec![("ServiceData", Value::from(late))]).await.unwrap();
    mock.add_device("hci1", [0x71; 6], None, &[(FFF9, &[2u8; 20])]).await.unwrap();
    let a = next_advert(&mut scan).await;
    assert_eq!((&*a.adapter, a.service_data), ("hci1", vec![2u8; 20]));
    mock.remove_adapter("hci1").await.unwrap();
    match timeout(STEP, scan.recv()).await {
        Ok(Some(Err(e))) => assert_eq!(e, BleError::AdapterRemoved { adapter: "hci1".into() }),
        other => panic!("expected the scan to end, got {other:?}"),
    }
}
