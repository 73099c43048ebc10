//! The control socket: binding (or adopting systemd's socket), the accept loop, and one task
//! per connection.
//!
//! Per connection: SO_PEERCRED checked first ([`crate::access`]; a refused peer gets one
//! JSON-RPC error line and the connection is closed, and the refusal is logged); then requests
//! are read one line at a time with a size cap, rate-limited with a token bucket, answered in
//! order; notifications of the sessions it started or subscribed to are forwarded by small tasks
//! that end with the connection. A writer task owns the socket's write half, so a client that
//! stops reading only ever blocks its own forwarders (which then lag), never a ceremony.
//!
//! Nothing here polls: every task waits on a socket, a channel or a cancellation token.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedReadHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::access::{self, PeerCred, SystemGroups, Verdict};
use crate::config::Config;
use crate::methods::{self, Stream};
use crate::rpc::{self, code, RpcError};
use crate::sessions::{Counters, Registry};

/// Outgoing lines buffered per connection before forwarders wait.
const OUTGOING_CAPACITY: usize = 64;

/// Shared state of the running daemon.
#[derive(Debug)]
pub struct Daemon {
    /// The configuration in force.
    pub config: Config,
    /// Running ceremonies and counters.
    pub registry: Arc<Registry>,
    started: Instant,
    connections: AtomicUsize,
    next_conn: AtomicU64,
    /// Where we listen (for `status`).
    pub listening_on: String,
    /// The uhid front's run-time switch (`bridge.uhid`).
    pub uhid: crate::uhid::UhidControl,
    /// Per-bridge requests from `bridge.stop` (revoke links on the way out).
    pub bridges: Arc<crate::bridge::BridgeControls>,
}

impl Daemon {
    /// A daemon with no sessions.
    pub fn new(config: Config, listening_on: String) -> Self {
        let registry = Arc::new(Registry::new(config.control.max_sessions));
        Daemon {
            config,
            registry,
            started: Instant::now(),
            connections: AtomicUsize::new(0),
            next_conn: AtomicU64::new(1),
            listening_on,
            uhid: crate::uhid::UhidControl::default(),
            bridges: Arc::default(),
        }
    }

    /// `status`'s result.
    pub fn status(&self) -> Value {
        let sessions = self.registry.summaries();
        let scanning = sessions.iter().filter(|s| s["transport"] == "hybrid").count();
        json!({
            "api_version": rpc::API_VERSION,
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "uptime_ms": u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "socket": self.listening_on,
            "state_dir": self.config.state_dir.display().to_string(),
            "connections": self.connections.load(Ordering::Relaxed),
            "sessions": sessions,
            "devices": {"hidraw_keys": crate::devices::attached_count()},
            "ble": {"advert_source": self.config.hybrid.advert_source, "hybrid_sessions_waiting": scanning},
            // The shared advert intake: open sources, pending sessions per source, counters.
            "adverts": self.registry.adverts.to_json(),
            "counters": self.registry.counters.to_json(),
            // Live tokio tasks (sessions, connections, forwarders, timers): a leak shows here
            // (the fault tests check it returns to its baseline).
            "runtime": {"tasks": tokio::runtime::Handle::try_current()
                .map(|h| h.metrics().num_alive_tasks()).ok()},
        })
    }
}

/// How the listening socket came to be.
#[derive(Debug)]
pub enum Listening {
    /// Passed by systemd (socket activation): not ours to remove.
    Adopted(UnixListener),
    /// Bound by us at this path: removed on exit.
    Bound(UnixListener, PathBuf),
}

/// Errors setting up the socket.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// Another daemon answers on the path.
    #[error("another cablebridged is already listening on {0}")]
    InUse(PathBuf),
    /// An OS call failed.
    #[error("cannot {what} {path}: {source}")]
    Io {
        /// What we tried.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Binds `path` (mode 0660, group `group` when it exists), replacing a stale socket file.
pub fn bind(path: &Path, group: &str) -> Result<Listening, SocketError> {
    let io = |what, source| SocketError::Io { what, path: path.to_owned(), source };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| io("create the directory of", e))?;
    }
    if path.exists() {
        // A live daemon answers; a stale file from a crash refuses the connection.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(SocketError::InUse(path.to_owned()));
        }
        std::fs::remove_file(path).map_err(|e| io("remove the stale socket", e))?;
    }
    let std_listener = std::os::unix::net::UnixListener::bind(path).map_err(|e| io("bind", e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| io("set the mode of", e))?;
    if let Some(gid) = access::GroupDb::gid_of(&SystemGroups, group) {
        // Only root (or a member of the group) may do this; an unprivileged daemon keeps its
        // own group, which is what it wants anyway.
        if let Err(e) = std::os::unix::fs::chown(path, None, Some(gid)) {
            tracing::warn!(path = %path.display(), group, error = %e, "cannot give the socket to the group");
        }
    }
    std_listener.set_nonblocking(true).map_err(|e| io("configure", e))?;
    let listener = UnixListener::from_std(std_listener).map_err(|e| io("register", e))?;
    Ok(Listening::Bound(listener, path.to_owned()))
}

