//! Where the virtual phone "advertises": instead of a BLE radio it writes the 20-byte advert
//! service data in the injection format the desktop's advert sources read (one hex line per
//! advert), repeating it like a BLE advertiser until the handshake starts (PROTOCOL-hybrid.md
//! §5.3: real phones advertise continuously in low-latency mode).
//!
//! Sinks: `stdout`, `fifo:PATH` (a named pipe some reader opens), `unix:PATH` (a listening Unix
//! socket: datagram, one advert per datagram; a stream listener is detected by the kernel's
//! `EPROTOTYPE` answer and then gets one line per advert). The listener may not exist yet when
//! the phone starts (the two processes race); the sink retries for [`SINK_RETRY_WINDOW`] before
//! reporting an environment error.
//!
//! `bluez` (or `bluez:ADAPTER`) advertises for real through BlueZ ([`crate::ble::advertise`]):
//! opening the sink connects to the system bus and picks and powers on the adapter, so every
//! environment failure (no bus, BlueZ not running, access denied, no adapter, rfkill, no LE
//! advertising) is reported at open as an `io::Error` wrapping the [`BleError`] (the phone maps
//! it to exit 3, stage advert). The first write registers the advertisement, a changed advert
//! updates it, identical repeats are no-ops (BlueZ keeps advertising on its own), and
//! [`Advertiser::stop`] unregisters it; dropping the [`Advertiser`] unregisters best effort.
//!
//! What it is not: the EID sealing or the phone's rotation schedule.

use crate::ble::{AdvertiseOptions, AdvertisementHandle, AdvertisingAdapter, BleError};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{UnixDatagram, UnixStream};

/// How long a missing listener (ENOENT, ECONNREFUSED, no FIFO reader) is retried.
pub const SINK_RETRY_WINDOW: Duration = Duration::from_secs(5);
const RETRY_STEP: Duration = Duration::from_millis(25);

/// A parsed `--advert-sink` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdvertSinkSpec {
    /// One hex line per advert on standard output.
    Stdout,
    /// A named pipe opened for writing.
    Fifo(PathBuf),
    /// A listening Unix datagram (or stream) socket.
    Unix(PathBuf),
    /// BLE advertising through BlueZ, on the named adapter or the first that can advertise.
    Bluez(Option<String>),
}

impl std::str::FromStr for AdvertSinkSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            None if s == "stdout" => Ok(AdvertSinkSpec::Stdout),
            None if s == "bluez" => Ok(AdvertSinkSpec::Bluez(None)),
            Some(("bluez", a)) if !a.is_empty() => Ok(AdvertSinkSpec::Bluez(Some(a.into()))),
            Some(("fifo", p)) if !p.is_empty() => Ok(AdvertSinkSpec::Fifo(p.into())),
            Some(("unix", p)) if !p.is_empty() => Ok(AdvertSinkSpec::Unix(p.into())),
            _ => Err(format!(
                "advert sink {s:?} is not stdout, fifo:PATH, unix:PATH, bluez or bluez:ADAPTER"
            )),
        }
    }
}

impl std::fmt::Display for AdvertSinkSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdvertSinkSpec::Stdout => f.write_str("stdout"),
            AdvertSinkSpec::Fifo(p) => write!(f, "fifo:{}", p.display()),
            AdvertSinkSpec::Unix(p) => write!(f, "unix:{}", p.display()),
            AdvertSinkSpec::Bluez(None) => f.write_str("bluez"),
            AdvertSinkSpec::Bluez(Some(a)) => write!(f, "bluez:{a}"),
        }
    }
}

/// An open sink.
#[derive(Debug)]
pub enum AdvertSink {
    /// Standard output.
    Stdout(tokio::io::Stdout),
    /// A FIFO's write end.
    Fifo(tokio::net::unix::pipe::Sender),
    /// A connected datagram socket.
    Datagram(UnixDatagram),
    /// A connected stream socket.
    Stream(UnixStream),
    /// BlueZ advertising (boxed: the zbus handles are large).
    Bluez(Box<BluezSink>),
}

/// The BlueZ sink: the adapter chosen at open, and the advertisement once registered.
#[derive(Debug)]
pub struct BluezSink {
    adapter: AdvertisingAdapter,
    registered: Option<(AdvertisementHandle, Vec<u8>)>,
}

