//! Runs the real `cablebridge register|authenticate|links` binary against our tunnel server and
//! the virtual phone (both in this test process, on loopback): the JSON-lines contract (qr,
//! progress, result/error with `event`), exit codes, link storage and `links list|forget`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cablebridge_protocol::hybrid::qr::QrPayload;
use cablebridged::phone::sink::AdvertSinkSpec;
use cablebridged::phone::{PhoneConfig, PhoneState, VirtualPhone};
use cablebridged::tunnel::server::{TunnelServer, TunnelServerConfig};
use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const T: Duration = Duration::from_secs(30);

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cablebridge"))
}

#[tokio::test]
async fn register_json_lines_with_virtual_phone_then_links() {
    let server = TunnelServer::bind(TunnelServerConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("adverts.sock");
    let state = dir.path().join("state");
    let mut child = bin()
        .args(["register", "--json", "--rp-id", "example.com", "--user-name", "alice"])
        .args(["--advert-source", &format!("unix:{}", sock.display())])
        .args(["--tunnel-url", &server.base_url(), "--state-dir", state.to_str().unwrap()])
        .args(["--advert-timeout", "15s", "--user-timeout", "15s"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut events: Vec<Value> = Vec::new();
    tokio::time::timeout(T, async {
        // Setup progress, then the QR event; the phone scans it.
        let first = loop {
            let e: Value =
                serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
            events.push(e.clone());
            if e["event"] == "qr" {
                break e;
            }
        };
        let qr = QrPayload::from_url(first["url"].as_str().unwrap()).unwrap();
        assert_eq!(qr.linking, Some(true));
        let mut cfg = PhoneConfig::new(server.base_url());
        cfg.sink = AdvertSinkSpec::Unix(sock.clone());
        cfg.advert_interval = Duration::from_millis(20);
        cfg.offer_linking = true;
        cfg.name = "CLI Phone".into();
        let mut phone = VirtualPhone::new(cfg, PhoneState::new(&mut rand::rngs::OsRng), None, None);
        let (_, ()) = tokio::join!(phone.run_qr(&qr), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                events.push(serde_json::from_str(&line).unwrap());
            }
        });
    })
    .await
    .unwrap();
    let status = child.wait().await.unwrap();
    assert_eq!(status.code(), Some(0), "{events:?}");
    assert!(events.iter().all(|e| e["event"].is_string()));
    let stages: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "progress")
        .filter_map(|e| e["stage"].as_str())
        .collect();
    assert!(
        stages.starts_with(&["setup", "qr_shown", "advert", "tunnel_connect", "handshake"]),
        "{stages:?}"
    );
    let last = events.last().unwrap();
    assert_eq!(last["event"], "result");
    assert_eq!(last["verification"]["ok"], true);
    for f in
        ["credential_id", "attestation_object", "client_data_json", "public_key_cose", "aaguid"]
    {
        assert!(last[f].is_string(), "{f}: {last}");
    }
    assert!(last["timings_ms"]["user_response"].is_u64());

    // The link is listed (without secrets) and can be forgotten by name.
    let out =
        bin().args(["links", "list", "--json", "--state-dir"]).arg(&state).output().await.unwrap();
    assert_eq!(out.status.code(), Some(0));
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed["links"][0]["name"], "CLI Phone");
    let raw = std::fs::read_to_string(state.join("links.json")).unwrap();
    let stored: Value = serde_json::from_str(&raw).unwrap();
    let secret = stored["links"][0]["link_secret"].as_str().unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains(secret));
    let out = bin()
        .args(["links", "forget", "cli phone", "--state-dir"])
        .arg(&state)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let out = bin()
        .args(["links", "forget", "cli phone", "--state-dir"])
        .arg(&state)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn errors_are_the_last_json_line_with_stage_and_exit_code() {
    // Default advert source bluez with no system bus (pinned so the host's BlueZ cannot
    // interfere) → the precise environment error with its remedy, exit 3, stage advert.
    let out = bin()
        .args(["authenticate", "--json", "--rp-id", "example.com", "--no-linking"])
        .env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/cablebridge-test/bus")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let last: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "error");
    assert_eq!(last["stage"], "advert");
    let message = last["message"].as_str().unwrap();
    assert!(message.contains("BLE scanning (--advert-source bluez) cannot start"), "{message}");
    assert!(message.contains("no D-Bus system bus"), "{message}");
    assert!(message.contains("DBUS_SYSTEM_BUS_ADDRESS"), "remedy: {message}");

    // Bad base64url → usage, exit 2.
    let out = bin()
        .args(["authenticate", "--json", "--rp-id", "example.com", "--allow-credential", "!!"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

    // Advert timeout with stdin closed at once: the source ends → exit 1 at stage advert.
    let out = bin()
        .args(["register", "--json", "--rp-id", "example.com", "--user-name", "a", "--no-linking"])
        .args(["--advert-source", "stdin", "--advert-timeout", "2s"])
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let last: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!((last["event"].as_str(), last["stage"].as_str()), (Some("error"), Some("advert")));

    // --help documents the exit codes.
    let out = bin().args(["register", "--help"]).output().await.unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("3  environment error (no Bluetooth, tunnel unreachable"), "{help}");
}
