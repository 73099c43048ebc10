//! The CTAPHID driver on one clock (issue 9 item 4): under `tokio::time::pause` the driver's
//! timers jump ahead while the wall clock stands still, so a driver that armed its timers on
//! tokio's clock but read `now` from the wall clock never saw its deadline pass and spun
//! forever. These tests run the real `CtapHidDevice` against an in-memory device (the sans-IO
//! `DeviceState`) on a paused runtime, in a thread watched by a wall-clock bound so the old
//! behaviour fails instead of hanging.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cablebridge_protocol::ctaphid::{
    Cid, Command, DeviceConfig, DeviceEvent, DeviceState, KeepAliveStatus, Waiting,
};
use cablebridged::ctap::{Call, CtapError, CtapHidDevice, DeviceProgress, DriverConfig};
use cablebridged::hid::{HidTransport, TransportStats};
use rand::rngs::OsRng;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How the in-memory key answers a CBOR request.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Never answers (a key nobody touches that also sends no keepalives).
    Silent,
    /// UPNEEDED keepalives every 100 ms for `touch_after`, then answers `[0x00]`.
    TouchAfter(Duration),
}

struct MemoryKey {
    device: Arc<Mutex<DeviceState>>,
    to_host_tx: mpsc::UnboundedSender<Vec<u8>>,
    to_host: tokio::sync::Mutex<mpsc::UnboundedReceiver<Vec<u8>>>,
    behaviour: Behaviour,
    requests: Arc<AtomicU32>,
    cancels: Arc<AtomicU32>,
}

impl MemoryKey {
    fn new(behaviour: Behaviour) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        MemoryKey {
            device: Arc::new(Mutex::new(DeviceState::new(DeviceConfig::default()))),
            to_host_tx: tx,
            to_host: tokio::sync::Mutex::new(rx),
            behaviour,
            requests: Arc::default(),
            cancels: Arc::default(),
        }
    }
}

fn flush(device: &mut DeviceState, tx: &mpsc::UnboundedSender<Vec<u8>>) {
    while let Some(report) = device.poll_transmit() {
        let _ = tx.send(report.to_vec());
    }
}

impl HidTransport for MemoryKey {
    async fn send_report(&self, report: &[u8]) -> cablebridged::hid::error::Result<()> {
        let mut device = self.device.lock().unwrap();
        device.handle_report(report, Instant::now().into_std(), &mut OsRng);
        flush(&mut device, &self.to_host_tx);
        while let Some(event) = device.poll_event() {
            match event {
                DeviceEvent::Request { cid, cmd: Command::Cbor, .. } => {
                    self.requests.fetch_add(1, Ordering::SeqCst);
                    if let Behaviour::TouchAfter(after) = self.behaviour {
                        tokio::spawn(answer_later(
                            Arc::clone(&self.device),
                            self.to_host_tx.clone(),
                            cid,
                            after,
                        ));
                    }
                }
                DeviceEvent::Cancel { .. } => {
                    self.cancels.fetch_add(1, Ordering::SeqCst);
                }
                _ => {}
            }
        }
        Ok(())
    }

    async fn recv_report(&self, buf: &mut [u8]) -> cablebridged::hid::error::Result<usize> {
        // Cancel-safe: a dropped `recv` loses no report.
        let report = self.to_host.lock().await.recv().await.unwrap_or_default();
        buf[..report.len()].copy_from_slice(&report);
        Ok(report.len())
    }

    fn report_len(&self) -> usize {
        64
    }
    fn path(&self) -> &str {
        "memory:key"
    }
    fn describe(&self) -> String {
        "in-memory CTAPHID key".to_owned()
    }
    fn stats(&self) -> TransportStats {
        TransportStats::default()
    }
}

async fn answer_later(
    device: Arc<Mutex<DeviceState>>,
    tx: mpsc::UnboundedSender<Vec<u8>>,
    cid: Cid,
    after: Duration,
) {
    let until = Instant::now() + after;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut d = device.lock().unwrap();
        let _ = d.keepalive(cid, KeepAliveStatus::UpNeeded);
        flush(&mut d, &tx);
    }
    let mut d = device.lock().unwrap();
    d.respond(cid, Command::Cbor, &[0x00]).unwrap();
    flush(&mut d, &tx);
}

/// What one transaction on a paused clock produced.
struct Run {
    result: Result<Vec<u8>, CtapError>,
    /// Virtual (tokio) time the transaction took.
    took: Duration,
    touch_needed: u32,
    requests: u32,
    cancels: u32,
}

/// Opens the key and runs one CBOR transaction with `deadline` on a runtime whose clock starts
/// paused. The runtime lives on its own thread; a wall-clock bound turns a spinning driver into
/// a test failure.
fn on_paused_clock(behaviour: Behaviour, deadline: Duration) -> Run {
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let run = rt.block_on(async {
            let key = MemoryKey::new(behaviour);
            let (requests, cancels) = (Arc::clone(&key.requests), Arc::clone(&key.cancels));
            let mut dev =
                CtapHidDevice::open(key, &mut OsRng, DriverConfig::default()).await.unwrap();
            let cancel = CancellationToken::new();
            let mut touch_needed = 0;
            let mut progress = |p: DeviceProgress| {
                if p == DeviceProgress::TouchNeeded {
                    touch_needed += 1;
                }
            };
            let started = Instant::now();
            let mut call =
                Call { deadline: started + deadline, cancel: &cancel, progress: &mut progress };
            let result = dev.transact(Command::Cbor, &[0x01, 0xa0], &mut call).await;
            let took = started.elapsed();
            Run {
                result,
                took,
                touch_needed,
                requests: requests.load(Ordering::SeqCst),
                cancels: cancels.load(Ordering::SeqCst),
            }
        });
        let _ = done_tx.send(run);
    });
    // Virtual minutes take wall-clock milliseconds; 60 s means the driver is stuck.
    done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the driver never finished on a paused clock: timers and `now` disagree")
}

#[test]
fn an_untouched_key_times_out_on_the_paused_clock_and_gets_cancel() {
    let run = on_paused_clock(Behaviour::Silent, Duration::from_secs(120));
    match &run.result {
        Err(CtapError::Timeout { waiting, command: Command::Cbor, .. }) => {
            assert_eq!(*waiting, Waiting::Response, "{:?}", run.result)
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    // The deadline passed on tokio's clock, then the cancel grace (500 ms) — not more.
    let grace = DriverConfig::default().cancel_grace;
    assert!(run.took >= Duration::from_secs(120), "{:?}", run.took);
    assert!(run.took <= Duration::from_secs(120) + grace * 2, "{:?}", run.took);
    assert_eq!((run.requests, run.cancels), (1, 1), "one request, one CTAPHID_CANCEL");
}

#[test]
fn keepalives_and_a_late_answer_follow_the_paused_clock() {
    let run =
        on_paused_clock(Behaviour::TouchAfter(Duration::from_secs(30)), Duration::from_secs(60));
    assert_eq!(run.result.unwrap(), [0x00]);
    assert!(
        run.took >= Duration::from_secs(30) && run.took < Duration::from_secs(60),
        "{:?}",
        run.took
    );
    assert!(run.touch_needed >= 100, "{} keepalives seen", run.touch_needed);
    assert_eq!((run.requests, run.cancels), (1, 0));
}
