//! `cablebridge tunnel-server` as a user runs it: the limit flags are documented in `--help`,
//! take effect (a per-source cap of 1 answers the second connection with HTTP 429 before any
//! upgrade), and the `stopped` report after Ctrl-C (SIGINT) carries the refusal counters.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Command;

const T: Duration = Duration::from_secs(30);

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cablebridge"))
}

#[tokio::test]
async fn help_documents_every_limit_flag() {
    let out = tokio::time::timeout(T, bin().args(["tunnel-server", "--help"]).output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--max-connections ",
        "--max-connections-per-ip",
        "--max-tunnels",
        "--max-unpaired-buffer",
        "--max-request-bytes",
        "--handshake-timeout-secs",
        "--listen-ttl-secs",
        "--idle-timeout-secs",
        "--max-lifetime-secs",
        "--send-timeout-secs",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
    }
    assert!(help.contains("429"), "the help says what a client gets over the cap");
}

async fn next_json(lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>) -> Value {
    let line = tokio::time::timeout(T, lines.next_line()).await.unwrap().unwrap().unwrap();
    serde_json::from_str(&line).unwrap()
}

#[tokio::test]
async fn per_source_cap_flag_answers_429_and_the_stop_report_counts_it() {
    let mut server = bin()
        .args(["tunnel-server", "--json", "--listen", "127.0.0.1:0"])
        .args(["--max-connections-per-ip", "1", "--handshake-timeout-secs", "30"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let listening = next_json(&mut lines).await;
    assert_eq!(listening["event"], "listening");
    let addr = listening["address"].as_str().unwrap().to_owned();

    // The first connection holds the only place for 127.0.0.1 (it never sends a request).
    let _held = TcpStream::connect(&addr).await.unwrap();
    let mut second = TcpStream::connect(&addr).await.unwrap();
    let request = format!(
        "GET /cable/new/{} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: fido.cable\r\n\r\n",
        "AB".repeat(16)
    );
    second.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(T, second.read_to_end(&mut answer)).await.unwrap().unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 429 "), "{answer}");

    let pid = server.id().unwrap().to_string();
    let killed = Command::new("kill").args(["-INT", &pid]).status().await.unwrap();
    assert!(killed.success());
    let stopped = next_json(&mut lines).await;
    assert_eq!(stopped["event"], "stopped");
    assert_eq!(stopped["rejected"]["TooManyFromSource"], 1, "{stopped}");
    for counter in ["request_timeouts", "send_timeouts", "idle_closed", "lifetime_closed"] {
        assert!(stopped[counter].is_u64(), "{counter} in {stopped}");
    }
    let status = tokio::time::timeout(T, server.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status:?}");
}
