//! "No key attached" → wait for a hot-plug event, with the event source injected: a fake
//! `Added` event for a UDP-HID virtual key lets the whole ceremony run without USB; a silent
//! source ends in a typed timeout at `device_select`; Ctrl-C ends the wait; an unavailable
//! netlink socket fails at once saying why. The real socket is covered by hid_hotplug.rs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod usb_common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cablebridge_protocol::error::Fault;
use cablebridged::ceremony::{
    CeremonyErrorKind, CeremonyEvent, CeremonyOutcome, CeremonyRequest, CeremonyStage,
    ProgressDetail, ProgressEvent, RegisterOptions, UsbTransport,
};
use cablebridged::ctap::ceremony::run_with_arrivals;
use cablebridged::ctap::{KeyArrivals, OpenOptions};
use cablebridged::hid::{DeviceAddress, HidError, HotplugEvent, SysRoots};
use futures_util::stream;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use usb_common::*;

const INSERT: &str = "insert your security key";

/// Open options over an empty sysfs tree: no hidraw key is attached.
fn no_keys_attached(dir: &Path) -> OpenOptions {
    let mut open = OpenOptions::default();
    open.hidraw.roots = SysRoots { sys: dir.to_path_buf(), dev: dir.to_path_buf() };
    open
}

fn config(dir: &Path, timeout_ms: u64) -> UsbTransport {
    UsbTransport {
        devices: Vec::new(),
        timeout: Duration::from_millis(timeout_ms),
        pin: None,
        open: no_keys_attached(dir),
    }
}

fn register_request() -> CeremonyRequest {
    CeremonyRequest::Register(RegisterOptions::new("example.com", "alice"))
}

/// A progress sink recording events and calling `on_insert` when the wait starts.
fn sink(
    log: Arc<Mutex<Vec<ProgressEvent>>>,
    on_insert: impl Fn() + Send + Sync + 'static,
) -> Arc<dyn cablebridged::ceremony::EventSink> {
    Arc::new(move |e: &CeremonyEvent| {
        let CeremonyEvent::Progress(e) = e else { return };
        if e.detail == ProgressDetail::Text(INSERT.to_owned()) {
            on_insert();
        }
        log.lock().unwrap().push(e.clone());
    })
}

fn channel_arrivals(rx: mpsc::UnboundedReceiver<HotplugEvent>, key: DeviceAddress) -> KeyArrivals {
    let events =
        stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|e| (Ok::<_, HidError>(e), rx)) },
        );
    // Only /fake/hidraw7 "is" a FIDO key; it is reached over UDP-HID.
    KeyArrivals::new(events, move |p: &Path| (p == Path::new("/fake/hidraw7")).then(|| key.clone()))
}

#[tokio::test]
async fn a_key_plugged_in_while_waiting_completes_the_ceremony() {
    let key = key(0, None).await;
    let dir = tempfile::tempdir().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let log = Arc::new(Mutex::new(Vec::new()));
    // The events are sent only once the ceremony says it is waiting: a real plug-in, in order.
    let on_insert = move || {
        for e in [
            HotplugEvent::Removed(PathBuf::from("/fake/hidraw1")),
            HotplugEvent::Added(PathBuf::from("/fake/hidraw2")), // a mouse: not FIDO
            HotplugEvent::Added(PathBuf::from("/fake/hidraw7")),
        ] {
            let _ = tx.send(e);
        }
    };
    let arrivals = channel_arrivals(rx, address(&key));
    let cancel = CancellationToken::new();
    let cfg = config(dir.path(), 10_000);
    let outcome = timeout(
        Duration::from_secs(15),
        run_with_arrivals(
            &cfg,
            register_request(),
            Some(sink(log.clone(), on_insert)),
            &cancel,
            || Ok(arrivals),
        ),
    )
    .await
    .expect("bounded")
    .expect("the ceremony proceeds on the plugged-in key");
    let CeremonyOutcome::Registered(result) = outcome else { panic!("not a registration") };
    assert_eq!(result.transport.as_str(), "usb");
    let log = log.lock().unwrap();
    let waited = log
        .iter()
        .position(|e| {
            e.stage == CeremonyStage::DeviceSelect
                && e.detail == ProgressDetail::Text(INSERT.into())
        })
        .expect("an 'insert your security key' progress event");
    // Device selection then finished on the UDP key.
    let selected = log
        .iter()
        .position(|e| {
            e.stage == CeremonyStage::DeviceSelect
                && e.detail == ProgressDetail::Text(address(&key).to_string())
        })
        .expect("device_select finished with the new key");
    assert!(waited < selected);
}

#[tokio::test]
async fn no_key_plugged_in_is_a_typed_timeout_at_device_select() {
    let dir = tempfile::tempdir().unwrap();
    let cancel = CancellationToken::new();
    let cfg = config(dir.path(), 300);
    let started = tokio::time::Instant::now();
    let err = timeout(
        Duration::from_secs(5),
        run_with_arrivals(&cfg, register_request(), None, &cancel, || {
            Ok(KeyArrivals::new(stream::pending(), |_: &Path| None))
        }),
    )
    .await
    .expect("bounded")
    .unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(err.stage, CeremonyStage::DeviceSelect);
    assert_eq!((err.kind, err.fault), (CeremonyErrorKind::Timeout, Fault::Peer));
    assert!(err.message.contains("no FIDO security key was plugged in within"), "{}", err.message);
}

#[tokio::test]
async fn ctrl_c_ends_the_wait() {
    let dir = tempfile::tempdir().unwrap();
    let cancel = CancellationToken::new();
    let on_insert = {
        let cancel = cancel.clone();
        move || cancel.cancel()
    };
    let log = Arc::new(Mutex::new(Vec::new()));
    let cfg = config(dir.path(), 30_000);
    let err = timeout(
        Duration::from_secs(5),
        run_with_arrivals(&cfg, register_request(), Some(sink(log, on_insert)), &cancel, || {
            Ok(KeyArrivals::new(stream::pending(), |_: &Path| None))
        }),
    )
    .await
    .expect("cancel ends the wait long before the 30 s deadline")
    .unwrap_err();
    assert_eq!(err.stage, CeremonyStage::DeviceSelect);
    assert_eq!(err.kind, CeremonyErrorKind::Cancelled);
    assert!(err.message.contains("(cancelled)"), "{}", err.message);
}

#[tokio::test]
async fn without_hotplug_no_key_fails_at_once_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let cancel = CancellationToken::new();
    let cfg = config(dir.path(), 30_000);
    let err = timeout(
        Duration::from_secs(2),
        run_with_arrivals(&cfg, register_request(), None, &cancel, || {
            Err(HidError::Hotplug {
                reason: "creating a NETLINK_KOBJECT_UEVENT socket",
                source: std::io::Error::from_raw_os_error(1), // EPERM
            })
        }),
    )
    .await
    .expect("no waiting when hot-plug is unavailable")
    .unwrap_err();
    assert_eq!(err.stage, CeremonyStage::DeviceSelect);
    assert_eq!((err.kind, err.fault), (CeremonyErrorKind::Environment, Fault::Environment));
    for part in ["no FIDO security key found", "not waiting", "NETLINK_KOBJECT_UEVENT"] {
        assert!(err.message.contains(part), "{part:?} missing in {}", err.message);
    }
}
