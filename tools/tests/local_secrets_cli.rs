//! Local-secret hygiene through the real binary (issue 8 item 5): the `FIDO:/` URL (it carries
//! the session's QR secret) read from stdin (`--qr -`) or a file (`--qr-file`) by `phone` and
//! `bridge`, tunnel ids kept out of progress output, and `virtual-key` refusing a non-loopback
//! `--listen` without `--allow-remote`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cablebridge_protocol::hybrid::qr::QrPayload;
use cablebridge_protocol::hybrid::tunnel::RequestHint;
use cablebridged::tunnel::server::{TunnelServer, TunnelServerConfig};
use serde_json::Value;
use std::process::{Output, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

const T: Duration = Duration::from_secs(60);

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cablebridge"))
}

/// Runs the binary with `stdin` written to its standard input (then closed).
async fn run_with_stdin(cmd: &mut Command, stdin: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    // The child may stop reading early (over-long input): a broken pipe is its answer.
    let _ = input.write_all(stdin.as_bytes()).await;
    drop(input);
    tokio::time::timeout(T, child.wait_with_output()).await.unwrap().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn fresh_qr() -> QrPayload {
    QrPayload::generate(&mut rand::rngs::OsRng, 1_700_000_000, RequestHint::GetAssertion, false).1
}

/// The phone reads the URL from stdin or a file, opens the tunnel it names (proof it parsed the
/// secret) and shows the tunnel path without the tunnel id; the id appears nowhere in its output.
#[tokio::test]
async fn phone_takes_the_qr_from_stdin_or_a_file_and_never_prints_the_tunnel_id() {
    let server = TunnelServer::bind(TunnelServerConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    for source in ["stdin", "file"] {
        let qr = fresh_qr();
        let url = qr.to_url();
        let mut cmd = bin();
        cmd.args(["phone", "--json", "--tunnel-url", &server.base_url(), "--timeout-secs", "1"]);
        let stdin = match source {
            "stdin" => {
                cmd.args(["--qr", "-"]);
                format!("  {url}\n")
            }
            _ => {
                let path = dir.path().join("qr.txt");
                std::fs::write(&path, format!("{url}\n")).unwrap();
                cmd.arg("--qr-file").arg(&path);
                String::new()
            }
        };
        let out = run_with_stdin(&mut cmd, &stdin).await;
        let all = text(&out);
        // No desktop comes: the phone gives up after --timeout-secs (not a usage error).
        assert!(![Some(0), Some(2)].contains(&out.status.code()), "{source}: {all}");
        let events: Vec<Value> = String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let connecting = events.iter().find(|e| e["event"] == "connecting").expect(&all);
        assert_eq!(connecting["path"], "/cable/new/…", "{source}: {all}");
        assert!(events.iter().any(|e| e["event"] == "tunnel_open"), "{source}: {all}");
        let tunnel_id = qr.tunnel_id().to_hex();
        for id in [tunnel_id.clone(), tunnel_id.to_lowercase()] {
            assert!(!all.contains(&id), "{source}: tunnel id {id} printed: {all}");
        }
    }
}

#[tokio::test]
async fn bad_qr_input_is_refused_with_its_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let phone = || {
        let mut c = bin();
        c.args(["phone", "--json", "--tunnel-url", "ws://127.0.0.1:9", "--timeout-secs", "1"]);
        c
    };
    // Garbage, nothing, and too much on stdin: usage errors (exit 2) naming the problem.
    for (stdin, says) in [
        ("https://example.com/\n", "invalid FIDO:/ URL"),
        ("  \n", "no FIDO:/ URL in standard input"),
        (&"FIDO:/1".repeat(4000), "more than 16384 bytes"),
    ] {
        let out = run_with_stdin(phone().args(["--qr", "-"]), stdin).await;
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(text(&out).contains(says), "{says}: {}", text(&out));
    }
    // A missing file: environment (exit 3), like an unreadable --qr-image.
    let missing = dir.path().join("missing.txt");
    let out = run_with_stdin(phone().arg("--qr-file").arg(&missing), "").await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("missing.txt"), "{}", text(&out));
    // --qr and --qr-file together: usage.
    let out = run_with_stdin(phone().args(["--qr", "-", "--qr-file"]).arg(&missing), "").await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

/// The bridge reads the URL from stdin before it opens the key: a bad URL is exit 2 without
/// touching the device; a good one gets as far as the (absent) device.
#[tokio::test]
async fn bridge_takes_the_qr_from_stdin_or_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let bridge = || {
        let mut c = bin();
        c.args(["bridge", "--json", "--device", "udp:127.0.0.1:9", "--timeout-secs", "1"]);
        c
    };
    let out = run_with_stdin(bridge().args(["--qr", "-"]), "FIDO:/123\n").await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("invalid FIDO:/ URL"), "{}", text(&out));

    let url = fresh_qr().to_url();
    let path = dir.path().join("qr.txt");
    std::fs::write(&path, &url).unwrap();
    for out in [
        run_with_stdin(bridge().args(["--qr", "-"]), &url).await,
        run_with_stdin(bridge().arg("--qr-file").arg(&path), "").await,
    ] {
        // Past the QR: the failure is the device (nothing answers CTAPHID INIT on port 9).
        assert_ne!(out.status.code(), Some(2), "{}", text(&out));
        assert_ne!(out.status.code(), Some(0), "{}", text(&out));
        assert!(!text(&out).contains("FIDO:/"), "{}", text(&out));
        assert!(text(&out).contains("udp:127.0.0.1:9"), "{}", text(&out));
    }
    // Neither --qr, --qr-file nor --qr-image: usage.
    let out = run_with_stdin(&mut bridge(), "").await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[tokio::test]
async fn virtual_key_listens_beyond_loopback_only_when_allowed() {
    // Refused: exit 2 with the reason, and nothing was bound (no listening line).
    let out =
        run_with_stdin(bin().args(["virtual-key", "--json", "--listen", "udp:0.0.0.0:0"]), "")
            .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--allow-remote"), "{}", text(&out));
    assert!(!text(&out).contains("\"listening\""), "{}", text(&out));

    // Loopback (any of 127/8) and an explicit --allow-remote both start the key.
    for args in
        [&["--listen", "udp:127.0.0.2:0"][..], &["--listen", "udp:0.0.0.0:0", "--allow-remote"][..]]
    {
        let mut key = bin()
            .args(["virtual-key", "--json"])
            .args(args)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(key.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(T, lines.next_line()).await.unwrap().unwrap().unwrap();
        let listening: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(listening["event"], "listening", "{args:?}: {line}");
        key.start_kill().unwrap();
        let _ = key.wait().await;
    }
}