/// Accepts connections until `shutdown` fires.
pub async fn serve(daemon: Arc<Daemon>, listener: &UnixListener, shutdown: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, _)) => {
                let d = Arc::clone(&daemon);
                tokio::spawn(connection(d, stream, shutdown.clone()));
            }
            Err(e) => {
                // EMFILE and friends: log, back off briefly (the error would repeat at once),
                // and keep serving the connections we have.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

fn peer(stream: &UnixStream) -> Option<PeerCred> {
    let cred = stream.peer_cred().ok()?;
    Some(PeerCred { uid: cred.uid(), gid: cred.gid(), pid: cred.pid() })
}

async fn refuse(mut stream: UnixStream, error: RpcError) {
    let mut line = rpc::error_response(&Value::Null, &error).to_string();
    line.push('\n');
    let _ = stream.write_all(line.as_bytes()).await;
    let _ = stream.shutdown().await;
}

struct ConnGuard<'a>(&'a Daemon);

impl Drop for ConnGuard<'_> {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn connection(daemon: Arc<Daemon>, stream: UnixStream, shutdown: CancellationToken) {
    let counters = &daemon.registry.counters;
    let conn = daemon.next_conn.fetch_add(1, Ordering::Relaxed);
    let Some(cred) = peer(&stream) else {
        Counters::bump(&counters.connections_refused);
        tracing::warn!(conn, "refused a connection: no peer credentials");
        return refuse(
            stream,
            RpcError::new(code::ACCESS_DENIED, "access denied: no peer credentials"),
        )
        .await;
    };
    match access::check(&cred, &daemon.config.control, &SystemGroups) {
        Verdict::Refused(why) => {
            Counters::bump(&counters.connections_refused);
            tracing::warn!(conn, uid = cred.uid, gid = cred.gid, pid = cred.pid, reason = %why, "refused a control connection");
            let message = format!("access denied: {why}");
            return refuse(stream, RpcError::new(code::ACCESS_DENIED, message)).await;
        }
        Verdict::Allowed(why) => {
            tracing::debug!(conn, uid = cred.uid, pid = cred.pid, rule = %why, "control connection");
        }
    }
    let open = daemon.connections.fetch_add(1, Ordering::Relaxed) + 1;
    let _guard = ConnGuard(&daemon);
    if open > daemon.config.control.max_connections {
        Counters::bump(&counters.connections_refused);
        tracing::warn!(conn, open, "refused a control connection: too many connections");
        return refuse(stream, RpcError::new(code::REFUSED, "too many control connections")).await;
    }
    Counters::bump(&counters.connections_accepted);

    let (read, mut write) = stream.into_split();
    let (out, mut outgoing) = mpsc::channel::<String>(OUTGOING_CAPACITY);
    let closed = CancellationToken::new();
    let writer = tokio::spawn(async move {
        while let Some(line) = outgoing.recv().await {
            if write.write_all(line.as_bytes()).await.is_err() {
                break;
            }
        }
    });

    let mut reader = BufReader::new(read);
    let mut bucket = TokenBucket::new(
        daemon.config.control.rate_limit_per_second,
        daemon.config.control.rate_limit_burst,
    );
    let max = daemon.config.control.max_line_bytes;
    let mut line = Vec::new();
    loop {
        let read = tokio::select! {
            () = shutdown.cancelled() => break,
            r = read_line(&mut reader, &mut line, max) => r,
        };
        match read {
            Ok(LineRead::Eof) | Err(_) => break,
            Ok(LineRead::TooLong) => {
                Counters::bump(&counters.request_errors);
                let e = RpcError::new(
                    code::INVALID_REQUEST,
                    format!("request line longer than {max} bytes"),
                );
                let _ = out.send(line_of(&rpc::error_response(&Value::Null, &e))).await;
                tracing::warn!(conn, max, "closing a connection that sent an oversized line");
                break;
            }
            Ok(LineRead::Line) => {}
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        Counters::bump(&counters.requests);
        if !bucket.take() {
            Counters::bump(&counters.rate_limited);
            Counters::bump(&counters.request_errors);
            let id = rpc::parse_request(&line).ok().and_then(|r| r.id).unwrap_or(Value::Null);
            let e = RpcError::new(code::RATE_LIMITED, "rate limit exceeded; slow down");
            if out.send(line_of(&rpc::error_response(&id, &e))).await.is_err() {
                break;
            }
            continue;
        }
        let request = match rpc::parse_request(&line) {
            Ok(r) => r,
            Err((id, e)) => {
                Counters::bump(&counters.request_errors);
                if out.send(line_of(&rpc::error_response(&id, &e))).await.is_err() {
                    break;
                }
                continue;
            }
        };
        let id = request.id.clone();
        let method = request.method.clone();
        let answer = methods::dispatch(&daemon, conn, &closed, request).await;
        let (reply, stream) = match answer {
            Ok((result, stream)) => (id.as_ref().map(|id| rpc::response(id, result)), stream),
            Err(e) => {
                Counters::bump(&counters.request_errors);
                tracing::debug!(conn, method = %method, code = e.code, "request failed");
                (id.as_ref().map(|id| rpc::error_response(id, &e)), None)
            }
        };
        if let Some(reply) = reply {
            if out.send(line_of(&reply)).await.is_err() {
                break;
            }
        }
        if let Some(Stream(rx)) = stream {
            tokio::spawn(forward(rx, out.clone(), closed.clone()));
        }
    }
    // Cancel forwarders first, then this connection's (non-detached) sessions.
    closed.cancel();
    daemon.registry.connection_closed(conn);
    drop(out);
    let _ = writer.await;
}

