//! Sim tier: `doctor` with no system bus at all (`DBUS_SYSTEM_BUS_ADDRESS` names a socket that does
//! not exist). Its own binary: libdbus reads the address once per process.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cablebridged::doctor::{bluetooth, DoctorOptions, Status};
use std::time::Duration;
use tokio::time::timeout;

#[tokio::test]
async fn no_system_bus_fails_bus_and_skips_what_needs_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-bus");
    std::env::set_var("DBUS_SYSTEM_BUS_ADDRESS", format!("unix:path={}", missing.display()));
    let opts = DoctorOptions {
        scan_window: Duration::from_secs(1),
        sys_root: dir.path().to_path_buf(),
        bluez_main_conf: dir.path().join("main.conf"),
        ..DoctorOptions::default()
    };
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
