//! Real-key tier for the hidraw driver. Every test is `#[ignore]`: it needs a FIDO key plugged in
//! and udev permissions. Procedure and environment variables: hw-tests/README.md.
//!
//! `CABLEBRIDGE_HIDRAW=/dev/hidrawN` picks the key; otherwise the first FIDO key found is used.

// Helpers outside #[test] fns are test code too; clippy.toml only exempts #[test] bodies.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::time::Duration;

use cablebridged::hid::{
    enumerate, DeviceAddress, HidDevice, HidError, HidTransport, HidrawOptions, HotplugEvent,
    HotplugMonitor, LockPolicy, SysRoots,
};
use futures_util::StreamExt;
use tokio::time::timeout;

fn chosen_key() -> PathBuf {
    if let Ok(path) = std::env::var("CABLEBRIDGE_HIDRAW") {
        return PathBuf::from(path);
    }
    let found = enumerate(&SysRoots::default());
    for skipped in &found.skipped {
        eprintln!("skipped {}: {}", skipped.name, skipped.reason);
    }
    found.devices.first().map(|d| d.path.clone()).expect("no FIDO key found: plug one in")
}

async fn open_key() -> HidDevice {
    let address = DeviceAddress::Hidraw(chosen_key());
    HidDevice::open(&address, &HidrawOptions::default()).await.unwrap_or_else(|e| panic!("{e}"))
}

#[test]
#[ignore = "needs a FIDO key (hw-tests/README.md)"]
fn hidraw_enumerates_real_keys() {
    let found = enumerate(&SysRoots::default());
    for key in &found.devices {
        eprintln!("{}  layout {:?}", key.describe(), key.layout);
    }
    assert!(!found.devices.is_empty(), "no FIDO key found; skipped: {:?}", found.skipped);
    for key in &found.devices {
        assert!(key.layout.input_len > 0 && key.layout.input_len <= 64);
    }
}

#[tokio::test]
#[ignore = "needs a FIDO key (hw-tests/README.md)"]
async fn hidraw_open_takes_the_libfido2_lock() {
    let key = open_key().await;
    eprintln!("opened {}", key.describe());
    assert_eq!(key.report_len(), 64);
    // A second open (another open file description, as another process would have) must find
    // the lock taken and give up after the bounded retry.
    let quick = HidrawOptions {
        lock: LockPolicy { retries: 2, step: Duration::from_millis(10) },
        ..HidrawOptions::default()
    };
    let address = DeviceAddress::Hidraw(PathBuf::from(key.path()));
    let err = HidDevice::open(&address, &quick).await.unwrap_err();
    assert!(matches!(err, HidError::Busy { .. }), "{err:?}");
    drop(key);
    // Released on drop.
    HidDevice::open(&address, &quick).await.unwrap();
}

#[tokio::test]
#[ignore = "needs a FIDO key (hw-tests/README.md)"]
async fn hidraw_ctaphid_init_round_trip() {
    // CTAPHID_INIT on the broadcast channel, built by hand (CTAP 2.1 §11.2.9.1.3) until the
    // protocol crate's ctaphid module is wired in: CID ffffffff, CMD 0x86, BCNT 8, nonce.
    let key = open_key().await;
    let nonce = *b"cbridge!";
    let mut init = [0u8; 64];
    init[..4].copy_from_slice(&[0xff; 4]);
    init[4] = 0x86;
    init[6] = 8;
    init[7..15].copy_from_slice(&nonce);
    key.send_report(&init).await.unwrap();

    let mut buf = [0u8; 64];
    let reply = timeout(Duration::from_secs(3), async {
        loop {
            key.recv_report(&mut buf).await.unwrap();
            // Other clients' broadcast replies can arrive too: match our nonce.
            if buf[..5] == [0xff, 0xff, 0xff, 0xff, 0x86] && buf[7..15] == nonce {
                return buf;
            }
        }
    })
    .await
    .expect("INIT reply within 3 s");
    let bcnt = u16::from_be_bytes([reply[5], reply[6]]);
    assert!(bcnt >= 17, "INIT reply payload is 17 bytes, got {bcnt}");
    let cid = u32::from_be_bytes([reply[15], reply[16], reply[17], reply[18]]);
    assert!(cid != 0 && cid != 0xffff_ffff, "allocated CID {cid:08x}");
    eprintln!("CTAPHID version {}, capabilities {:#04x}, cid {cid:08x}", reply[19], reply[23]);
}

#[tokio::test]
#[ignore = "needs a FIDO key and a human to unplug and replug it within 30 s"]
async fn hidraw_hotplug_sees_unplug_and_replug() {
    let mut monitor = HotplugMonitor::open(std::path::Path::new("/dev")).unwrap();
    eprintln!("unplug the key, then plug it back in (30 s)...");
    let mut seen = (false, false);
    let _ = timeout(Duration::from_secs(30), async {
        while let Some(event) = monitor.next().await {
            match event.unwrap() {
                HotplugEvent::Removed(p) => {
                    eprintln!("removed {}", p.display());
                    seen.0 = true;
                }
                HotplugEvent::Added(p) => {
                    eprintln!("added {}", p.display());
                    seen.1 = true;
                }
            }
            if seen == (true, true) {
                break;
            }
        }
    })
    .await;
    assert_eq!(seen, (true, true), "(removed, added) events seen");
}