impl BluezSink {
    /// Registers `advert`, or updates the registered one when it changed.
    async fn advertise(&mut self, advert: &[u8]) -> Result<(), BleError> {
        match &mut self.registered {
            Some((_, current)) if current.as_slice() == advert => Ok(()),
            Some((handle, current)) => {
                handle.update(advert).await?;
                *current = advert.to_vec();
                Ok(())
            }
            None => {
                let handle = self.adapter.advertise(advert).await?;
                self.registered = Some((handle, advert.to_vec()));
                Ok(())
            }
        }
    }

    /// Unregisters the advertisement, if any.
    async fn stop(&mut self) -> Result<(), BleError> {
        match self.registered.take() {
            Some((handle, _)) => handle.stop().await,
            None => Ok(()),
        }
    }
}

/// Errors a listener that is not there *yet* produces.
fn not_there_yet(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused)
        // A FIFO without a reader: open(O_WRONLY|O_NONBLOCK) fails with ENXIO.
        || e.raw_os_error() == Some(rustix::io::Errno::NXIO.raw_os_error())
}

impl AdvertSink {
    /// Opens the sink, retrying a missing listener for [`SINK_RETRY_WINDOW`].
    pub async fn open(spec: &AdvertSinkSpec) -> io::Result<AdvertSink> {
        Self::open_within(spec, SINK_RETRY_WINDOW).await
    }

    /// Opens the sink, retrying a missing listener for `window`.
    pub async fn open_within(spec: &AdvertSinkSpec, window: Duration) -> io::Result<AdvertSink> {
        let deadline = tokio::time::Instant::now() + window;
        loop {
            match Self::open_once(spec).await {
                Err(e) if not_there_yet(&e) && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(RETRY_STEP).await;
                }
                other => return other,
            }
        }
    }

    async fn open_once(spec: &AdvertSinkSpec) -> io::Result<AdvertSink> {
        match spec {
            AdvertSinkSpec::Stdout => Ok(AdvertSink::Stdout(tokio::io::stdout())),
            AdvertSinkSpec::Fifo(path) => {
                Ok(AdvertSink::Fifo(tokio::net::unix::pipe::OpenOptions::new().open_sender(path)?))
            }
            AdvertSinkSpec::Unix(path) => connect_unix(path).await,
            AdvertSinkSpec::Bluez(adapter) => {
                let opts = AdvertiseOptions { adapter: adapter.clone(), ..Default::default() };
                let adapter = AdvertisingAdapter::open(opts).await.map_err(io::Error::other)?;
                Ok(AdvertSink::Bluez(Box::new(BluezSink { adapter, registered: None })))
            }
        }
    }

    /// Writes one advert as a hex line (one datagram for datagram sockets); for BlueZ,
    /// registers or updates the advertisement (the error then wraps a [`BleError`]).
    pub async fn write_advert(&mut self, advert: &[u8]) -> io::Result<()> {
        if let AdvertSink::Bluez(b) = self {
            return b.advertise(advert).await.map_err(io::Error::other);
        }
        let mut line = hex::encode(advert);
        line.push('\n');
        match self {
            AdvertSink::Stdout(out) => {
                out.write_all(line.as_bytes()).await?;
                out.flush().await
            }
            AdvertSink::Fifo(tx) => tx.write_all(line.as_bytes()).await,
            AdvertSink::Datagram(sock) => sock.send(line.as_bytes()).await.map(|_| ()),
            AdvertSink::Stream(sock) => sock.write_all(line.as_bytes()).await,
            AdvertSink::Bluez(_) => Ok(()), // handled above
        }
    }

    /// Ends advertising: unregisters a BlueZ advertisement (the other sinks have nothing on air).
    pub async fn finish(&mut self) -> io::Result<()> {
        match self {
            AdvertSink::Bluez(b) => b.stop().await.map_err(io::Error::other),
            _ => Ok(()),
        }
    }
}

async fn connect_unix(path: &Path) -> io::Result<AdvertSink> {
    let sock = UnixDatagram::unbound()?;
    match sock.connect(path) {
        Ok(()) => Ok(AdvertSink::Datagram(sock)),
        // A stream listener refuses a datagram connect with EPROTOTYPE: speak stream instead.
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::PROTOTYPE.raw_os_error()) => {
            Ok(AdvertSink::Stream(UnixStream::connect(path).await?))
        }
        Err(e) => Err(e),
    }
}

