//! Shared by the service tests: the real `cablebridged` binary started on a temporary socket
//! with its own config file, ready when it says `READY=1` on a NOTIFY_SOCKET we hold (the
//! sd_notify path is exercised on every start), its stderr captured for log assertions; a
//! tunnel server and virtual phones in the test process for hybrid ceremonies.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cablebridge_service::client::Client;
use cablebridged::phone::sink::AdvertSinkSpec;
use cablebridged::phone::{PhoneConfig, PhoneState, VirtualPhone};
use cablebridged::tunnel::server::{TunnelServer, TunnelServerConfig, TunnelServerHandle};
use cablebridged::virtual_key::{VirtualKey, VirtualKeyConfig, VirtualKeyHandle};
use serde_json::{json, Value};

/// Upper bound for anything a test waits for.
pub const T: Duration = Duration::from_secs(30);

/// A running daemon.
pub struct Daemon {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub log: Arc<Mutex<String>>,
    /// Our end of NOTIFY_SOCKET (READY=1 was read from it already). It stays open and mostly
    /// unread, like a stalled service manager: the daemon must never block on it (with a
    /// blocking sender the 20-ceremony test hung once the socket buffer filled with STATUS=).
    pub notify: std::os::unix::net::UnixDatagram,
}

impl Daemon {
    /// Starts the daemon with `extra_config` appended to a config that names the socket and
    /// state dir inside a fresh temp dir.
    pub fn start(extra_config: &str) -> Daemon {
        Self::start_with(extra_config, &[])
    }

    /// Same, with extra environment variables.
    pub fn start_with(extra_config: &str, env: &[(&str, &str)]) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        Self::launch(dir, &state, extra_config, "debug", env)
    }

    /// The daemon on a fresh socket and config (`config`) but the given (persistent) state
    /// directory, logging at `rust_log`.
    pub fn start_in(state: &Path, config: &str, rust_log: &str) -> Daemon {
        Self::launch(tempfile::tempdir().unwrap(), state, config, rust_log, &[])
    }

    /// Writes `config` into `dir`, starts the daemon on a socket there and waits for READY=1.
    fn launch(
        dir: tempfile::TempDir,
        state: &Path,
        config_text: &str,
        rust_log: &str,
        env: &[(&str, &str)],
    ) -> Daemon {
        let socket = dir.path().join("control.sock");
        let config = dir.path().join("config.toml");
        std::fs::write(&config, config_text).unwrap();
        let notify_path = dir.path().join("notify.sock");
        let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
        notify.set_read_timeout(Some(T)).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cablebridged"));
        cmd.arg("--socket")
            .arg(&socket)
            .arg("--state-dir")
            .arg(state)
            .arg("--config")
            .arg(&config)
            .env("NOTIFY_SOCKET", &notify_path)
            .env_remove("JOURNAL_STREAM")
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID")
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let log = capture(child.stderr.take().unwrap());
        let mut buf = [0u8; 4096];
        loop {
            let n = notify.recv(&mut buf).unwrap_or_else(|e| {
                panic!("no READY=1 from the daemon: {e}; log:\n{}", log.lock().unwrap())
            });
            if String::from_utf8_lossy(&buf[..n]).lines().any(|l| l == "READY=1") {
                break;
            }
        }
        Daemon { child, dir, socket, log, notify }
    }

    /// Reads sd_notify datagrams until one has a line satisfying `want` (bounded by `T`).
    pub fn notified(&self, want: impl Fn(&str) -> bool) -> String {
        let mut buf = [0u8; 4096];
        loop {
            let n = self.notify.recv(&mut buf).expect("no more sd_notify messages");
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if text.lines().any(&want) {
                return text;
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.socket).await.unwrap()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Open file descriptors of the daemon.
    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid())).unwrap().count()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let _ = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status();
        let status = wait_timeout(&mut self.child, T);
        (status, self.log_text())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads a child's stream into a shared string on a thread.
pub fn capture(mut stream: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let log = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&log);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    log
}

