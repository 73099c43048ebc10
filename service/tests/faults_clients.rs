//! Hostile control clients (issue 14) against the real `cablebridged`: while one client's hybrid
//! ceremony is in flight, other clients send garbage lines, a line over `max_line_bytes`, half a
//! line and hang up, subscribe to every event and hang up mid-stream (`watch`), start a ceremony
//! and hang up mid-ceremony, and flood requests without reading the answers. Asserted: every
//! garbage line gets a JSON-RPC error and the connection stays usable; the huge line gets one
//! error and the connection is closed; the abandoned ceremony is cancelled; the first ceremony
//! completes; and the daemon's fds, threads and tokio tasks return to their baseline. A
//! subscriber that stops reading (a `cablebridge watch` piped into a stalled pager) lags on its
//! own: ceremonies go on, and every event is either delivered to it or counted as missed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod faults_common;

use cablebridge_protocol::hybrid::qr::QrPayload;
use cablebridged::tunnel::server::{TunnelServer, TunnelServerConfig};
use common::{
    eventually, hybrid_register, phone, plain_key, session_of, status_now, wait_end, wait_qr,
    Daemon, T,
};
use faults_common::Baseline;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::time::timeout;

const MAX_LINE: usize = 4096;

/// Garbage lines: random bytes (seeded), invalid UTF-8, JSON that is not a request.
fn garbage_lines(seed: u64) -> Vec<Vec<u8>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut lines: Vec<Vec<u8>> = [
        &b"{"[..],
        b"}",
        b"[]",
        b"null",
        b"\"status\"",
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":5}",
        b"{\"jsonrpc\":\"1.0\",\"id\":2,\"method\":\"status\"}",
        b"{\"jsonrpc\":\"2.0\",\"id\":{\"deep\":[[[[[[]]]]]]},\"method\":\"status\",\"params\":7}",
        b"\xff\xfe\xfd{\"jsonrpc\":\"2.0\"}",
        b"{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ceremony.register\",\"params\":{\"rp_id\":\"\\u0000\"}}",
    ]
    .iter()
    .map(|l| l.to_vec())
    .collect();
    for _ in 0..20 {
        let len = rng.gen_range(1..300);
        let mut l: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        l.retain(|&b| b != b'\n');
        if l.iter().all(u8::is_ascii_whitespace) {
            l.push(b'x');
        }
        lines.push(l);
    }
    lines
}

async fn read_json_line(r: &mut BufReader<tokio::net::unix::OwnedReadHalf>) -> Option<Value> {
    let mut line = String::new();
    let n = timeout(T, r.read_line(&mut line)).await.expect("bounded read").ok()?;
    (n > 0).then(|| serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
}

/// Every garbage line is answered with an error; the connection still answers `status` after.
async fn garbage_client(daemon: &Daemon) {
    let (read, mut write) = UnixStream::connect(&daemon.socket).await.unwrap().into_split();
    let mut r = BufReader::new(read);
    let lines = garbage_lines(14);
    for l in &lines {
        write.write_all(l).await.unwrap();
        write.write_all(b"\n").await.unwrap();
    }
    for l in &lines {
        let answer = read_json_line(&mut r).await.expect("an answer per garbage line");
        let code = answer["error"]["code"].as_i64().unwrap_or_else(|| panic!("{answer}"));
        assert!((-32700..=-32000).contains(&code), "{:?} → {answer}", String::from_utf8_lossy(l));
    }
    write.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":99,\"method\":\"status\"}\n").await.unwrap();
    let answer = read_json_line(&mut r).await.unwrap();
    assert_eq!(answer["id"], 99, "{answer}");
    assert!(answer["result"]["pid"].is_u64(), "{answer}");
}

/// A line over the cap: one error naming the limit, then the daemon closes the connection.
async fn huge_line_client(daemon: &Daemon) {
    let (read, mut write) = UnixStream::connect(&daemon.socket).await.unwrap().into_split();
    let writer = tokio::spawn(async move {
        let chunk = vec![b'a'; 64 * 1024];
        // 1 MiB without a newline; the daemon hangs up long before the end (write errors then).
        for _ in 0..16 {
            if write.write_all(&chunk).await.is_err() {
                break;
            }
        }
        write
    });
    let mut r = BufReader::new(read);
    let answer = read_json_line(&mut r).await.expect("an error before the close");
    assert_eq!(answer["error"]["code"], -32600, "{answer}");
    let msg = answer["error"]["message"].as_str().unwrap();
    assert!(msg.contains(&format!("longer than {MAX_LINE} bytes")), "{msg}");
    let mut rest = Vec::new();
    let n = timeout(T, r.read_to_end(&mut rest)).await.expect("closed").unwrap_or(0);
    assert_eq!(n, 0, "nothing after the error: {:?}", String::from_utf8_lossy(&rest));
    drop(timeout(T, writer).await.expect("the writer stops"));
}

/// Half a request, then gone.
async fn half_line_client(daemon: &Daemon) {
    let mut s = UnixStream::connect(&daemon.socket).await.unwrap();
    s.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"meth").await.unwrap();
}

