//! Linux hidraw transport: a FIDO key's `/dev/hidrawN`, non-blocking, on tokio's reactor.
//!
//! The node is opened `O_RDWR|O_NONBLOCK|O_CLOEXEC` and registered with
//! [`tokio::io::unix::AsyncFd`], so no read ever blocks a runtime thread (STYLE.md "Things not to
//! copy"). On open we take `flock(LOCK_EX|LOCK_NB)` exactly like libfido2's `fido_hid_open`
//! (src/hid_linux.c): retry on `EWOULDBLOCK` with a linear back-off (100 ms × attempt, at most 20
//! attempts), and if we had to wait, close and reopen the node, because the other client may have
//! reset the key meanwhile. ssh, systemd-cryptenroll and browsers via libfido2 therefore take
//! turns with us instead of interleaving CTAPHID packets. The lock lives as long as the fd: drop
//! the [`HidrawDevice`] and it is released.
//!
//! Hidraw framing: writes carry one leading report-ID byte (0x00 for devices without report IDs);
//! reads return the bare report (or the report ID first when the device numbers its reports,
//! which we strip). Reports of the wrong size or with a foreign report ID are dropped and
//! counted, never a panic. `ENODEV`/`EIO` mean the key was unplugged ([`HidError::DeviceGone`]).
//!
//! Not here: enumeration ([`super::sysfs`]), hot-plug ([`super::hotplug`]), CTAPHID framing.

#![allow(unsafe_code)]

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rustix::fs::{FileType, FlockOperation, Mode, OFlags};
use rustix::io::Errno;
use tokio::io::unix::AsyncFd;

use super::descriptor::FidoReportLayout;
use super::error::{HidError, Result};
use super::sysfs::{examine, SysRoots};
use super::TransportStats;

/// Largest report we accept (the HID maximum for high-speed interrupt endpoints).
pub const MAX_REPORT_LEN: usize = 1024;

/// How long to wait for another FIDO client's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockPolicy {
    /// How many times to retry after `EWOULDBLOCK` before giving up with [`HidError::Busy`].
    pub retries: u32,
    /// The n-th retry waits `n × step` (linear back-off, as libfido2).
    pub step: Duration,
}

impl Default for LockPolicy {
    /// libfido2's values: 20 retries, 100 ms step (about 21 s in the worst case; a touch prompt
    /// on the other client can legitimately hold the key that long).
    fn default() -> Self {
        LockPolicy { retries: 20, step: Duration::from_millis(100) }
    }
}

/// Options for opening hidraw nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HidrawOptions {
    /// Where sysfs is (the report descriptor is read from there).
    pub roots: SysRoots,
    /// Lock waiting policy.
    pub lock: LockPolicy,
}

/// `struct hidraw_devinfo` from linux/hidraw.h.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct HidrawDevinfo {
    bustype: u32,
    vendor: i16,
    product: i16,
}

/// `HIDIOCGRAWINFO = _IOR('H', 0x03, struct hidraw_devinfo)`.
const HIDIOCGRAWINFO: rustix::ioctl::Opcode =
    rustix::ioctl::opcode::read::<HidrawDevinfo>(b'H', 0x03);

/// An open, locked FIDO hidraw device.
#[derive(Debug)]
pub struct HidrawDevice {
    fd: AsyncFd<OwnedFd>,
    device: String,
    description: String,
    layout: FidoReportLayout,
    dropped_malformed: AtomicU64,
}

fn io_err(errno: Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(errno.raw_os_error())
}

/// Opens the node and checks it is a hidraw character device.
fn open_node(path: &Path, device: &str) -> Result<(OwnedFd, HidrawDevinfo)> {
    let flags = OFlags::RDWR | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    let fd = rustix::fs::open(path, flags, Mode::empty())
        .map_err(|e| HidError::from_io(device, "opening", io_err(e)))?;
    let stat =
        rustix::fs::fstat(&fd).map_err(|e| HidError::from_io(device, "opening", io_err(e)))?;
    let kind = FileType::from_raw_mode(stat.st_mode);
    if kind != FileType::CharacterDevice {
        let reason = format!("it is a {kind:?}, not a character device");
        return Err(HidError::NotHidraw { device: device.to_owned(), reason });
    }
    // SAFETY: HIDIOCGRAWINFO writes exactly one `struct hidraw_devinfo`, which `HidrawDevinfo`
    // mirrors with #[repr(C)]; the fd is valid for the duration of the call. Any other character
    // device answers ENOTTY/EINVAL without touching the buffer.
    let info = unsafe {
        rustix::ioctl::ioctl(&fd, rustix::ioctl::Getter::<HIDIOCGRAWINFO, HidrawDevinfo>::new())
    }
    .map_err(|e| HidError::NotHidraw {
        device: device.to_owned(),
        reason: format!("HIDIOCGRAWINFO failed: {e}"),
    })?;
    Ok((fd, info))
}