/// Longest wait for [`Advertiser::stop`] to unregister before giving up on it.
const STOP_BOUND: Duration = Duration::from_secs(2);

/// A running advertiser: writes the advert every `interval` until stopped or dropped.
#[derive(Debug)]
pub struct Advertiser {
    task: tokio::task::JoinHandle<()>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Advertiser {
    /// Starts repeating `advert` on `sink` (the first write happens at once). Write errors are
    /// logged and the next tick tries again: a relay that restarts must not end the session.
    pub fn start(mut sink: AdvertSink, advert: Vec<u8>, interval: Duration) -> Advertiser {
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut warned = false;
            loop {
                tokio::select! {
                    _ = &mut stop_rx => break,
                    _ = tick.tick() => {}
                }
                if let Err(e) = sink.write_advert(&advert).await {
                    if !warned {
                        tracing::warn!(error = %e, "advert sink write failed; retrying");
                        warned = true;
                    }
                }
            }
            if let Err(e) = sink.finish().await {
                tracing::warn!(error = %e, "stopping the advertisement failed");
            }
        });
        Advertiser { task, stop: Some(stop_tx) }
    }

    /// Stops advertising ("stop advertising" once the handshake starts, §1.1 phone step 4):
    /// a BlueZ advertisement is unregistered before this returns (bounded by 2 s).
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if tokio::time::timeout(STOP_BOUND, &mut self.task).await.is_err() {
            tracing::warn!("advertiser did not stop in time; aborting it");
            self.task.abort();
        }
    }
}

impl Drop for Advertiser {
    fn drop(&mut self) {
        // Aborting drops the sink; a BlueZ handle's Drop then unregisters in the background.
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        assert_eq!("stdout".parse(), Ok(AdvertSinkSpec::Stdout));
        assert_eq!("unix:/tmp/a".parse(), Ok(AdvertSinkSpec::Unix("/tmp/a".into())));
        assert_eq!("fifo:x".parse(), Ok(AdvertSinkSpec::Fifo("x".into())));
        assert!("unix:".parse::<AdvertSinkSpec>().is_err());
        assert_eq!("bluez".parse(), Ok(AdvertSinkSpec::Bluez(None)));
        assert_eq!("bluez:hci1".parse(), Ok(AdvertSinkSpec::Bluez(Some("hci1".into()))));
        assert!("bluez:".parse::<AdvertSinkSpec>().is_err());
        for spec in ["stdout", "bluez", "bluez:hci1", "unix:/a", "fifo:/b"] {
            assert_eq!(spec.parse::<AdvertSinkSpec>().unwrap().to_string(), spec);
        }
    }

    #[tokio::test]
    async fn datagram_listener_appearing_late_receives_hex_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("adverts.sock");
        let spec = AdvertSinkSpec::Unix(path.clone());
        let opener = tokio::spawn(async move { AdvertSink::open(&spec).await });
        tokio::time::sleep(Duration::from_millis(60)).await;
        let listener = UnixDatagram::bind(&path).unwrap();
        let sink = opener.await.unwrap().unwrap();
        let adv = Advertiser::start(sink, vec![0xab; 20], Duration::from_millis(10));
        let mut buf = [0u8; 64];
        for _ in 0..2 {
            let n = tokio::time::timeout(Duration::from_secs(2), listener.recv(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(&buf[..n], format!("{}\n", "ab".repeat(20)).as_bytes());
        }
        adv.stop().await;
    }

    #[tokio::test]
    async fn stream_listener_gets_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let mut sink = AdvertSink::open(&AdvertSinkSpec::Unix(path)).await.unwrap();
        assert!(matches!(sink, AdvertSink::Stream(_)));
        sink.write_advert(&[1, 2]).await.unwrap();
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut line = [0u8; 5];
        tokio::io::AsyncReadExt::read_exact(&mut conn, &mut line).await.unwrap();
        assert_eq!(&line, b"0102\n");
    }

    #[tokio::test]
    async fn missing_listener_gives_up_after_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let spec = AdvertSinkSpec::Unix(dir.path().join("none"));
        let err = AdvertSink::open_within(&spec, Duration::from_millis(100)).await;
        assert_eq!(err.unwrap_err().kind(), io::ErrorKind::NotFound);
    }
}
