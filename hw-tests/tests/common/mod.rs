//! Shared by the hw-tests binaries: per-process setup of the mock-BlueZ tier (the private bus,
//! one test at a time, a mock with adapters), the sim tier's own buses (a denying bus, no bus),
//! `doctor` options that read nothing of the host, and the real-device tier's evidence records.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cablebridge_hw_tests::bus::{BusPolicy, PrivateBus};
use cablebridge_hw_tests::mock_bluez::{AdapterSpec, MockBluez};
use cablebridged::doctor::DoctorOptions;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Bound for every single wait in these tests.
pub const STEP: Duration = Duration::from_secs(10);

static BUS: OnceLock<PrivateBus> = OnceLock::new();
static SERIAL: OnceLock<tokio::sync::Mutex<()>> = OnceLock::new();

/// The process's private bus, installed as the system bus before any connection (libdbus reads
/// `DBUS_SYSTEM_BUS_ADDRESS` once per process).
pub fn bus(policy: BusPolicy) -> &'static PrivateBus {
    BUS.get_or_init(|| {
        let bus = PrivateBus::start(policy).expect("start dbus-daemon");
        bus.install_as_system_bus();
        bus
    })
}

/// Tests in one binary share the bus and the name `org.bluez`: run them one at a time.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.get_or_init(|| tokio::sync::Mutex::new(())).lock().await
}

/// A mock with the given adapters on the open private bus.
pub async fn mock_with(adapters: &[AdapterSpec]) -> MockBluez {
    let mock = MockBluez::start(bus(BusPolicy::Open).address()).await.expect("mock org.bluez");
    for a in adapters {
        mock.add_adapter(a.clone()).await.expect("add adapter");
    }
    mock
}

/// This binary's own bus whose policy refuses method calls to org.bluez (a user outside the
/// `bluetooth` group on a locked-down system bus), installed as the system bus, with a mock
/// BlueZ holding adapter hci0 on it.
pub async fn denying_bus_with_hci0() -> (PrivateBus, MockBluez) {
    let bus = PrivateBus::start(BusPolicy::DenyCallsToBluez).unwrap();
    bus.install_as_system_bus();
    let mock = MockBluez::start(bus.address()).await.unwrap();
    mock.add_adapter(AdapterSpec::new("hci0")).await.unwrap();
    (bus, mock)
}

/// No system bus at all: `DBUS_SYSTEM_BUS_ADDRESS` names a socket that does not exist (in the
/// returned temp dir). libdbus reads the address once per process: a binary of its own.
pub fn no_system_bus() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-bus");
    std::env::set_var("DBUS_SYSTEM_BUS_ADDRESS", format!("unix:path={}", missing.display()));
    dir
}

/// `doctor` options that read nothing of the host (an empty sysfs and no main.conf in `dir`),
/// scanning for `scan_window`.
pub fn offline_doctor_options(dir: &Path, scan_window: Duration) -> DoctorOptions {
    DoctorOptions {
        scan_window,
        sys_root: dir.to_path_buf(),
        bluez_main_conf: dir.join("main.conf"),
        ..DoctorOptions::default()
    }
}

/// Writes one evidence record to `$CABLEBRIDGE_EVIDENCE_DIR` (default `target/evidence/`) and
/// returns its path.
pub fn write_evidence(name: &str, record: serde_json::Value) -> PathBuf {
    let dir =
        std::env::var_os("CABLEBRIDGE_EVIDENCE_DIR").map(PathBuf::from).unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/evidence"))
        });
    std::fs::create_dir_all(&dir).unwrap();
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let path = dir.join(format!("{name}-{secs}.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(&record).unwrap()).unwrap();
    eprintln!("evidence written to {}", path.display());
    path
}
