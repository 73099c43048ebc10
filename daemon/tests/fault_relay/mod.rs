//! A small fault-injecting TCP relay for WebSocket tunnels (test support, shared by
//! `tunnel_faults.rs` and `netns_faults.rs`).
//!
//! It sits between tunnel clients and a tunnel server, forwards the HTTP upgrade verbatim and
//! then walks the WebSocket frame headers in both directions (no payload parsing beyond the
//! length), so a fault can fire at an exact protocol point: "the Nth data message from the
//! server to `/cable/connect` clients". The fault is one of: close both TCP connections (FIN),
//! reset them (RST, `SO_LINGER` 0), stall (stop forwarding, keep the sockets: a black hole),
//! or replace that message with injected bytes (a hostile server's text or oversized frame).
//! Every other connection and message passes untouched. A fixed per-chunk delay (the `delay`
//! argument of [`Relay::start`]) applies to every byte forwarded, both ways: the netns suite's
//! delay where the kernel has no `sch_netem`. Messages split into continuation frames are not
//! expected (tunnel messages are single frames); an injected replacement covers one frame.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Which way a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Client → server (masked frames).
    ToServer,
    /// Server → client.
    ToClient,
}

/// What happens at the chosen message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cut {
    /// Close both TCP connections (FIN), the message is not forwarded.
    Close,
    /// Reset both TCP connections (RST).
    Reset,
    /// Forward nothing more in either direction but keep both sockets open.
    Stall,
    /// Forward these bytes (one or more whole WebSocket frames) instead of the message, then
    /// carry on.
    Inject(Vec<u8>),
}

/// One fault: on connections whose request path starts with `path`, at the `nth` (1-based)
/// data message travelling `dir`.
#[derive(Debug, Clone)]
pub struct Rule {
    pub path: &'static str,
    pub dir: Dir,
    pub nth: u32,
    pub cut: Cut,
}

/// A running relay; dropping it stops accepting and tears every relayed connection down.
pub struct Relay {
    pub addr: SocketAddr,
    fired: Arc<AtomicU32>,
    stop: CancellationToken,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Relay {
    /// Starts a relay on `listen` (port 0 for any) to `upstream` with `rule` (or none) and a
    /// fixed one-way `delay` added to every chunk forwarded.
    pub async fn start(
        listen: SocketAddr,
        upstream: SocketAddr,
        rule: Option<Rule>,
        delay: Duration,
    ) -> Relay {
        let listener = TcpListener::bind(listen).await.expect("relay bind");
        let addr = listener.local_addr().expect("relay address");
        let fired = Arc::new(AtomicU32::new(0));
        let stop = CancellationToken::new();
        let (f, s) = (fired.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    () = s.cancelled() => return,
                };
                let Ok((client, _)) = accepted else { continue };
                let rule = rule.clone();
                let (f, s) = (f.clone(), s.child_token());
                tokio::spawn(async move {
                    let _ = relay_one(client, upstream, rule, delay, f, s).await;
                });
            }
        });
        Relay { addr, fired, stop }
    }

    /// `ws://addr` for tunnel clients.
    pub fn base_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// How many times the rule fired.
    pub fn fired(&self) -> u32 {
        self.fired.load(Ordering::SeqCst)
    }
}

/// Reads an HTTP head (up to the blank line) byte-exactly; returns it.
async fn read_head(r: &mut OwnedReadHalf) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 || r.read(&mut byte).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
    }
    Ok(head)
}

async fn relay_one(
    client: TcpStream,
    upstream: SocketAddr,
    rule: Option<Rule>,
    delay: Duration,
    fired: Arc<AtomicU32>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let server = TcpStream::connect(upstream).await?;
    if matches!(rule, Some(Rule { cut: Cut::Reset, .. })) {
        client.set_zero_linger()?;
        server.set_zero_linger()?;
    }
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let request = read_head(&mut cr).await?;
    let path =
        String::from_utf8_lossy(&request).split_whitespace().nth(1).unwrap_or_default().to_owned();
    sw.write_all(&request).await?;
    let response = read_head(&mut sr).await?;
    cw.write_all(&response).await?;
    let rule = rule.filter(|r| path.starts_with(r.path));
    let cut = CancellationToken::new();
    let stalled = Arc::new(AtomicBool::new(false));
    let pump = |from: OwnedReadHalf, to: OwnedWriteHalf, dir: Dir| {
        let rule = rule.clone().filter(|r| r.dir == dir);
        pump(from, to, rule, delay, fired.clone(), cut.clone(), stalled.clone(), stop.clone())
    };
    let up = pump(cr, sw, Dir::ToServer);
    let down = pump(sr, cw, Dir::ToClient);
    let _ = tokio::join!(up, down);
    Ok(())
}

