//! Unplug mid-transaction (issue 14): a hot-plug `remove` event for the selected key while a
//! CTAPHID transaction is in flight ends the USB ceremony at once with a typed error naming the
//! stage and the device ("… is gone (unplugged …)", an environment fault) — not a hang and not a
//! generic timeout at the ceremony's deadline.
//!
//! The key is the virtual key on UDP-HID, waiting for a "touch" (a long presence delay, so the
//! makeCredential transaction is in flight, keepalives flowing); the hot-plug events are injected
//! through [`KeyArrivals::new`] the way `usb_hotplug_wait.rs` injects arrivals. A UDP device gives
//! no read error when it goes away (the socket just goes quiet), so only the event can end the
//! ceremony early: on the old code (remove events ignored once a key was chosen) the first two
//! tests hit their 15 s bound, long before the 40 s deadline. The removal of some other device
//! changes nothing: that ceremony completes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod usb_common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cablebridge_protocol::error::Fault;
use cablebridged::ceremony::{
    CeremonyError, CeremonyErrorKind, CeremonyEvent, CeremonyOutcome, CeremonyRequest,
    CeremonyStage, EventSink, ProgressDetail, RegisterOptions, UsbTransport,
};
use cablebridged::ctap::ceremony::run_with_arrivals;
use cablebridged::ctap::{KeyArrivals, OpenOptions};
use cablebridged::hid::{DeviceAddress, HidError, HotplugEvent, SysRoots};
use cablebridged::virtual_key::VirtualKeyHandle;
use futures_util::stream;
use tokio::sync::mpsc;
use tokio::time::error::Elapsed;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use usb_common::{address, key};

const TOUCH: &str = "touch your key";
/// The test's bound: far below the ceremony's own deadline, so a timeout cannot pass for a fix.
const BOUND: Duration = Duration::from_secs(15);
const DEADLINE: Duration = Duration::from_secs(40);
const FAKE_NODE: &str = "/fake/hidraw7";

fn config(dir: &Path, devices: Vec<DeviceAddress>) -> UsbTransport {
    let mut open = OpenOptions::default();
    // An empty sysfs tree: no real hidraw key is attached.
    open.hidraw.roots = SysRoots { sys: dir.to_path_buf(), dev: dir.to_path_buf() };
    UsbTransport { devices, timeout: DEADLINE, pin: None, open, ..Default::default() }
}

/// Injected hot-plug events: `FAKE_NODE` "is" the UDP key.
fn arrivals(rx: mpsc::UnboundedReceiver<HotplugEvent>, key: DeviceAddress) -> KeyArrivals {
    let events =
        stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|e| (Ok::<_, HidError>(e), rx)) },
        );
    KeyArrivals::new(events, move |p: &Path| (p == Path::new(FAKE_NODE)).then(|| key.clone()))
}

/// A sink that sends `events` once the key asks for a touch (the transaction is in flight).
fn on_touch(
    tx: mpsc::UnboundedSender<HotplugEvent>,
    events: Vec<HotplugEvent>,
    touched: Arc<Mutex<bool>>,
) -> Arc<dyn EventSink> {
    Arc::new(move |e: &CeremonyEvent| {
        let CeremonyEvent::Progress(p) = e else { return };
        if p.detail == ProgressDetail::Text(TOUCH.to_owned()) {
            let mut done = touched.lock().unwrap();
            if !*done {
                *done = true;
                for e in &events {
                    let _ = tx.send(e.clone());
                }
            }
        }
    })
}

fn register() -> CeremonyRequest {
    CeremonyRequest::Register(RegisterOptions::new("unplug.example", "alice"))
}

/// The registration on `cfg` with `sink`, the hot-plug events sent to `rx` injected
/// (`FAKE_NODE` being `key`), bounded by `BOUND`.
async fn run_injected(
    cfg: &UsbTransport,
    sink: Arc<dyn EventSink>,
    rx: mpsc::UnboundedReceiver<HotplugEvent>,
    key: &VirtualKeyHandle,
) -> Result<Result<CeremonyOutcome, CeremonyError>, Elapsed> {
    let cancel = CancellationToken::new();
    let arrivals = arrivals(rx, address(key));
    timeout(BOUND, run_with_arrivals(cfg, register(), Some(sink), &cancel, || Ok(arrivals))).await
}

