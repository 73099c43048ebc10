//! Per-process setup shared by the mock-BlueZ test binaries.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cablebridge_hw_tests::bus::{BusPolicy, PrivateBus};
use cablebridge_hw_tests::mock_bluez::{AdapterSpec, MockBluez};
use std::sync::OnceLock;
use std::time::Duration;

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
