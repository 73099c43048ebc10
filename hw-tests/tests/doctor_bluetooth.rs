//! Sim tier: `doctor`'s Bluetooth section against the mock BlueZ on a private bus, one test per
//! failure shape (BlueZ absent, no adapter, powered off, rfkill-blocked, adverts seen / others
//! only / nothing heard). The real scanner and advertiser run. One bus per process; tests run one
//! at a time (`common::serial`). No-bus and access-denied have their own binaries.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cablebridge_hw_tests::mock_bluez::{AdapterSpec, MockBluez};
use cablebridged::doctor::{bluetooth, Check, DoctorOptions, Status};
use common::{mock_with, offline_doctor_options, serial, STEP};
use std::time::Duration;
use tokio::time::timeout;

const FFF9: &str = "0000fff9-0000-1000-8000-00805f9b34fb";
const BATTERY: &str = "0000180f-0000-1000-8000-00805f9b34fb";

/// Options that read nothing of the host: an empty sysfs and no main.conf.
fn opts(dir: &tempfile::TempDir, scan_secs: u64) -> DoctorOptions {
    DoctorOptions {
        step_timeout: Duration::from_secs(5),
        ..offline_doctor_options(dir.path(), Duration::from_secs(scan_secs))
    }
}

fn get<'a>(checks: &'a [Check], id: &str) -> &'a Check {
    checks.iter().find(|c| c.id == id).unwrap_or_else(|| panic!("no check {id} in {checks:#?}"))
}

fn status_of(checks: &[Check], id: &str) -> Status {
    get(checks, id).status
}

async fn run(o: &DoctorOptions) -> Vec<Check> {
    let checks = timeout(STEP + o.scan_window, bluetooth::run(o)).await.expect("doctor bounded");
    let ids: Vec<&str> = checks.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "bluetooth.bus",
            "bluetooth.bluez",
            "bluetooth.adapter",
            "bluetooth.powered",
            "bluetooth.rfkill",
            "bluetooth.permission",
            "bluetooth.scan",
            "bluetooth.advertising",
            "bluetooth.policy"
        ],
        "every id, in order, whatever the shape"
    );
    for c in &checks {
        if matches!(c.status, Status::Fail | Status::Warn) {
            assert!(c.remedy.as_deref().is_some_and(|r| !r.is_empty()), "no remedy: {c:?}");
        }
    }
    checks
}

