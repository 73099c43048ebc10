//! `cablebridge status` against a real daemon (the service library running in this process on a
//! temporary socket) and without one (exit 3), `completions` and `man`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

fn cli() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cablebridge"));
    c.env_remove("CABLEBRIDGE_SOCKET");
    c
}

#[test]
fn status_without_a_daemon_exits_3_and_says_how_to_start_it() {
    let dir = tempfile::tempdir().unwrap();
    let out =
        cli().arg("status").arg("--socket").arg(dir.path().join("none.sock")).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no cablebridged daemon reachable"), "{err}");
    assert!(err.contains("systemctl enable --now cablebridged.socket"), "{err}");
}

#[test]
fn status_prints_the_running_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let (_runtime, socket) = common::daemon_blocking(dir.path());
    let out = cli().args(["status", "--json", "--socket"]).arg(&socket).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["pid"], std::process::id());
    assert_eq!(v["api_version"], 1);
    assert_eq!(v["sessions"], serde_json::json!([]));
    // The same through CABLEBRIDGE_SOCKET, human-readable.
    let out = cli().arg("status").env("CABLEBRIDGE_SOCKET", &socket).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("0 ceremonies running"), "{text}");
}

#[test]
fn completions_and_man_pages_come_from_the_clap_definitions() {
    for shell in ["bash", "zsh", "fish"] {
        let out = cli().args(["completions", shell]).output().unwrap();
        assert!(out.status.success());
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains("register") && script.contains("tunnel-server"), "{shell}");
    }
    let dir = tempfile::tempdir().unwrap();
    let out = cli().arg("man").arg(dir.path()).output().unwrap();
    assert!(out.status.success());
    let top = std::fs::read_to_string(dir.path().join("cablebridge.1")).unwrap();
    assert!(top.starts_with(".ie") && top.contains(".TH cablebridge 1"), "{top}");
    let reg = std::fs::read_to_string(dir.path().join("cablebridge-register.1")).unwrap();
    assert!(reg.contains("rp\\-id"), "{reg}");
}

/// Runs the binary with stdout a channel whose reader is already gone (`… | head -c 0` that
/// won the race): the first write fails with EPIPE. (A socket pair rather than a pipe: the
/// MSRV has no `std::io::pipe`; a write to either fails the same way.)
fn with_closed_stdout(mut c: Command) -> std::process::Output {
    let (reader, writer) = std::os::unix::net::UnixStream::pair().unwrap();
    drop(reader);
    c.stdout(std::os::fd::OwnedFd::from(writer)).stderr(std::process::Stdio::piped());
    let child = c.spawn().unwrap();
    drop(c);
    child.wait_with_output().unwrap()
}

#[test]
fn a_closed_stdout_ends_the_process_quietly_with_141() {
    // `cablebridge status | head -c 10` panicked in output::finish (println! on EPIPE).
    let dir = tempfile::tempdir().unwrap();
    let (_runtime, socket) = common::daemon_blocking(dir.path());
    let mut status = cli();
    status.arg("status").arg("--socket").arg(&socket);
    let mut status_json = cli();
    status_json.args(["status", "--json", "--socket"]).arg(&socket);
    // The finish path (human and JSON), a command with its own println! (runs list), and a
    // ceremony's JSON progress lines (stdout gone before the first event).
    let mut runs = cli();
    runs.args(["runs", "list", "--state-dir"]).arg(dir.path().join("runs"));
    let mut ceremony = cli();
    ceremony
        .args(["register", "--json", "--no-daemon", "--rp-id", "example.com", "--user-name", "a"])
        .args(["--no-linking", "--advert-source", "stdin", "--advert-timeout", "30s"])
        .stdin(std::process::Stdio::null());
    let mut domain = cli();
    domain.args(["tunnel-domain", "266"]);
    for (name, c) in [
        ("status", status),
        ("status --json", status_json),
        ("runs list", runs),
        ("register --json", ceremony),
        ("tunnel-domain", domain),
    ] {
        let out = with_closed_stdout(c);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{name}: {err}");
        assert_eq!(out.status.code(), Some(141), "{name}: {err}");
    }
}
