//! Hot-plug of hidraw nodes from kernel uevents, without polling and without libudev.
//!
//! A `NETLINK_KOBJECT_UEVENT` socket bound to multicast group 1 receives the kernel's own
//! messages (`add@/devices/...\0ACTION=add\0SUBSYSTEM=hidraw\0DEVNAME=hidraw3\0...`). We accept
//! only messages whose sender is the kernel (netlink pid 0). Group 2 carries udevd's re-broadcast
//! in libudev's binary framing ("libudev\0" + 0xfeedcafe header); [`parse_event`] understands it
//! too so a future switch to "after udev applied permissions" needs no new parser, but the
//! socket listens to the kernel group because udevd is absent in containers and on CI.
//!
//! Consequence for callers: a kernel `add` can arrive before udev has applied the group/mode of
//! the udev rule, so opening right away may fail with `PermissionDenied`; retry briefly.
//! Not here: enumeration of already-present devices ([`super::sysfs::enumerate`]).

#![allow(unsafe_code)]

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_util::Stream;
use rustix::net::netlink::{self, SocketAddrNetlink};
use rustix::net::{AddressFamily, RecvFlags, SocketFlags, SocketType};
use tokio::io::unix::AsyncFd;

use super::error::{HidError, Result};

/// A hidraw node appeared or disappeared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HotplugEvent {
    /// A node was created, e.g. `/dev/hidraw3`.
    Added(PathBuf),
    /// A node was removed.
    Removed(PathBuf),
}

/// Kernel uevent multicast group.
pub const GROUP_KERNEL: u32 = 1;
const LIBUDEV_PREFIX: &[u8] = b"libudev\0";
const LIBUDEV_MAGIC: u32 = 0xfeed_cafe;
/// Kernel uevents are at most 2048 bytes of environment (UEVENT_BUFFER_SIZE); udev's are bigger.
const RECV_BUF: usize = 8192;

/// Splits a uevent message into its `KEY=value` properties (kernel or libudev framing).
pub fn properties(msg: &[u8]) -> Option<Vec<(&str, &str)>> {
    let body = if msg.starts_with(LIBUDEV_PREFIX) {
        // struct monitor_netlink_header: prefix[8], magic (big endian), header_size,
        // properties_off, properties_len (native endian), then filter hashes.
        let field = |at: usize| -> Option<u32> {
            let bytes: [u8; 4] = msg.get(at..at + 4)?.try_into().ok()?;
            Some(u32::from_ne_bytes(bytes))
        };
        let magic = u32::from_be_bytes(msg.get(8..12)?.try_into().ok()?);
        if magic != LIBUDEV_MAGIC {
            return None;
        }
        let off = usize::try_from(field(16)?).ok()?;
        let len = usize::try_from(field(20)?).ok()?;
        msg.get(off..off.checked_add(len)?)?
    } else {
        // "ACTION@DEVPATH\0" summary line, then the environment.
        let nul = msg.iter().position(|&b| b == 0)?;
        if !msg.get(..nul)?.contains(&b'@') {
            return None;
        }
        msg.get(nul + 1..)?
    };
    Some(
        body.split(|&b| b == 0)
            .filter_map(|kv| std::str::from_utf8(kv).ok())
            .filter_map(|kv| kv.split_once('='))
            .collect(),
    )
}

/// Turns one uevent message into a hidraw hot-plug event; everything else is `None`.
///
/// `DEVNAME` is relative in kernel messages (`hidraw3`, joined to `dev_root`) and absolute in
/// udev's (`/dev/hidraw3`, kept).
pub fn parse_event(msg: &[u8], dev_root: &Path) -> Option<HotplugEvent> {
    let props = properties(msg)?;
    let get = |key: &str| props.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    if get("SUBSYSTEM")? != "hidraw" {
        return None;
    }
    let name = get("DEVNAME")?;
    let file = Path::new(name).file_name()?.to_str()?;
    if !file.starts_with("hidraw") || name.contains("..") {
        return None;
    }
    let path = if name.starts_with('/') { PathBuf::from(name) } else { dev_root.join(name) };
    match get("ACTION")? {
        "add" => Some(HotplugEvent::Added(path)),
        "remove" => Some(HotplugEvent::Removed(path)),
        _ => None,
    }
}

