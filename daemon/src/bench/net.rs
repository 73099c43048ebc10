//! `tunnel`: the tunnel server under a bounded loopback load. N phones open `/cable/new`, N
//! desktops pair with `/cable/connect`, then 64-byte round trips are timed one at a time (relay
//! latency on a server holding N pairs), all pairs echo at once (a burst), and round trips run on
//! a fixed schedule of 5,000 relayed messages per second spread over every pair.
//!
//! Two modes, both run by `cablebridge bench tunnel`:
//!
//! - **Server in its own process** (first): the real `cablebridge tunnel-server` is started as a
//!   child of the bench (`std::env::current_exe()`), and the load comes from generator processes
//!   (the bench re-executed as the hidden `cablebridge bench tunnel-generator`, driven by one-line
//!   commands on stdin). The server then holds 2 sockets per pair, so its open-file limit caps
//!   the pairs at (limit - 32) / 2; each generator holds 2 sockets per pair too, so the load is
//!   split over as many generators as that limit needs (2 for 10,000 pairs under 20,000 fds).
//!   RSS per pair is the server process's VmRSS growth (`/proc/<pid>/status`) divided by N:
//!   the server's own cost. Every child is killed when the bench ends, however it ends.
//! - **In one process** (the original measurement, kept so numbers stay comparable): server and
//!   both client ends in this process (4 sockets per pair), so RSS per pair includes both client
//!   ends and the relay latency shares the CPU with the load generator.

use super::{Measurement, Options, Stats};
use crate::tunnel::client::{connect, ConnectOptions, TunnelConnection};
use crate::tunnel::server::{TunnelServer, TunnelServerConfig};
use cablebridge_protocol::hybrid::tunnel::{url, TunnelId, TunnelPath};
use futures_util::{stream, StreamExt};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Relayed messages per second in the paced phase (RATE/2 round trips).
const RATE: f64 = 5_000.0;
/// Round trips timed one at a time (at most one per pair).
const SEQUENTIAL: usize = 2_000;

