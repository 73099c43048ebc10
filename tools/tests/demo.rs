//! `cablebridge demo --json` as a user runs it: the built binary, offline, bounded in time. The
//! JSON lines are parsed and the assertion signature is re-checked here with p256 directly,
//! independently of the ceremony's own verification.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use cablebridge_protocol::cbor::Value;
use p256::ecdsa::signature::Verifier;
use sha2::Digest;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn b64(v: &serde_json::Value) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(v.as_str().expect("base64url string")).unwrap()
}

#[test]
fn demo_registers_authenticates_and_verifies_offline() {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cablebridge"))
        .args(["demo", "--json", "--user-presence-delay-ms", "20"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded: kill the demo if it hangs instead of hanging CI.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("demo did not finish within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        status.success(),
        "exit {status:?}\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(10), "demo took {:?}", started.elapsed());

    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("every stdout line is JSON"))
        .collect();
    assert!(lines.iter().all(|l| l.get("event").is_some()), "every line has an event");
    let qrs = lines.iter().filter(|l| l["event"] == "qr").count();
    assert_eq!(qrs, 2, "one QR per ceremony");
    assert!(lines.iter().all(|l| l["event"] != "error"));
    let stages: Vec<&str> = lines
        .iter()
        .filter(|l| l["event"] == "progress")
        .filter_map(|l| l["stage"].as_str())
        .collect();
    for stage in ["advert", "tunnel_connect", "handshake", "user_response"] {
        assert!(stages.contains(&stage), "stage {stage} missing from {stages:?}");
    }

    let results: Vec<&serde_json::Value> =
        lines.iter().filter(|l| l["event"] == "result").collect();
    assert_eq!(results.len(), 2);
    let (reg, auth) = (results[0], results[1]);
    assert_eq!(reg["ceremony"], "register");
    assert_eq!(reg["attestation_format"], "packed");
    assert_eq!(reg["aaguid"], "e0e1bb60-ee6d-4c0d-82a5-bf6653a6c08f");
    assert_eq!(auth["credential_id"], reg["credential_id"]);

    // Independent ES256 check of the assertion with the registered COSE key.
    let cose = Value::decode(&b64(&reg["public_key_cose"])).unwrap();
    let x = cose.get(-2).and_then(Value::as_bytes).unwrap();
    let y = cose.get(-3).and_then(Value::as_bytes).unwrap();
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&[&[4u8][..], x, y].concat()).unwrap();
    let client_data = b64(&auth["client_data_json"]);
    let cdh: [u8; 32] = sha2::Sha256::digest(&client_data).into();
    let signed = [b64(&auth["authenticator_data"]).as_slice(), &cdh].concat();
    let sig = p256::ecdsa::Signature::from_der(&b64(&auth["signature"])).unwrap();
    key.verify(&signed, &sig).expect("assertion signature verifies");
    let cd: serde_json::Value = serde_json::from_slice(&client_data).unwrap();
    assert_eq!(cd["type"], "webauthn.get");

    let summary = lines.last().unwrap();
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["verification"], "OK");
    assert_eq!(summary["tunnels_paired"], 2);
}
