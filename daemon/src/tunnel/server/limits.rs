//! Resource limits that apply before and around the WebSocket upgrade: the global and
//! per-source connection caps ([`ConnTable`], one [`ConnPermit`] per accepted connection), the
//! bounded read of the HTTP upgrade request ([`read_request`], replayed to tungstenite through
//! [`Prefixed`]), plain HTTP refusals written without tungstenite ([`answer`]), and the budget
//! of bytes unpaired phones may hold ([`BufferBudget`]).
//!
//! Every structure here is O(1) per connection and holds its lock for no await.

use crate::tunnel::Io;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::registry::Reject;

/// The key a source address is counted under: IPv4 (and IPv4-mapped IPv6) per address, IPv6
/// per /64 prefix (one subscriber's usual allocation, so a host cannot dodge the cap by
/// cycling through its own addresses).
fn source_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let masked = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(masked))
        }
        v4 => v4,
    }
}

/// Open connections, in total and per source.
#[derive(Debug)]
pub(crate) struct ConnTable {
    max_total: usize,
    max_per_source: usize,
    per_source: Mutex<HashMap<IpAddr, usize>>,
    /// Connections holding a permit (a gauge, exported as `ServerStats::connections`).
    pub open: AtomicU64,
}

impl ConnTable {
    pub fn new(max_total: usize, max_per_source: usize) -> Arc<ConnTable> {
        Arc::new(ConnTable {
            max_total,
            max_per_source,
            per_source: Mutex::new(HashMap::new()),
            open: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        // Each operation is one insert/update/remove: a poisoned map is still consistent.
        self.per_source.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Admits one connection from `ip`, or says which cap it would cross.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnPermit, Reject> {
        let key = source_key(ip);
        let mut map = self.lock();
        // The total is only changed under this lock, so check-then-add is exact.
        if self.open.load(Relaxed) >= self.max_total as u64 {
            return Err(Reject::Overloaded);
        }
        let n = map.entry(key).or_insert(0);
        if *n >= self.max_per_source {
            if *n == 0 {
                map.remove(&key);
            }
            return Err(Reject::TooManyFromSource);
        }
        *n += 1;
        self.open.fetch_add(1, Relaxed);
        Ok(ConnPermit { table: Arc::clone(self), key })
    }
}

/// One admitted connection; dropping it gives the slot back. It travels with the socket: a
/// desktop's permit moves into the phone's task with the desktop's WebSocket.
#[derive(Debug)]
pub(crate) struct ConnPermit {
    table: Arc<ConnTable>,
    key: IpAddr,
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        let mut map = self.table.lock();
        if let Some(n) = map.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.key);
            }
        }
        self.table.open.fetch_sub(1, Relaxed);
    }
}

/// Why reading the upgrade request failed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RequestError {
    /// More than the allowed bytes without the blank line that ends the headers.
    TooLarge,
    /// The connection closed or failed first.
    Io,
}

/// Reads up to the end of the HTTP request headers (`\r\n\r\n`), at most `max` bytes. Returns
/// everything read, which may include bytes after the headers; replay it with [`Prefixed`].
pub(crate) async fn read_request(
    io: &mut Box<dyn Io>,
    max: usize,
) -> Result<Vec<u8>, RequestError> {
    let mut buf = Vec::with_capacity(max.min(1024));
    let mut chunk = [0u8; 1024];
    loop {
        let room = max.saturating_sub(buf.len());
        if room == 0 {
            return Err(RequestError::TooLarge);
        }
        let want = room.min(chunk.len());
        let n = io.read(&mut chunk[..want]).await.map_err(|_| RequestError::Io)?;
        if n == 0 {
            return Err(RequestError::Io);
        }
        // Only the new bytes (and the 3 before them) can complete the terminator.
        let from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if buf[from..].windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(buf);
        }
    }
}

/// A stream that first yields `prefix` (bytes already read from `inner`), then reads `inner`.
pub(crate) struct Prefixed {
    prefix: Vec<u8>,
    pos: usize,
    inner: Box<dyn Io>,
}

