//! Sim tier: no system bus at all (`DBUS_SYSTEM_BUS_ADDRESS` names a socket that does not exist).
//! Its own binary: libdbus reads the address once per process.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cablebridged::ble::{self, AdvertiseOptions, BleError, ScanOptions};
use common::no_system_bus;
use std::time::Duration;
use tokio::time::timeout;

#[tokio::test]
async fn no_system_bus_is_diagnosed_by_scanner_and_advertiser() {
    let _dir = no_system_bus();
    let bound = Duration::from_secs(10);

    let e = match timeout(bound, ble::scan(ScanOptions::default())).await.unwrap() {
        Ok(_) => panic!("scan started without a bus"),
        Err(e) => e,
    };
    assert!(matches!(e, BleError::NoSystemBus { .. }), "{e:?}");
    assert!(e.to_string().contains("DBUS_SYSTEM_BUS_ADDRESS"), "{e}");

    let e = timeout(bound, ble::advertise(&[0u8; 20], AdvertiseOptions::default()))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(e, BleError::NoSystemBus { .. }), "{e:?}");
}
