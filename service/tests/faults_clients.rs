//! Hostile control clients (issue 14) against the real `cablebridged`: while one client's hybrid
//! ceremony is in flight, other clients send garbage lines, a line over `max_line_bytes`, half a
//! line and hang up, subscribe to every event and hang up mid-stream (`watch`), start a ceremony
//! and hang up mid-ceremony, and flood requests without reading the answers. Asserted: every
//! garbage line gets a JSON-RPC error and the connection stays usable; the huge line gets one
//! error and the connection is closed; the abandoned ceremony is cancelled; the first ceremony
//! completes; and the daemon's fds, threads and tokio tasks return to their baseline.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod faults_common;

use cablebridge_protocol::hybrid::qr::QrPayload;
use cablebridged::tunnel::server::{TunnelServer, TunnelServerConfig};
use common::{eventually, hybrid_register, phone, status_now, wait_end, wait_qr, Daemon, T};
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