fn line_of(v: &Value) -> String {
    let mut s = v.to_string();
    s.push('\n');
    s
}

/// Forwards a session's (or every session's) events as `ceremony.event` notifications.
async fn forward(
    mut rx: broadcast::Receiver<Arc<Value>>,
    out: mpsc::Sender<String>,
    closed: CancellationToken,
) {
    loop {
        let next = tokio::select! {
            () = closed.cancelled() => return,
            n = rx.recv() => n,
        };
        let line = match next {
            Ok(params) => line_of(&rpc::notification("ceremony.event", (*params).clone())),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                line_of(&rpc::notification("events.lagged", json!({"missed": missed})))
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let sent = tokio::select! {
            () = closed.cancelled() => return,
            s = out.send(line) => s,
        };
        if sent.is_err() {
            return;
        }
    }
}

enum LineRead {
    Line,
    TooLong,
    Eof,
}

/// One `\n`-terminated line (terminator stripped) of at most `max` bytes. A last line without
/// a terminator counts as a line.
async fn read_line(
    reader: &mut BufReader<OwnedReadHalf>,
    line: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<LineRead> {
    line.clear();
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(if line.is_empty() { LineRead::Eof } else { LineRead::Line });
        }
        match buf.iter().position(|b| *b == b'\n') {
            Some(i) => {
                if line.len() + i > max {
                    return Ok(LineRead::TooLong);
                }
                line.extend_from_slice(&buf[..i]);
                reader.consume(i + 1);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(LineRead::Line);
            }
            None => {
                let n = buf.len();
                if line.len() + n > max {
                    return Ok(LineRead::TooLong);
                }
                line.extend_from_slice(buf);
                reader.consume(n);
            }
        }
    }
}

/// Per-connection rate limit: `burst` requests at once, refilled at `rate` per second. Uses the
/// time of each request; no timer runs.
#[derive(Debug)]
struct TokenBucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(rate: u32, burst: u32) -> Self {
        TokenBucket {
            tokens: f64::from(burst),
            rate: f64::from(rate),
            burst: f64::from(burst),
            last: Instant::now(),
        }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_the_burst_then_refuses() {
        let mut b = TokenBucket::new(1, 3);
        assert!(b.take() && b.take() && b.take());
        assert!(!b.take(), "a fourth request within the same instant is over the burst");
    }
}