/// Takes `flock(LOCK_EX|LOCK_NB)` on `fd`, sleeping `attempt × step` between tries. Returns
/// whether it had to wait. `attempt` counts across reopens so the total wait stays bounded.
pub(crate) async fn acquire_lock(
    fd: &OwnedFd,
    device: &str,
    policy: LockPolicy,
    attempt: &mut u32,
) -> Result<bool> {
    let mut waited = false;
    loop {
        match rustix::fs::flock(fd, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(waited),
            Err(Errno::INTR) => continue,
            Err(Errno::WOULDBLOCK) => {
                *attempt += 1;
                if *attempt > policy.retries {
                    return Err(HidError::Busy { device: device.to_owned() });
                }
                waited = true;
                tokio::time::sleep(policy.step.saturating_mul(*attempt)).await;
            }
            Err(e) => return Err(HidError::from_io(device, "locking", io_err(e))),
        }
    }
}

/// Opens and flocks the node following libfido2's retry-and-reopen scheme.
async fn open_locked(
    path: &Path,
    device: &str,
    policy: LockPolicy,
) -> Result<(OwnedFd, HidrawDevinfo)> {
    let mut attempt = 0u32;
    loop {
        let (fd, info) = open_node(path, device)?;
        if !acquire_lock(&fd, device, policy, &mut attempt).await? {
            return Ok((fd, info));
        }
        // The other client may have reset the key while it held the lock: start from a fresh fd.
        drop(fd);
        tracing::debug!(device, "lock acquired after waiting; reopening");
    }
}

impl HidrawDevice {
    /// Opens `path`, checks it is a FIDO hidraw node, takes the lock and reads the report layout
    /// from sysfs (`<sys>/class/hidraw/<name>/device/report_descriptor`).
    pub async fn open(path: &Path, options: &HidrawOptions) -> Result<Self> {
        let device = path.display().to_string();
        let (fd, raw) = open_locked(path, &device, options.lock).await?;
        // /dev/fido/... style symlinks: the sysfs name is the target's file name.
        let real: PathBuf = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        let name = real.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        let (layout, description) = match examine(&options.roots, &name) {
            Ok(Some(info)) => (info.layout, info.describe()),
            Ok(None) => return Err(HidError::NotFido { device }),
            Err(reason) => {
                // Same fallback as libfido2: without a descriptor assume 64-byte reports.
                tracing::warn!(device, %reason, "no report descriptor; assuming 64-byte reports");
                let layout = FidoReportLayout { report_id: None, input_len: 64, output_len: 64 };
                let ids = format!("{:04x}:{:04x}", raw.vendor as u16, raw.product as u16);
                (layout, format!("{device}: ({ids})"))
            }
        };
        if layout.input_len != layout.output_len {
            return Err(HidError::BadDescriptor {
                device,
                reason: format!(
                    "input and output reports differ ({} vs {} bytes); CTAPHID needs one \
                     packet size",
                    layout.input_len, layout.output_len
                ),
            });
        }
        if layout.input_len == 0 || layout.input_len > MAX_REPORT_LEN {
            return Err(HidError::BadDescriptor {
                device,
                reason: format!("report size {} is outside 1..={MAX_REPORT_LEN}", layout.input_len),
            });
        }
        // SAFETY: `fd` is an open OwnedFd that the AsyncFd takes ownership of; OwnedFd always
        // returns the same descriptor and closes it only when the AsyncFd drops it.
        let fd = unsafe { AsyncFd::register(fd) }
            .map_err(|e| HidError::from_io(&device, "registering", e.into()))?;
        Ok(HidrawDevice { fd, device, description, layout, dropped_malformed: AtomicU64::new(0) })
    }

    /// The report layout in use.
    pub fn layout(&self) -> FidoReportLayout {
        self.layout
    }

    pub(crate) fn device(&self) -> &str {
        &self.device
    }

    pub(crate) fn description(&self) -> &str {
        &self.description
    }

