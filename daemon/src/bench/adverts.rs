//! `adverts`: the BLE intake through the real path — [`crate::ble::scan`] (discovery through
//! btleplug, adverts read from BlueZ's D-Bus signals with zbus) — against the hw-tests mock BlueZ
//! served by the `cablebridge-mock-bluez` binary on its own private `dbus-daemon`.
//!
//! 1. Foreign adverts per second sustained: the mock emits N foreign 0xFFF9 service-data adverts
//!    (`PropertiesChanged` on 64 known devices, every payload distinct) as fast as it can, and at
//!    set rates; we count what the scan delivers to a consumer that offers each advert to an
//!    [`AdvertMatcher`] holding pending sessions, per second from the flood command to the last
//!    delivery (`adverts_per_s`), next to the mock's own emission rate (`emitted_per_s`).
//! 2. Match delay under a 4,000/s foreign flood: one pending session per sample; the bench
//!    seals an advert under its EID key and asks the mock to emit it, and times from writing that
//!    command to the matcher's `Matched` for that session (`match_delay_p50_ms`/`_p99_ms`). The
//!    command's pipe hop to the mock is included (microseconds; it only makes the figure larger).
//!
//! The mock binary is looked for as `$CABLEBRIDGE_MOCK_BLUEZ`, next to this executable (or one
//! directory up, for test binaries), then on `PATH`; without it (or without `dbus-daemon`, which
//! it starts) the bench reports `skipped` with the reason. libdbus reads
//! `DBUS_SYSTEM_BUS_ADDRESS` once per process, at its first system-bus connection: this bench
//! points it at the mock's bus and so must be the first Bluetooth user in the process (true for
//! `cablebridge bench`, which does nothing else with Bluetooth).

use super::ceremony::process_cpu_ns;
use super::{Measurement, Options, Stats};
use crate::advert::matcher::{AdvertMatcher, MatchOutcome};
use crate::ble::{self, ScanOptions};
use cablebridge_protocol::hybrid::eid::{EidKey, EidPlaintext};
use cablebridge_protocol::hybrid::keys::{self, EidKeyBytes, KeyPurpose, QrSecret};
use cablebridge_protocol::hybrid::noise::IdentityKeyPair;
use cablebridge_protocol::hybrid::session::DesktopPairing;
use cablebridge_protocol::hybrid::tunnel::RoutingId;
use p256::SecretKey;
use rand::RngCore;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const BIN: &str = "cablebridge-mock-bluez";
/// Foreign flood rate during the match-delay measurement (issue 13).
const FLOOD_RATE: u64 = 4000;

fn mock_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CABLEBRIDGE_MOCK_BLUEZ") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    let mut candidates = vec![dir.join(BIN)];
    if let Some(up) = dir.parent() {
        candidates.push(up.join(BIN));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join(BIN)));
    }
    candidates.into_iter().find(|p| p.is_file())
}

fn skipped(reason: &str) -> Vec<Measurement> {
    vec![Measurement::new("adverts", format!("skipped: {reason}")).note(
        "build the mock next to cablebridge (`cargo build -p cablebridge-hw-tests --bin \
         cablebridge-mock-bluez`, same profile) or set CABLEBRIDGE_MOCK_BLUEZ=PATH; it needs \
         dbus-daemon on PATH",
    )]
}

/// The mock process: commands on its stdin, its stdout lines on a channel (read by a thread).
struct Mock {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: std_mpsc::Receiver<String>,
}