/// Waits for a child with a bound.
pub fn wait_timeout(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(std::time::Instant::now() < deadline, "the daemon did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `check` holds, re-checking every 20 ms, for at most `T`.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + T;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The hybrid rig: a tunnel server in this process (keep its handle alive), its URL, the
/// daemon (empty config) and the path of an advert socket in the daemon's dir.
pub async fn hybrid_rig() -> (TunnelServerHandle, String, Daemon, PathBuf) {
    let server = TunnelServer::bind(TunnelServerConfig::default()).await.unwrap();
    let tunnel = server.base_url();
    let daemon = Daemon::start("");
    let adverts = daemon.path("adverts.sock");
    (server, tunnel, daemon, adverts)
}

/// A virtual key on loopback UDP-HID with the default config.
pub async fn plain_key() -> VirtualKeyHandle {
    VirtualKey::bind(VirtualKeyConfig::new("127.0.0.1:0".parse().unwrap())).await.unwrap()
}

/// A virtual phone answering on `tunnel` and advertising into `adverts`.
pub fn phone(tunnel: &str, adverts: &Path) -> VirtualPhone {
    let mut c = PhoneConfig::new(tunnel.to_owned());
    c.sink = AdvertSinkSpec::Unix(adverts.to_owned());
    c.advert_interval = Duration::from_millis(20);
    c.desktop_timeout = Duration::from_secs(10);
    c.idle_timeout = Duration::from_secs(10);
    c.offer_linking = true;
    c.name = "Test Phone".into();
    VirtualPhone::new(c, PhoneState::new(&mut rand::rngs::OsRng), None, None)
}

/// Params of a hybrid register against our tunnel server with adverts on `adverts`.
pub fn hybrid_register(tunnel: &str, adverts: &Path) -> Value {
    json!({
        "transport": "hybrid",
        "rp_id": "example.com",
        "user_name": "alice@example.com",
        "tunnel_url": tunnel,
        "advert_source": format!("unix:{}", adverts.display()),
        "advert_timeout": "20s",
        "user_timeout": "20s",
    })
}

/// Reads `ceremony.event` notifications of `session` until the `qr` one; returns its URL.
pub async fn wait_qr(client: &mut Client, session: u64) -> String {
    loop {
        let n = tokio::time::timeout(T, client.next_notification()).await.unwrap().unwrap();
        let p = &n["params"];
        assert_eq!(n["method"], "ceremony.event", "{n}");
        if p["session"] == session && p["event"] == "qr" {
            return p["url"].as_str().unwrap().to_owned();
        }
        assert_ne!(p["event"], "error", "the ceremony failed before its QR: {n}");
    }
}

/// Reads notifications until every session in `ids` has shown its QR.
pub async fn wait_qrs(client: &mut Client, ids: &[u64]) {
    let mut pending: Vec<u64> = ids.to_vec();
    while !pending.is_empty() {
        let n = tokio::time::timeout(T, client.next_notification()).await.unwrap().unwrap();
        let p = &n["params"];
        assert_ne!(p["event"], "error", "a ceremony failed before its QR: {n}");
        if p["event"] == "qr" {
            pending.retain(|id| p["session"] != *id);
        }
    }
}

/// Reads notifications of `session` until `result` or `error`; returns all of them.
pub async fn wait_end(client: &mut Client, session: u64) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let n = tokio::time::timeout(T, client.next_notification()).await.unwrap().unwrap();
        let p = n["params"].clone();
        if p["session"] != session {
            continue;
        }
        let last = p["event"] == "result" || p["event"] == "error";
        seen.push(p);
        if last {
            return seen;
        }
    }
}

/// `status` over a fresh connection, from sync code (a closure in `eventually`): opens and
/// closes its own socket.
pub fn status_now(daemon: &Daemon) -> Value {
    use std::io::{BufRead, Write};
    let mut s = std::os::unix::net::UnixStream::connect(&daemon.socket).unwrap();
    s.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"status\"}\n").unwrap();
    let mut line = String::new();
    std::io::BufReader::new(s).read_line(&mut line).unwrap();
    serde_json::from_str::<Value>(&line).unwrap()["result"].clone()
}

/// The `session` number of a `ceremony.*` / `bridge.start` result.
pub fn session_of(v: &Value) -> u64 {
    v["session"].as_u64().unwrap_or_else(|| panic!("no session in {v}"))
}

/// Reads notifications of `session` until one with `event == name`; returns it (a `result`
/// or `error` first fails the test).
pub async fn wait_event(c: &mut Client, session: u64, name: &str) -> Value {
    loop {
        let n = tokio::time::timeout(T, c.next_notification()).await.unwrap().unwrap();
        let p = n["params"].clone();
        if p["session"] != session {
            continue;
        }
        assert!(!(p["event"] == "error" || p["event"] == "result"), "ended early: {p}");
        if p["event"] == name {
            return p;
        }
    }
}

/// A policy fixture of the daemon crate (`daemon/tests/fixtures/policy/NAME`).
pub fn policy_fixture(name: &str) -> String {
    format!("{}/../daemon/tests/fixtures/policy/{name}", env!("CARGO_MANIFEST_DIR"))
}
