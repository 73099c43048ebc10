//! Real-device tier for the uhid front (issue 11): a phone as a local security key, seen by
//! real clients through the kernel's `/dev/uhid`. Every test is `#[ignore]`d (CI has no
//! /dev/uhid, no Bluetooth, no phone); hw-tests/README.md ("uhid front") has the procedure.
//! Each test writes an evidence record to `$CABLEBRIDGE_EVIDENCE_DIR` (default
//! `target/evidence/`).
//!
//! Set-up once per machine (root):
//! ```sh
//! modprobe uhid
//! cp systemd/71-cablebridge-uhid.rules /etc/udev/rules.d/ && udevadm control --reload \
//!     && udevadm trigger /dev/uhid        # /dev/uhid → group cablebridge, mode 0660
//! cp systemd/70-cablebridge.rules /etc/udev/rules.d/   # the new hidraw node, for clients
//! ```
//! Run as a member of `cablebridge` (or root):
//! `cargo test -p cablebridge-hw-tests --test uhid_real -- --ignored --nocapture --test-threads 1`
//!
//! Environment: `CABLEBRIDGE_PHONE` (a label for the evidence), `CABLEBRIDGE_TUNNEL_URL`
//! (labs), `CABLEBRIDGE_UHID_MINUTES` (how long the Firefox test serves, default 5).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cablebridged::advert::AdvertSource;
use cablebridged::ceremony::{CeremonyError, CeremonyEvent, RawCtapReply};
use cablebridged::desktop::DesktopConfig;
use cablebridged::uhid::backend::{
    BridgeConfig, BridgeSession, PassThrough, PhoneBridge, SessionHooks,
};
use cablebridged::uhid::device::{fido_create2, serve, UhidFile, UhidPort};
use common::write_evidence;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// Prints QR codes and stages on the console; records every ceremony's outcome.
#[derive(Default)]
struct Console {
    outcomes: Arc<Mutex<Vec<Value>>>,
}

impl SessionHooks for Console {
    fn start(&self, ceremony: &'static str, rp_id: &str) -> Option<BridgeSession> {
        eprintln!("== {ceremony} for {rp_id}: scan the QR code with the phone");
        let outcomes = Arc::clone(&self.outcomes);
        let rp_id = rp_id.to_owned();
        Some(BridgeSession {
            events: Some(Arc::new(|e: &CeremonyEvent| match e {
                CeremonyEvent::Qr { url } => match qrcode::QrCode::new(url.as_bytes()) {
                    Ok(code) => eprintln!(
                        "{}",
                        code.render::<qrcode::render::unicode::Dense1x2>().quiet_zone(true).build()
                    ),
                    Err(err) => eprintln!("(cannot render QR: {err}) {url}"),
                },
                other => eprintln!("{}", other.to_json()),
            })),
            cancel: CancellationToken::new(),
            finish: Box::new(move |r: Result<&RawCtapReply, &CeremonyError>| {
                let v = match r {
                    Ok(reply) => json!({"ceremony": ceremony, "rp_id": rp_id,
                        "ctap_status": reply.status.name(), "timings_ms": reply.timings.to_json()}),
                    Err(e) => json!({"ceremony": ceremony, "rp_id": rp_id, "error": e.to_string(),
                        "stage": e.stage.as_str()}),
                };
                eprintln!("== {v}");
                outcomes.lock().unwrap().push(v);
            }),
        })
    }
}

/// Creates the real device and serves it until the returned token is cancelled.
async fn start_device() -> (CancellationToken, Arc<Mutex<Vec<Value>>>, tokio::task::JoinHandle<()>)
{
    let mut desktop = DesktopConfig::new(AdvertSource::Bluez);
    desktop.tunnel_url = std::env::var("CABLEBRIDGE_TUNNEL_URL").ok();
    let console = Console::default();
    let outcomes = Arc::clone(&console.outcomes);
    let mut bridge = PhoneBridge::new(BridgeConfig {
        desktop,
        linked: None,
        memory: None,
        hooks: Arc::new(console),
        review: Arc::new(PassThrough),
    });
    let file = UhidFile::open(Path::new("/dev/uhid")).expect(
        "open /dev/uhid (modprobe uhid; udev rule 71-cablebridge-uhid.rules; see module docs)",
    );
    let mut port = UhidPort::create(file, "/dev/uhid", &fido_create2("hw-test")).await.unwrap();
    let stop = CancellationToken::new();
    let s = stop.clone();
    let task = tokio::spawn(async move {
        serve(&mut port, &mut bridge, &s).await.unwrap();
        let _ = port.destroy().await;
    });
    // udev creates the hidraw node asynchronously.
    tokio::time::sleep(Duration::from_secs(1)).await;
    (stop, outcomes, task)
}

