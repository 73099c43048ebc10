//! Sim tier: `doctor` with no system bus at all (`DBUS_SYSTEM_BUS_ADDRESS` names a socket that does
//! not exist). Its own binary: libdbus reads the address once per process.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cablebridged::doctor::{bluetooth, Status};
use common::{no_system_bus, offline_doctor_options};
use std::time::Duration;
use tokio::time::timeout;

#[tokio::test]
async fn no_system_bus_fails_bus_and_skips_what_needs_it() {
    let dir = no_system_bus();
    let opts = offline_doctor_options(dir.path(), Duration::from_secs(1));
    let checks = timeout(Duration::from_secs(20), bluetooth::run(&opts)).await.unwrap();
    let bus = checks.iter().find(|c| c.id == "bluetooth.bus").unwrap();
    assert_eq!(bus.status, Status::Fail, "{bus:?}");
    assert!(bus.detail.contains("no D-Bus system bus"), "{bus:?}");
    assert!(bus.remedy.as_deref().unwrap().contains("DBUS_SYSTEM_BUS_ADDRESS"), "{bus:?}");
    for c in &checks {
        match c.id.as_str() {
            "bluetooth.bus" => {}
            // Read from sysfs and main.conf, not from the bus.
            "bluetooth.rfkill" | "bluetooth.policy" => assert_eq!(c.status, Status::Pass, "{c:?}"),
            _ => {
                assert_eq!(c.status, Status::Skip, "{c:?}");
                assert!(c.detail.contains("no D-Bus system bus"), "{c:?}");
            }
        }
    }
    assert_eq!(checks.len(), 9);
}
