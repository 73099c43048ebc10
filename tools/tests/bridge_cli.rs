//! The real binaries end to end: `cablebridge virtual-key` (the USB key, over UDP-HID),
//! `cablebridge register --advert-source unix:…` (the desktop) and `cablebridge bridge
//! --qr-image` (the key served as a phone, reading the desktop's QR from a PNG), with our tunnel
//! server in this process on loopback. Parses every JSON line; checks exit codes of the
//! `--qr-image` failures.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{answer_qr, bin, spawn_lines, Hybrid};
use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

const T: Duration = Duration::from_secs(60);
const AAGUID: &str = "0123456789abcdef0123456789abcdef";

fn qr_png(url: &str, path: &std::path::Path) {
    let code = qrcode::QrCode::new(url.as_bytes()).unwrap();
    let img = code.render::<image::Luma<u8>>().module_dimensions(5, 5).build();
    img.save_with_format(path, image::ImageFormat::Png).unwrap();
}

/// `cablebridge virtual-key` (with `extra` flags) on loopback UDP-HID, as a process killed with
/// the test; the child and its `udp:` address from its `listening` line.
async fn virtual_key_process(extra: &[&str]) -> (tokio::process::Child, String) {
    let mut key = bin()
        .args(["virtual-key", "--json", "--listen", "udp:127.0.0.1:0", "--aaguid", AAGUID])
        .args(extra)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut key_lines = BufReader::new(key.stdout.take().unwrap()).lines();
    let listening: Value = serde_json::from_str(
        &tokio::time::timeout(T, key_lines.next_line()).await.unwrap().unwrap().unwrap(),
    )
    .unwrap();
    assert_eq!(listening["event"], "listening");
    let device = listening["address"].as_str().unwrap().to_owned();
    (key, device)
}

#[tokio::test]
async fn register_through_bridge_with_qr_image_and_virtual_key() {
    let rig = Hybrid::start().await;
    let png = rig.dir.path().join("qr.png");

    let (_key, device) = virtual_key_process(&["--user-presence-delay-ms", "300"]).await;

    let mut c = rig.register("30s");
    c.arg("--no-linking");
    let (mut desktop, mut lines) = spawn_lines(&mut c);
    let mut events: Vec<Value> = Vec::new();
    let (tunnel, sink) = (rig.tunnel(), format!("unix:{}", rig.adverts.display()));
    let answer = |url: String| async move {
        qr_png(&url, &png);
        let mut bridge = bin()
            .args(["bridge", "--json", "--qr-image", png.to_str().unwrap(), "--device", &device])
            .args(["--tunnel-url", &tunnel])
            .args(["--advert-sink", &sink])
            .args(["--timeout-secs", "30"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut out = bridge.stdout.take().unwrap();
        let mut err = bridge.stderr.take().unwrap();
        let (mut so, mut se) = (String::new(), String::new());
        let (_, _) = tokio::join!(out.read_to_string(&mut so), err.read_to_string(&mut se));
        (so, se, bridge.wait().await.unwrap().code())
    };
    let (bridge_out, bridge_err, bridge_code) =
        tokio::time::timeout(T, answer_qr(&mut lines, &mut events, answer)).await.unwrap();
    assert_eq!(desktop.wait().await.unwrap().code(), Some(0), "{events:?}\n{bridge_err}");
    assert_eq!(bridge_code, Some(0), "{bridge_out}\n{bridge_err}");

    // The desktop got the key's own credential: its AAGUID and packed attestation, verified.
    let last = events.last().unwrap();
    assert_eq!(last["event"], "result");
    assert_eq!(last["verification"]["ok"], true, "{last}");
    assert_eq!(last["aaguid"].as_str().unwrap().replace('-', ""), AAGUID, "{last}");
    assert_eq!(last["attestation_format"], "packed", "{last}");

    // The bridge: JSON progress lines on stderr, a JSON report on stdout.
    let progress: Vec<Value> =
        bridge_err.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let names: Vec<&str> = progress.iter().filter_map(|e| e["event"].as_str()).collect();
    for e in ["key_ready", "advertising", "handshake_done", "key_waiting", "responded", "closed"] {
        assert!(names.contains(&e), "missing {e} in {names:?}");
    }
    // The operator sees which relying party a touch approves, before the touch.
    let forwarding = progress.iter().find(|e| e["event"] == "forwarding").unwrap();
    assert_eq!(forwarding["rp_id"], "example.com", "{forwarding}");
    assert_eq!(forwarding["command"], "authenticatorMakeCredential", "{forwarding}");
    let waiting = progress.iter().find(|e| e["event"] == "key_waiting").unwrap();
    assert!(waiting["what"].as_str().unwrap().contains("example.com"), "{waiting}");
    let ready = progress.iter().find(|e| e["event"] == "key_ready").unwrap();
    assert_eq!(ready["aaguid"], AAGUID);
    assert_eq!(ready["pin_needed"], false);
    let report: Value = serde_json::from_str(&bridge_out).unwrap();
    assert_eq!(report["requests"], 1, "{report}");
    assert_eq!(report["last_status"], 0, "{report}");
    assert_eq!(report["aaguid"], AAGUID);
}

#[tokio::test]
async fn qr_image_failures_have_their_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let run = |image: std::path::PathBuf| async move {
        bin()
            .args(["bridge", "--json", "--device", "udp:127.0.0.1:9", "--qr-image"])
            .arg(image)
            .output()
            .await
            .unwrap()
    };
    // Missing file: environment, exit 3.
    let out = run(dir.path().join("missing.png")).await;
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(err["message"].as_str().unwrap().contains("cannot read QR image"), "{err}");
    // Not an image: exit 2.
    let text = dir.path().join("qr.png");
    std::fs::write(&text, "FIDO:/1234").unwrap();
    let out = run(text).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    // An image with a QR that is not FIDO:/ : exit 2, the text is shown.
    let web = dir.path().join("web.png");
    qr_png("https://example.com/", &web);
    let out = run(web).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("not a FIDO:/ hybrid code"), "{out:?}");
}

