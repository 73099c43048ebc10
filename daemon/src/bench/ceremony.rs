//! `ceremony`: N complete hybrid ceremonies on loopback through the engine's one entry point
//! ([`crate::ceremony::run`], wired to the virtual phone by [`crate::testkit::with_phone`]):
//! desktop → our tunnel server → virtual phone, all in this process, adverts injected over a
//! Unix datagram socket, no presence delay, no QR rendering. Registrations first, then
//! authentications with the credential the warm-up registered.
//!
//! Per ceremony: wall time from `ceremony::run` to both sides having finished (p50/p99 over N),
//! and CPU time of the whole process (desktop + phone + tunnel server, every thread;
//! `CLOCK_PROCESS_CPUTIME_ID`, the same clock `getrusage` utime+stime reads) divided by N. Per
//! stage: the median time between the ceremony's progress events, so a slow p50 names its stage.

use super::{Measurement, Options, Stats};
use crate::advert::AdvertSource;
use crate::ceremony::{
    AuthenticateOptions, CeremonyEvent, CeremonyOutcome, CeremonyRequest, HybridTransport,
    RegisterOptions, Transport,
};
use crate::desktop::DesktopConfig;
use crate::phone::sink::AdvertSinkSpec;
use crate::phone::{PhoneConfig, PhoneState, VirtualPhone};
use crate::testkit::{with_phone, EventLog};
use crate::tunnel::server::{TunnelServer, TunnelServerConfig};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Stages in the order a hybrid QR ceremony finishes them (progress events name these).
const STAGES: &[&str] = &[
    "setup",
    "qr_shown",
    "advert",
    "tunnel_connect",
    "handshake",
    "post_handshake",
    "user_response",
];

/// Each stage's limit: everything is loopback work, so seconds are generous.
const STAGE_TIMEOUT: Duration = Duration::from_secs(10);

/// This process's CPU time (all threads) in nanoseconds.
pub(crate) fn process_cpu_ns() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    t.tv_sec as f64 * 1e9 + t.tv_nsec as f64
}

/// Runs the ceremonies (bounded: 120 s overall) on a 2-worker runtime, like the CLI's.
pub fn ceremony(opts: &Options<'_>) -> Result<Vec<Measurement>, String> {
    let n: usize = if opts.quick { 5 } else { 200 };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("ceremony bench: cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(120), run(n))
            .await
            .map_err(|_| "ceremony bench: exceeded its 120 s bound".to_string())?
    })
}

/// One ceremony's wall time and its stages' durations (µs, in [`STAGES`] order; the last entry
/// is the time after `user_response`: shutdown, late updates, result checks).
struct Sample {
    total_us: f64,
    stages_us: Vec<f64>,
}

async fn run(n: usize) -> Result<Vec<Measurement>, String> {
    let server = TunnelServer::bind(TunnelServerConfig::default())
        .await
        .map_err(|e| format!("ceremony bench: tunnel server: {e}"))?;
    // A private (0700) directory for the advert socket, removed on drop.
    let dir = tempfile::Builder::new()
        .prefix("cablebridge-bench-")
        .tempdir()
        .map_err(|e| format!("ceremony bench: cannot create a temporary directory: {e}"))?;
    let advert_path = dir.path().join("adverts.sock");

    let mut phone_config = PhoneConfig::new(server.base_url());
    phone_config.sink = AdvertSinkSpec::Unix(advert_path.clone());
    phone_config.presence_delay = Duration::ZERO;
    phone_config.desktop_timeout = STAGE_TIMEOUT;
    phone_config.idle_timeout = STAGE_TIMEOUT;
    let mut phone =
        VirtualPhone::new(phone_config, PhoneState::new(&mut rand::rngs::OsRng), None, None);

    let mut desktop = DesktopConfig::new(AdvertSource::UnixDatagram(advert_path));
    desktop.tunnel_url = Some(server.base_url());
    desktop.timeouts.advert = STAGE_TIMEOUT;
    desktop.timeouts.connect = STAGE_TIMEOUT;
    desktop.timeouts.handshake = STAGE_TIMEOUT;
    desktop.timeouts.user = STAGE_TIMEOUT;
    desktop.timeouts.late_updates = STAGE_TIMEOUT;

    let rp = "bench.cablebridge.example";
    // Warm-up (connection set-up paths, allocator) and the credential to authenticate with.
    let mut credential = registered(one(&desktop, &mut phone, register(rp)).await?.0)?;
    let mut out = Vec::new();
    for kind in ["register", "authenticate"] {
        let mut samples = Vec::with_capacity(n);
        let cpu = process_cpu_ns();
        for _ in 0..n {
            let request = if kind == "register" {
                register(rp)
            } else {
                let mut o = AuthenticateOptions::new(rp);
                o.allow_credentials = vec![credential.clone()];
                CeremonyRequest::Authenticate(o)
            };
            let (outcome, sample) = one(&desktop, &mut phone, request).await?;
            if kind == "register" {
                // Authenticate with the newest: it replaced the older ones (same user handle).
                credential = registered(outcome)?;
            }
            samples.push(sample);
        }
        let cpu_ms = (process_cpu_ns() - cpu) / 1e6 / n as f64;
        out.push(measure(kind, n, &samples, cpu_ms));
    }
    server.shutdown().await;
    Ok(out)
}

