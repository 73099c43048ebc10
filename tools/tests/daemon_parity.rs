//! The CLI through the daemon prints what it prints in-process: the same ceremony runs with
//! `--no-daemon` and with `--daemon` (the real daemon, the service library on a temporary
//! socket in this test process) and the JSON lines are diffed after normalising timings,
//! session ids and random values; exit codes are compared too, failures included (a hybrid
//! advert timeout, a wrong USB PIN). Plus: auto mode uses a reachable daemon (its `status`
//! counters move) and falls back when there is none; `--daemon` with no daemon is exit 3 and
//! with a flag only the CLI can serve exit 2; Ctrl-C during a daemon ceremony cancels the
//! daemon's session like the in-process Ctrl-C; `watch` shows the QR and result of a session
//! another client started, and `watch` piped into a reader that stalls says what it missed
//! while the daemon's ceremonies go on.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use cablebridge_protocol::hybrid::qr::QrPayload;
use cablebridge_service::client::Client;
use cablebridged::tunnel::server::{TunnelServer, TunnelServerConfig};
use cablebridged::virtual_key::VirtualKey;
use common::{
    counter, daemon, daemon_config, hybrid_flags, key_config, phone_answers, phone_config,
    spawn_lines, status, virtual_phone,
};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

const T: Duration = Duration::from_secs(60);

fn cli(mode: &str, socket: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cablebridge"));
    c.env("CABLEBRIDGE_SOCKET", socket).env_remove("CABLEBRIDGE_PIN");
    if !mode.is_empty() {
        c.arg(mode);
    }
    c.stdin(Stdio::null()).kill_on_drop(true);
    c
}

/// Runs a command to the end: (exit code, JSON lines of stdout, stderr).
async fn output(mut c: Command) -> (i32, Vec<Value>, String) {
    let out = tokio::time::timeout(T, c.output()).await.unwrap().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    (out.status.code().unwrap_or(-1), lines, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Timings, random values and per-run ids replaced by placeholders; everything else kept.
fn normalise(v: &Value) -> Value {
    // `sha256`: an attestation certificate's fingerprint; each mode gets a fresh virtual key,
    // which makes its own attestation certificate.
    const RANDOM: [&str; 11] = [
        "url",
        "sha256",
        "credential_id",
        "attestation_object",
        "authenticator_data",
        "signature",
        "client_data_json",
        "public_key_cose",
        "user_handle",
        "routing_id",
        "session",
    ];
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if RANDOM.contains(&k.as_str()) && !v.is_null() {
                        json!("<random>")
                    } else if k.ends_with("_ms") {
                        zero_numbers(v)
                    } else {
                        normalise(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(normalise).collect()),
        other => other.clone(),
    }
}

fn zero_numbers(v: &Value) -> Value {
    match v {
        Value::Number(_) => json!(0),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), zero_numbers(v))).collect())
        }
        other => other.clone(),
    }
}

/// Asserts the two runs printed the same lines (normalised) and exited alike. Consecutive
/// equal lines count once: how many keepalives a USB key sends depends on timing.
fn assert_same(what: &str, here: &(i32, Vec<Value>), there: &(i32, Vec<Value>)) {
    let lines = |run: &(i32, Vec<Value>)| {
        let mut v: Vec<Value> = run.1.iter().map(normalise).collect();
        v.dedup();
        v
    };
    let (a, b) = (lines(here), lines(there));
    assert_eq!(here.0, there.0, "{what}: exit codes differ\nhere: {a:#?}\ndaemon: {b:#?}");
    assert_eq!(a, b, "{what}: output differs");
    assert!(!a.is_empty(), "{what}: no output");
}