/// A Digital Credentials request to a bridge: a USB key holds no documents, so the bridge
/// announces only the `ctap` feature and the desktop refuses before sending anything, naming the
/// missing `"dc"` feature at stage `post_handshake`. The key is never asked for anything.
#[tokio::test]
async fn present_through_a_bridge_is_refused_naming_dc_and_the_key_sees_nothing() {
    let rig = Hybrid::start().await;
    let dir = rig.dir.path();
    let request = common::dc_request(dir);

    let (mut key, device) = virtual_key_process(&[]).await;

    let mut c = bin();
    c.args(["present", "--json", "--no-daemon", "--no-linking"])
        .args(["--request", request.to_str().unwrap()])
        .args(common::hybrid_flags(&rig.adverts, &rig.tunnel(), "30s"))
        .args(["--state-dir", dir.join("state").to_str().unwrap()]);
    let (mut desktop, mut lines) = spawn_lines(&mut c);
    let mut events: Vec<Value> = Vec::new();
    let (tunnel, sink) = (rig.tunnel(), format!("unix:{}", rig.adverts.display()));
    let answer = |url: String| async move {
        let bridge = bin()
            .args(["bridge", "--json", "--qr", &url, "--device", &device])
            .args(["--tunnel-url", &tunnel, "--advert-sink", &sink, "--timeout-secs", "30"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output()
            .await
            .unwrap();
        (
            String::from_utf8_lossy(&bridge.stdout).into_owned(),
            String::from_utf8_lossy(&bridge.stderr).into_owned(),
            bridge.status.code(),
        )
    };
    let (bridge_out, bridge_err, bridge_code) =
        tokio::time::timeout(T, answer_qr(&mut lines, &mut events, answer)).await.unwrap();
    let code = desktop.wait().await.unwrap().code();

    // The desktop: the presentation hint in its QR, then a refusal naming the feature.
    let qr = events.iter().find(|e| e["event"] == "qr").unwrap();
    let hint = cablebridge_protocol::hybrid::qr::QrPayload::from_url(qr["url"].as_str().unwrap())
        .unwrap()
        .effective_hint();
    assert_eq!(hint.as_str(), "dcp");
    assert_eq!(code, Some(1), "{events:#?}\n{bridge_err}");
    let last = events.last().unwrap();
    assert_eq!(last["event"], "error", "{last}");
    assert_eq!(last["stage"], "post_handshake", "{last}");
    assert!(last["message"].as_str().unwrap().contains("\"dc\""), "{last}");

    // The bridge got through its handshake, forwarded nothing to the key and says how it ended.
    let progress: Vec<Value> =
        bridge_err.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let names: Vec<&str> = progress.iter().filter_map(|e| e["event"].as_str()).collect();
    assert!(names.contains(&"handshake_done"), "{names:?}\n{bridge_err}");
    assert!(!names.contains(&"forwarding"), "{names:?}");
    assert!(!names.contains(&"key_waiting"), "{names:?}");
    // The desktop left without a request: the bridge ends typed at its transport stage, exit 1.
    assert_eq!(bridge_code, Some(1), "{bridge_out}\n{bridge_err}");
    let end: Value = serde_json::from_str(&bridge_out).unwrap();
    assert_eq!(end["stage"], "transport", "{end}");
    assert!(end["message"].as_str().unwrap().contains("desktop closed the tunnel"), "{end}");
    key.kill().await.unwrap();
}
