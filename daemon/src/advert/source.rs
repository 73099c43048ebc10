//! Advert sources (`--advert-source bluez|stdin|fifo:PATH|unix:PATH|unix-stream:PATH`).
//!
//! Injected adverts are text, one per line: the service-data bytes as hex (`:` separators
//! allowed), optionally followed by whitespace and `rssi=<dBm>`. Blank lines and lines starting
//! with `#` are ignored; a malformed line becomes an [`AdvertItem::Warning`], never an error, so a
//! noisy relay cannot end a ceremony.
//!
//! * `stdin`: reads until EOF.
//! * `fifo:PATH`: opens the named pipe (or a regular file, read once: replayed captures); a FIFO
//!   stays open when its writer goes away (we hold it read-write), so a relay may restart.
//!
//! No source may outlive its ceremony: a relay feed usually stays open after the ceremony ended
//! (`tail -F log | …`, `ssh host sniffer | …`), so nothing here parks a thread in a blocking
//! `read`. Pipes, FIFOs and terminals on stdin are read through a non-blocking file description
//! of our own (reopened through `/proc/self/fd/0`, so the `O_NONBLOCK` flag never leaks to the
//! process that shares our stdin), a socket on stdin with `MSG_DONTWAIT` reads, and `fifo:` is
//! opened non-blocking; all of them are polled by the runtime, and dropping the
//! [`AdvertFeed`] ends the task and closes the descriptor at once. Only regular files (and
//! devices that cannot be polled, like `/dev/null`) are read with tokio's blocking reader: their
//! reads always return.
//! * `unix:PATH`: binds a Unix **datagram** socket; each datagram holds one or more lines.
//! * `unix-stream:PATH`: binds a Unix **stream** socket and accepts any number of connections,
//!   each sending lines. (One path cannot be both kinds, hence two spellings.)
//!   Socket files are created fresh (a stale socket at the path is replaced) and removed when
//!   the stream is dropped.
//! * `bluez` (the default): BLE scanning through BlueZ on every adapter (see [`super::bluez`]).
//!   Opening fails with the precise Bluetooth diagnosis (no system bus, BlueZ not running, access
//!   denied, no adapter, rfkill...), and a BlueZ failure mid-scan arrives as the terminal
//!   [`AdvertItem::Failed`]; both are environment errors with a remedy.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use crate::ble::BleError;
use cablebridge_protocol::error::{Classify, Fault, Stage};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// One thing a source produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdvertItem {
    /// Service data of one advert.
    Advert {
        /// The bytes (normally 20; CTAP 2.3 adverts may be longer).
        service_data: Vec<u8>,
        /// Signal strength when known.
        rssi: Option<i16>,
    },
    /// A line or datagram that could not be used (shown to the user, never fatal).
    Warning(String),
    /// The source failed for good (BlueZ vanished, adapter removed, rfkill...): the last item,
    /// and the ceremony ends with an environment error.
    Failed(BleError),
}

/// Where adverts come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AdvertSource {
    /// BLE scanning through BlueZ, every adapter.
    Bluez,
    /// Standard input.
    Stdin,
    /// A FIFO or file.
    Fifo(PathBuf),
    /// A Unix datagram socket we bind.
    UnixDatagram(PathBuf),
    /// A Unix stream socket we bind and accept on.
    UnixStream(PathBuf),
}

/// Opening a source failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum AdvertSourceError {
    /// The `--advert-source` value is not one of the known forms.
    #[error(
        "unknown advert source {0:?} (use bluez, stdin, fifo:PATH, unix:PATH or unix-stream:PATH)"
    )]
    BadSpec(String),
    /// BLE scanning could not start; the message carries the diagnosis and the remedy.
    #[error("BLE scanning (--advert-source bluez) cannot start: {0}")]
    Ble(#[source] BleError),
    /// Binding or opening failed.
    #[error("cannot open advert source {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl Classify for AdvertSourceError {
    fn fault(&self) -> Fault {
        match self {
            AdvertSourceError::BadSpec(_) => Fault::Caller,
            AdvertSourceError::Ble(e) => e.fault(),
            _ => Fault::Environment,
        }
    }
    fn stage(&self) -> Stage {
        Stage::Advert
    }
}