/// A stream of [`HotplugEvent`]s from the kernel.
#[derive(Debug)]
pub struct HotplugMonitor {
    fd: AsyncFd<OwnedFd>,
    dev_root: PathBuf,
}

fn hotplug_err(reason: &'static str, e: rustix::io::Errno) -> HidError {
    HidError::Hotplug { reason, source: std::io::Error::from_raw_os_error(e.raw_os_error()) }
}

impl HotplugMonitor {
    /// Opens the netlink socket; `dev_root` is where device nodes live (`/dev`).
    ///
    /// Fails with [`HidError::Hotplug`] where netlink uevent sockets are not allowed (some
    /// sandboxes answer `EPERM` or `EPROTONOSUPPORT`); callers can fall back to enumerating on
    /// demand.
    pub fn open(dev_root: &Path) -> Result<Self> {
        Self::open_group(dev_root, GROUP_KERNEL)
    }

    /// Opens the socket on a specific multicast group (1 kernel, 2 udev).
    pub fn open_group(dev_root: &Path, group: u32) -> Result<Self> {
        let fd = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            Some(netlink::KOBJECT_UEVENT),
        )
        .map_err(|e| hotplug_err("creating a NETLINK_KOBJECT_UEVENT socket", e))?;
        rustix::net::bind(&fd, &SocketAddrNetlink::new(0, group))
            .map_err(|e| hotplug_err("joining the uevent multicast group", e))?;
        // SAFETY: `fd` is an open OwnedFd that the AsyncFd takes ownership of; OwnedFd always
        // returns the same descriptor and closes it only when the AsyncFd drops it.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(|e| HidError::Hotplug {
            reason: "registering the socket with tokio",
            source: e.into(),
        })?;
        Ok(HotplugMonitor { fd, dev_root: dev_root.to_path_buf() })
    }

    /// Receives the next raw message from the kernel (any subsystem), e.g. for diagnostics.
    pub fn poll_raw(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))
                .map_err(|source| HidError::Hotplug { reason: "waiting for uevents", source })?;
            let got = guard.try_io(|fd| {
                rustix::net::recvfrom(fd.get_ref().as_fd(), &mut *buf, RecvFlags::empty())
                    .map_err(|e| std::io::Error::from_raw_os_error(e.raw_os_error()))
            });
            match got {
                Ok(Ok((_, len, from))) => {
                    let from = from.and_then(|a| SocketAddrNetlink::try_from(a).ok());
                    // Only the kernel (pid 0) speaks on group 1; ignore anything else.
                    if from.is_some_and(|a| a.pid() == 0) {
                        return Poll::Ready(Ok(len.min(buf.len())));
                    }
                }
                Ok(Err(source)) => {
                    // ENOBUFS: the kernel dropped events because we were slow. Not fatal, but
                    // the caller should re-enumerate; we log and go on.
                    if source.raw_os_error() == Some(rustix::io::Errno::NOBUFS.raw_os_error()) {
                        tracing::warn!("uevent socket overflowed; some hot-plug events were lost");
                        continue;
                    }
                    return Poll::Ready(Err(HidError::Hotplug { reason: "receiving", source }));
                }
                Err(_would_block) => continue,
            }
        }
    }

    /// Waits for the next raw message.
    pub async fn recv_raw(&self, buf: &mut [u8]) -> Result<usize> {
        std::future::poll_fn(|cx| self.poll_raw(cx, buf)).await
    }
}

impl Stream for HotplugMonitor {
    type Item = Result<HotplugEvent>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let mut buf = [0u8; RECV_BUF];
        loop {
            match ready!(this.poll_raw(cx, &mut buf)) {
                Ok(len) => {
                    if let Some(event) = parse_event(&buf[..len], &this.dev_root) {
                        return Poll::Ready(Some(Ok(event)));
                    }
                }
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
        }
    }
}

#[cfg(test)]
#[path = "hotplug_tests.rs"]
mod tests;