/// VmRSS in KiB of `pid` (`self` for this process).
fn rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Involuntary context switches of every thread of process `pid` (`self` for this one) so far
/// (the kernel took the CPU away from a runnable thread: another process, or another of ours,
/// needed it), from `/proc/<pid>/task/*/status`. A latency tail that comes with many of these is
/// the machine's, not the relay's.
fn involuntary_switches(pid: &str) -> Option<u64> {
    let mut total = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let status = std::fs::read_to_string(task.ok()?.path().join("status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("nonvoluntary_ctxt_switches:"))?;
        total += line.split_whitespace().nth(1)?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// Raises the soft open-file limit to the hard one; returns the soft limit now in force.
/// Children started afterwards inherit it.
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

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("tunnel bench: cannot start the async runtime: {e}"))
}

/// Runs both modes (bounded: 120 s each plus the paced phase); an error names the stage that
/// failed.
pub fn tunnel(opts: &Options<'_>) -> Result<Vec<Measurement>, String> {
    let mut out = separate(opts)?;
    out.extend(in_process(opts)?);
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Load primitives shared by both modes. `desktops[i]` and `phones[i]` are the two ends of pair i.

/// Opens pairs `first..first + count` against the server at `base`.
/// Connects to every `(index, url)`, 128 at a time; the connections come back sorted by index.
async fn connect_all(
    targets: impl IntoIterator<Item = (usize, String)>,
    copts: &ConnectOptions,
    side: &str,
) -> Result<Vec<(usize, TunnelConnection)>, String> {
    let mut out: Vec<(usize, TunnelConnection)> = stream::iter(targets)
        .map(|(i, target)| {
            let copts = copts.clone();
            async move { connect(&target, &copts).await.map(|c| (i, c)) }
        })
        .buffer_unordered(128)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{side} connect: {e}"))?;
    out.sort_by_key(|(i, _)| *i);
    Ok(out)
}

async fn open_pairs(
    base: &str,
    first: usize,
    count: usize,
) -> Result<(Vec<TunnelConnection>, Vec<TunnelConnection>), String> {
    let copts = ConnectOptions { timeout: Duration::from_secs(30), ..ConnectOptions::default() };
    let phones = connect_all(
        (first..first + count)
            .map(|i| (i, url(base, &TunnelPath::New { tunnel_id: tunnel_id(i) }))),
        &copts,
        "phone",
    )
    .await?;
    let mut targets = Vec::with_capacity(count);
    for (i, p) in &phones {
        let routing_id = p.routing_id().ok_or("the server sent no routing id".to_string())?;
        targets
            .push((*i, url(base, &TunnelPath::Connect { routing_id, tunnel_id: tunnel_id(*i) })));
    }
    let desktops = connect_all(targets, &copts, "desktop").await?;
    Ok((
        desktops.into_iter().map(|(_, c)| c).collect(),
        phones.into_iter().map(|(_, c)| c).collect(),
    ))
}

/// One 64 B round trip at a time over the first `n` pairs; microseconds each.
async fn sequential(
    desktops: &mut [TunnelConnection],
    phones: &mut [TunnelConnection],
    n: usize,
) -> Result<Vec<f64>, String> {
    let mut rtts = Vec::with_capacity(n);
    for (d, p) in desktops.iter_mut().zip(phones.iter_mut()).take(n) {
        let t = Instant::now();
        d.send(&[7u8; 64]).await.map_err(|e| format!("send: {e}"))?;
        let got = match p.recv().await {
            Some(Ok(m)) => m,
            _ => return Err("the phone end got no message".into()),
        };
        p.send(&got).await.map_err(|e| format!("echo: {e}"))?;
        match d.recv().await {
            Some(Ok(m)) if m.len() == 64 => {}
            _ => return Err("the desktop end got no echo".into()),
        }
        rtts.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok(rtts)
}

/// Every pair at once: desktop sends 256 B, phone echoes. Round trips in µs and the wall time.
async fn burst(
    desktops: &mut [TunnelConnection],
    phones: &mut [TunnelConnection],
) -> Result<(Vec<f64>, Duration), String> {
    let n = desktops.len().max(1);
    let started = Instant::now();
    let burst: Vec<Result<f64, String>> = stream::iter(desktops.iter_mut().zip(phones.iter_mut()))
        .map(|(d, p)| async move {
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
        .buffer_unordered(n)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let burst = burst.into_iter().collect::<Result<_, _>>().map_err(|e| format!("burst: {e}"))?;
    Ok((burst, elapsed))
}

/// Paced: `rate` relayed messages per second (`rate`/2 round trips), spread over every pair in
/// turn, for `secs`; latency measured from each send to its echo (µs).
async fn paced(
    desktops: Vec<TunnelConnection>,
    phones: Vec<TunnelConnection>,
    rate: f64,
    secs: f64,
) -> Result<Vec<f64>, String> {
    let pairs = desktops.len().max(1);
    let round_trips = (rate / 2.0 * secs) as usize;
    let t0 = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut tasks = tokio::task::JoinSet::new();
    // Pairs without a slot stay open until the end, and each task hands its pair back: a pair
    // closing mid-phase would make the server tear it down while others are timed (with 10,000
    // pairs and 5,000 round trips, half of them would close at the start).
    let mut keep = Vec::new();
    for (i, (mut d, mut p)) in desktops.into_iter().zip(phones).enumerate() {
        let slots: Vec<usize> = (i..round_trips).step_by(pairs).collect();
        if slots.is_empty() {
            keep.push((d, p));
            continue;
        }
        tasks.spawn(async move {
            let mut lat = Vec::with_capacity(slots.len());
            for slot in slots {
                let at = t0 + Duration::from_secs_f64(slot as f64 * 2.0 / rate);
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
            Ok::<_, String>((lat, d, p))
        });
    }
    let mut out = Vec::with_capacity(round_trips);
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok((lat, d, p))) => {
                out.extend(lat);
                keep.push((d, p));
            }
            Ok(Err(e)) => return Err(format!("paced: {e}")),
            Err(e) => return Err(format!("paced task: {e}")),
        }
    }
    drop(keep);
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Server in its own process.

/// A child process (the server or a generator) that is killed and reaped when dropped, on every
/// exit path of the bench. Its stdout lines arrive on a channel so every wait is bounded.
struct Kid {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Kid {
    fn spawn(name: String, cmd: &mut Command) -> Result<Kid, String> {
        // Drop covers every return and panic of the bench; the parent-death signal covers the
        // bench itself being killed (SIGKILL, or SIGINT sent to it alone): the kernel then
        // kills the child too, so no server or generator outlives the bench.
        // If the bench died between fork and prctl, the signal would never come: the child
        // then sees another parent and does not exec.
        let bench = rustix::process::getpid();
        #[allow(unsafe_code)]
        // SAFETY: the closure runs in the forked child before exec and only calls prctl(2) and
        // getppid(2), both async-signal-safe; it reads one copied pid and allocates nothing on
        // success (the error path's io::Error from an errno does not allocate either).
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(move || {
                rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::KILL,
                ))?;
                if rustix::process::getppid() != Some(bench) {
                    return Err(rustix::io::Errno::SRCH.into());
                }
                Ok(())
            });
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("tunnel bench: cannot start the {name}: {e}"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        // Constructed before any early return so the child is killed if the pipes are missing.
        let (tx, lines) = mpsc::channel();
        let kid = Kid { name, child, stdin, lines };
        let stdout = stdout.ok_or(format!("tunnel bench: the {} has no stdout", kid.name))?;
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(kid)
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// The next stdout line within `within`; a generator's `error ...` line becomes the error.
    fn line(&self, within: Duration, stage: &str) -> Result<String, String> {
        match self.lines.recv_timeout(within) {
            Ok(l) => match l.strip_prefix("error ") {
                Some(e) => Err(format!("tunnel bench: {} ({stage}): {e}", self.name)),
                None => Ok(l),
            },
            Err(mpsc::RecvTimeoutError::Timeout) => Err(format!(
                "tunnel bench: the {} did not answer ({stage}) within {} s",
                self.name,
                within.as_secs()
            )),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(format!("tunnel bench: the {} exited ({stage})", self.name))
            }
        }
    }

    /// The next line, which must start with `tag `; returns the rest.
    fn answer(&self, tag: &str, within: Duration) -> Result<String, String> {
        let l = self.line(within, tag)?;
        l.strip_prefix(tag)
            .and_then(|r| r.strip_prefix(' '))
            .map(str::to_string)
            .ok_or(format!("tunnel bench: the {} answered `{l}` to `{tag}`", self.name))
    }

    fn send(&mut self, line: &str) -> Result<(), String> {
        let stdin =
            self.stdin.as_mut().ok_or(format!("tunnel bench: {} has no stdin", self.name))?;
        writeln!(stdin, "{line}")
            .and_then(|_| stdin.flush())
            .map_err(|e| format!("tunnel bench: cannot command the {}: {e}", self.name))
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        // SIGKILL, then reap: both bounded.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn samples(json: &str, what: &str) -> Result<Vec<f64>, String> {
    serde_json::from_str(json).map_err(|e| format!("tunnel bench: bad {what} samples: {e}"))
}

fn separate(opts: &Options<'_>) -> Result<Vec<Measurement>, String> {
    let wanted: usize = if opts.quick { 200 } else { 10_000 };
    let fds = raise_fd_limit();
    // The server holds 2 sockets per pair, plus its listener, epoll and stdio (32 spare).
    let pairs = wanted.min((fds.saturating_sub(32) / 2) as usize).max(1);
    // Each generator holds 2 sockets per pair, plus its runtime and stdio (256 spare).
    let per_generator = (fds.saturating_sub(256) / 2).max(1) as usize;
    let generators = pairs.div_ceil(per_generator);
    let exe = std::env::current_exe()
        .map_err(|e| format!("tunnel bench: cannot find the cablebridge binary: {e}"))?;

    let cap = (pairs * 2 + 64).to_string();
    let server = Kid::spawn(
        "tunnel server".into(),
        Command::new(&exe)
            .args(["tunnel-server", "--listen", "127.0.0.1:0"])
            .args(["--max-connections", &cap, "--max-connections-per-ip", &cap])
            .args(["--max-tunnels", &cap])
            // Per-tunnel info logs would cost the relay CPU the in-process mode does not spend.
            .env("RUST_LOG", "warn"),
    )?;
    let listening = server.line(Duration::from_secs(20), "listening")?;
    let base = listening
        .split_once("(base URL ")
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .ok_or(format!("tunnel bench: the tunnel server printed `{listening}`"))?
        .to_string();
    std::thread::sleep(Duration::from_millis(200));
    let rss_before = rss_kib(&server.pid());

    let mut gens = Vec::with_capacity(generators);
    let started = Instant::now();
    let mut first = 0;
    for g in 0..generators {
        let count = pairs / generators + usize::from(g < pairs % generators);
        let mut kid = Kid::spawn(
            format!("load generator {g}"),
            Command::new(&exe).args(["bench", "tunnel-generator"]),
        )?;
        kid.send(&format!("setup {base} {first} {count}"))?;
        first += count;
        gens.push(kid);
    }
    for kid in &gens {
        kid.answer("ready", Duration::from_secs(120))?;
    }
    let setup = started.elapsed();
    // Let the server's connection tasks settle before reading its RSS.
    std::thread::sleep(Duration::from_millis(300));
    let rss_after = rss_kib(&server.pid());

    // One at a time: only the first generator runs, so nothing else loads the server.
    gens[0].send(&format!("rtt {SEQUENTIAL}"))?;
    let rtt = Stats::of(samples(&gens[0].answer("rtt", Duration::from_secs(120))?, "rtt")?);

    for kid in &mut gens {
        kid.send("burst")?;
    }
    let (mut burst_rtts, mut burst_secs) = (Vec::with_capacity(pairs), 0f64);
    for kid in &gens {
        let a = kid.answer("burst", Duration::from_secs(120))?;
        let (secs, json) = a.split_once(' ').ok_or("tunnel bench: bad burst answer")?;
        burst_secs = burst_secs.max(secs.parse().map_err(|_| "tunnel bench: bad burst time")?);
        burst_rtts.extend(samples(json, "burst")?);
    }
    let burst_stats = Stats::of(burst_rtts);

    let paced_for = if opts.quick { 0.4 } else { 2.0 };
    let (switches_before, paced_started) = (involuntary_switches(&server.pid()), Instant::now());
    for kid in &mut gens {
        kid.send(&format!("paced {} {paced_for}", RATE / generators as f64))?;
    }
    let (mut lat, mut gen_switches) = (Vec::new(), Some(0f64));
    for kid in &gens {
        let a = kid.answer("paced", Duration::from_secs(120))?;
        let (switches, json) = a.split_once(' ').ok_or("tunnel bench: bad paced answer")?;
        gen_switches = gen_switches
            .zip(switches.parse::<f64>().ok().filter(|v| v.is_finite()))
            .map(|(a, b)| a + b);
        lat.extend(samples(json, "paced")?);
    }
    let server_switches = match (switches_before, involuntary_switches(&server.pid())) {
        (Some(b), Some(a)) => {
            Some(a.saturating_sub(b) as f64 / paced_started.elapsed().as_secs_f64().max(1e-9))
        }
        _ => None,
    };
    let paced_n = lat.len();
    let paced_stats = Stats::of(lat);
    for kid in &mut gens {
        let _ = kid.send("quit");
    }
    drop(gens);
    drop(server);

    let rss_per_pair = match (rss_before, rss_after) {
        (Some(b), Some(a)) => Some(a.saturating_sub(b) as f64 / pairs as f64),
        _ => None,
    };
    let relayed = pairs as f64 * 2.0;
    let g = generators as f64;
    Ok(vec![
        Measurement::new(
            "tunnel",
            format!("{pairs} pairs, one round trip at a time, server process"),
        )
        .field("pairs", pairs as f64)
        .field("pairs_wanted", wanted as f64)
        .field("generators", g)
        .field("rtt_p50_us", rtt.median)
        .field("rtt_p99_us", rtt.p99)
        .field("rtt_max_us", rtt.max)
        .opt_field("server_rss_kib_per_pair", rss_per_pair)
        .field("setup_us_per_pair", setup.as_secs_f64() * 1e6 / pairs as f64)
        .note(
            "the real `cablebridge tunnel-server` in its own process (2 sockets per pair, so \
                 the open-file limit caps pairs at (limit - 32) / 2), the load from separate \
                 generator processes; server_rss_kib_per_pair = the server's VmRSS growth / pairs; \
                 goal p99 <= 1 ms, <= 32 KiB per pair",
        ),
        Measurement::new("tunnel", format!("{pairs} pairs echo at once, server process"))
            .field("pairs", pairs as f64)
            .field("generators", g)
            .field("rtt_p50_us", burst_stats.median)
            .field("rtt_p99_us", burst_stats.p99)
            .field("msgs_per_s", relayed / burst_secs.max(1e-9))
            .note("256 B echo on every pair concurrently, all generators at once"),
        Measurement::new("tunnel", format!("{pairs} pairs, paced {RATE} msg/s, server process"))
            .field("pairs", pairs as f64)
            .field("generators", g)
            .field("relayed_msgs_per_s", RATE)
            .field("round_trips", paced_n as f64)
            .field("rtt_p50_us", paced_stats.median)
            .field("rtt_p99_us", paced_stats.p99)
            .field("rtt_max_us", paced_stats.max)
            .opt_field("server_involuntary_switches_per_s", server_switches)
            .opt_field("generator_involuntary_switches_per_s", gen_switches)
            .note(
                "64 B round trips on a fixed schedule (the rate split evenly over the generators, \
                 each over its pairs in turn), latency from each send to its echo as the generator \
                 sees it; goal p99 <= 1 ms. *_involuntary_switches_per_s: the server's and the \
                 generators' threads preempted while pacing",
            ),
    ])
}

/// The hidden `cablebridge bench tunnel-generator`: one load generator of the separate-process
/// mode, driven by one-line commands on stdin, answering one line each on stdout:
/// `setup BASE FIRST COUNT` -> `ready N`; `rtt N` -> `rtt [µs...]`; `burst` -> `burst SECS
/// [µs...]`; `paced RATE SECS` -> `paced SWITCHES_PER_S [µs...]` (consumes the pairs); `quit` or
/// end of input ends it. A failure is returned (the caller prints `error ...`).
pub fn tunnel_generator() -> Result<(), String> {
    raise_fd_limit();
    let rt = runtime()?;
    let bound = |secs| Duration::from_secs(secs);
    let mut lines = std::io::stdin().lock().lines();
    let mut out = std::io::stdout().lock();
    let mut say = move |line: String| {
        writeln!(out, "{line}").and_then(|_| out.flush()).map_err(|e| format!("stdout: {e}"))
    };
    let setup = match lines.next() {
        Some(Ok(l)) => l,
        _ => return Err("no setup line on stdin".into()),
    };
    let parts: Vec<&str> = setup.split_whitespace().collect();
    let (base, first, count) = match parts.as_slice() {
        ["setup", base, first, count] => (
            base.to_string(),
            first.parse::<usize>().map_err(|_| "bad first pair index")?,
            count.parse::<usize>().map_err(|_| "bad pair count")?,
        ),
        _ => return Err(format!("bad setup line `{setup}`")),
    };
    let (mut desktops, mut phones) = rt.block_on(async {
        tokio::time::timeout(bound(110), open_pairs(&base, first, count))
            .await
            .map_err(|_| "setup exceeded 110 s".to_string())?
    })?;
    say(format!("ready {}", desktops.len()))?;
    let json = |v: &[f64]| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
    for line in lines {
        let line = line.map_err(|e| format!("stdin: {e}"))?;
        let parts: Vec<&str> = line.split_whitespace().collect();
        match parts.as_slice() {
            ["rtt", n] => {
                let n = n.parse().map_err(|_| "bad rtt count")?;
                let v = rt.block_on(async {
                    tokio::time::timeout(bound(110), sequential(&mut desktops, &mut phones, n))
                        .await
                        .map_err(|_| "rtt exceeded 110 s".to_string())?
                })?;
                say(format!("rtt {}", json(&v)))?;
            }
            ["burst"] => {
                let (v, t) = rt.block_on(async {
                    tokio::time::timeout(bound(110), burst(&mut desktops, &mut phones))
                        .await
                        .map_err(|_| "burst exceeded 110 s".to_string())?
                })?;
                say(format!("burst {} {}", t.as_secs_f64(), json(&v)))?;
            }
            ["paced", rate, secs] => {
                let rate: f64 = rate.parse().map_err(|_| "bad rate")?;
                let secs: f64 = secs.parse().map_err(|_| "bad duration")?;
                let (d, p) = (std::mem::take(&mut desktops), std::mem::take(&mut phones));
                let (before, started) = (involuntary_switches("self"), Instant::now());
                let v = rt.block_on(async {
                    tokio::time::timeout(bound(110), paced(d, p, rate, secs))
                        .await
                        .map_err(|_| "paced exceeded 110 s".to_string())?
                })?;
                let switches = match (before, involuntary_switches("self")) {
                    (Some(b), Some(a)) => {
                        a.saturating_sub(b) as f64 / started.elapsed().as_secs_f64().max(1e-9)
                    }
                    _ => f64::NAN,
                };
                say(format!("paced {switches} {}", json(&v)))?;
            }
            ["quit"] => break,
            _ => return Err(format!("unknown command `{line}`")),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// In one process (the original measurement).

fn in_process(opts: &Options<'_>) -> Result<Vec<Measurement>, String> {
    let wanted: usize = if opts.quick { 100 } else { 10_000 };
    let fds = raise_fd_limit();
    // 4 sockets per pair in this process, plus headroom for the runtime and stdio.
    let pairs = wanted.min((fds.saturating_sub(256) / 4) as usize).max(1);
    runtime()?.block_on(async {
        tokio::time::timeout(Duration::from_secs(120), load(pairs, wanted))
            .await
            .map_err(|_| "tunnel bench (in one process): exceeded its 120 s bound".to_string())?
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
    let rss_before = rss_kib("self");

    let started = Instant::now();
    let (mut desktops, mut phones) =
        open_pairs(&base, 0, pairs).await.map_err(|e| format!("tunnel bench: {e}"))?;
    let setup = started.elapsed();
    // Let the server's connection tasks settle before reading RSS.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_after = rss_kib("self");

    let rtt = Stats::of(
        sequential(&mut desktops, &mut phones, SEQUENTIAL)
            .await
            .map_err(|e| format!("tunnel bench: {e}"))?,
    );
    let (burst_rtts, burst_time) =
        burst(&mut desktops, &mut phones).await.map_err(|e| format!("tunnel bench: {e}"))?;
    let burst_stats = Stats::of(burst_rtts);

    let paced_for = if pairs <= 100 { 0.4 } else { 2.0 };
    let (switches_before, paced_started) = (involuntary_switches("self"), Instant::now());
    let lat =
        paced(desktops, phones, RATE, paced_for).await.map_err(|e| format!("tunnel bench: {e}"))?;
    let paced_n = lat.len();
    let paced_stats = Stats::of(lat);
    let switches_per_s = match (switches_before, involuntary_switches("self")) {
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
        Measurement::new(
            "tunnel",
            format!("{pairs} pairs, one round trip at a time, in one process"),
        )
        .field("pairs", pairs as f64)
        .field("pairs_wanted", wanted as f64)
        .field("rtt_p50_us", rtt.median)
        .field("rtt_p99_us", rtt.p99)
        .field("rtt_max_us", rtt.max)
        .opt_field("rss_kib_per_pair", rss_per_pair)
        .field("setup_us_per_pair", setup.as_secs_f64() * 1e6 / pairs as f64)
        .note(
            "server and both client ends in this process (4 sockets per pair, so the fd limit \
                 caps pairs at (limit - 256) / 4); 64 B desktop->phone->desktop through the relay \
                 (2 relayed messages); RSS per pair includes both client ends; goal p99 <= 1 ms, \
                 <= 32 KiB per pair",
        ),
        Measurement::new("tunnel", format!("{pairs} pairs echo at once, in one process"))
            .field("pairs", pairs as f64)
            .field("rtt_p50_us", burst_stats.median)
            .field("rtt_p99_us", burst_stats.p99)
            .field("msgs_per_s", relayed / burst_time.as_secs_f64())
            .note("256 B echo on every pair concurrently"),
        Measurement::new("tunnel", format!("{pairs} pairs, paced {RATE} msg/s, in one process"))
            .field("pairs", pairs as f64)
            .field("relayed_msgs_per_s", RATE)
            .field("round_trips", paced_n as f64)
            .field("rtt_p50_us", paced_stats.median)
            .field("rtt_p99_us", paced_stats.p99)
            .field("rtt_max_us", paced_stats.max)
            .opt_field("involuntary_switches_per_s", switches_per_s)
            .note(
                "64 B round trips started on a fixed schedule (RATE/2 per second, over every pair \
                 in turn, 1 ms timer ticks); latency from each send to its echo; goal p99 <= 1 ms. \
                 involuntary_switches_per_s: this process's threads preempted while pacing (other \
                 processes wanting the CPU)",
            ),
    ])
}
