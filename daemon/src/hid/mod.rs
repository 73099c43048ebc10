//! HID transports: the IO drivers that carry CTAPHID's 64-byte reports.
//!
//! Two transports behind one interface, [`HidTransport`]:
//! * [`hidraw`] — a USB security key's Linux `/dev/hidrawN` node, non-blocking on tokio's
//!   reactor, flock'ed like libfido2 so other FIDO clients take turns with us;
//! * [`udp`] — UDP-HID, one report per datagram, the authenticator-simulator convention used by
//!   CI and lab rigs (shared/notes/testing-without-radios.md).
//!
//! plus [`sysfs`] enumeration, the [`descriptor`] parser that recognises FIDO keys, and
//! [`hotplug`] events from kernel uevents. Users name a device with a [`DeviceAddress`]
//! (`/dev/hidraw3`, `udp:127.0.0.1:8111,local=127.0.0.1:7112`); [`HidDevice::open`] picks the
//! transport.
//!
//! What this is not: CTAPHID. Channels, fragmentation, keepalives and the transaction state
//! machine live in `cablebridge_protocol::ctaphid`; these drivers only move whole reports.
//!
//! ## Trait and enum
//!
//! [`HidTransport`] is the interface session code is generic over (so it can also run against an
//! in-memory transport). Its async methods return `impl Future + Send`, which keeps them usable
//! from `tokio::spawn`ed tasks but makes the trait not object-safe; the runtime choice between
//! transports is therefore the enum [`HidDevice`], which implements the trait by delegation:
//! static dispatch, no boxed future per report, no `async-trait` dependency.

pub mod address;
pub mod descriptor;
pub mod error;
pub mod hidraw;
pub mod hotplug;
pub mod sysfs;
pub mod udp;

use std::future::Future;

pub use address::{DeviceAddress, HostPort, UdpAddress};
pub use error::HidError;
pub use hidraw::{HidrawDevice, HidrawOptions, LockPolicy};
pub use hotplug::{HotplugEvent, HotplugMonitor};
pub use sysfs::{enumerate, Enumeration, HidrawInfo, SysRoots};
pub use udp::UdpHid;

use error::Result;

/// Reports a transport dropped instead of delivering (see the transport docs for why).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Datagrams from a source other than the device (UDP only).
    pub dropped_foreign: u64,
    /// Reports of the wrong size (or, on hidraw, with a foreign report ID).
    pub dropped_malformed: u64,
}

/// A device that sends and receives whole HID reports.
pub trait HidTransport: Send + Sync {
    /// Sends one report of exactly [`report_len`](Self::report_len) bytes (no report-ID byte;
    /// the transport adds what its wire needs).
    fn send_report(&self, report: &[u8]) -> impl Future<Output = Result<()>> + Send;

    /// Receives one report into `buf` (at least `report_len` bytes) and returns its length.
    ///
    /// Cancel-safe: dropping the future before it completes loses no report, so it can sit in
    /// a `tokio::select!` next to a timer.
    fn recv_report(&self, buf: &mut [u8]) -> impl Future<Output = Result<usize>> + Send;

    /// The report length in bytes (64 for every FIDO key seen so far).
    fn report_len(&self) -> usize;

    /// The device path or address, as used in error messages.
    fn path(&self) -> &str;

    /// A human description (path, product, ids when known).
    fn describe(&self) -> String;

    /// Counters of dropped input.
    fn stats(&self) -> TransportStats;
}

/// A transport chosen at run time from a [`DeviceAddress`].
#[non_exhaustive]
#[derive(Debug)]
pub enum HidDevice {
    /// A Linux hidraw node.
    Hidraw(HidrawDevice),
    /// A UDP-HID peer.
    Udp(UdpHid),
}

impl HidDevice {
    /// Opens the device an address names.
    pub async fn open(address: &DeviceAddress, options: &HidrawOptions) -> Result<Self> {
        match address {
            DeviceAddress::Hidraw(path) => {
                Ok(HidDevice::Hidraw(HidrawDevice::open(path, options).await?))
            }
            DeviceAddress::Udp(udp) => Ok(HidDevice::Udp(UdpHid::open(udp).await?)),
        }
    }
}

impl HidTransport for HidrawDevice {
    async fn send_report(&self, report: &[u8]) -> Result<()> {
        HidrawDevice::send_report(self, report).await
    }
    async fn recv_report(&self, buf: &mut [u8]) -> Result<usize> {
        HidrawDevice::recv_report(self, buf).await
    }
    fn report_len(&self) -> usize {
        HidrawDevice::report_len(self)
    }
    fn path(&self) -> &str {
        self.device()
    }
    fn describe(&self) -> String {
        self.description().to_owned()
    }
    fn stats(&self) -> TransportStats {
        HidrawDevice::stats(self)
    }
}

impl HidTransport for UdpHid {
    async fn send_report(&self, report: &[u8]) -> Result<()> {
        UdpHid::send_report(self, report).await
    }
    async fn recv_report(&self, buf: &mut [u8]) -> Result<usize> {
        UdpHid::recv_report(self, buf).await
    }
    fn report_len(&self) -> usize {
        udp::UDP_REPORT_LEN
    }
    fn path(&self) -> &str {
        self.device()
    }
    fn describe(&self) -> String {
        format!("{} (UDP-HID simulator)", self.device())
    }
    fn stats(&self) -> TransportStats {
        UdpHid::stats(self)
    }
}

impl HidTransport for HidDevice {
    async fn send_report(&self, report: &[u8]) -> Result<()> {
        match self {
            HidDevice::Hidraw(d) => HidTransport::send_report(d, report).await,
            HidDevice::Udp(d) => HidTransport::send_report(d, report).await,
        }
    }
    async fn recv_report(&self, buf: &mut [u8]) -> Result<usize> {
        match self {
            HidDevice::Hidraw(d) => HidTransport::recv_report(d, buf).await,
            HidDevice::Udp(d) => HidTransport::recv_report(d, buf).await,
        }
    }
    fn report_len(&self) -> usize {
        match self {
            HidDevice::Hidraw(d) => HidTransport::report_len(d),
            HidDevice::Udp(d) => HidTransport::report_len(d),
        }
    }
    fn path(&self) -> &str {
        match self {
            HidDevice::Hidraw(d) => HidTransport::path(d),
            HidDevice::Udp(d) => HidTransport::path(d),
        }
    }
    fn describe(&self) -> String {
        match self {
            HidDevice::Hidraw(d) => HidTransport::describe(d),
            HidDevice::Udp(d) => HidTransport::describe(d),
        }
    }
    fn stats(&self) -> TransportStats {
        match self {
            HidDevice::Hidraw(d) => HidTransport::stats(d),
            HidDevice::Udp(d) => HidTransport::stats(d),
        }
    }
}