/// Forwards `from` → `to`, walking frame headers, until EOF, a fault, or `stop`.
#[allow(clippy::too_many_arguments)]
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    rule: Option<Rule>,
    delay: Duration,
    fired: Arc<AtomicU32>,
    cut: CancellationToken,
    stalled: Arc<AtomicBool>,
    stop: CancellationToken,
) {
    let mut walker = Walker::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = Vec::new();
    // Inside a message replaced by injected bytes: its payload is dropped.
    let mut skipping = false;
    loop {
        let n = tokio::select! {
            r = from.read(&mut buf) => match r { Ok(0) | Err(_) => break, Ok(n) => n },
            () = cut.cancelled() => break,
            () = stop.cancelled() => break,
        };
        if stalled.load(Ordering::SeqCst) {
            continue; // a black hole: read and drop, keep the socket
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        out.clear();
        let mut halt = None;
        for &b in &buf[..n] {
            match walker.feed(b) {
                Step::Header => {}
                Step::Payload => {
                    if !skipping {
                        out.push(b);
                    }
                }
                Step::Start => {
                    skipping = false;
                    let data = walker.is_data();
                    if data {
                        walker.count += 1;
                    }
                    if let Some(r) = rule.as_ref().filter(|r| data && walker.count == r.nth) {
                        fired.fetch_add(1, Ordering::SeqCst);
                        if let Cut::Inject(bytes) = &r.cut {
                            out.extend_from_slice(bytes);
                            skipping = true;
                            continue;
                        }
                        halt = Some(r.cut.clone());
                        break;
                    }
                    out.extend_from_slice(&walker.header);
                }
            }
        }
        if !out.is_empty() && to.write_all(&out).await.is_err() {
            break;
        }
        match halt {
            Some(Cut::Stall) => stalled.store(true, Ordering::SeqCst),
            Some(_) => {
                cut.cancel();
                break;
            }
            None => {}
        }
    }
    // FIN (or RST with SO_LINGER 0) to that peer when `to` drops.
    let _ = to.shutdown().await;
}

#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Still reading a frame header.
    Header,
    /// The header just completed (it is in `Walker::header`).
    Start,
    /// A payload byte.
    Payload,
}

/// Walks WebSocket frame boundaries one byte at a time (RFC 6455 §5.2).
#[derive(Default)]
struct Walker {
    header: Vec<u8>,
    remaining: u64,
    count: u32,
    in_payload: bool,
}

impl Walker {
    fn needed(&self) -> Option<usize> {
        if self.header.len() < 2 {
            return None;
        }
        let ext = match self.header[1] & 0x7F {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if self.header[1] & 0x80 != 0 { 4 } else { 0 };
        Some(2 + ext + mask)
    }

    fn payload_len(&self) -> u64 {
        match self.header[1] & 0x7F {
            126 => u64::from(u16::from_be_bytes([self.header[2], self.header[3]])),
            127 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&self.header[2..10]);
                u64::from_be_bytes(b)
            }
            n => u64::from(n),
        }
    }

    /// A data frame that starts a message (binary, text, not a continuation or control).
    fn is_data(&self) -> bool {
        matches!(self.header[0] & 0x0F, 1 | 2)
    }

    fn feed(&mut self, b: u8) -> Step {
        if self.in_payload {
            self.remaining -= 1;
            if self.remaining == 0 {
                self.in_payload = false;
            }
            return Step::Payload;
        }
        if self.needed().is_some_and(|n| self.header.len() >= n) {
            self.header.clear();
        }
        self.header.push(b);
        match self.needed() {
            Some(n) if self.header.len() == n => {
                self.remaining = self.payload_len();
                self.in_payload = self.remaining > 0;
                Step::Start
            }
            _ => Step::Header,
        }
    }
}

/// One unmasked server→client WebSocket frame (FIN set) with `opcode` and `payload`.
pub fn ws_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => f.push(n as u8),
        n if n <= 0xFFFF => {
            f.push(126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(payload);
    f
}
