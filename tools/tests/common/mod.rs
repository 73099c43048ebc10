//! Set-up shared by the CLI's process-level tests (each `tools/tests/*.rs` that says
//! `mod common;` uses a subset, hence `dead_code` is allowed): the built binary and its JSON
//! runners, the in-process virtual key, the daemon (the service library on a temporary socket)
//! and the hybrid rig — a desktop process whose `qr` line is answered by a virtual phone (or
//! another process) while the rest of its JSON lines are read.
#![allow(dead_code)]

use std::fmt::Debug;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use cablebridge_protocol::hybrid::qr::QrPayload;
use cablebridge_service::client::Client;
use cablebridged::phone::sink::AdvertSinkSpec;
use cablebridged::phone::{PhoneConfig, PhoneState, VirtualPhone};
use cablebridged::tunnel::server::{TunnelServer, TunnelServerConfig, TunnelServerHandle};
use cablebridged::virtual_key::{VirtualKey, VirtualKeyConfig, VirtualKeyHandle};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

// ---------------------------------------------------------------------------------------------
// The binary and its JSON runners.

/// The built `cablebridge` (async).
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cablebridge"))
}

/// Runs the binary on a blocking thread (the key lives on the test's runtime) with `args` and
/// `--json`, no PIN from the test's own environment, `env` added and `stdin` written; asserts
/// exit `code`; the last JSON line.
pub async fn cli(args: &[&str], env: &[(&str, &str)], stdin: &str, code: i32) -> Value {
    let (last, _) = cli_lines(args, env, stdin, code).await;
    last
}

/// Like [`cli`], also returning every JSON line (ceremonies print progress events first).
pub async fn cli_lines(
    args: &[&str],
    env: &[(&str, &str)],
    stdin: &str,
    code: i32,
) -> (Value, Vec<Value>) {
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.push("--json".into());
    let env: Vec<(String, String)> =
        env.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    let stdin = stdin.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cablebridge"))
            .args(&all)
            .env_remove("CABLEBRIDGE_PIN")
            .env_remove("CABLEBRIDGE_NEW_PIN")
            .envs(env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        out.status.code(),
        Some(code),
        "{args:?}: stdout {stdout} stderr {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {l}"))
        })
        .collect();
    (lines.last().cloned().unwrap_or_else(|| panic!("{args:?}: no output")), lines)
}

/// `cablebridge ARGS --json` with no PIN from the test's environment, stdin closed, killed if
/// the test ends first.
pub fn json_command(args: &[&str]) -> Command {
    let mut c = bin();
    c.args(args)
        .arg("--json")
        .env_remove("CABLEBRIDGE_PIN")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    c
}

/// Runs `c` to the end and asserts exit `code` (naming `what`, showing stdout and stderr);
/// returns (stdout, stderr).
pub async fn run_expecting(mut c: Command, what: impl Debug, code: i32) -> (String, String) {
    let out = c.output().await.unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{what:?}: {stdout} {stderr}");
    (stdout, stderr)
}

/// The last line of `stdout`, as JSON.
pub fn last_json(stdout: &str) -> Value {
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

/// [`json_command`] run to the end, exit `code` asserted: its last JSON line.
pub async fn json_cli(args: &[&str], code: i32) -> Value {
    last_json(&run_expecting(json_command(args), args, code).await.0)
}

// ---------------------------------------------------------------------------------------------
// The virtual key.

/// A virtual key's configuration on an ephemeral loopback UDP-HID port.
pub fn key_config() -> VirtualKeyConfig {
    VirtualKeyConfig::new("127.0.0.1:0".parse().unwrap())
}

/// A default virtual key on loopback UDP-HID (its address: `device_address()`).
pub async fn virtual_key() -> VirtualKeyHandle {
    VirtualKey::bind(key_config()).await.unwrap()
}

/// `register --transport usb` against the key at `device` for `user` at `rp`.
pub fn register_args<'a>(device: &'a str, rp: &'a str, user: &'a str) -> Vec<&'a str> {
    vec!["register", "--transport", "usb", "--device", device, "--rp-id", rp, "--user-name", user]
}

// ---------------------------------------------------------------------------------------------
// The daemon.

/// The daemon's configuration: control socket `dir/control.sock`, state in `dir/daemon-state`.
pub fn daemon_config(dir: &Path) -> cablebridge_service::Config {
    cablebridge_service::Config {
        socket: dir.join("control.sock"),
        state_dir: dir.join("daemon-state"),
        ..Default::default()
    }
}

