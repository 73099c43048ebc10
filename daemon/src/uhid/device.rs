//! The uhid front: 64-byte CTAPHID reports in and out through a [`ReportPort`] (the kernel's
//! `/dev/uhid`, or a UDP-HID socket), the protocol crate's CTAPHID device state machine
//! ([`DeviceState`], the same one the virtual key runs) in between, and a
//! [`CtapBackend`] answering the CBOR requests.
//!
//! Run loop ([`serve`]): wait for a report or the device's message timer → `handle_report` →
//! drain events. A CBOR request starts the backend's future; while it runs the loop keeps
//! reading reports (other channels get `ERR_CHANNEL_BUSY` from the state machine), sends
//! KEEPALIVE(UPNEEDED) every 100 ms (CTAP 2.1 §11.2.9.2.1), and turns CTAPHID_CANCEL (or an
//! INIT resync of the channel) into the backend's cancel token; the backend then answers
//! `CTAP2_ERR_KEEPALIVE_CANCEL`. Every `recv` is cancel-safe (a partial uhid event stays in the
//! port's buffer), so the loop may drop a pending read to send a keepalive.
//!
//! What it is not: a second CTAPHID implementation. Framing, channels, busy and lock rules are
//! all [`DeviceState`]'s.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use cablebridge_protocol::ctaphid::{
    Cid, Command, DeviceConfig, DeviceEvent, DeviceState, ErrorCode, KeepAliveStatus,
};
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::UdpSocket;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::codec::{self, Create2, KernelEvent, EVENT_LEN};
use crate::phone::backend::{BackendCtx, CtapBackend};
use crate::phone::PhoneEvent;

/// Keepalive cadence while the phone is being asked (CTAP 2.1 §11.2.9.2.1: "every 100 ms").
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_millis(100);
/// One CTAPHID report.
pub const REPORT_LEN: usize = 64;
/// `CTAP1_ERR_OTHER`: the backend failed without a CTAP status of its own.
const CTAP1_ERR_OTHER: u8 = 0x7f;
/// `CTAP2_ERR_KEEPALIVE_CANCEL`.
const CTAP2_ERR_KEEPALIVE_CANCEL: u8 = 0x2d;
/// errno EIO, the answer to GET_REPORT/SET_REPORT (a FIDO device has no feature reports).
const EIO: u16 = 5;

/// What went wrong with the front (the port, not a client's bad report: those are answered).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrontError {
    /// Opening, reading or writing the port failed.
    #[error("uhid front: {action} {what}: {source}")]
    Io {
        /// What we were doing.
        action: &'static str,
        /// `/dev/uhid`, `udp:…`.
        what: String,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// The kernel (or the test playing it) closed the device file.
    #[error("uhid front: {0} was closed")]
    Closed(String),
    /// An event we had to encode did not fit (a bug, or a descriptor over 4096 bytes).
    #[error("uhid front: {0}")]
    Codec(#[from] codec::CodecError),
}

/// What a port delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortInput {
    /// One 64-byte report from a client.
    Report(Vec<u8>),
    /// Something the loop only logs (OPEN, CLOSE, START, STOP, a datagram of the wrong size).
    Note(&'static str),
}

/// Where reports come from and go to.
pub trait ReportPort: Send {
    /// The next input. Must be cancel-safe: dropping the future loses nothing.
    fn recv(&mut self) -> impl Future<Output = Result<PortInput, FrontError>> + Send;
    /// Sends one 64-byte report to the client.
    fn send(&mut self, report: &[u8]) -> impl Future<Output = Result<(), FrontError>> + Send;
    /// For logs: `/dev/uhid`, `udp:127.0.0.1:9000`.
    fn describe(&self) -> String;
}

/// The device as the kernel sees it (`/dev/uhid` or a test's socketpair standing in for it).
pub struct UhidPort<IO> {
    io: IO,
    what: String,
    buf: Box<[u8; EVENT_LEN]>,
    filled: usize,
}

impl<IO> std::fmt::Debug for UhidPort<IO> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UhidPort").field("what", &self.what).finish_non_exhaustive()
    }
}

