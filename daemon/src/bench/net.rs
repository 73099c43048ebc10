//! `tunnel`: the tunnel server under a bounded loopback load, in this process: N phones open
//! `/cable/new`, N desktops pair with `/cable/connect`, then 64-byte round trips are timed one at a
//! time (relay latency on a server holding N pairs), all pairs echo at once (a burst), and round
//! trips run on a fixed schedule of 5,000 relayed messages per second spread over every pair.
//!
//! RSS per pair is this process's VmRSS growth divided by N, so it includes both client ends
//! (4 sockets per pair, 2 of them the server's): an upper bound on the server's own cost.

use super::{Measurement, Options, Stats};
use crate::tunnel::client::{connect, ConnectOptions, TunnelConnection};
use crate::tunnel::server::{TunnelServer, TunnelServerConfig};
use cablebridge_protocol::hybrid::tunnel::{url, TunnelId, TunnelPath};
use futures_util::{stream, StreamExt};
use std::time::{Duration, Instant};

fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Involuntary context switches of every thread of this process so far (the kernel took the CPU
/// away from a runnable thread: another process, or another of ours, needed it), from
/// `/proc/self/task/*/status`. A latency tail that comes with many of these is the machine's,
/// not the relay's.
fn involuntary_switches() -> Option<u64> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let status = std::fs::read_to_string(task.ok()?.path().join("status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("nonvoluntary_ctxt_switches:"))?;
        total += line.split_whitespace().nth(1)?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// Raises the soft open-file limit to the hard one; returns the soft limit now in force.
fn raise_fd_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current != lim.maximum {
        lim.current = lim.maximum;
        let _ = setrlimit(Resource::Nofile, lim);
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

fn tunnel_id(i: usize) -> TunnelId {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&(i as u64).to_be_bytes());
    id[8] = 0xB3;
    TunnelId(id)
}

/// Runs the load (bounded: 120 s overall); an error names the stage that failed.
pub fn tunnel(opts: &Options<'_>) -> Result<Vec<Measurement>, String> {
    let wanted: usize = if opts.quick { 100 } else { 10_000 };
    let fds = raise_fd_limit();
    // 4 sockets per pair in this process, plus headroom for the runtime and stdio.
    let pairs = wanted.min((fds.saturating_sub(256) / 4) as usize).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("tunnel bench: cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(120), load(pairs, wanted))
            .await
            .map_err(|_| "tunnel bench: exceeded its 120 s bound".to_string())?
    })
}

async fn load(pairs: usize, wanted: usize) -> Result<Vec<Measurement>, String> {
    // The generator connects every pair from 127.0.0.1: the per-source and global connection
    // caps (abuse limits, 256 per source by default) are raised to the load, nothing else.
    let config = TunnelServerConfig {
        max_tunnels: pairs * 2 + 16,
        max_connections: pairs * 2 + 64,
        max_connections_per_ip: pairs * 2 + 64,
        ..Default::default()
    };
    let server =
        TunnelServer::bind(config).await.map_err(|e| format!("tunnel bench: bind: {e}"))?;
    let base = server.base_url();
    let copts = ConnectOptions { timeout: Duration::from_secs(30), ..ConnectOptions::default() };
    let rss_before = rss_kib();

    let started = Instant::now();
    let phones: Vec<(usize, TunnelConnection)> = stream::iter(0..pairs)
        .map(|i| {
            let target = url(&base, &TunnelPath::New { tunnel_id: tunnel_id(i) });
            let copts = copts.clone();
            async move { connect(&target, &copts).await.map(|c| (i, c)) }
        })
        .buffer_unordered(128)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tunnel bench: phone connect: {e}"))?;
    let mut phones = phones;
    phones.sort_by_key(|(i, _)| *i);
    let mut targets = Vec::with_capacity(pairs);
    for (i, p) in &phones {
        let routing_id =
            p.routing_id().ok_or("tunnel bench: the server sent no routing id".to_string())?;
        targets.push(url(&base, &TunnelPath::Connect { routing_id, tunnel_id: tunnel_id(*i) }));
    }
    let mut desktops: Vec<(usize, TunnelConnection)> =
        stream::iter(targets.into_iter().enumerate())
            .map(|(i, target)| {
                let copts = copts.clone();
                async move { connect(&target, &copts).await.map(|c| (i, c)) }
            })
            .buffer_unordered(128)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()
            .map_err(|e| format!("tunnel bench: desktop connect: {e}"))?;
    desktops.sort_by_key(|(i, _)| *i);
    let setup = started.elapsed();
    // Let the server's connection tasks settle before reading RSS.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_after = rss_kib();

    // One round trip at a time over every pair (up to 2,000 samples).
    let mut rtts = Vec::new();
    for ((_, d), (_, p)) in desktops.iter_mut().zip(phones.iter_mut()).take(2000) {
        let t = Instant::now();
        d.send(&[7u8; 64]).await.map_err(|e| format!("tunnel bench: send: {e}"))?;
        let got = match p.recv().await {
            Some(Ok(m)) => m,
            _ => return Err("tunnel bench: the phone end got no message".into()),
        };
        p.send(&got).await.map_err(|e| format!("tunnel bench: echo: {e}"))?;
        match d.recv().await {
            Some(Ok(m)) if m.len() == 64 => {}
            _ => return Err("tunnel bench: the desktop end got no echo".into()),
        }
        rtts.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let rtt = Stats::of(rtts);

    // Every pair at once: desktop sends 256 B, phone echoes.
    let started = Instant::now();
    let burst: Vec<Result<f64, String>> = stream::iter(desktops.iter_mut().zip(phones.iter_mut()))
        .map(|((_, d), (_, p))| async move {
            let t = Instant::now();
            d.send(&[9u8; 256]).await.map_err(|e| e.to_string())?;
            let got = match p.recv().await {
                Some(Ok(m)) => m,
                _ => return Err("no message".to_string()),
            };
            p.send(&got).await.map_err(|e| e.to_string())?;
            match d.recv().await {
                Some(Ok(_)) => Ok(t.elapsed().as_secs_f64() * 1e6),
                _ => Err("no echo".to_string()),
            }
        })
        .buffer_unordered(pairs)
        .collect()
        .await;
    let burst_time = started.elapsed();
    let burst: Vec<f64> = burst
        .into_iter()
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tunnel bench: burst: {e}"))?;
    let burst = Stats::of(burst);

    // Paced: RATE relayed messages per second (RATE/2 round trips), spread over every pair in
    // turn, for `paced_for`; latency measured from each send to its echo.
    const RATE: f64 = 5_000.0;
    let paced_for = if pairs <= 100 { 0.4 } else { 2.0 };
    let round_trips = (RATE / 2.0 * paced_for) as usize;
    let t0 = tokio::time::Instant::now() + Duration::from_millis(50);
    let (switches_before, paced_started) = (involuntary_switches(), Instant::now());
    let mut tasks = tokio::task::JoinSet::new();
    for (i, ((_, mut d), (_, mut p))) in desktops.into_iter().zip(phones).enumerate() {
        let slots: Vec<usize> = (i..round_trips).step_by(pairs).collect();
        tasks.spawn(async move {
            let mut lat = Vec::with_capacity(slots.len());
            for slot in slots {
                let at = t0 + Duration::from_secs_f64(slot as f64 * 2.0 / RATE);
                tokio::time::sleep_until(at).await;
                // From the send, not from `at`: tokio's timer wakes on 1 ms ticks, and that lag
                // is the load generator's, not the relay's.
                let start = Instant::now();
                d.send(&[5u8; 64]).await.map_err(|e| e.to_string())?;
                let got = match p.recv().await {
                    Some(Ok(m)) => m,
                    _ => return Err("no message".to_string()),
                };
                p.send(&got).await.map_err(|e| e.to_string())?;
                match d.recv().await {
                    Some(Ok(_)) => lat.push(start.elapsed().as_secs_f64() * 1e6),
                    _ => return Err("no echo".to_string()),
                }
            }
            Ok::<_, String>(lat)
        });
    }
    let mut paced = Vec::with_capacity(round_trips);
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(lat)) => paced.extend(lat),
            Ok(Err(e)) => return Err(format!("tunnel bench: paced: {e}")),
            Err(e) => return Err(format!("tunnel bench: paced task: {e}")),
        }
    }
    let paced_n = paced.len();
    let paced = Stats::of(paced);
    let switches_per_s = match (switches_before, involuntary_switches()) {
        (Some(b), Some(a)) => {
            Some(a.saturating_sub(b) as f64 / paced_started.elapsed().as_secs_f64().max(1e-9))
        }
        _ => None,
    };
    server.shutdown().await;

    let rss_per_pair = match (rss_before, rss_after) {
        (Some(b), Some(a)) => Some(a.saturating_sub(b) as f64 / pairs as f64),
        _ => None,
    };
    let relayed = pairs as f64 * 2.0;
    Ok(vec![
        Measurement::new("tunnel", format!("{pairs} pairs, one round trip at a time"))
            .field("pairs", pairs as f64)
            .field("pairs_wanted", wanted as f64)
            .field("rtt_p50_us", rtt.median)
            .field("rtt_p99_us", rtt.p99)
            .field("rtt_max_us", rtt.max)
            .opt_field("rss_kib_per_pair", rss_per_pair)
            .field("setup_us_per_pair", setup.as_secs_f64() * 1e6 / pairs as f64)
            .note(
                "64 B desktop->phone->desktop through the relay (2 relayed messages); RSS per pair \
                 includes both client ends in this process; goal p99 <= 1 ms, <= 32 KiB per pair",
            ),
        Measurement::new("tunnel", format!("{pairs} pairs echo at once"))
            .field("pairs", pairs as f64)
            .field("rtt_p50_us", burst.median)
            .field("rtt_p99_us", burst.p99)
            .field("msgs_per_s", relayed / burst_time.as_secs_f64())
            .note("256 B echo on every pair concurrently"),
        Measurement::new("tunnel", format!("{pairs} pairs, paced {RATE} msg/s"))
            .field("pairs", pairs as f64)
            .field("relayed_msgs_per_s", RATE)
            .field("round_trips", paced_n as f64)
            .field("rtt_p50_us", paced.median)
            .field("rtt_p99_us", paced.p99)
            .field("rtt_max_us", paced.max)
            .opt_field("involuntary_switches_per_s", switches_per_s)
            .note(
                "64 B round trips started on a fixed schedule (RATE/2 per second, over every pair \
                 in turn, 1 ms timer ticks); latency from each send to its echo; goal p99 <= 1 ms. \
                 involuntary_switches_per_s: this process's threads preempted while pacing (other \
                 processes wanting the CPU)",
            ),
    ])
}