/// The daemon (service library) on a socket in `dir`, until the test's runtime ends; returns
/// once a client connects.
pub async fn daemon(dir: &Path) -> PathBuf {
    let config = daemon_config(dir);
    let socket = config.socket.clone();
    tokio::spawn(cablebridge_service::run(config));
    for _ in 0..1000 {
        if Client::connect(&socket).await.is_ok() {
            return socket;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the daemon did not start");
}

/// [`daemon`] for a synchronous test: on its own runtime (keep it alive as long as the daemon
/// is needed); returns once the socket accepts.
pub fn daemon_blocking(dir: &Path) -> (tokio::runtime::Runtime, PathBuf) {
    let config = daemon_config(dir);
    let socket = config.socket.clone();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.spawn(cablebridge_service::run(config));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(std::time::Instant::now() < deadline, "the daemon did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (runtime, socket)
}

/// The daemon's `status`.
pub async fn status(socket: &Path) -> Value {
    Client::connect(socket).await.unwrap().call("status", json!({})).await.unwrap()
}

/// One of `status`'s counters.
pub fn counter(status: &Value, name: &str) -> u64 {
    status["counters"][name].as_u64().unwrap()
}

// ---------------------------------------------------------------------------------------------
// The hybrid rig.

/// Our tunnel server (in this process, on loopback) and a private directory holding the Unix
/// datagram socket the desktop reads adverts from.
pub struct Hybrid {
    pub server: TunnelServerHandle,
    pub dir: tempfile::TempDir,
    pub adverts: PathBuf,
}

impl Hybrid {
    pub async fn start() -> Hybrid {
        let server = TunnelServer::bind(TunnelServerConfig::default()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let adverts = dir.path().join("adverts.sock");
        Hybrid { server, dir, adverts }
    }

    pub fn tunnel(&self) -> String {
        self.server.base_url()
    }

    /// `cablebridge register --json` for alice at example.com over this rig (`timeout` for the
    /// advert and the user).
    pub fn register(&self, timeout: &str) -> Command {
        let mut c = bin();
        c.args(["register", "--json", "--rp-id", "example.com", "--user-name", "alice"])
            .args(hybrid_flags(&self.adverts, &self.tunnel(), timeout));
        c
    }

    /// A virtual phone's configuration for this rig ([`phone_config`]).
    pub fn phone_config(&self) -> PhoneConfig {
        phone_config(&self.tunnel(), &self.adverts)
    }
}

/// A child's stdout, line by line.
pub type JsonLines = Lines<BufReader<ChildStdout>>;

/// The desktop's hybrid flags: adverts from the Unix datagram socket `adverts`, our tunnel
/// server at `tunnel`, `timeout` for both the advert and the user.
pub fn hybrid_flags(adverts: &Path, tunnel: &str, timeout: &str) -> Vec<String> {
    [
        "--advert-source",
        &format!("unix:{}", adverts.display()),
        "--tunnel-url",
        tunnel,
        "--advert-timeout",
        timeout,
        "--user-timeout",
        timeout,
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Ctrl-C for a child: SIGINT through kill(1), asserted delivered.
pub fn sigint(child: &Child) {
    let pid = child.id().expect("still running").to_string();
    assert!(std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
}

/// A Digital Credentials presentation request (`present --request`) written to
/// `dir/request.json`; its path.
pub fn dc_request(dir: &Path) -> PathBuf {
    let request = dir.join("request.json");
    std::fs::write(&request, r#"{"requests":[{"protocol":"openid4vp","data":{"nonce":"n1"}}]}"#)
        .unwrap();
    request
}

/// Spawns `c` with stdout piped (killed if the test ends first); the child and its stdout lines.
pub fn spawn_lines(c: &mut Command) -> (Child, JsonLines) {
    let mut child = c.stdout(Stdio::piped()).kill_on_drop(true).spawn().unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

/// A virtual phone's configuration: our tunnel server at `tunnel`, adverts to the Unix datagram
/// socket `adverts` every 20 ms.
pub fn phone_config(tunnel: &str, adverts: &Path) -> PhoneConfig {
    let mut cfg = PhoneConfig::new(tunnel.to_owned());
    cfg.sink = AdvertSinkSpec::Unix(adverts.to_path_buf());
    cfg.advert_interval = Duration::from_millis(20);
    cfg
}

/// A virtual phone with fresh state.
pub fn virtual_phone(cfg: PhoneConfig) -> VirtualPhone {
    VirtualPhone::new(cfg, PhoneState::new(&mut rand::rngs::OsRng), None, None)
}

/// A `FIDO:/` URL from a `qr` line.
pub fn qr(url: &str) -> QrPayload {
    QrPayload::from_url(url).unwrap()
}

/// Reads JSON lines into `events` up to the `qr` event; its URL.
pub async fn until_qr(lines: &mut JsonLines, events: &mut Vec<Value>) -> String {
    loop {
        let line = lines.next_line().await.unwrap().expect("the CLI ended before its QR");
        let e: Value = serde_json::from_str(&line).unwrap();
        events.push(e.clone());
        if e["event"] == "qr" {
            break e["url"].as_str().unwrap().to_owned();
        }
    }
}

/// Reads the rest of the JSON lines into `events`.
pub async fn read_rest(lines: &mut JsonLines, events: &mut Vec<Value>) {
    while let Some(line) = lines.next_line().await.unwrap() {
        events.push(serde_json::from_str(&line).unwrap());
    }
}

/// Reads JSON lines into `events` up to the `qr` event, then runs `answer(url)` while the rest
/// are read; what `answer` returned.
pub async fn answer_qr<F, Fut, R>(lines: &mut JsonLines, events: &mut Vec<Value>, answer: F) -> R
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = R>,
{
    let url = until_qr(lines, events).await;
    let (r, ()) = tokio::join!(answer(url), read_rest(lines, events));
    r
}

/// [`answer_qr`] with `phone` scanning the QR (its own outcome is not asserted: the desktop's
/// lines say how it went).
pub async fn phone_answers(
    phone: &mut VirtualPhone,
    lines: &mut JsonLines,
    events: &mut Vec<Value>,
) {
    answer_qr(lines, events, |url| async move {
        let _ = phone.run_qr(&qr(&url)).await;
    })
    .await;
}