/// A registration for the same user every time: the phone's discoverable credential for
/// (rp, user handle) is replaced, so its key store does not fill up over N ceremonies.
fn register(rp: &str) -> CeremonyRequest {
    let mut o = RegisterOptions::new(rp, "bench-user");
    o.user.id = b"cablebridge-bench-user".to_vec();
    CeremonyRequest::Register(o)
}

fn registered(outcome: CeremonyOutcome) -> Result<Vec<u8>, String> {
    match outcome {
        CeremonyOutcome::Registered(r) => Ok(r.credential_id),
        CeremonyOutcome::Authenticated(_) => {
            Err("ceremony bench: register returned an assertion".into())
        }
    }
}

fn measure(kind: &str, n: usize, samples: &[Sample], cpu_ms: f64) -> Measurement {
    let total = Stats::of(samples.iter().map(|s| s.total_us / 1e3).collect());
    let mut m = Measurement::new("ceremony", format!("{kind}, loopback, {n} ceremonies"))
        .field("ceremonies", n as f64)
        .field("p50_ms", total.median)
        .field("p90_ms", total.p90)
        .field("p99_ms", total.p99)
        .field("max_ms", total.max)
        .field("cpu_per_ceremony_ms", cpu_ms);
    const NAMES: &[&str] = &[
        "setup_p50_us",
        "qr_shown_p50_us",
        "advert_p50_us",
        "tunnel_connect_p50_us",
        "handshake_p50_us",
        "post_handshake_p50_us",
        "user_response_p50_us",
        "after_response_p50_us",
    ];
    for (i, name) in NAMES.iter().enumerate() {
        let per: Vec<f64> = samples.iter().filter_map(|s| s.stages_us.get(i).copied()).collect();
        m = m.field(name, Stats::of(per).median);
    }
    m.note(
        "desktop -> own tunnel server -> virtual phone in one process, adverts injected, no \
         presence delay; cpu: whole process (all three roles); goal p50 <= 5 ms, p99 <= 15 ms",
    )
}

/// One ceremony with the phone answering; its outcome and timings.
async fn one(
    config: &DesktopConfig,
    phone: &mut VirtualPhone,
    request: CeremonyRequest,
) -> Result<(CeremonyOutcome, Sample), String> {
    let marks: Arc<Mutex<Vec<(Instant, &'static str)>>> = Arc::new(Mutex::new(Vec::new()));
    let recorded = Arc::clone(&marks);
    let mut log = EventLog::forwarding(Box::new(move |e: &CeremonyEvent| {
        if let CeremonyEvent::Progress(p) = e {
            let now = Instant::now();
            recorded.lock().unwrap_or_else(PoisonError::into_inner).push((now, p.stage.as_str()));
        }
    }));
    let transport = Transport::Hybrid(HybridTransport::new(config.clone()));
    let started = Instant::now();
    let (desktop, answered) =
        with_phone(transport, request, &mut log, |qr| async move { phone.run_qr(&qr).await }).await;
    let ended = Instant::now();
    let outcome = desktop.map_err(|e| format!("ceremony bench: the ceremony failed: {e}"))?;
    match answered {
        Some(Ok(_)) => {}
        Some(Err(e)) => return Err(format!("ceremony bench: the phone failed: {e}")),
        None => return Err("ceremony bench: the desktop showed no QR code".into()),
    }
    let marks = marks.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let mut stages_us = vec![0.0; STAGES.len() + 1];
    let mut last = started;
    for (at, stage) in &marks {
        if let Some(i) = STAGES.iter().position(|s| s == stage) {
            stages_us[i] += at.duration_since(last).as_secs_f64() * 1e6;
        }
        last = *at;
    }
    stages_us[STAGES.len()] = ended.duration_since(last).as_secs_f64() * 1e6;
    let total_us = ended.duration_since(started).as_secs_f64() * 1e6;
    Ok((outcome, Sample { total_us, stages_us }))
}