    pub(crate) fn stats(&self) -> TransportStats {
        TransportStats {
            dropped_foreign: 0,
            dropped_malformed: self.dropped_malformed.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn report_len(&self) -> usize {
        self.layout.output_len
    }

    pub(crate) async fn send_report(&self, report: &[u8]) -> Result<()> {
        let len = self.layout.output_len;
        if report.len() != len {
            return Err(HidError::ReportLength {
                device: self.device.clone(),
                reason: format!("report is {} bytes, the device takes {len}", report.len()),
            });
        }
        let mut frame = [0u8; MAX_REPORT_LEN + 1];
        frame[0] = self.layout.report_id.unwrap_or(0);
        frame[1..=len].copy_from_slice(report);
        let frame = &frame[..=len];
        loop {
            let mut guard = self
                .fd
                .writable()
                .await
                .map_err(|e| HidError::from_io(&self.device, "writing a report", e))?;
            match guard.try_io(|fd| rustix::io::write(fd.get_ref().as_fd(), frame).map_err(io_err))
            {
                Ok(Ok(n)) if n == frame.len() => return Ok(()),
                Ok(Ok(n)) => {
                    let e =
                        std::io::Error::other(format!("short write of {n}/{} bytes", frame.len()));
                    return Err(HidError::from_io(&self.device, "writing a report", e));
                }
                Ok(Err(e)) => return Err(HidError::from_io(&self.device, "writing a report", e)),
                Err(_would_block) => continue,
            }
        }
    }

    /// Cancel-safe: data is only consumed by the synchronous `read` after readiness, never across
    /// an await point.
    pub(crate) async fn recv_report(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.layout.input_len;
        if buf.len() < len {
            return Err(HidError::ReportLength {
                device: self.device.clone(),
                reason: format!("receive buffer is {} bytes, reports are {len}", buf.len()),
            });
        }
        let prefix = usize::from(self.layout.report_id.is_some());
        loop {
            let mut guard = self
                .fd
                .readable()
                .await
                .map_err(|e| HidError::from_io(&self.device, "reading a report", e))?;
            // One byte of slack tells an oversized report from a well-sized one.
            let mut raw = [0u8; MAX_REPORT_LEN + 2];
            let want = len + prefix + 1;
            let n = match guard.try_io(|fd| {
                rustix::io::read(fd.get_ref().as_fd(), &mut raw[..want]).map_err(io_err)
            }) {
                Ok(Ok(n)) => n,
                Ok(Err(e)) => return Err(HidError::from_io(&self.device, "reading a report", e)),
                Err(_would_block) => continue,
            };
            if n == 0 {
                // EOF on a character device: the driver is going away.
                return Err(HidError::DeviceGone { device: self.device.clone() });
            }
            let id_ok = self.layout.report_id.is_none_or(|id| raw[0] == id);
            if n != len + prefix || !id_ok {
                self.dropped_malformed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(device = %self.device, n, "dropping malformed hidraw report");
                continue;
            }
            buf[..len].copy_from_slice(&raw[prefix..prefix + len]);
            return Ok(len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_rw(path: &Path) -> OwnedFd {
        rustix::fs::open(path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty()).unwrap()
    }

    #[tokio::test]
    async fn lock_held_elsewhere_is_busy_after_bounded_retries() {
        let file = tempfile::NamedTempFile::new().unwrap();
        // flock locks belong to the open file description: two opens contend like two processes.
        let other = open_rw(file.path());
        rustix::fs::flock(&other, FlockOperation::NonBlockingLockExclusive).unwrap();
        let ours = open_rw(file.path());
        let policy = LockPolicy { retries: 3, step: Duration::from_millis(5) };
        let started = std::time::Instant::now();
        let err = acquire_lock(&ours, "/dev/hidraw9", policy, &mut 0).await.unwrap_err();
        assert!(matches!(err, HidError::Busy { .. }), "{err:?}");
        assert!(err.to_string().contains("another FIDO client holds /dev/hidraw9"));
        // 5 + 10 + 15 ms of linear back-off, and not much more.
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(30) && waited < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn lock_released_during_retry_is_acquired_and_reported_as_waited() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let other = open_rw(file.path());
        rustix::fs::flock(&other, FlockOperation::NonBlockingLockExclusive).unwrap();
        let ours = open_rw(file.path());
        let release = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(other); // closing the other description releases its lock
        });
        let policy = LockPolicy { retries: 20, step: Duration::from_millis(5) };
        let mut attempt = 0;
        let waited = acquire_lock(&ours, "/dev/hidraw9", policy, &mut attempt).await.unwrap();
        assert!(waited && attempt >= 1);
        release.await.unwrap();
        // Now we hold it: a third description cannot take it.
        let third = open_rw(file.path());
        assert_eq!(
            rustix::fs::flock(&third, FlockOperation::NonBlockingLockExclusive),
            Err(Errno::WOULDBLOCK)
        );
    }

    #[tokio::test]
    async fn free_lock_is_taken_without_waiting() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let ours = open_rw(file.path());
        assert!(!acquire_lock(&ours, "x", LockPolicy::default(), &mut 0).await.unwrap());
    }
}
