//! Load: many concurrent tunnels over loopback, half unpaired and half paired, with set-up time,
//! round-trip latency and RSS printed (`cargo test -p cablebridged --test tunnel_load -- --nocapture`).
//!
//! `CB_TUNNEL_LOAD=N` sets the number of tunnels (default 2000; each costs 4 sockets in this one
//! process, so the count is clamped to the open-file limit). Bounded by a timeout.

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cablebridge_protocol::hybrid::tunnel::{url, TunnelId, TunnelPath};
use cablebridged::tunnel::client::{connect, ConnectOptions, TunnelConnection};
use cablebridged::tunnel::server::{TunnelServer, TunnelServerConfig};
use common::{numbered_tunnel_id, open_file_limit, rss_kib, settle};
use futures_util::{stream, StreamExt};
use std::time::{Duration, Instant};

fn tunnel_id(i: usize) -> TunnelId {
    numbered_tunnel_id(i, 0x5A)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_concurrent_tunnels() {
    let requested: usize =
        std::env::var("CB_TUNNEL_LOAD").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let fd_cap = open_file_limit().map_or(requested, |l| l.saturating_sub(256) / 4);
    let n = requested.min(fd_cap).max(2);
    let paired_n = n / 2;
    tokio::time::timeout(Duration::from_secs(120), run(n, paired_n))
        .await
        .expect("load test exceeded its time bound");
}

async fn run(n: usize, paired_n: usize) {
    // Every client here is 127.0.0.1: lift the per-source cap (and the global one for large N);
    // `tunnel_abuse.rs` exercises the caps.
    let config = TunnelServerConfig {
        max_connections: usize::MAX,
        max_connections_per_ip: usize::MAX,
        ..TunnelServerConfig::default()
    };
    let server = TunnelServer::bind(config).await.unwrap();
    let base = server.base_url();
    let opts = ConnectOptions { timeout: Duration::from_secs(30), ..ConnectOptions::default() };
    let rss_before = rss_kib();

    // Phones: /cable/new, 128 handshakes in flight at a time.
    let started = Instant::now();
    let mut phones: Vec<(usize, TunnelConnection)> = stream::iter(0..n)
        .map(|i| {
            let target = url(&base, &TunnelPath::New { tunnel_id: tunnel_id(i) });
            let opts = opts.clone();
            async move { (i, connect(&target, &opts).await.unwrap()) }
        })
        .buffer_unordered(128)
        .collect()
        .await;
    let phones_time = started.elapsed();
    phones.sort_by_key(|(i, _)| *i);
    settle(&server, "every phone waiting", 500, |st| st.waiting == n as u64).await;

    // Desktops for the first half: /cable/connect with each phone's routing id.
    let started = Instant::now();
    let targets: Vec<String> = phones[..paired_n]
        .iter()
        .map(|(i, p)| {
            let routing_id = p.routing_id().unwrap();
            url(&base, &TunnelPath::Connect { routing_id, tunnel_id: tunnel_id(*i) })
        })
        .collect();
    let mut desktops: Vec<(usize, TunnelConnection)> =
        stream::iter(targets.into_iter().enumerate())
            .map(|(i, target)| {
                let opts = opts.clone();
                async move { (i, connect(&target, &opts).await.unwrap()) }
            })
            .buffer_unordered(128)
            .collect()
            .await;
    let pair_time = started.elapsed();
    desktops.sort_by_key(|(i, _)| *i);
    settle(&server, "the first half paired", 500, |st| {
        st.paired == paired_n as u64 && st.waiting == (n - paired_n) as u64
    })
    .await;
    let rss_after = rss_kib();

    // Round trips, one tunnel at a time: desktop → phone → desktop, 64 bytes each way.
    let mut rtts = Vec::with_capacity(paired_n);
    for ((_, d), (_, p)) in desktops.iter_mut().zip(phones.iter_mut()) {
        let t = Instant::now();
        d.send(&[7u8; 64]).await.unwrap();
        let got = p.recv().await.unwrap().unwrap();
        p.send(&got).await.unwrap();
        assert_eq!(d.recv().await.unwrap().unwrap().as_ref(), &[7u8; 64]);
        rtts.push(t.elapsed());
    }
    rtts.sort();

    // All paired tunnels at once: every desktop sends, every phone echoes, concurrently.
    let started = Instant::now();
    let pairs: Vec<_> = desktops.iter_mut().zip(phones.iter_mut()).collect();
    stream::iter(pairs)
        .for_each_concurrent(None, |((_, d), (_, p))| async move {
            d.send(&[9u8; 256]).await.unwrap();
            let got = p.recv().await.unwrap().unwrap();
            p.send(&got).await.unwrap();
            assert_eq!(d.recv().await.unwrap().unwrap().len(), 256);
        })
        .await;
    let burst_time = started.elapsed();

    let per_tunnel = match (rss_before, rss_after) {
        (Some(b), Some(a)) => format!(
            "{} KiB total, {:.1} KiB per tunnel (server + both clients, 4 sockets)",
            a.saturating_sub(b),
            a.saturating_sub(b) as f64 / n as f64
        ),
        _ => "unavailable".to_owned(),
    };
    println!(
        "tunnel load: {n} tunnels ({paired_n} paired, {} unpaired)\n  \
         {n} phones connected in {:?} ({:.0} µs each)\n  \
         {paired_n} desktops paired in {:?} ({:.0} µs each)\n  \
         RSS delta: {per_tunnel}\n  \
         round trip (64 B each way, idle server): p50 {:?}, p99 {:?}, max {:?}\n  \
         concurrent burst over {paired_n} tunnels (256 B echo): {:?}",
        n - paired_n,
        phones_time,
        phones_time.as_micros() as f64 / n as f64,
        pair_time,
        pair_time.as_micros() as f64 / paired_n as f64,
        percentile(&rtts, 0.5),
        percentile(&rtts, 0.99),
        rtts.last().copied().unwrap_or_default(),
        burst_time,
    );

    drop(desktops);
    drop(phones);
    server.shutdown().await;
}