impl std::str::FromStr for AdvertSource {
    type Err = AdvertSourceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let path = |p: &str| {
            if p.is_empty() {
                Err(AdvertSourceError::BadSpec(s.to_owned()))
            } else {
                Ok(PathBuf::from(p))
            }
        };
        match s {
            "bluez" => Ok(AdvertSource::Bluez),
            "stdin" | "-" => Ok(AdvertSource::Stdin),
            _ => {
                if let Some(p) = s.strip_prefix("fifo:") {
                    Ok(AdvertSource::Fifo(path(p)?))
                } else if let Some(p) = s.strip_prefix("unix-stream:") {
                    Ok(AdvertSource::UnixStream(path(p)?))
                } else if let Some(p) = s.strip_prefix("unix:") {
                    Ok(AdvertSource::UnixDatagram(path(p)?))
                } else {
                    Err(AdvertSourceError::BadSpec(s.to_owned()))
                }
            }
        }
    }
}

impl std::fmt::Display for AdvertSource {
    /// The `--advert-source` spelling (parses back to the same source).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdvertSource::Bluez => f.write_str("bluez"),
            AdvertSource::Stdin => f.write_str("stdin"),
            AdvertSource::Fifo(p) => write!(f, "fifo:{}", p.display()),
            AdvertSource::UnixDatagram(p) => write!(f, "unix:{}", p.display()),
            AdvertSource::UnixStream(p) => write!(f, "unix-stream:{}", p.display()),
        }
    }
}

/// Parses one injected line: `Ok(None)` for blank/comment lines, `Err(reason)` for bad ones.
pub fn parse_advert_line(line: &str) -> Result<Option<AdvertItem>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let hex_part: String = parts.next().unwrap_or_default().chars().filter(|c| *c != ':').collect();
    let service_data = hex::decode(&hex_part)
        .map_err(|e| format!("advert line is not hex ({e}): {}", shorten(line)))?;
    if service_data.len() < cablebridge_protocol::hybrid::eid::ADVERT_LEN {
        return Err(format!(
            "advert is {} bytes, at least {} expected: {}",
            service_data.len(),
            cablebridge_protocol::hybrid::eid::ADVERT_LEN,
            shorten(line)
        ));
    }
    let mut rssi = None;
    for extra in parts {
        match extra.strip_prefix("rssi=").map(str::parse::<i16>) {
            Some(Ok(r)) => rssi = Some(r),
            _ => return Err(format!("unknown field {:?} after the advert hex", shorten(extra))),
        }
    }
    Ok(Some(AdvertItem::Advert { service_data, rssi }))
}

fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(80).collect();
    if s.chars().count() > 80 {
        out.push('…');
    }
    out
}

/// Adverts from an open source. Dropping it stops the source's task and removes socket files.
#[derive(Debug)]
pub struct AdvertFeed {
    rx: mpsc::Receiver<AdvertItem>,
    task: Option<JoinHandle<()>>,
    socket_path: Option<PathBuf>,
}

impl AdvertFeed {
    /// A stream fed by `rx` (for producers outside this module, e.g. tests and the BLE scanner).
    pub fn from_channel(rx: mpsc::Receiver<AdvertItem>) -> Self {
        AdvertFeed { rx, task: None, socket_path: None }
    }

    /// The next item; `None` once the source ended (EOF on stdin or a regular file).
    pub async fn next(&mut self) -> Option<AdvertItem> {
        self.rx.recv().await
    }
}

