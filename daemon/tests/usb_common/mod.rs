//! Shared helpers for the usb_* tests: a virtual key on loopback and a client to it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use cablebridge_protocol::ctap2::pin::Pin;
use cablebridged::ctap::{open_client, Call, Ctap2Client, DeviceProgress, OpenOptions};
use cablebridged::hid::{DeviceAddress, HidDevice};
use cablebridged::virtual_key::{InitialPin, VirtualKey, VirtualKeyConfig, VirtualKeyHandle};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub async fn key(delay_ms: u64, pin: Option<&str>) -> VirtualKeyHandle {
    let mut config = VirtualKeyConfig::new("127.0.0.1:0".parse().unwrap());
    config.presence_delay = Duration::from_millis(delay_ms);
    config.initial_pin = pin.map(|p| InitialPin::new(p).unwrap());
    VirtualKey::bind(config).await.unwrap()
}

pub fn address(key: &VirtualKeyHandle) -> DeviceAddress {
    key.device_address().parse().unwrap()
}

/// Runs `f` with a fresh call (deadline `secs` away), collecting progress.
pub struct Ctx {
    pub cancel: CancellationToken,
    pub progress: Vec<DeviceProgress>,
}

impl Ctx {
    pub fn new() -> Self {
        Ctx { cancel: CancellationToken::new(), progress: Vec::new() }
    }
}

pub async fn connect(key: &VirtualKeyHandle) -> Ctap2Client<HidDevice> {
    let cancel = CancellationToken::new();
    let mut sink = |_: DeviceProgress| {};
    let mut call = Call {
        deadline: Instant::now() + Duration::from_secs(5),
        cancel: &cancel,
        progress: &mut sink,
    };
    open_client(&address(key), &OpenOptions::default(), &mut call).await.unwrap()
}

pub fn pin(p: &str) -> Pin {
    Pin::new(p).unwrap()
}

/// A call with a deadline `ms` from now and a progress sink into `log`.
#[macro_export]
macro_rules! call {
    ($cancel:expr, $log:expr, $ms:expr) => {
        cablebridged::ctap::Call {
            deadline: tokio::time::Instant::now() + std::time::Duration::from_millis($ms),
            cancel: &$cancel,
            progress: &mut |p| $log.push(p),
        }
    };
}
