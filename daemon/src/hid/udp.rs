//! UDP-HID: CTAPHID reports over loopback UDP, the authenticator-simulator convention.
//!
//! One 64-byte report per datagram, no report-ID byte (shared/notes/testing-without-radios.md).
//! The socket is bound to `local=` (or an ephemeral port) and then **connected** to the device:
//! the kernel then drops datagrams from other sources, and an ICMP "port unreachable" (the
//! simulator is not running or exited) comes back as `ECONNREFUSED`, which we turn into
//! [`HidError::Unreachable`] on the next send. A receive never fails for that reason: the device
//! vanishing makes `recv_report` stay pending, like an unplugged-but-not-yet-removed HID device;
//! the CTAPHID layer's transaction timeout decides when to give up.
//!
//! Datagrams queued before `connect()` (possible with a fixed `local=` port) can still come from
//! anywhere, so every datagram's source is checked too; strangers' datagrams are dropped and
//! counted. Datagrams of the wrong size are dropped and counted as well rather than returned as
//! errors: a UDP port is open to any local process, and a stray packet must not abort a ceremony;
//! the counters ([`TransportStats`]) let a timeout message say that junk arrived.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::net::UdpSocket;

use super::address::{HostPort, UdpAddress};
use super::error::{HidError, Result};
use super::TransportStats;

/// The UDP-HID report length.
pub const UDP_REPORT_LEN: usize = 64;

/// A connected UDP-HID device.
#[derive(Debug)]
pub struct UdpHid {
    socket: UdpSocket,
    remote: SocketAddr,
    device: String,
    /// Set when a receive consumed an ICMP "port unreachable"; reported by the next send.
    unreachable: AtomicBool,
    dropped_foreign: AtomicU64,
    dropped_malformed: AtomicU64,
}

async fn resolve(device: &str, hp: &HostPort, prefer_v4: Option<bool>) -> Result<SocketAddr> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((hp.host.as_str(), hp.port))
        .await
        .map_err(|e| HidError::from_io(device, "resolving the address", e))?
        .collect();
    let preferred = prefer_v4.and_then(|v4| addrs.iter().find(|a| a.is_ipv4() == v4));
    preferred.or(addrs.first()).copied().ok_or_else(|| HidError::Io {
        device: device.to_owned(),
        action: "resolving the address",
        source: std::io::Error::other(format!("{hp} resolved to no address")),
    })
}

impl UdpHid {
    /// Resolves, binds and connects.
    pub async fn open(address: &UdpAddress) -> Result<Self> {
        let device = address.to_string();
        let remote = resolve(&device, &address.remote, None).await?;
        let local = match &address.local {
            Some(local) => resolve(&device, local, Some(remote.is_ipv4())).await?,
            None if remote.is_ipv4() => SocketAddr::from(([0, 0, 0, 0], 0)),
            None => SocketAddr::from(([0u16; 8], 0)),
        };
        let socket = std::net::UdpSocket::bind(local).map_err(|source| HidError::Bind {
            device: device.clone(),
            local: local.to_string(),
            source,
        })?;
        Self::from_bound(socket, remote, device).await
    }

    /// Wraps an already bound socket (socket activation, tests) and connects it to `remote`.
    pub async fn from_bound(
        socket: std::net::UdpSocket,
        remote: SocketAddr,
        device: String,
    ) -> Result<Self> {
        socket
            .set_nonblocking(true)
            .map_err(|e| HidError::from_io(&device, "configuring the socket", e))?;
        let socket = UdpSocket::from_std(socket)
            .map_err(|e| HidError::from_io(&device, "registering the socket", e))?;
        socket.connect(remote).await.map_err(|e| HidError::from_io(&device, "connecting", e))?;
        Ok(UdpHid {
            socket,
            remote,
            device,
            unreachable: AtomicBool::new(false),
            dropped_foreign: AtomicU64::new(0),
            dropped_malformed: AtomicU64::new(0),
        })
    }

    /// The local address (useful when the port was ephemeral).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.socket.local_addr().map_err(|e| HidError::from_io(&self.device, "querying", e))
    }

    pub(crate) fn device(&self) -> &str {
        &self.device
    }

    pub(crate) fn stats(&self) -> TransportStats {
        TransportStats {
            dropped_foreign: self.dropped_foreign.load(Ordering::Relaxed),
            dropped_malformed: self.dropped_malformed.load(Ordering::Relaxed),
        }
    }

    fn unreachable(&self) -> HidError {
        HidError::Unreachable { device: self.device.clone() }
    }

    pub(crate) async fn send_report(&self, report: &[u8]) -> Result<()> {
        if report.len() != UDP_REPORT_LEN {
            return Err(HidError::ReportLength {
                device: self.device.clone(),
                reason: format!("report is {} bytes, UDP-HID takes {UDP_REPORT_LEN}", report.len()),
            });
        }
        if self.unreachable.swap(false, Ordering::Relaxed) {
            return Err(self.unreachable());
        }
        match self.socket.send(report).await {
            Ok(n) if n == report.len() => Ok(()),
            Ok(n) => Err(HidError::Io {
                device: self.device.clone(),
                action: "sending a report",
                source: std::io::Error::other(format!("short send of {n} bytes")),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Err(self.unreachable()),
            Err(e) => Err(HidError::from_io(&self.device, "sending a report", e)),
        }
    }

    /// Cancel-safe: `recv_from` is, and each loop iteration either returns the datagram it read
    /// or deliberately drops it.
    pub(crate) async fn recv_report(&self, buf: &mut [u8]) -> Result<usize> {
        if buf.len() < UDP_REPORT_LEN {
            return Err(HidError::ReportLength {
                device: self.device.clone(),
                reason: format!("receive buffer is {} bytes, reports are 64", buf.len()),
            });
        }
        // One byte of slack so an oversized datagram shows up as 65 bytes, not a truncated 64.
        let mut raw = [0u8; UDP_REPORT_LEN + 1];
        loop {
            let (n, source) = match self.socket.recv_from(&mut raw).await {
                Ok(got) => got,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    self.unreachable.store(true, Ordering::Relaxed);
                    continue;
                }
                Err(e) => return Err(HidError::from_io(&self.device, "receiving a report", e)),
            };
            if source != self.remote {
                self.dropped_foreign.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(device = %self.device, %source, "dropping datagram from stranger");
                continue;
            }
            if n != UDP_REPORT_LEN {
                self.dropped_malformed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(device = %self.device, n, "dropping wrong-sized datagram");
                continue;
            }
            buf[..UDP_REPORT_LEN].copy_from_slice(&raw[..UDP_REPORT_LEN]);
            return Ok(UDP_REPORT_LEN);
        }
    }
}