impl Drop for AdvertFeed {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        if let Some(p) = self.socket_path.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Bound on queued items: a flood waits for the matcher rather than growing memory.
const QUEUE: usize = 256;
/// Longest accepted line or datagram (a 20-byte advert is 40 hex digits).
const MAX_LINE: usize = 4096;

impl AdvertSource {
    /// Opens the source (binds sockets or starts the BLE scan now, so a relay can connect — or
    /// the radio is known to work — before the QR is shown).
    pub async fn open(&self) -> Result<AdvertFeed, AdvertSourceError> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| AdvertSourceError::Io { path, source }
        };
        let (task, socket_path) = match self {
            AdvertSource::Bluez => {
                (super::bluez::open(tx).await.map_err(AdvertSourceError::Ble)?, None)
            }
            AdvertSource::Stdin => (tokio::spawn(read_lines(stdin_reader(), tx)), None),
            AdvertSource::Fifo(path) => {
                let meta = std::fs::metadata(path).map_err(io(path))?;
                let task = if meta.file_type().is_file() {
                    tokio::spawn(read_file(path.clone(), tx))
                } else {
                    // Read-write: opening never waits for a writer, and a relay that exits and
                    // restarts does not end the feed (we are a writer too, so no EOF).
                    let rx = tokio::net::unix::pipe::OpenOptions::new()
                        .read_write(meta.file_type().is_fifo())
                        .unchecked(true)
                        .open_receiver(path)
                        .map_err(io(path))?;
                    tokio::spawn(read_lines(rx, tx))
                };
                (task, None)
            }
            AdvertSource::UnixDatagram(path) => {
                remove_stale_socket(path).map_err(io(path))?;
                let sock = tokio::net::UnixDatagram::bind(path).map_err(io(path))?;
                (tokio::spawn(read_datagrams(sock, tx)), Some(path.clone()))
            }
            AdvertSource::UnixStream(path) => {
                remove_stale_socket(path).map_err(io(path))?;
                let listener = tokio::net::UnixListener::bind(path).map_err(io(path))?;
                (tokio::spawn(accept_streams(listener, tx)), Some(path.clone()))
            }
        };
        Ok(AdvertFeed { rx, task: Some(task), socket_path })
    }
}

/// Removes a socket file left by a previous run; refuses to delete anything else.
fn remove_stale_socket(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path),
        Ok(_) => Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "exists and is not a socket; not replacing it",
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Sends what `text` holds; `false` once nobody listens.
async fn feed_text(text: &str, tx: &mpsc::Sender<AdvertItem>) -> bool {
    for line in text.lines() {
        let item = match parse_advert_line(line) {
            Ok(None) => continue,
            Ok(Some(item)) => item,
            Err(reason) => AdvertItem::Warning(reason),
        };
        if tx.send(item).await.is_err() {
            return false;
        }
    }
    true
}

async fn read_lines<R: AsyncRead + Unpin>(reader: R, tx: mpsc::Sender<AdvertItem>) {
    let _ = read_lines_until_eof(reader, &tx).await;
}

/// `false` once nobody listens.
async fn read_lines_until_eof<R: AsyncRead + Unpin>(
    reader: R,
    tx: &mpsc::Sender<AdvertItem>,
) -> bool {
    let mut reader = BufReader::new(reader);
    let mut line = String::new();
    loop {
        line.clear();
        // Bounded: `take` stops a line without newline from growing without limit.
        let mut limited = tokio::io::AsyncReadExt::take(&mut reader, MAX_LINE as u64);
        match limited.read_line(&mut line).await {
            Ok(0) => return true,
            Ok(_) if line.len() >= MAX_LINE && !line.ends_with('\n') => {
                let warning = AdvertItem::Warning(format!("line longer than {MAX_LINE} bytes"));
                if tx.send(warning).await.is_err() {
                    return false;
                }
                // Skip the rest of the over-long line without keeping it: memory stays at the
                // reader's buffer however long the line is.
                match skip_line(&mut reader).await {
                    Ok(true) => {}
                    Ok(false) | Err(_) => return true,
                }
            }
            Ok(_) => {
                if !feed_text(&line, tx).await {
                    return false;
                }
            }
            Err(e) => {
                let _ = tx.send(AdvertItem::Warning(format!("advert input unreadable: {e}"))).await;
                return true;
            }
        }
    }
}

/// A regular file (a replayed capture): read once to its end.
async fn read_file(path: PathBuf, tx: mpsc::Sender<AdvertItem>) {
    match tokio::fs::File::open(&path).await {
        Ok(file) => {
            let _ = read_lines_until_eof(file, &tx).await;
        }
        Err(e) => {
            let msg = format!("cannot open {}: {e}", path.display());
            let _ = tx.send(AdvertItem::Warning(msg)).await;
        }
    }
}