fn assert_unplugged(err: &cablebridged::ceremony::CeremonyError, device: &str) {
    assert_eq!(err.stage, CeremonyStage::UserPresence, "{err:?}");
    assert_eq!((err.kind, err.fault), (CeremonyErrorKind::Environment, Fault::Environment));
    assert_ne!(err.kind, CeremonyErrorKind::Timeout);
    assert!(err.message.contains(device), "{}", err.message);
    assert!(err.message.contains("is gone (unplugged"), "{}", err.message);
}

#[tokio::test]
async fn removing_a_named_key_mid_transaction_ends_the_ceremony_typed() {
    let key = key(30_000, None).await;
    let dir = tempfile::tempdir().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let touched = Arc::new(Mutex::new(false));
    // Another device goes first (ignored), then ours.
    let events = vec![
        HotplugEvent::Removed(PathBuf::from("/fake/hidraw2")),
        HotplugEvent::Removed(PathBuf::from(FAKE_NODE)),
    ];
    let sink = on_touch(tx, events, touched.clone());
    let cfg = config(dir.path(), vec![address(&key)]);
    let err = run_injected(&cfg, sink, rx, &key)
        .await
        .expect("the remove event ends the ceremony, not its 40 s deadline")
        .unwrap_err();
    assert!(*touched.lock().unwrap(), "the transaction was in flight (touch requested)");
    assert_unplugged(&err, &address(&key).to_string());
    key.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_key_plugged_in_then_unplugged_mid_transaction_ends_typed() {
    let key = key(30_000, None).await;
    let dir = tempfile::tempdir().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    // No key attached: the ceremony waits; the key arrives at once, then leaves at the touch.
    tx.send(HotplugEvent::Added(PathBuf::from(FAKE_NODE))).unwrap();
    let touched = Arc::new(Mutex::new(false));
    let sink = on_touch(tx, vec![HotplugEvent::Removed(PathBuf::from(FAKE_NODE))], touched.clone());
    let cfg = config(dir.path(), Vec::new());
    let err = run_injected(&cfg, sink, rx, &key)
        .await
        .expect("the remove event ends the ceremony, not its 40 s deadline")
        .unwrap_err();
    assert!(*touched.lock().unwrap());
    assert_unplugged(&err, &address(&key).to_string());
    key.shutdown().await.unwrap();
}

#[tokio::test]
async fn removing_another_device_does_not_disturb_the_ceremony() {
    let key = key(300, None).await;
    let dir = tempfile::tempdir().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let touched = Arc::new(Mutex::new(false));
    let events = vec![
        HotplugEvent::Removed(PathBuf::from("/fake/hidraw2")),
        HotplugEvent::Added(PathBuf::from("/fake/hidraw3")),
        HotplugEvent::Removed(PathBuf::from("/fake/hidraw3")),
    ];
    let sink = on_touch(tx, events, touched.clone());
    let cfg = config(dir.path(), vec![address(&key)]);
    let outcome = run_injected(&cfg, sink, rx, &key)
        .await
        .expect("bounded")
        .expect("other devices coming and going do not end the ceremony");
    assert!(*touched.lock().unwrap());
    assert!(matches!(outcome, CeremonyOutcome::Registered(_)));
    key.shutdown().await.unwrap();
}

#[tokio::test]
async fn without_hotplug_events_a_named_key_still_works() {
    // The netlink socket refused (containers): no removal watch, the ceremony runs as before.
    let key = key(0, None).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), vec![address(&key)]);
    let cancel = CancellationToken::new();
    let outcome = timeout(
        BOUND,
        run_with_arrivals(&cfg, register(), None, &cancel, || {
            Err(HidError::Hotplug {
                reason: "creating a NETLINK_KOBJECT_UEVENT socket",
                source: std::io::Error::from_raw_os_error(1),
            })
        }),
    )
    .await
    .expect("bounded")
    .expect("a named key needs no hot-plug events");
    assert!(matches!(outcome, CeremonyOutcome::Registered(_)));
    key.shutdown().await.unwrap();
}