fn run(cmd: &str, args: &[&str]) -> (bool, String) {
    match std::process::Command::new(cmd).args(args).output() {
        Ok(o) => (
            o.status.success(),
            format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)),
        ),
        Err(e) => {
            (false, format!("cannot run {cmd}: {e} (apt install fido2-tools openssh-client)"))
        }
    }
}

#[tokio::test]
#[ignore = "needs /dev/uhid and libfido2's fido2-token (apt install fido2-tools)"]
async fn fido2_token_lists_the_phone_and_reads_its_info() {
    let (stop, _, task) = start_device().await;
    let (ok, list) = run("fido2-token", &["-L"]);
    assert!(ok, "{list}");
    let line = list
        .lines()
        .find(|l| l.contains("cablebridge phone") || l.to_lowercase().contains("1209:cb1d"))
        .unwrap_or_else(|| panic!("fido2-token -L does not list the device:\n{list}"));
    let node = line.split(':').next().unwrap().trim().to_owned();
    let (ok, info) = run("fido2-token", &["-I", &node]);
    assert!(ok && info.contains("FIDO_2_1"), "{info}");
    write_evidence(
        "uhid-fido2-token",
        json!({"test": "fido2-token -L / -I", "listed": line, "info": info}),
    );
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
#[ignore = "manual: Firefox + a real phone; see hw-tests/README.md (uhid front)"]
async fn firefox_registers_and_signs_in_with_a_real_phone() {
    let minutes: u64 =
        std::env::var("CABLEBRIDGE_UHID_MINUTES").ok().and_then(|m| m.parse().ok()).unwrap_or(5);
    eprintln!(
        "Open Firefox on https://webauthn.io, register (security key), then authenticate. \
         Scan each QR code shown here with the phone. Serving for {minutes} minutes."
    );
    let (stop, outcomes, task) = start_device().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(minutes * 60);
    loop {
        let done = {
            let o = outcomes.lock().unwrap();
            let ok =
                |c: &str| o.iter().any(|v| v["ceremony"] == c && v["ctap_status"] == "CTAP2_OK");
            ok("register") && ok("authenticate")
        };
        if done || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop.cancel();
    task.await.unwrap();
    let record = outcomes.lock().unwrap().clone();
    write_evidence(
        "uhid-firefox",
        json!({"test": "Firefox on webauthn.io through the uhid front",
               "phone": std::env::var("CABLEBRIDGE_PHONE").ok(), "ceremonies": record}),
    );
    let ok = |c: &str| record.iter().any(|v| v["ceremony"] == c && v["ctap_status"] == "CTAP2_OK");
    assert!(
        ok("register") && ok("authenticate"),
        "no successful register + authenticate: {record:#?}"
    );
}

#[tokio::test]
#[ignore = "manual: ssh-keygen -t ecdsa-sk with a real phone; see hw-tests/README.md"]
async fn ssh_keygen_ecdsa_sk_through_the_phone() {
    let (stop, outcomes, task) = start_device().await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id_ecdsa_sk");
    let key_s = key.display().to_string();
    eprintln!("ssh-keygen asks the device to register: scan the QR code with the phone.");
    let (ok, out) = tokio::task::spawn_blocking(move || {
        run("ssh-keygen", &["-t", "ecdsa-sk", "-N", "", "-C", "cablebridge-uhid", "-f", &key_s])
    })
    .await
    .unwrap();
    stop.cancel();
    task.await.unwrap();
    let public = std::fs::read_to_string(dir.path().join("id_ecdsa_sk.pub")).unwrap_or_default();
    write_evidence(
        "uhid-ssh-keygen",
        json!({"test": "ssh-keygen -t ecdsa-sk", "ok": ok, "output": out,
               "public_key": public, "ceremonies": outcomes.lock().unwrap().clone()}),
    );
    assert!(ok && public.starts_with("sk-ecdsa-sha2-nistp256@openssh.com"), "{out}");
}
