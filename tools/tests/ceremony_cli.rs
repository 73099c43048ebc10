//! Runs the real `cablebridge register|authenticate|links` binary against our tunnel server and
//! the virtual phone (both in this test process, on loopback): the JSON-lines contract (qr,
//! progress, result/error with `event`), exit codes, link storage and `links list|forget`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{answer_qr, bin, qr, spawn_lines, virtual_phone, Hybrid};
use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

#[tokio::test]
async fn register_json_lines_with_virtual_phone_then_links() {
    let rig = Hybrid::start().await;
    let state = rig.dir.path().join("state");
    let mut c = rig.register("15s");
    c.args(["--state-dir", state.to_str().unwrap()]);
    let (mut child, mut lines) = spawn_lines(&mut c);
    let mut cfg = rig.phone_config();
    cfg.offer_linking = true;
    cfg.name = "CLI Phone".into();
    let mut phone = virtual_phone(cfg);
    let mut events: Vec<Value> = Vec::new();
    // Setup progress, then the QR event; the phone scans it.
    let answer = |url: String| async move {
        let qr = qr(&url);
        assert_eq!(qr.linking, Some(true));
        let _ = phone.run_qr(&qr).await;
    };
    tokio::time::timeout(T, answer_qr(&mut lines, &mut events, answer)).await.unwrap();
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
    // Forgotten once; a second time there is no such link (usage error, exit 2).
    for code in [0, 2] {
        let out = bin()
            .args(["links", "forget", "cli phone", "--state-dir"])
            .arg(&state)
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(code));
    }
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
