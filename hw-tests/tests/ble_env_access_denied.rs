//! Sim tier: a bus whose policy refuses method calls to org.bluez (a user outside the
//! `bluetooth` group on a locked-down system bus). Its own binary: its own bus.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cablebridged::ble::{self, AdvertiseOptions, BleError, ScanOptions};
use common::denying_bus_with_hci0;
use std::time::Duration;
use tokio::time::timeout;

#[tokio::test]
async fn bus_policy_denial_is_access_denied_for_scanner_and_advertiser() {
    let (_bus, _mock) = denying_bus_with_hci0().await;
    let bound = Duration::from_secs(10);

    let e = match timeout(bound, ble::scan(ScanOptions::default())).await.unwrap() {
        Ok(_) => panic!("scan started despite the policy"),
        Err(e) => e,
    };
    assert!(matches!(e, BleError::AccessDenied { .. }), "{e:?}");
    assert!(e.to_string().contains("'bluetooth' group"), "{e}");

    let e = timeout(bound, ble::advertise(&[0u8; 20], AdvertiseOptions::default()))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(e, BleError::AccessDenied { .. }), "{e:?}");
}