/// Subscribes to every session's events, reads one, hangs up mid-stream.
async fn watch_then_hang_up(daemon: &Daemon) {
    let mut c = daemon.client().await;
    assert_eq!(c.call("events.subscribe", json!({})).await.unwrap()["subscribed"], "all");
    // Events keep flowing from the other ceremony's progress and from the one started below.
    let mut other = daemon.client().await;
    let adverts = daemon.path("adverts-noise.sock");
    let mut p = hybrid_register("ws://127.0.0.1:9", &adverts);
    p["advert_timeout"] = json!("30s");
    let started = other.call("ceremony.register", p).await.unwrap();
    let n = timeout(T, c.next_notification()).await.expect("an event").unwrap();
    assert_eq!(n["method"], "ceremony.event", "{n}");
    drop(c);
    // …and this one hangs up mid-ceremony: its session is cancelled.
    let id = started["session"].as_u64().unwrap();
    drop(other);
    eventually("the abandoned ceremony is gone", || {
        status_now(daemon)["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["session"].as_u64() != Some(id))
    })
    .await;
}

/// Floods `status` and never reads; hangs up with answers still queued.
async fn never_reads(daemon: &Daemon) {
    let mut s = UnixStream::connect(&daemon.socket).await.unwrap();
    let line = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"status\"}\n";
    for _ in 0..200 {
        if s.write_all(line).await.is_err() {
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_clients_do_not_disturb_a_ceremony_in_flight() {
    let server = TunnelServer::bind(TunnelServerConfig::default()).await.unwrap();
    let tunnel = server.base_url();
    let daemon = Daemon::start(&format!("[control]\nmax_line_bytes = {MAX_LINE}\n"));
    let base = Baseline::settled(&daemon).await;

    let adverts = daemon.path("adverts.sock");
    let mut phone = phone(&tunnel, &adverts);
    let mut c = daemon.client().await;
    let mut params = hybrid_register(&tunnel, &adverts);
    params["no_linking"] = json!(true);
    let id = c.call("ceremony.register", params).await.unwrap()["session"].as_u64().unwrap();
    let url = wait_qr(&mut c, id).await;

    // The ceremony waits for its phone while the hostile clients come and go.
    garbage_client(&daemon).await;
    huge_line_client(&daemon).await;
    half_line_client(&daemon).await;
    watch_then_hang_up(&daemon).await;
    never_reads(&daemon).await;
    let s = status_now(&daemon);
    assert!(s["counters"]["request_errors"].as_u64().unwrap() >= 31, "{s}");
    let ours: Vec<&Value> =
        s["sessions"].as_array().unwrap().iter().filter(|x| x["session"] == id).collect();
    assert_eq!(ours.len(), 1, "the first ceremony is still pending: {s}");

    let qr = QrPayload::from_url(&url).unwrap();
    let (_, events) = tokio::join!(phone.run_qr(&qr), wait_end(&mut c, id));
    let last = events.last().unwrap();
    assert_eq!(last["event"], "result", "{events:?}");
    assert_eq!(last["verification"]["ok"], true, "{last}");
    drop(c);
    base.check(&daemon, "hostile clients").await;
    let (status, log) = daemon.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("oversized line"), "the refusal is logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_clients_connecting_and_vanishing_leave_nothing_behind() {
    let daemon = Daemon::start("");
    let base = Baseline::settled(&daemon).await;
    // 100 connections: a third send garbage, a third half a line, a third subscribe; all drop.
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut held = Vec::new();
    for i in 0..100 {
        let mut s = UnixStream::connect(&daemon.socket).await.unwrap();
        let junk: Vec<u8> = (0..rng.gen_range(1..200)).map(|_| rng.gen()).collect();
        let _ = match i % 3 {
            0 => s.write_all(&[&junk[..], b"\n"].concat()).await,
            1 => s.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":").await,
            _ => {
                s.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"events.subscribe\"}\n")
                    .await
            }
        };
        held.push(s);
    }
    // All of them open at once, then all gone.
    eventually("all 100 connections accepted", || {
        status_now(&daemon)["connections"].as_u64().unwrap() >= 100
    })
    .await;
    drop(held);
    base.check(&daemon, "100 vanished clients").await;
    let mut c = daemon.client().await;
    assert!(c.call("status", json!({})).await.unwrap()["pid"].is_u64());
}

/// What the daemon can hold for one subscriber before it lags, in bytes, given the longest line
/// seen: the connection's socket send buffer (the kernel's default for a Unix stream socket),
/// its outgoing queue (64 lines), the subscriber's broadcast slots (256 events), and one line
/// each in the forwarding and writing tasks. Any more and the subscriber must have lagged.
fn subscriber_capacity_bytes(longest_line: usize) -> usize {
    let sndbuf = std::fs::read_to_string("/proc/sys/net/core/wmem_default")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(212_992);
    sndbuf + (64 + 256 + 2) * longest_line
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_lags_and_stalls_nothing() {
    // The ceremony client starts hundreds of ceremonies: the per-connection request rate limit
    // (its own test is in control_api.rs) is raised out of the way.
    let daemon =
        Daemon::start("[control]\nrate_limit_per_second = 100000\nrate_limit_burst = 100000\n");
    let keys = [plain_key().await, plain_key().await, plain_key().await, plain_key().await];
    let base = Baseline::settled(&daemon).await;

    // The watcher: subscribes to every session, reads the answer, then stops reading.
    let (rd, mut wr) = UnixStream::connect(&daemon.socket).await.unwrap().into_split();
    let mut watcher = BufReader::new(rd);
    wr.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"events.subscribe\"}\n")
        .await
        .unwrap();
    let answer = read_json_line(&mut watcher).await.unwrap();
    assert_eq!(answer["result"]["subscribed"], "all", "{answer}");

    // Another client runs USB ceremonies, four at a time, until the events it saw (the same
    // ones the watcher is sent) are more than the watcher's path can hold.
    let mut c = daemon.client().await;
    let (mut emitted, mut bytes, mut longest, mut ceremonies) = (0u64, 0usize, 0usize, 0u32);
    // The last four sessions: the watcher has read everything once it has seen each one's
    // result. (Not only the last result this client saw: the watcher's stream may order the
    // four sessions' final events differently, and it did once.)
    let mut last_batch: Vec<u64> = Vec::new();
    while ceremonies < 8 || bytes <= subscriber_capacity_bytes(longest) {
        assert!(ceremonies < 4000, "{bytes} bytes of events never outgrew the watcher's path");
        let mut ids = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let p = json!({
                "transport": "usb",
                "device": key.device_address(),
                "rp_id": "stall.example",
                "user_name": format!("user{ceremonies}-{i}"),
                "user_timeout": "20s",
                // Server-side credentials: hundreds would fill a key's discoverable slots.
                "resident_key": "discouraged",
            });
            ids.push(session_of(&c.call("ceremony.register", p).await.unwrap()));
        }
        // Every event of the four, in arrival order, until each has ended.
        let mut open = ids.clone();
        while !open.is_empty() {
            let n = timeout(T, c.next_notification()).await.expect("ceremonies end").unwrap();
            let event = &n["params"];
            let Some(id) = event["session"].as_u64().filter(|id| ids.contains(id)) else {
                continue;
            };
            // The notification line is the params plus its JSON-RPC envelope.
            let line = event.to_string().len() + 64;
            emitted += 1;
            bytes += line;
            longest = longest.max(line);
            assert_ne!(
                event["event"], "error",
                "a ceremony failed while the watcher stalled: {event}"
            );
            if event["event"] == "result" {
                open.retain(|o| *o != id);
                ceremonies += 1;
            }
        }
        last_batch = ids;
        // The daemon answers others while the watcher is stalled.
        assert!(status_now(&daemon)["pid"].is_u64());
    }
    println!(
        "{ceremonies} ceremonies, {emitted} events, {bytes} bytes (watcher's path holds at most {})",
        subscriber_capacity_bytes(longest)
    );

    // Now the watcher reads again: it is told what it missed, and nothing else is lost.
    let (mut delivered, mut missed, mut lag_notices) = (0u64, 0u64, 0u32);
    loop {
        let n = read_json_line(&mut watcher).await.expect("the watcher's stream goes on");
        match n["method"].as_str() {
            Some("ceremony.event") => {
                delivered += 1;
                let p = &n["params"];
                if p["event"] == "result" {
                    last_batch.retain(|id| p["session"] != *id);
                    if last_batch.is_empty() {
                        break;
                    }
                }
            }
            Some("events.lagged") => {
                lag_notices += 1;
                missed += n["params"]["missed"].as_u64().expect("missed is a count");
            }
            other => panic!("unexpected line on the watcher: {other:?} {n}"),
        }
    }
    println!("watcher: {delivered} delivered, {missed} missed in {lag_notices} lag notice(s)");
    assert!(lag_notices >= 1 && missed >= 1, "the watcher must have lagged");
    assert_eq!(delivered + missed, emitted, "every event is delivered or counted as missed");

    // Caught up, it follows new ceremonies live again.
    let p = json!({
        "transport": "usb",
        "device": keys[0].device_address(),
        "rp_id": "stall.example",
        "user_name": "after",
        "user_timeout": "20s",
    });
    let id = session_of(&c.call("ceremony.register", p).await.unwrap());
    let ours = timeout(T, wait_end(&mut c, id)).await.expect("ceremony ends");
    assert_eq!(ours.last().unwrap()["event"], "result", "{ours:?}");
    let mut seen = Vec::new();
    loop {
        let n = read_json_line(&mut watcher).await.expect("live again");
        assert_eq!(n["method"], "ceremony.event", "no lag once caught up: {n}");
        seen.push(n["params"].clone());
        if n["params"]["session"] == id && n["params"]["event"] == "result" {
            break;
        }
    }
    assert_eq!(seen, ours, "the caught-up watcher sees the new ceremony's events, in order");

    drop((watcher, wr, c));
    base.check(&daemon, "a stalled subscriber").await;
}