/// Waits until hci0 is discovering (the doctor's scan has started), bounded.
async fn wait_discovering(mock: &MockBluez) {
    for _ in 0..200 {
        if mock.adapter_state("hci0").is_some_and(|(_, d)| d) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the doctor never started discovery");
}

#[tokio::test]
async fn bluez_absent_fails_bluez_and_skips_the_rest() {
    let _g = serial().await;
    common::bus(cablebridge_hw_tests::bus::BusPolicy::Open);
    let dir = tempfile::tempdir().unwrap();
    let checks = run(&opts(&dir, 1)).await;
    assert_eq!(status_of(&checks, "bluetooth.bus"), Status::Pass);
    let bluez = get(&checks, "bluetooth.bluez");
    assert_eq!(bluez.status, Status::Fail, "{bluez:?}");
    assert!(bluez.detail.contains("bluetoothd is not running"), "{bluez:?}");
    // Not activatable on the private bus: the remedy says to install it.
    assert!(bluez.remedy.as_deref().unwrap().contains("install BlueZ"), "{bluez:?}");
    for id in
        ["bluetooth.adapter", "bluetooth.scan", "bluetooth.advertising", "bluetooth.permission"]
    {
        let c = get(&checks, id);
        assert_eq!(c.status, Status::Skip, "{c:?}");
        assert!(c.detail.contains("BlueZ is not running"), "{c:?}");
    }
}

#[tokio::test]
async fn no_adapter_fails_adapter() {
    let _g = serial().await;
    let _mock = mock_with(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let checks = run(&opts(&dir, 1)).await;
    assert_eq!(status_of(&checks, "bluetooth.bluez"), Status::Pass);
    let a = get(&checks, "bluetooth.adapter");
    assert_eq!(a.status, Status::Fail);
    assert!(a.detail.contains("no Bluetooth adapter"), "{a:?}");
    assert_eq!(status_of(&checks, "bluetooth.scan"), Status::Skip);
    assert_eq!(status_of(&checks, "bluetooth.powered"), Status::Skip);
}

#[tokio::test]
async fn every_adapter_is_listed_and_fido_adverts_are_counted() {
    let _g = serial().await;
    let mut second = AdapterSpec::new("hci1");
    second.can_advertise = false;
    let mock = mock_with(&[AdapterSpec::new("hci0"), second]).await;
    let dir = tempfile::tempdir().unwrap();
    let o = opts(&dir, 2);
    let doctor = tokio::spawn(async move { run(&o).await });
    wait_discovering(&mock).await;
    mock.add_device("hci0", [0x4a, 1, 2, 3, 4, 5], Some(-60), &[(FFF9, &[1u8; 20])]).await.unwrap();
    mock.add_device("hci0", [0x11; 6], Some(-80), &[(BATTERY, &[0x64])]).await.unwrap();
    let checks = doctor.await.unwrap();

    let a = get(&checks, "bluetooth.adapter");
    assert_eq!(a.status, Status::Pass);
    assert!(
        a.detail.contains("2 adapter(s)") && a.detail.contains("hci0") && a.detail.contains("hci1"),
        "{a:?}"
    );
    assert_eq!(status_of(&checks, "bluetooth.powered"), Status::Pass);
    let scan = get(&checks, "bluetooth.scan");
    assert_eq!(scan.status, Status::Pass, "{scan:?}");
    assert!(scan.detail.contains("2 advert(s)"), "{scan:?}");
    assert!(scan.detail.contains("1 FIDO") && scan.detail.contains("from 1 sender"), "{scan:?}");
    assert!(scan.detail.contains("a phone is advertising nearby"), "{scan:?}");
    let perm = get(&checks, "bluetooth.permission");
    assert_eq!(perm.status, Status::Pass, "{perm:?}");
    assert!(perm.detail.contains("start discovery and register an advertisement"), "{perm:?}");
    let adv = get(&checks, "bluetooth.advertising");
    assert_eq!(adv.status, Status::Pass, "{adv:?}");
    assert!(adv.detail.contains("hci0: 0 active, 5 free"), "{adv:?}");
    assert!(!adv.detail.contains("hci1:"), "hci1 cannot advertise: {adv:?}");
    // The probe advertisement was unregistered again.
    assert!(mock.advertisements().is_empty());
    assert_eq!(status_of(&checks, "bluetooth.rfkill"), Status::Pass);
    assert_eq!(status_of(&checks, "bluetooth.policy"), Status::Pass);
}

#[tokio::test]
async fn other_devices_only_means_radio_works_but_no_phone() {
    let _g = serial().await;
    let mock = mock_with(&[AdapterSpec::new("hci0")]).await;
    let dir = tempfile::tempdir().unwrap();
    let o = opts(&dir, 2);
    let doctor = tokio::spawn(async move { run(&o).await });
    wait_discovering(&mock).await;
    mock.add_device("hci0", [0x11; 6], Some(-80), &[(BATTERY, &[0x64])]).await.unwrap();
    let checks = doctor.await.unwrap();
    let scan = get(&checks, "bluetooth.scan");
    assert_eq!(scan.status, Status::Pass, "{scan:?}");
    assert!(scan.detail.contains("0 FIDO"), "{scan:?}");
    assert!(scan.detail.contains("no phone is offering hybrid"), "{scan:?}");
}

#[tokio::test]
async fn nothing_heard_is_a_warning_about_a_deaf_radio() {
    let _g = serial().await;
    let _mock = mock_with(&[AdapterSpec::new("hci0")]).await;
    let dir = tempfile::tempdir().unwrap();
    let checks = run(&opts(&dir, 1)).await;
    let scan = get(&checks, "bluetooth.scan");
    assert_eq!(scan.status, Status::Warn, "{scan:?}");
    assert!(
        scan.detail.contains("0 advert(s)") && scan.detail.contains("heard nothing at all"),
        "{scan:?}"
    );
    assert!(scan.remedy.as_deref().unwrap().contains("bluetoothctl scan on"));
}

#[tokio::test]
async fn powered_off_adapter_is_a_warning_and_still_scans() {
    let _g = serial().await;
    let mut spec = AdapterSpec::new("hci0");
    spec.powered = false;
    let mock = mock_with(&[spec]).await;
    let dir = tempfile::tempdir().unwrap();
    let checks = run(&opts(&dir, 1)).await;
    let p = get(&checks, "bluetooth.powered");
    assert_eq!(p.status, Status::Warn, "{p:?}");
    assert!(p.detail.contains("hci0 off"), "{p:?}");
    assert!(p.remedy.as_deref().unwrap().contains("AutoEnable=true"), "{p:?}");
    // start_scan powered it on, as a ceremony would.
    assert_eq!(mock.adapter_state("hci0").map(|s| s.0), Some(true));
    assert_ne!(status_of(&checks, "bluetooth.scan"), Status::Fail);
}

#[tokio::test]
async fn rfkill_blocked_adapter_fails_rfkill_and_scan() {
    let _g = serial().await;
    let mut spec = AdapterSpec::new("hci0");
    spec.powered = false;
    spec.rfkill_blocked = true;
    let _mock = mock_with(&[spec]).await;
    let dir = tempfile::tempdir().unwrap();
    let checks = run(&opts(&dir, 1)).await;
    let r = get(&checks, "bluetooth.rfkill");
    assert_eq!(r.status, Status::Fail, "{r:?}");
    assert!(r.detail.contains("org.bluez.Error.Blocked for hci0"), "{r:?}");
    assert!(r.remedy.as_deref().unwrap().contains("rfkill unblock bluetooth"));
    let scan = get(&checks, "bluetooth.scan");
    assert_eq!(scan.status, Status::Fail, "{scan:?}");
    assert!(scan.detail.contains("radio blocked"), "{scan:?}");
    // The bus let us ask: the block is the radio's, not a permission problem.
    assert_eq!(status_of(&checks, "bluetooth.permission"), Status::Pass);
}

#[tokio::test]
async fn rfkill_from_sysfs_and_policy_from_main_conf() {
    let _g = serial().await;
    let _mock = mock_with(&[AdapterSpec::new("hci0")]).await;
    let dir = tempfile::tempdir().unwrap();
    let sw = dir.path().join("class/rfkill/rfkill3");
    std::fs::create_dir_all(&sw).unwrap();
    for (a, v) in [("type", "bluetooth"), ("name", "hci0"), ("soft", "1"), ("hard", "0")] {
        std::fs::write(sw.join(a), format!("{v}\n")).unwrap();
    }
    std::fs::write(dir.path().join("main.conf"), "[General]\nControllerMode = bredr\n").unwrap();
    let checks = run(&opts(&dir, 0)).await;
    let r = get(&checks, "bluetooth.rfkill");
    assert!(r.detail.contains("soft-blocked: rfkill3 (hci0)"), "{r:?}");
    assert_ne!(r.status, Status::Pass);
    let p = get(&checks, "bluetooth.policy");
    assert_eq!(p.status, Status::Fail, "{p:?}");
    assert!(p.remedy.as_deref().unwrap().contains("ControllerMode = dual"), "{p:?}");
    assert_eq!(status_of(&checks, "bluetooth.scan"), Status::Skip, "--scan-seconds 0");
}
