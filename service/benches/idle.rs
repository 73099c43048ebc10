//! Idle cost of the daemon, printed (never asserted): resident memory after start and wakeups
//! (context switches of all its threads) while it sits idle with one client connected.
//! Goal (issue 10): ≤ 10 MiB RSS and ≤ 1 wakeup/s — nothing in the daemon polls.
//!
//! `cargo bench -p cablebridge-service --bench idle` measures 10 s; under `cargo test
//! --all-targets` (no `--bench` argument) it smoke-runs for 1 s.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn status_field(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Context switches (voluntary + involuntary) summed over every thread of `pid`.
fn switches(pid: u32) -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let Ok(text) = std::fs::read_to_string(task.path().join("status")) else { continue };
        for l in text.lines() {
            if let Some(v) = l
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| l.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                total += v.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    total
}

fn main() {
    let measure = if std::env::args().any(|a| a == "--bench") { 10 } else { 1 };
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cablebridged"))
        .arg("--socket")
        .arg(&socket)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "warn")
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(20);
    let client = loop {
        if let Ok(s) = std::os::unix::net::UnixStream::connect(&socket) {
            break s;
        }
        assert!(Instant::now() < deadline, "the daemon did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    {
        use std::io::{BufRead, Write};
        let mut w = &client;
        w.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"status\"}\n").unwrap();
        let mut line = String::new();
        std::io::BufReader::new(&client).read_line(&mut line).unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    let rss_kib = status_field(pid, "VmRSS:");
    let threads = status_field(pid, "Threads:");
    let before = switches(pid);
    std::thread::sleep(Duration::from_secs(measure));
    let after = switches(pid);
    let per_s = (after - before) as f64 / measure as f64;
    println!(
        "cablebridged idle: RSS {:.1} MiB after start, {threads} threads, {} wakeups in {measure} s \
         ({per_s:.2}/s) with one client connected (goal: <= 10 MiB, <= 1/s)",
        rss_kib as f64 / 1024.0,
        after - before
    );
    drop(client);
    let _ = child.kill();
    let _ = child.wait();
}