/// A boxed reader of advert lines.
type LineReader = Box<dyn AsyncRead + Send + Unpin>;

/// Standard input as a reader that never parks a thread in a blocking `read` (see the module
/// docs): a pipe, FIFO or terminal is reopened non-blocking through `/proc/self/fd/0`; a socket
/// is read with `MSG_DONTWAIT`; anything else (a regular file, `/dev/null`) is read with tokio's
/// blocking reader, whose reads always return.
fn stdin_reader() -> LineReader {
    use rustix::fs::FileType;
    let kind = rustix::fs::fstat(std::io::stdin()).map(|st| FileType::from_raw_mode(st.st_mode));
    match kind {
        Ok(FileType::Fifo | FileType::CharacterDevice) => {
            match tokio::net::unix::pipe::OpenOptions::new()
                .unchecked(true)
                .open_receiver("/proc/self/fd/0")
            {
                Ok(rx) => return Box::new(rx),
                Err(e) => tracing::debug!(error = %e, "stdin cannot be polled; blocking reads"),
            }
        }
        Ok(FileType::Socket) => match SocketReader::stdin() {
            Ok(r) => return Box::new(r),
            Err(e) => tracing::debug!(error = %e, "stdin socket cannot be polled; blocking reads"),
        },
        _ => {}
    }
    Box::new(tokio::io::stdin())
}

/// A socket we share with other processes (our stdin), read with `MSG_DONTWAIT` so its
/// `O_NONBLOCK` flag (shared with whoever else holds it) is left alone.
struct SocketReader {
    fd: tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>,
}

impl SocketReader {
    // The one `unsafe` here is tokio's registration of a descriptor with its reactor.
    #[allow(unsafe_code)]
    fn stdin() -> std::io::Result<SocketReader> {
        let fd = rustix::io::fcntl_dupfd_cloexec(std::io::stdin(), 3)?;
        // SAFETY: `fd` is an `OwnedFd` we just duplicated: it is open, owned by the AsyncFd
        // until it is dropped, and an OwnedFd never changes the descriptor it wraps.
        let fd = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)?
        };
        Ok(SocketReader { fd })
    }
}

impl AsyncRead for SocketReader {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        loop {
            let mut guard = match self.fd.poll_read_ready(cx) {
                Poll::Ready(Ok(g)) => g,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            let unfilled = buf.initialize_unfilled();
            let flags = rustix::net::RecvFlags::DONTWAIT;
            match guard.try_io(|fd| {
                rustix::net::recv(fd.get_ref(), &mut *unfilled, flags)
                    .map(|(n, _)| n)
                    .map_err(std::io::Error::from)
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

/// Discards input up to and including the next newline; `Ok(false)` at EOF.
async fn skip_line<R: AsyncRead + Unpin>(reader: &mut BufReader<R>) -> std::io::Result<bool> {
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(false);
        }
        match buf.iter().position(|b| *b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(true);
            }
            None => {
                let n = buf.len();
                reader.consume(n);
            }
        }
    }
}

async fn read_datagrams(sock: tokio::net::UnixDatagram, tx: mpsc::Sender<AdvertItem>) {
    let mut buf = vec![0u8; MAX_LINE];
    loop {
        let n = match sock.recv(&mut buf).await {
            Ok(n) => n,
            Err(e) => {
                let _ = tx.send(AdvertItem::Warning(format!("advert socket failed: {e}"))).await;
                return;
            }
        };
        let item_ok = match std::str::from_utf8(&buf[..n]) {
            Ok(text) => feed_text(text, &tx).await,
            Err(_) => tx.send(AdvertItem::Warning("datagram is not text".into())).await.is_ok(),
        };
        if !item_ok {
            return;
        }
    }
}

async fn accept_streams(listener: tokio::net::UnixListener, tx: mpsc::Sender<AdvertItem>) {
    let mut readers = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let tx = tx.clone();
                    readers.spawn(async move { let _ = read_lines_until_eof(stream, &tx).await; });
                }
                Err(e) => {
                    let _ = tx.send(AdvertItem::Warning(format!("advert socket failed: {e}"))).await;
                    return;
                }
            },
            _ = tx.closed() => return,
            Some(_) = readers.join_next(), if !readers.is_empty() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const HEX20: &str = "000102030405060708090a0b0c0d0e0f10111213";

