//! Sim tier: the zbus advertiser (`cablebridged::ble::advertise`) against the mock BlueZ, and the
//! phone → desktop path through the mock (our advertisement looped back to the btleplug scanner).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cablebridge_hw_tests::mock_bluez::{AdapterSpec, RegisteredAdvert};
use cablebridged::ble::{self, AdvertiseOptions, BleError, FidoUuid, ScanOptions};
use common::{mock_with, serial, STEP};
use tokio::time::timeout;

const FFF9: &str = "0000fff9-0000-1000-8000-00805f9b34fb";

fn data_of(a: &RegisteredAdvert) -> Option<&Vec<u8>> {
    a.service_data.get(FFF9)
}

#[tokio::test]
async fn advertiser_registers_updates_and_unregisters_on_stop_and_on_drop() {
    let _g = serial().await;
    let mut off = AdapterSpec::new("hci0");
    off.powered = false; // the advertiser powers it on
    let mock = mock_with(&[off]).await;

    let mut handle = timeout(STEP, ble::advertise(&[1u8; 20], AdvertiseOptions::default()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(handle.adapter(), "hci0");
    assert_eq!(mock.adapter_state("hci0").map(|s| s.0), Some(true), "powered on");
    let ads = mock.advertisements();
    assert_eq!(ads.len(), 1);
    assert_eq!(ads[0].kind, "broadcast", "non-connectable");
    assert_eq!(ads[0].service_uuids, [FFF9]);
    assert_eq!(data_of(&ads[0]), Some(&vec![1u8; 20]));

    // Refresh through PropertiesChanged; the mock re-reads it like BlueZ >= 5.50.
    handle.update(&[2u8; 20]).await.unwrap();
    timeout(STEP, mock.wait_for_adverts(|a| a.first().is_some_and(|a| a.updates == 1)))
        .await
        .unwrap();
    assert_eq!(data_of(&mock.advertisements()[0]), Some(&vec![2u8; 20]));
    assert_eq!(
        handle.update(&[0u8; 3]).await.unwrap_err(),
        BleError::InvalidServiceData { len: 3 }
    );

    handle.stop().await.unwrap();
    assert!(mock.advertisements().is_empty(), "stop unregisters");

    // Re-register-on-update mode, then drop without stop: Drop unregisters in the background.
    let opts = AdvertiseOptions { reregister_on_update: true, ..AdvertiseOptions::default() };
    let mut handle = ble::advertise(&[3u8; 20], opts).await.unwrap();
    handle.update(&[4u8; 20]).await.unwrap();
    let ads = mock.advertisements();
    assert_eq!((ads.len(), data_of(&ads[0])), (1, Some(&vec![4u8; 20])));
    drop(handle);
    timeout(STEP, mock.wait_for_adverts(|a| a.is_empty())).await.unwrap();
}

#[tokio::test]
async fn advertiser_environment_failures_are_typed() {
    let _g = serial().await;
    common::bus(cablebridge_hw_tests::bus::BusPolicy::Open);
    let e = ble::advertise(&[0u8; 20], AdvertiseOptions::default()).await.unwrap_err();
    assert_eq!(e, BleError::BluezNotRunning);

    let mut no_le = AdapterSpec::new("hci0");
    no_le.can_advertise = false;
    let mut blocked = AdapterSpec::new("hci1");
    blocked.powered = false;
    blocked.rfkill_blocked = true;
    let _mock = mock_with(&[no_le, blocked]).await;
    let only =
        |a: &str| AdvertiseOptions { adapter: Some(a.into()), ..AdvertiseOptions::default() };
    assert_eq!(
        ble::advertise(&[0u8; 20], only("hci0")).await.unwrap_err(),
        BleError::AdvertisingUnsupported { adapter: "hci0".into() }
    );
    assert_eq!(
        ble::advertise(&[0u8; 20], only("hci1")).await.unwrap_err(),
        BleError::RfkillBlocked { adapter: "hci1".into() }
    );
    assert_eq!(
        ble::advertise(&[0u8; 20], only("hci9")).await.unwrap_err(),
        BleError::NoAdapter { wanted: Some("hci9".into()) }
    );
    assert_eq!(
        ble::advertise(&[0u8; 19], AdvertiseOptions::default()).await.unwrap_err(),
        BleError::InvalidServiceData { len: 19 }
    );
}

#[tokio::test]
async fn bluez_rejections_are_advertisement_rejected() {
    let _g = serial().await;
    let _mock = mock_with(&[AdapterSpec::new("hci0")]).await;
    let mut handles = vec![];
    for i in 0..5u8 {
        handles.push(ble::advertise(&[i; 20], AdvertiseOptions::default()).await.unwrap());
    }
    match ble::advertise(&[9u8; 20], AdvertiseOptions::default()).await {
        Err(BleError::AdvertisementRejected { name, message }) => {
            assert_eq!(name, "org.bluez.Error.NotPermitted");
            assert!(message.contains("Maximum advertisements"), "{message}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    for h in handles {
        h.stop().await.unwrap();
    }
}

/// Phone role advertises, desktop role scans, both through the mock (loop-back on hci0): the
/// scanner hears the first advert (new device) and the refreshed one (PropertiesChanged).
#[tokio::test]
async fn phone_advertisement_reaches_the_desktop_scanner_through_the_mock() {
    let _g = serial().await;
    let mock = mock_with(&[AdapterSpec::new("hci0")]).await;
    mock.set_loopback(Some("hci0"));
    let mut scan = timeout(STEP, ble::scan(ScanOptions::default())).await.unwrap().unwrap();
    let mut phone = ble::advertise(&[5u8; 20], AdvertiseOptions::default()).await.unwrap();
    let a = timeout(STEP, scan.recv()).await.unwrap().unwrap().unwrap();
    assert_eq!((a.uuid, a.service_data), (FidoUuid::Fff9, vec![5u8; 20]));
    phone.update(&[6u8; 20]).await.unwrap();
    let a = timeout(STEP, scan.recv()).await.unwrap().unwrap().unwrap();
    assert_eq!(a.service_data, vec![6u8; 20]);
    phone.stop().await.unwrap();
}