impl Mock {
    fn send(&mut self, line: &str) -> Result<(), String> {
        let stdin = self.stdin.as_mut().ok_or("adverts bench: mock stdin closed")?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("adverts bench: mock BlueZ stopped: {e}"))
    }

    /// The next line starting with `prefix` (others, e.g. `sent`, are skipped).
    fn expect(&self, prefix: &str, within: Duration) -> Result<String, String> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.starts_with(prefix) => return Ok(l),
                Ok(l) if l.starts_with("error") => {
                    return Err(format!("adverts bench: mock BlueZ: {l}"))
                }
                Ok(_) => {}
                Err(_) => {
                    return Err(format!("adverts bench: no `{prefix}` from the mock BlueZ"));
                }
            }
        }
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        // End of stdin stops the mock and its bus.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// What the consumer saw.
enum Seen {
    /// `n` adverts delivered so far, the last at this instant.
    Count(u64, Instant),
    /// A pending session's advert was accepted.
    Matched(usize, Instant),
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

/// Notes each session's first match against when its advert was sent.
fn record(
    matched: Vec<(usize, Instant)>,
    sent_at: &[Option<Instant>],
    delay_ms: &mut [Option<f64>],
) {
    for (s, at) in matched {
        if let (Some(Some(t)), Some(slot @ None)) = (sent_at.get(s), delay_ms.get_mut(s)) {
            *slot = Some(at.saturating_duration_since(*t).as_secs_f64() * 1e3);
        }
    }
}

/// `adverts` (see the module docs).
pub fn adverts(opts: &Options<'_>) -> Result<Vec<Measurement>, String> {
    let Some(binary) = mock_binary() else {
        return Ok(skipped(
            "no cablebridge-mock-bluez binary (or CABLEBRIDGE_MOCK_BLUEZ is not a file)",
        ));
    };
    let mut child = Command::new(&binary)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("adverts bench: cannot start {}: {e}", binary.display()))?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().ok_or("adverts bench: no stdout pipe")?;
    let (line_tx, lines) = std_mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut mock = Mock { child, stdin, lines };
    let ready = match mock.lines.recv_timeout(Duration::from_secs(20)) {
        Ok(l) => l,
        Err(_) => return Ok(skipped("the mock BlueZ did not start")),
    };
    let Some(address) = ready.strip_prefix("ready ") else {
        // e.g. `error dbus-daemon: ... (is the dbus-daemon package installed?)`
        return Ok(skipped(ready.trim_start_matches("error ")));
    };
    std::env::set_var("DBUS_SYSTEM_BUS_ADDRESS", address);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("adverts bench: cannot start the async runtime: {e}"))?;

    // Pending sessions, one per match-delay sample; the seal side keeps their EID keys.
    let samples = if opts.quick { 3 } else { 30 };
    let mut rng = rand::thread_rng();
    let identity = IdentityKeyPair::new(SecretKey::random(&mut rng));
    let mut matcher = AdvertMatcher::new(false);
    let mut eid_keys = Vec::with_capacity(samples);
    for i in 0..samples {
        let mut secret = [0u8; 16];
        rng.fill_bytes(&mut secret);
        let key: [u8; 64] = keys::derive_array(&secret, &[], KeyPurpose::EidKey);
        eid_keys.push(EidKey::from_bytes(&EidKeyBytes::new(key)));
        matcher.add(i, DesktopPairing::from_qr(&QrSecret::new(secret), &identity));
    }

    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel();
    let scan = runtime.block_on(async {
        let mut scan = tokio::time::timeout(
            Duration::from_secs(20),
            ble::scan(ScanOptions { adapters: Some(vec!["hci0".into()]), ..Default::default() }),
        )
        .await
        .map_err(|_| "adverts bench: the scan did not start within 20 s".to_owned())?
        .map_err(|e| format!("adverts bench: scan against the mock BlueZ: {e}"))?;
        let mut stream = scan.take_stream().ok_or("adverts bench: no advert stream")?;
        tokio::spawn(async move {
            let mut n = 0u64;
            while let Some(Ok(a)) = stream.recv().await {
                n += 1;
                let now = Instant::now();
                let msg = match matcher.offer(&a.service_data) {
                    MatchOutcome::Matched { session, .. } => Seen::Matched(session, now),
                    _ => Seen::Count(n, now),
                };
                if seen_tx.send(msg).is_err() {
                    break;
                }
            }
        });
        Ok::<_, String>(scan)
    })?;

    let mut out = Vec::new();
    // Total delivered so far and when the last one came.
    let mut delivered = 0u64;
    let mut last = Instant::now();
    let mut drain = |until: Option<u64>, quiet: Duration, limit: Duration| {
        let deadline = Instant::now() + limit;
        let mut matched = Vec::new();
        runtime.block_on(async {
            while Instant::now() < deadline && until.is_none_or(|u| delivered < u) {
                match tokio::time::timeout(quiet, seen_rx.recv()).await {
                    Ok(Some(Seen::Count(n, at))) => (delivered, last) = (n, at),
                    Ok(Some(Seen::Matched(s, at))) => {
                        delivered += 1;
                        last = at;
                        matched.push((s, at));
                        if until.is_none() {
                            break;
                        }
                    }
                    _ => break,
                }
            }
        });
        (delivered, last, matched)
    };

    // (1) Throughput: as fast as the mock emits, then at set rates.
    let runs: Vec<(u64, u64)> = if opts.quick {
        vec![(2000, 0)]
    } else {
        vec![(40_000, 0), (4000, 2000), (10_000, 5000), (20_000, 10_000)]
    };
    for (count, rate) in runs {
        let (before, _, _) = drain(None, Duration::from_millis(300), Duration::from_secs(2));
        let t0 = Instant::now();
        let cpu0 = process_cpu_ns();
        mock.send(&format!("flood {count} {rate}"))?;
        let limit = Duration::from_secs(30);
        let (after, last_at, _) = drain(Some(before + count), Duration::from_millis(1500), limit);
        let cpu_ns = process_cpu_ns() - cpu0;
        let flooded = mock.expect("flooded", Duration::from_secs(30))?;
        let mut words = flooded.split_whitespace().skip(2).map(|s| s.parse::<f64>().ok());
        let emit_s = words.next().flatten().unwrap_or(0.0);
        // The mock's own CPU time for the flood (newer mocks print it).
        let mock_cpu_s = words.next().flatten();
        let got = after - before;
        let per_advert = |ns: f64| if got > 0 { ns / got as f64 / 1e3 } else { 0.0 };
        let secs = last_at.saturating_duration_since(t0).as_secs_f64().max(1e-9);
        let what = if rate == 0 {
            format!("foreign flood, mock max rate, {count}")
        } else {
            format!("foreign flood at {rate}/s, {count}")
        };
        out.push(
            Measurement::new("adverts", what)
                .field("offered_per_s", rate as f64)
                .field("emitted_per_s", if emit_s > 0.0 { count as f64 / emit_s } else { 0.0 })
                .field("delivered", got as f64)
                .field("lost", count.saturating_sub(got) as f64)
                .field("adverts_per_s", got as f64 / secs)
                .field("cpu_us_per_advert", per_advert(cpu_ns))
                .opt_field("mock_cpu_us_per_advert", mock_cpu_s.map(|s| per_advert(s * 1e9)))
                .note(
                    "adverts_per_s: delivered by ble::scan to the matcher per second, from the \
                     flood command to the last delivery; goal >= 10000. cpu_us_per_advert: this \
                     process's CPU time (scan, matcher, bench bookkeeping) per delivered advert; \
                     mock_cpu_us_per_advert: the emitter's",
                ),
        );
    }

    // (2) Match delay under a 4,000/s foreign flood.
    // A sample every ~150 ms plus its delay; the flood outlasts them (or is cut short at the end).
    let flood_s = samples as u64 / 3 + 1;
    mock.send(&format!("flood {} {FLOOD_RATE}", FLOOD_RATE * flood_s))?;
    std::thread::sleep(Duration::from_millis(200));
    // Sent instant and delay per session; a late match still counts for its own session.
    let mut sent_at: Vec<Option<Instant>> = vec![None; samples];
    let mut delay_ms: Vec<Option<f64>> = vec![None; samples];
    for (i, key) in eid_keys.iter().enumerate() {
        let mut nonce = [0u8; 10];
        rng.fill_bytes(&mut nonce);
        let advert = key.seal(&EidPlaintext::new(nonce, RoutingId([1, 2, 3]), 0));
        sent_at[i] = Some(Instant::now());
        mock.send(&format!("advert {}", hex(&advert)))?;
        let (_, _, matched) = drain(None, Duration::from_secs(2), Duration::from_secs(2));
        record(matched, &sent_at, &mut delay_ms);
        std::thread::sleep(Duration::from_millis(150));
    }
    // Stragglers (a backlog behind the flood): bounded.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let (_, _, matched) = drain(None, Duration::from_secs(2), Duration::from_secs(2));
        record(matched, &sent_at, &mut delay_ms);
        if delay_ms.iter().all(Option::is_some) {
            break;
        }
    }
    let delays: Vec<f64> = delay_ms.iter().flatten().copied().collect();
    let missed = (samples - delays.len()) as u32;
    let n = delays.len();
    let st = Stats::of(delays);
    out.push(
        Measurement::new("adverts", format!("match delay under {FLOOD_RATE}/s flood"))
            .field("samples", n as f64)
            .field("missed", f64::from(missed))
            .field("match_delay_p50_ms", st.median)
            .field("match_delay_p99_ms", st.p99)
            .field("match_delay_max_ms", st.max)
            .note("emission command to AdvertMatcher::offer returning Matched; goal <= 50 ms"),
    );
    let stats = scan.stats();
    out.push(
        Measurement::new("adverts", "scan queue totals")
            .field("fido_adverts", stats.fido_adverts as f64)
            .field("forwarded", stats.forwarded as f64)
            .field("overflow_dropped", stats.overflow_dropped as f64)
            .field("duplicates_dropped", stats.duplicates_dropped as f64),
    );
    drop(scan);
    runtime.shutdown_timeout(Duration::from_secs(2));
    drop(mock);
    Ok(out)
}