/// The CREATE2 request of our device: FIDO descriptor, [`super::DEVICE_NAME`], the documented
/// vendor/product ids, `uniq` = `serial`.
pub fn fido_create2(serial: &str) -> Create2 {
    Create2 {
        name: super::DEVICE_NAME.to_owned(),
        phys: "cablebridge".to_owned(),
        uniq: serial.to_owned(),
        bus: codec::BUS_USB,
        vendor: super::VENDOR_ID,
        product: super::PRODUCT_ID,
        version: 1,
        country: 0,
        descriptor: codec::FIDO_REPORT_DESCRIPTOR.to_vec(),
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin + Send> UhidPort<IO> {
    /// Sends CREATE2 on `io`; the kernel then creates the hidraw node.
    pub async fn create(mut io: IO, what: &str, create: &Create2) -> Result<Self, FrontError> {
        let event = create.encode()?;
        io.write_all(&event).await.map_err(|source| FrontError::Io {
            action: "creating the device on",
            what: what.to_owned(),
            source,
        })?;
        Ok(UhidPort { io, what: what.to_owned(), buf: Box::new([0; EVENT_LEN]), filled: 0 })
    }

    /// Sends DESTROY (closing the file destroys the device too; this says so explicitly).
    pub async fn destroy(mut self) -> Result<(), FrontError> {
        let what = self.what.clone();
        self.io.write_all(&codec::encode_destroy()).await.map_err(|source| FrontError::Io {
            action: "destroying the device on",
            what,
            source,
        })
    }

    async fn write_event(&mut self, event: &[u8], action: &'static str) -> Result<(), FrontError> {
        let what = &self.what;
        self.io.write_all(event).await.map_err(|source| FrontError::Io {
            action,
            what: what.clone(),
            source,
        })
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin + Send> ReportPort for UhidPort<IO> {
    async fn recv(&mut self) -> Result<PortInput, FrontError> {
        loop {
            while self.filled < EVENT_LEN {
                // One `read` per await: cancel-safe, the bytes already read stay in `buf`.
                let n = self.io.read(&mut self.buf[self.filled..]).await.map_err(|source| {
                    FrontError::Io { action: "reading", what: self.what.clone(), source }
                })?;
                if n == 0 {
                    return Err(FrontError::Closed(self.what.clone()));
                }
                self.filled += n;
            }
            self.filled = 0;
            let event = match codec::decode_kernel(&self.buf[..]) {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(what = %self.what, "uhid front: ignored an event: {e}");
                    continue;
                }
            };
            return Ok(match event {
                KernelEvent::Output { data, .. } => match data.len() {
                    REPORT_LEN => PortInput::Report(data),
                    // hidraw passes the report-id byte (0: our descriptor has no ids) along.
                    n if n == REPORT_LEN + 1 && data.first() == Some(&0) => {
                        PortInput::Report(data[1..].to_vec())
                    }
                    _ => PortInput::Note("an output report of the wrong size"),
                },
                KernelEvent::GetReport { id } => {
                    let reply = codec::encode_report_reply(codec::kind::GET_REPORT_REPLY, id, EIO);
                    self.write_event(&reply, "answering GET_REPORT on").await?;
                    PortInput::Note("GET_REPORT (answered EIO)")
                }
                KernelEvent::SetReport { id } => {
                    let reply = codec::encode_report_reply(codec::kind::SET_REPORT_REPLY, id, EIO);
                    self.write_event(&reply, "answering SET_REPORT on").await?;
                    PortInput::Note("SET_REPORT (answered EIO)")
                }
                KernelEvent::Start { .. } => PortInput::Note("START"),
                KernelEvent::Stop => PortInput::Note("STOP"),
                KernelEvent::Open => PortInput::Note("OPEN"),
                KernelEvent::Close => PortInput::Note("CLOSE"),
                KernelEvent::Other(_) => PortInput::Note("an event of another type"),
            });
        }
    }

    async fn send(&mut self, report: &[u8]) -> Result<(), FrontError> {
        let event = codec::encode_input2(report)?;
        self.write_event(&event, "sending a report on").await
    }

    fn describe(&self) -> String {
        self.what.clone()
    }
}

/// `/dev/uhid` opened `O_RDWR|O_NONBLOCK|O_CLOEXEC` on the runtime's reactor (no blocking
/// reads): one `read` returns one whole event, one `write` takes one.
#[derive(Debug)]
pub struct UhidFile {
    fd: AsyncFd<OwnedFd>,
}

impl UhidFile {
    /// Opens `path` (normally `/dev/uhid`).
    pub fn open(path: &Path) -> Result<Self, FrontError> {
        use rustix::fs::{Mode, OFlags};
        let what = path.display().to_string();
        let flags = OFlags::RDWR | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let fd = rustix::fs::open(path, flags, Mode::empty()).map_err(|e| FrontError::Io {
            action: "opening",
            what: what.clone(),
            source: io::Error::from_raw_os_error(e.raw_os_error()),
        })?;
        // SAFETY: `fd` is an open OwnedFd that the AsyncFd takes ownership of; OwnedFd always
        // returns the same descriptor and closes it only when the AsyncFd drops it.
        #[allow(unsafe_code)]
        let fd = unsafe { AsyncFd::register(fd) }.map_err(|e| FrontError::Io {
            action: "registering",
            what,
            source: e.into(),
        })?;
        Ok(UhidFile { fd })
    }
}

impl AsyncRead for UhidFile {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|fd| {
                rustix::io::read(fd.get_ref().as_fd(), &mut *unfilled)
                    .map_err(|e| io::Error::from_raw_os_error(e.raw_os_error()))
            }) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for UhidFile {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            match guard.try_io(|fd| {
                rustix::io::write(fd.get_ref().as_fd(), data)
                    .map_err(|e| io::Error::from_raw_os_error(e.raw_os_error()))
            }) {
                Ok(r) => return Poll::Ready(r),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The same front over UDP-HID (one 64-byte report per datagram, no report-ID byte): replies
/// go to whoever sent the last report. For CI and labs (python-fido2, `cablebridge info
/// --device udp:…`); loopback only, checked by the caller.
#[derive(Debug)]
pub struct UdpPort {
    socket: UdpSocket,
    local: SocketAddr,
    peer: Option<SocketAddr>,
}

impl UdpPort {
    /// Binds `listen`.
    pub async fn bind(listen: SocketAddr) -> Result<Self, FrontError> {
        let what = format!("udp:{listen}");
        let socket = UdpSocket::bind(listen).await.map_err(|source| FrontError::Io {
            action: "binding",
            what: what.clone(),
            source,
        })?;
        let local = socket.local_addr().map_err(|source| FrontError::Io {
            action: "querying",
            what,
            source,
        })?;
        Ok(UdpPort { socket, local, peer: None })
    }

    /// The bound address (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

impl ReportPort for UdpPort {
    async fn recv(&mut self) -> Result<PortInput, FrontError> {
        let mut buf = [0u8; REPORT_LEN + 1];
        loop {
            match self.socket.recv_from(&mut buf).await {
                Ok((REPORT_LEN, from)) => {
                    self.peer = Some(from);
                    return Ok(PortInput::Report(buf[..REPORT_LEN].to_vec()));
                }
                Ok(_) => return Ok(PortInput::Note("a datagram that is not 64 bytes")),
                // ICMP unreachable from a client that went away.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                Err(source) => {
                    return Err(FrontError::Io {
                        action: "receiving on",
                        what: self.describe(),
                        source,
                    })
                }
            }
        }
    }

    async fn send(&mut self, report: &[u8]) -> Result<(), FrontError> {
        let Some(to) = self.peer else { return Ok(()) };
        match self.socket.send_to(report, to).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(()),
            Err(source) => {
                Err(FrontError::Io { action: "sending on", what: self.describe(), source })
            }
        }
    }

    fn describe(&self) -> String {
        format!("udp:{}", self.local)
    }
}

/// Counters reported when the front stops (and by `bridge.uhid`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrontStats {
    /// Reports received.
    pub reports_in: u64,
    /// Reports sent (keepalives included).
    pub reports_out: u64,
    /// CBOR requests handed to the backend.
    pub cbor_requests: u64,
    /// Keepalives sent.
    pub keepalives: u64,
    /// Requests cancelled by CTAPHID_CANCEL or an INIT resync.
    pub cancels: u64,
}

async fn flush<P: ReportPort>(
    port: &mut P,
    device: &mut DeviceState,
    stats: &mut FrontStats,
) -> Result<(), FrontError> {
    while let Some(report) = device.poll_transmit() {
        port.send(&report).await?;
        stats.reports_out += 1;
    }
    Ok(())
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Serves `port` with `backend` until `stop` fires (→ `Ok`) or the port fails/closes.
pub async fn serve<P: ReportPort, B: CtapBackend>(
    port: &mut P,
    backend: &mut B,
    stop: &CancellationToken,
) -> Result<FrontStats, FrontError> {
    let mut device = DeviceState::new(DeviceConfig::default());
    let mut rng = StdRng::from_entropy();
    let mut stats = FrontStats::default();
    let what = port.describe();
    loop {
        let timer = device.poll_timeout().map(Instant::from_std);
        let input = tokio::select! {
            () = stop.cancelled() => return Ok(stats),
            r = port.recv() => Some(r?),
            () = sleep_until_opt(timer) => None,
        };
        match input {
            Some(PortInput::Report(report)) => {
                stats.reports_in += 1;
                device.handle_report(&report, Instant::now().into_std(), &mut rng);
            }
            Some(PortInput::Note(note)) => tracing::debug!(%what, "uhid front: {note}"),
            None => device.handle_timeout(Instant::now().into_std()),
        }
        while let Some(event) = device.poll_event() {
            match event {
                DeviceEvent::Request { cid, cmd: Command::Cbor, payload } => {
                    stats.cbor_requests += 1;
                    flush(port, &mut device, &mut stats).await?;
                    let answer = answer_cbor(
                        port,
                        backend,
                        &mut device,
                        &mut rng,
                        &mut stats,
                        stop,
                        cid,
                        &payload,
                    )
                    .await?;
                    // Refused after a resync: nobody is waiting for it any more.
                    let _ = device.respond(cid, Command::Cbor, &answer);
                }
                DeviceEvent::Request { cid, cmd, .. } => {
                    tracing::debug!(%cid, ?cmd, "uhid front: unsupported command");
                    let _ = device.respond_error(cid, ErrorCode::InvalidCmd);
                }
                DeviceEvent::Wink { cid } => tracing::info!(%cid, %what, "uhid front: wink"),
                // Nothing pending outside `answer_cbor`.
                _ => {}
            }
        }
        flush(port, &mut device, &mut stats).await?;
    }
}

/// Runs one CBOR request on the backend while keeping the port alive: keepalives, busy answers
/// for other channels, CANCEL. Returns the response payload (`status ‖ CBOR`).
#[allow(clippy::too_many_arguments)]
async fn answer_cbor<P: ReportPort, B: CtapBackend>(
    port: &mut P,
    backend: &mut B,
    device: &mut DeviceState,
    rng: &mut StdRng,
    stats: &mut FrontStats,
    stop: &CancellationToken,
    cid: Cid,
    request: &[u8],
) -> Result<Vec<u8>, FrontError> {
    let cancel = stop.child_token();
    let emit = |_: PhoneEvent| {};
    let ctx = BackendCtx { emit: &emit, cancel: &cancel };
    let work = backend.handle(request, &ctx);
    tokio::pin!(work);
    let mut next_keepalive = Instant::now() + KEEPALIVE_INTERVAL;
    let mut cancelled = false;
    let reply = loop {
        let timer = device.poll_timeout().map(Instant::from_std);
        tokio::select! {
            biased;
            reply = &mut work => break reply,
            r = port.recv() => match r? {
                PortInput::Report(report) => {
                    stats.reports_in += 1;
                    device.handle_report(&report, Instant::now().into_std(), rng);
                }
                PortInput::Note(_) => {}
            },
            () = tokio::time::sleep_until(next_keepalive) => {
                next_keepalive += KEEPALIVE_INTERVAL;
                if device.keepalive(cid, KeepAliveStatus::UpNeeded).is_ok() {
                    stats.keepalives += 1;
                }
            }
            () = sleep_until_opt(timer) => device.handle_timeout(Instant::now().into_std()),
        }
        while let Some(event) = device.poll_event() {
            match event {
                DeviceEvent::Cancel { cid: c } if c == cid && !cancelled => {
                    cancelled = true;
                    stats.cancels += 1;
                    tracing::info!(%cid, "uhid front: CTAPHID_CANCEL; cancelling the phone session");
                    cancel.cancel();
                }
                DeviceEvent::Wink { cid } => tracing::info!(%cid, "uhid front: wink"),
                // The state machine answers other requests BUSY itself; nothing else arrives.
                _ => {}
            }
        }
        flush(port, device, stats).await?;
    };
    Ok(match reply {
        Ok(r) => {
            let mut out = Vec::with_capacity(1 + r.body.len());
            out.push(r.status.to_u8());
            out.extend_from_slice(&r.body);
            out
        }
        Err(e) if cancelled || cancel.is_cancelled() => {
            tracing::info!(%cid, "uhid front: request cancelled: {e}");
            vec![CTAP2_ERR_KEEPALIVE_CANCEL]
        }
        Err(e) => {
            tracing::warn!(%cid, "uhid front: the backend failed: {e}");
            vec![CTAP1_ERR_OTHER]
        }
    })
}