impl Prefixed {
    pub fn new(prefix: Vec<u8>, inner: Box<dyn Io>) -> Prefixed {
        Prefixed { prefix, pos: 0, inner }
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.pos < this.prefix.len() {
            let rest = this.prefix.get(this.pos..).unwrap_or_default();
            let n = rest.len().min(buf.remaining());
            buf.put_slice(rest.get(..n).unwrap_or_default());
            this.pos += n;
            if this.pos >= this.prefix.len() {
                // Done with it: give the memory back for the connection's whole life.
                this.prefix = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Writes a complete HTTP/1.1 refusal (`Connection: close`, body = the reason) and shuts the
/// write side. The caller bounds it with a timeout.
pub(crate) async fn answer(io: &mut Box<dyn Io>, reason: Reject) {
    let status = reason.status();
    let text = match status {
        400 => "Bad Request",
        404 => "Not Found",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Refused",
    };
    let body = format!("{reason:?}\n");
    let head = format!(
        "HTTP/1.1 {status} {text}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if io.write_all(head.as_bytes()).await.is_ok() && io.write_all(body.as_bytes()).await.is_ok() {
        let _ = io.flush().await;
    }
    let _ = io.shutdown().await;
}

/// Reads and discards what the client still sends (at most `max` bytes) until it closes, so
/// closing our end does not turn unread request bytes into a TCP reset that could destroy the
/// refusal before the client reads it. The caller bounds it with a timeout.
pub(crate) async fn drain(io: &mut Box<dyn Io>, max: usize) {
    let mut chunk = [0u8; 1024];
    let mut left = max;
    while left > 0 {
        match io.read(&mut chunk[..left.min(1024)]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}

/// The bytes all unpaired phones hold, against [`super::TunnelServerConfig::max_unpaired_buffer`].
#[derive(Debug)]
pub(crate) struct BufferBudget {
    max: u64,
    /// Bytes held right now (a gauge, exported as `ServerStats::unpaired_buffered_bytes`).
    pub held: AtomicU64,
}

impl BufferBudget {
    pub fn new(max: usize) -> Arc<BufferBudget> {
        Arc::new(BufferBudget { max: max as u64, held: AtomicU64::new(0) })
    }

    /// Whether the budget is used up (new unpaired peers are refused).
    pub fn exhausted(&self) -> bool {
        self.held.load(Relaxed) >= self.max
    }

    /// An empty reservation that one phone grows as it buffers.
    pub fn reservation(self: &Arc<Self>) -> Reservation {
        Reservation { budget: Arc::clone(self), bytes: 0 }
    }
}

/// Bytes one phone holds; given back when dropped.
#[derive(Debug)]
pub(crate) struct Reservation {
    budget: Arc<BufferBudget>,
    bytes: u64,
}

impl Reservation {
    /// Takes `n` more bytes, or returns `false` (taking nothing) if that would cross the cap.
    pub fn grow(&mut self, n: usize) -> bool {
        let n = n as u64;
        let budget = &self.budget;
        let taken = budget.held.fetch_update(Relaxed, Relaxed, |held| {
            held.checked_add(n).filter(|total| *total <= budget.max)
        });
        if taken.is_ok() {
            self.bytes += n;
        }
        taken.is_ok()
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.bytes, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn caps_total_and_per_source_and_give_back_on_drop() {
        let t = ConnTable::new(3, 2);
        let a: IpAddr = Ipv4Addr::new(10, 0, 0, 1).into();
        let b: IpAddr = Ipv4Addr::new(10, 0, 0, 2).into();
        let p1 = t.admit(a).unwrap();
        let _p2 = t.admit(a).unwrap();
        assert_eq!(t.admit(a).err(), Some(Reject::TooManyFromSource));
        let _p3 = t.admit(b).unwrap();
        assert_eq!(t.admit(b).err(), Some(Reject::Overloaded));
        drop(p1);
        assert_eq!(t.open.load(Relaxed), 2);
        let _p4 = t.admit(a).unwrap();
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        let t = ConnTable::new(10, 1);
        let _p = t.admit("2001:db8:1:2::1".parse().unwrap()).unwrap();
        assert_eq!(
            t.admit("2001:db8:1:2:ffff::9".parse().unwrap()).err(),
            Some(Reject::TooManyFromSource)
        );
        let _q = t.admit("2001:db8:1:3::1".parse().unwrap()).unwrap();
        let _v4 = t.admit("192.0.2.1".parse().unwrap()).unwrap();
        assert_eq!(
            t.admit("::ffff:192.0.2.1".parse().unwrap()).err(),
            Some(Reject::TooManyFromSource)
        );
    }

    #[test]
    fn buffer_budget_refuses_past_the_cap_and_returns_on_drop() {
        let b = BufferBudget::new(100);
        let mut r1 = b.reservation();
        assert!(r1.grow(60));
        let mut r2 = b.reservation();
        assert!(!r2.grow(41));
        assert!(r2.grow(40));
        assert!(b.exhausted());
        drop(r1);
        assert_eq!(b.held.load(Relaxed), 40);
        drop(r2);
        assert_eq!(b.held.load(Relaxed), 0);
    }

    #[tokio::test]
    async fn request_read_is_bounded_and_replayed() {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let mut server: Box<dyn Io> = Box::new(server);
        let mut client = client;
        client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nextra").await.unwrap();
        let got = read_request(&mut server, 1024).await.unwrap();
        assert!(got.starts_with(b"GET / HTTP/1.1\r\n"));
        let mut replay = Prefixed::new(got, server);
        let mut all = vec![0u8; 64];
        let n = replay.read(&mut all).await.unwrap();
        assert!(all[..n].ends_with(b"\r\n\r\nextra"));

        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let mut server: Box<dyn Io> = Box::new(server);
        client.write_all(&[b'a'; 2048]).await.unwrap();
        assert_eq!(read_request(&mut server, 1024).await.err(), Some(RequestError::TooLarge));
    }
}