    #[test]
    fn line_parsing() {
        assert_eq!(parse_advert_line(""), Ok(None));
        assert_eq!(parse_advert_line("   # a comment"), Ok(None));
        let Ok(Some(AdvertItem::Advert { service_data, rssi })) =
            parse_advert_line(&format!("  {HEX20} rssi=-61\n"))
        else {
            panic!("not parsed")
        };
        assert_eq!(service_data.len(), 20);
        assert_eq!(rssi, Some(-61));
        let colons = "00:01:02:03:04:05:06:07:08:09:0a:0b:0c:0d:0e:0f:10:11:12:13";
        assert!(matches!(parse_advert_line(colons), Ok(Some(_))));
        assert!(parse_advert_line("zz").unwrap_err().contains("not hex"));
        assert!(parse_advert_line("0011").unwrap_err().contains("2 bytes"));
        assert!(parse_advert_line(&format!("{HEX20} x=1")).is_err());
    }

    #[test]
    fn specs() {
        assert_eq!("stdin".parse::<AdvertSource>().unwrap(), AdvertSource::Stdin);
        assert_eq!(
            "unix:/tmp/a".parse::<AdvertSource>().unwrap(),
            AdvertSource::UnixDatagram("/tmp/a".into())
        );
        assert_eq!(
            "unix-stream:/tmp/a".parse::<AdvertSource>().unwrap(),
            AdvertSource::UnixStream("/tmp/a".into())
        );
        assert!("fifo:".parse::<AdvertSource>().is_err());
        assert!("ble".parse::<AdvertSource>().is_err());
        assert_eq!("bluez".parse::<AdvertSource>().unwrap(), AdvertSource::Bluez);
        let err = AdvertSourceError::Ble(BleError::BluezNotRunning);
        assert_eq!((err.fault(), err.stage()), (Fault::Environment, Stage::Advert));
        assert!(err.to_string().contains("systemctl start bluetooth"), "{err}");
    }

    #[tokio::test]
    async fn datagram_and_stream_sockets_deliver_and_warn() {
        let dir = tempfile::tempdir().unwrap();
        let dg = dir.path().join("dg.sock");
        let mut s = AdvertSource::UnixDatagram(dg.clone()).open().await.unwrap();
        let client = tokio::net::UnixDatagram::unbound().unwrap();
        client.send_to(format!("# hi\nnothex\n{HEX20}\n").as_bytes(), &dg).await.unwrap();
        assert!(matches!(s.next().await, Some(AdvertItem::Warning(_))));
        assert!(matches!(s.next().await, Some(AdvertItem::Advert { .. })));
        drop(s);
        assert!(!dg.exists(), "socket file removed on drop");

        let st = dir.path().join("st.sock");
        let mut s = AdvertSource::UnixStream(st.clone()).open().await.unwrap();
        let mut c = tokio::net::UnixStream::connect(&st).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut c, format!("{HEX20} rssi=-40\n").as_bytes())
            .await
            .unwrap();
        assert_eq!(
            s.next().await,
            Some(AdvertItem::Advert { service_data: hex::decode(HEX20).unwrap(), rssi: Some(-40) })
        );
    }

    #[tokio::test]
    async fn regular_file_is_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("capture.txt");
        std::fs::write(&f, format!("{HEX20}\n\n{HEX20}")).unwrap();
        let mut s = AdvertSource::Fifo(f).open().await.unwrap();
        assert!(matches!(s.next().await, Some(AdvertItem::Advert { .. })));
        assert!(matches!(s.next().await, Some(AdvertItem::Advert { .. })));
        assert_eq!(s.next().await, None);
    }

    #[test]
    fn refuses_to_replace_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("precious");
        std::fs::write(&f, b"x").unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let err =
            rt.block_on(async { AdvertSource::UnixDatagram(f.clone()).open().await.unwrap_err() });
        assert!(err.to_string().contains("precious"));
        assert_eq!(std::fs::read(&f).unwrap(), b"x");
    }
}