fn policy_fixture() -> String {
    format!(
        "{}/../daemon/tests/fixtures/policy/legacy-block-authenticator.json",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// A hybrid registration answered by a virtual phone: the phone scans the QR from the `qr` line.
async fn hybrid_register(mode: &str, socket: &Path, tunnel: &str, dir: &Path) -> (i32, Vec<Value>) {
    let adverts = dir.join(format!("adverts{mode}.sock"));
    let mut c = cli(mode, socket);
    c.args(["register", "--json", "--rp-id", "example.com", "--user-name", "alice"])
        .args(hybrid_flags(&adverts, tunnel, "20s"))
        .args(["--no-linking", "--policy", &policy_fixture()]);
    let (mut child, mut lines) = spawn_lines(&mut c);
    let mut phone = virtual_phone(phone_config(tunnel, &adverts));
    let mut events: Vec<Value> = Vec::new();
    tokio::time::timeout(T, phone_answers(&mut phone, &mut lines, &mut events)).await.unwrap();
    let code = child.wait().await.unwrap().code().unwrap_or(-1);
    (code, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_ceremonies_print_the_same_in_process_and_through_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let socket = daemon(dir.path()).await;
    let server = TunnelServer::bind(TunnelServerConfig::default()).await.unwrap();

    let tunnel = server.base_url();
    let here = hybrid_register("--no-daemon", &socket, &tunnel, dir.path()).await;
    assert_eq!(counter(&status(&socket).await, "sessions_started"), 0);
    let there = hybrid_register("--daemon", &socket, &tunnel, dir.path()).await;
    assert_eq!(counter(&status(&socket).await, "sessions_started"), 1, "the daemon ran it");
    assert_eq!(here.0, 0, "{:?}", here.1);
    let result = here.1.last().unwrap();
    assert_eq!(result["event"], "result");
    assert_eq!(result["policy"]["verdict"], "accept", "the evidence flags work: {result}");
    assert_same("hybrid register", &here, &there);

    // A failure: no phone answers within the advert timeout (stage advert, exit 1).
    let fail = |mode: &'static str| {
        let mut c = cli(mode, &socket);
        c.args(["authenticate", "--json", "--rp-id", "example.com", "--no-linking"])
            .arg("--advert-source")
            .arg(format!("unix:{}", dir.path().join(format!("quiet{mode}.sock")).display()))
            .args(["--tunnel-url", &server.base_url(), "--advert-timeout", "1s"]);
        output(c)
    };
    let (code, lines, _) = fail("--no-daemon").await;
    let here = (code, lines);
    let (code, lines, _) = fail("--daemon").await;
    let there = (code, lines);
    assert_eq!(here.0, 1);
    assert_eq!(here.1.last().unwrap()["stage"], "advert", "{:?}", here.1);
    assert_same("hybrid advert timeout", &here, &there);
    assert_eq!(counter(&status(&socket).await, "sessions_failed"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usb_ceremonies_print_the_same_in_process_and_through_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let socket = daemon(dir.path()).await;
    // One fresh key per run, so both see the same key state (PIN retries in messages).
    let run = |mode: &'static str| {
        let socket = socket.clone();
        async move {
            let mut config = key_config();
            config.presence_delay = Duration::from_millis(20);
            let key = VirtualKey::bind(config).await.unwrap();
            let d = key.device_address();
            let usb = ["--transport", "usb", "--device", d.as_str(), "--rp-id", "example.com"];
            let mut c = cli(mode, &socket);
            c.args(["register", "--json", "--user-name", "alice"]).args(usb);
            let (code, reg, err) = output(c).await;
            assert_eq!(code, 0, "{mode} {reg:?} {err}");
            let last = reg.last().unwrap().clone();
            let mut c = cli(mode, &socket);
            c.args(["authenticate", "--json"]).args(usb).args([
                "--allow-credential",
                last["credential_id"].as_str().unwrap(),
                "--public-key",
                last["public_key_cose"].as_str().unwrap(),
            ]);
            let (code, auth, err) = output(c).await;
            assert_eq!(code, 0, "{mode} {auth:?} {err}");
            // A PIN on the key, then the wrong one (forwarded as a param through the daemon).
            let mut c = cli("", &socket);
            c.args(["pin", "set", "--json", "--device", d.as_str()])
                .env("CABLEBRIDGE_NEW_PIN", "1122");
            assert_eq!(output(c).await.0, 0);
            let mut c = cli(mode, &socket);
            c.args(["register", "--json", "--user-name", "bob"])
                .args(usb)
                .env("CABLEBRIDGE_PIN", "9999");
            let (code, wrong, _) = output(c).await;
            let mut c = cli(mode, &socket);
            c.args(["register", "--json", "--user-name", "carol", "--pin-stdin"])
                .args(usb)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped());
            let mut child = c.spawn().unwrap();
            child.stdin.take().unwrap().write_all(b"1122\n").await.unwrap();
            let out = tokio::time::timeout(T, child.wait_with_output()).await.unwrap().unwrap();
            let right: Vec<Value> = String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            key.shutdown().await.unwrap();
            // Each run has its own key: its address is the one expected difference.
            let device = |lines: Vec<Value>| -> Vec<Value> {
                let text = serde_json::to_string(&lines).unwrap().replace(d.as_str(), "<device>");
                serde_json::from_str(&text).unwrap()
            };
            [
                (0, device(reg)),
                (0, device(auth)),
                (code, device(wrong)),
                (out.status.code().unwrap_or(-1), device(right)),
            ]
        }
    };
    let here = run("--no-daemon").await;
    assert_eq!(counter(&status(&socket).await, "sessions_started"), 0);
    let there = run("--daemon").await;
    assert_eq!(counter(&status(&socket).await, "sessions_started"), 4, "the daemon ran them");
    let names = ["usb register", "usb authenticate", "usb wrong PIN", "usb PIN from stdin"];
    for ((name, a), b) in names.iter().zip(&here).zip(&there) {
        assert_same(name, a, b);
    }
    let wrong = &here[2];
    assert_ne!(wrong.0, 0, "{:?}", wrong.1);
    assert_eq!(wrong.1.last().unwrap()["event"], "error", "{:?}", wrong.1);
    assert_eq!(here[3].0, 0, "{:?}", here[3].1);
    assert_eq!(here[1].1.last().unwrap()["verification"]["ok"], true);
}

/// A hybrid authentication no phone answers quickly: enough to see which path ran it.
fn quick_failure(mode: &str, socket: &Path, dir: &Path) -> Command {
    let mut c = cli(mode, socket);
    c.args(["authenticate", "--json", "-v", "--rp-id", "example.com", "--no-linking"])
        .arg("--advert-source")
        .arg(format!("unix:{}", dir.join("auto.sock").display()))
        .args(["--tunnel-url", "ws://127.0.0.1:9", "--advert-timeout", "500ms"]);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_mode_uses_a_reachable_daemon_and_falls_back_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let socket = daemon(dir.path()).await;
    let nowhere = dir.path().join("nobody.sock");

    // Reachable: the daemon runs it (counter), and -v says so.
    let (code, lines, err) = output(quick_failure("", &socket, dir.path())).await;
    assert_eq!((code, lines.last().unwrap()["stage"].as_str()), (1, Some("advert")), "{err}");
    assert_eq!(counter(&status(&socket).await, "sessions_started"), 1);
    assert!(err.contains("through cablebridged"), "{err}");

    // --socket wins over CABLEBRIDGE_SOCKET.
    let mut c = quick_failure("", &nowhere, dir.path());
    c.args(["--socket", socket.to_str().unwrap()]);
    assert_eq!(output(c).await.0, 1);
    assert_eq!(counter(&status(&socket).await, "sessions_started"), 2);

    // Not reachable: in this process, same result; -v says why.
    let (code, lines, err) = output(quick_failure("", &nowhere, dir.path())).await;
    assert_eq!((code, lines.last().unwrap()["stage"].as_str()), (1, Some("advert")), "{err}");
    assert!(err.contains("running the ceremony in this process"), "{err}");
    assert!(err.contains("nobody.sock"), "{err}");
    // Without -v nothing is said about it.
    let mut c = cli("", &nowhere);
    c.args(["authenticate", "--json", "--rp-id", "example.com", "--no-linking"])
        .arg("--advert-source")
        .arg(format!("unix:{}", dir.path().join("auto2.sock").display()))
        .args(["--advert-timeout", "300ms"]);
    let (code, _, err) = output(c).await;
    assert_eq!(code, 1);
    assert!(!err.contains("in this process"), "{err}");

    // Needs this process (stdin feed): auto runs it here even with the daemon up; --daemon
    // refuses naming the flag (exit 2), before asking the daemon anything.
    let stdin_feed =
        |mode: &'static str| {
            let mut c = cli(mode, &socket);
            c.args(["register", "--json", "-v", "--rp-id", "example.com", "--user-name", "a"])
                .args(["--no-linking", "--advert-source", "stdin", "--advert-timeout", "300ms"]);
            output(c)
        };
    let (code, _, err) = stdin_feed("").await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--advert-source stdin"), "{err}");
    let (code, lines, _) = stdin_feed("--daemon").await;
    assert_eq!(code, 2);
    let message = lines.last().unwrap()["message"].as_str().unwrap().to_owned();
    assert!(message.contains("--daemon") && message.contains("--advert-source stdin"), "{message}");
    let mut c = cli("--daemon", &socket);
    c.args(["register", "--rp-id", "example.com", "--user-name", "a", "--state-dir", "/tmp/x"]);
    let (code, _, err) = output(c).await;
    assert_eq!(code, 2);
    assert!(err.contains("--state-dir"), "{err}");
    assert_eq!(counter(&status(&socket).await, "sessions_started"), 2, "none of those ran there");

    // --daemon and nobody there: exit 3, saying how to start it.
    let (code, lines, _) = output(quick_failure("--daemon", &nowhere, dir.path())).await;
    assert_eq!(code, 3);
    let message = lines.last().unwrap()["message"].as_str().unwrap().to_owned();
    assert!(message.contains("no cablebridged daemon reachable"), "{message}");
    // --daemon and --no-daemon together: a usage error.
    let mut c = quick_failure("--daemon", &socket, dir.path());
    c.arg("--no-daemon");
    assert_eq!(output(c).await.0, 2);
}

/// Starts a hybrid registration that waits for an advert, waits for its QR line, sends
/// SIGINT, and returns (exit code, lines).
async fn interrupted(mode: &str, socket: &Path, dir: &Path) -> (i32, Vec<Value>) {
    let mut c = cli(mode, socket);
    c.args(["register", "--json", "--rp-id", "example.com", "--user-name", "alice"])
        .arg("--advert-source")
        .arg(format!("unix:{}", dir.join(format!("int{mode}.sock")).display()))
        .args(["--tunnel-url", "ws://127.0.0.1:9", "--no-linking", "--advert-timeout", "60s"])
        .stdout(Stdio::piped());
    let mut child: Child = c.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut events = Vec::new();
    tokio::time::timeout(T, async {
        loop {
            let e: Value =
                serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
            events.push(e.clone());
            if e["event"] == "progress" && e["stage"] == "qr_shown" {
                break;
            }
        }
        let pid = child.id().unwrap().to_string();
        assert!(std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success());
        while let Some(line) = lines.next_line().await.unwrap() {
            events.push(serde_json::from_str(&line).unwrap());
        }
    })
    .await
    .unwrap();
    (child.wait().await.unwrap().code().unwrap_or(-1), events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_a_daemon_ceremony_cancels_its_session() {
    let dir = tempfile::tempdir().unwrap();
    let socket = daemon(dir.path()).await;
    let here = interrupted("--no-daemon", &socket, dir.path()).await;
    let there = interrupted("--daemon", &socket, dir.path()).await;
    assert_eq!(here.0, 1, "{:?}", here.1);
    let last = here.1.last().unwrap();
    assert_eq!((last["event"].as_str(), last["stage"].as_str()), (Some("error"), Some("advert")));
    assert!(last["message"].as_str().unwrap().contains("cancelled"), "{last}");
    assert_same("Ctrl-C", &here, &there);
    // The daemon's session is gone and was counted as cancelled.
    let s = status(&socket).await;
    assert_eq!(s["sessions"], json!([]), "{s}");
    assert_eq!(counter(&s, "sessions_started"), 1);
    assert_eq!(counter(&s, "sessions_cancelled"), 1, "{s}");
}

/// Spawns `watch` and waits until it has subscribed (its "watching" line on stderr).
async fn watcher(
    socket: &Path,
    args: &[&str],
) -> (Child, tokio::io::Lines<BufReader<tokio::process::ChildStdout>>) {
    let mut c = cli("", socket);
    c.arg("watch").args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = tokio::time::timeout(T, err.next_line()).await.unwrap().unwrap().unwrap();
    assert!(first.contains("watching"), "{first}");
    let out = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_shows_the_qr_and_result_of_a_session_another_client_started() {
    let dir = tempfile::tempdir().unwrap();
    let socket = daemon(dir.path()).await;
    let server = TunnelServer::bind(TunnelServerConfig::default()).await.unwrap();
    let (mut json_watch, mut json_lines) = watcher(&socket, &["--json"]).await;
    let (mut human_watch, human_lines) = watcher(&socket, &[]).await;

    // Another client (as the uhid front would) starts a session; nobody else sees its QR.
    let adverts = dir.path().join("watched.sock");
    let mut client = Client::connect(&socket).await.unwrap();
    let started = client
        .call(
            "ceremony.register",
            json!({"rp_id": "example.com", "user_name": "alice", "no_linking": true,
                   "advert_source": format!("unix:{}", adverts.display()),
                   "tunnel_url": server.base_url(), "advert_timeout": "20s"}),
        )
        .await
        .unwrap();
    let session = started["session"].as_u64().unwrap();
    let (mut one_watch, mut one_lines) =
        watcher(&socket, &["--json", "--session", &session.to_string()]).await;

    let mut seen = Vec::new();
    tokio::time::timeout(T, async {
        let qr = loop {
            let e: Value =
                serde_json::from_str(&json_lines.next_line().await.unwrap().unwrap()).unwrap();
            assert_eq!(e["session"], session, "{e}");
            seen.push(e.clone());
            if e["event"] == "qr" {
                break QrPayload::from_url(e["url"].as_str().unwrap()).unwrap();
            }
        };
        let mut phone = virtual_phone(phone_config(&server.base_url(), &adverts));
        phone.run_qr(&qr).await.unwrap();
        loop {
            let e: Value =
                serde_json::from_str(&json_lines.next_line().await.unwrap().unwrap()).unwrap();
            seen.push(e.clone());
            if e["event"] == "result" {
                break;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(seen.last().unwrap()["verification"]["ok"], true, "{seen:?}");
    let stages: Vec<&str> = seen.iter().filter_map(|e| e["stage"].as_str()).collect();
    assert!(stages.contains(&"handshake") && stages.contains(&"user_response"), "{stages:?}");

    // --session ends with its session (exit 0 after a result), having printed that result.
    let status_one = tokio::time::timeout(T, one_watch.wait()).await.unwrap().unwrap();
    assert_eq!(status_one.code(), Some(0));
    let mut last = None;
    while let Some(line) = one_lines.next_line().await.unwrap() {
        last = Some(serde_json::from_str::<Value>(&line).unwrap());
    }
    assert_eq!(last.unwrap()["event"], "result");

    // The others run until Ctrl-C (exit 0); the human one drew the QR and said who succeeded.
    for child in [&mut json_watch, &mut human_watch] {
        let pid = child.id().unwrap().to_string();
        std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap();
        let s = tokio::time::timeout(T, child.wait()).await.unwrap().unwrap();
        assert_eq!(s.code(), Some(0));
    }
    let mut text = String::new();
    let mut human_lines = human_lines;
    while let Some(line) = human_lines.next_line().await.unwrap() {
        text.push_str(&line);
        text.push('\n');
    }
    assert!(text.contains(&format!("session {session}: QR code")), "{text}");
    assert!(text.contains("Scan with your phone's camera, or paste: FIDO:/"), "{text}");
    assert!(text.contains("█") || text.contains("▀") || text.contains("▄"), "a drawing: {text}");
    assert!(text.contains(&format!("session {session}: register succeeded")), "{text}");
    assert!(text.contains("handshake done"), "{text}");

    // A session that does not exist: exit 2 naming --session.
    let mut c = cli("", &socket);
    c.args(["watch", "--session", "999"]);
    let (code, _, err) = output(c).await;
    assert_eq!(code, 2);
    assert!(err.contains("--session"), "{err}");
    drop(client);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_that_refuses_us_is_skipped_in_auto_mode_and_exit_3_with_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = daemon_config(dir.path());
    let socket = config.socket.clone();
    // The tests run as root: without this the daemon would let us in.
    config.control.allow_root = false;
    config.control.allowed_groups = Vec::new();
    tokio::spawn(cablebridge_service::run(config));
    for _ in 0..1000 {
        if tokio::net::UnixStream::connect(&socket).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (code, lines, err) = output(quick_failure("", &socket, dir.path())).await;
    assert_eq!((code, lines.last().unwrap()["stage"].as_str()), (1, Some("advert")), "{err}");
    assert!(err.contains("the daemon did not start it") && err.contains("access denied"), "{err}");
    let (code, lines, _) = output(quick_failure("--daemon", &socket, dir.path())).await;
    assert_eq!(code, 3, "{lines:?}");
    let message = lines.last().unwrap()["message"].as_str().unwrap().to_owned();
    assert!(message.contains("access denied"), "{message}");
}

/// Human mode: the text on stderr (QR drawing, progress lines, the error line) with elapsed
/// times, the URL and the drawing's cells normalised.
fn human(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| !l.chars().any(|c| matches!(c, '█' | '▀' | '▄')))
        .map(|l| {
            let l = match (l.find('['), l.find(" ms]")) {
                (Some(0), Some(end)) => format!("[ms]{}", &l[end + 4..]),
                _ => l.to_owned(),
            };
            match l.find("FIDO:/") {
                Some(i) => format!("{}FIDO:/<random>", &l[..i]),
                None => l,
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn human_output_is_the_same_through_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let socket = daemon(dir.path()).await;
    let run = |mode: &'static str| {
        let mut c = cli(mode, &socket);
        c.args(["register", "--rp-id", "example.com", "--user-name", "alice", "--no-linking"])
            .arg("--advert-source")
            .arg(format!("unix:{}", dir.path().join(format!("h{mode}.sock")).display()))
            .args(["--tunnel-url", "ws://127.0.0.1:9", "--advert-timeout", "1s"]);
        output(c)
    };
    let (code_here, out_here, err_here) = run("--no-daemon").await;
    let (code_there, out_there, err_there) = run("--daemon").await;
    assert_eq!((code_here, code_there), (1, 1));
    assert!(out_here.is_empty() && out_there.is_empty(), "human mode prints nothing on stdout");
    assert!(err_here.contains('█') || err_here.contains('▀'), "the QR drawing: {err_here}");
    assert!(err_there.contains('█') || err_there.contains('▀'), "the QR drawing: {err_there}");
    let (a, b) = (human(&err_here), human(&err_there));
    assert_eq!(a, b);
    assert!(a.iter().any(|l| l.starts_with("Scan with your phone's camera")), "{a:?}");
    assert!(a.last().unwrap().starts_with("cablebridge: advert failed"), "{a:?}");
    assert_eq!(counter(&status(&socket).await, "sessions_started"), 1);
}

/// `cablebridge watch --json | <a reader that stops reading>`: the pipe fills, watch blocks on
/// its stdout, its socket fills and the daemon lets it lag; ceremonies of another client go on.
/// When the reader resumes, watch says on stderr how many events it missed, and the lines it
/// printed plus the missed count are exactly the events emitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_into_a_stalled_reader_says_what_it_missed_and_stalls_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = daemon_config(dir.path());
    // Hundreds of ceremonies from one client: the request rate limit is out of the way.
    config.control.rate_limit_per_second = 100_000;
    config.control.rate_limit_burst = 100_000;
    let socket = config.socket.clone();
    tokio::spawn(cablebridge_service::run(config));
    let mut client = loop {
        if let Ok(c) = Client::connect(&socket).await {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut c = cli("", &socket);
    c.args(["watch", "--json"]).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut watch = c.spawn().unwrap();
    let mut err = BufReader::new(watch.stderr.take().unwrap()).lines();
    let first = tokio::time::timeout(T, err.next_line()).await.unwrap().unwrap().unwrap();
    assert!(first.contains("watching"), "{first}");
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    let keys = [
        VirtualKey::bind(key_config()).await.unwrap(),
        VirtualKey::bind(key_config()).await.unwrap(),
        VirtualKey::bind(key_config()).await.unwrap(),
        VirtualKey::bind(key_config()).await.unwrap(),
    ];

    // What can sit between the daemon and a stalled reader: the pipe (64 KiB), watch's read
    // buffer, the socket's send buffer, the connection's queue (64 lines) and the
    // subscriber's broadcast slots (256 events). Emit more than all of it.
    let sndbuf = std::fs::read_to_string("/proc/sys/net/core/wmem_default")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(212_992);
    let holds = |longest: usize| 64 * 1024 + 64 * 1024 + sndbuf + (64 + 256 + 2) * longest;
    let (mut emitted, mut bytes, mut longest) = (0u64, 0usize, 0usize);
    // The last four sessions: watch has printed everything it got once it printed each one's
    // result. (Not only the last result this client saw: watch's stream may order the four
    // sessions' final events differently, and it did once: printed + missed fell short by one.)
    let mut last_batch: Vec<u64> = Vec::new();
    let mut ceremonies = 0u32;
    while ceremonies < 8 || bytes <= holds(longest) {
        assert!(ceremonies < 4000, "{bytes} bytes of events never outgrew watch's path");
        let mut open = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let p = json!({"transport": "usb", "device": key.device_address(),
                           "rp_id": "stall.example", "user_name": format!("u{ceremonies}-{i}"),
                           "resident_key": "discouraged", "user_timeout": "20s"});
            open.push(
                client.call("ceremony.register", p).await.unwrap()["session"].as_u64().unwrap(),
            );
        }
        let batch = open.clone();
        while !open.is_empty() {
            let n = tokio::time::timeout(T, client.next_notification()).await.unwrap().unwrap();
            let e = &n["params"];
            let id = e["session"].as_u64().unwrap();
            emitted += 1;
            let line = e.to_string().len() + 1;
            bytes += line;
            longest = longest.max(line);
            assert_ne!(e["event"], "error", "a ceremony failed while watch was stalled: {e}");
            if e["event"] == "result" {
                open.retain(|o| *o != id);
                ceremonies += 1;
            }
        }
        last_batch = batch;
    }

    // The reader resumes: every line is an event, up to the last ceremony's result.
    let mut printed = 0u64;
    tokio::time::timeout(T, async {
        loop {
            let line = lines.next_line().await.unwrap().expect("watch still runs");
            let e: Value = serde_json::from_str(&line).unwrap();
            printed += 1;
            if e["event"] == "result" {
                last_batch.retain(|id| e["session"] != *id);
                if last_batch.is_empty() {
                    break;
                }
            }
        }
    })
    .await
    .unwrap();
    let pid = watch.id().unwrap().to_string();
    std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap();
    let exit = tokio::time::timeout(T, watch.wait()).await.unwrap().unwrap();
    assert_eq!(exit.code(), Some(0), "Ctrl-C ends watch");
    let mut missed = 0u64;
    while let Some(line) = err.next_line().await.unwrap() {
        if let Some(rest) = line.strip_prefix("cablebridge: missed ") {
            assert!(line.ends_with(" event(s) (read too slowly)"), "{line}");
            missed += rest.split(' ').next().unwrap().parse::<u64>().unwrap();
        }
    }
    println!("{ceremonies} ceremonies, {emitted} events: watch printed {printed}, missed {missed}");
    assert!(missed > 0, "watch must have been told it lagged");
    assert_eq!(printed + missed, emitted, "every event printed or counted as missed");
}
