//! U2F-only (CTAP1) keys through the binary: `cablebridge virtual-key --u2f-only` on UDP-HID,
//! then `register` / `authenticate --transport usb` against it. The CLI falls back to U2F APDUs
//! over CTAPHID_MSG (the key's INIT has no CBOR capability), polls through 0x6985 while the
//! simulated touch is pending, and reports `protocol: "ctap1/u2f"` with a `fido-u2f`
//! attestation the verifier checked. The refusals: a foreign key handle (0x6A80 → no
//! credential), what U2F cannot do (resident keys, UV, PIN, no allow list), a touch that never
//! comes (0x6985 until the deadline).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{json_command, last_json, run_expecting};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const T: Duration = Duration::from_secs(30);

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cablebridge"));
    c.env_remove("CABLEBRIDGE_PIN").env_remove("CABLEBRIDGE_VKEY_PIN").kill_on_drop(true);
    c
}

/// Starts `virtual-key --u2f-only`; returns the child and its `udp:` address.
async fn u2f_key(delay_ms: u64) -> (Child, String, Value) {
    let mut key = bin()
        .args(["virtual-key", "--json", "--u2f-only", "--listen", "udp:127.0.0.1:0"])
        .args(["--user-presence-delay-ms", &delay_ms.to_string()])
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(key.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(T, lines.next_line()).await.unwrap().unwrap().unwrap();
    let listening: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(listening["protocol"], "ctap1/u2f", "{line}");
    assert_eq!(listening["attestation"], "fido-u2f", "{line}");
    (key, listening["address"].as_str().unwrap().to_owned(), listening)
}

async fn cli(args: &[&str], code: i32) -> Value {
    let mut c = json_command(args);
    c.arg("--no-daemon").env_remove("CABLEBRIDGE_VKEY_PIN");
    last_json(&tokio::time::timeout(T, run_expecting(c, args, code)).await.unwrap().0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_and_authenticate_on_a_u2f_only_key() {
    // 300 ms until the "touch": both ceremonies go through 0x6985 polls first.
    let (_key, d, _) = u2f_key(300).await;
    let usb = ["--transport", "usb", "--device", d.as_str(), "--rp-id", "example.com"];
    let reg = cli(&[&["register"], &usb[..], &["--user-name", "alice"]].concat(), 0).await;
    assert_eq!(reg["protocol"], "ctap1/u2f", "{reg}");
    assert_eq!(reg["transport"], "usb", "{reg}");
    assert_eq!(reg["attestation_format"], "fido-u2f", "{reg}");
    assert_eq!(reg["attestation"]["format"], "fido-u2f", "{reg}");
    assert_eq!(reg["attestation"]["verified"], true, "{reg}");
    assert_eq!(reg["attestation"]["chain"].as_array().unwrap().len(), 1, "{reg}");
    assert_eq!(reg["verification"]["ok"], true, "{reg}");
    assert_eq!(reg["aaguid"], "00000000-0000-0000-0000-000000000000", "{reg}");
    let id = reg["credential_id"].as_str().unwrap();
    let public_key = reg["public_key_cose"].as_str().unwrap();

    let auth = ["--allow-credential", id, "--public-key", public_key];
    let first = cli(&[&["authenticate"], &usb[..], &auth[..]].concat(), 0).await;
    assert_eq!(first["protocol"], "ctap1/u2f", "{first}");
    assert_eq!(first["credential_id"], id, "{first}");
    assert_eq!(first["verification"]["ok"], true, "signature verified: {first}");
    // With a foreign id first in the allow list the key's own one is still found (check-only
    // answers 0x6A80 for the foreign one, 0x6985 for ours) and the counter moves on.
    let foreign =
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let second = cli(
        &[&["authenticate"], &usb[..], &["--allow-credential", foreign], &auth[..]].concat(),
        0,
    )
    .await;
    assert_eq!(second["credential_id"], id, "{second}");
    assert_eq!(second["verification"]["ok"], true, "{second}");
    let counter = |v: &Value| {
        use base64::Engine;
        let ad = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(v["authenticator_data"].as_str().unwrap())
            .unwrap();
        u32::from_be_bytes(ad[33..37].try_into().unwrap())
    };
    assert!(counter(&second) > counter(&first), "{first} {second}");

    // Wrong data: only foreign handles, or our handle for another RP → no credential (exit 1).
    let none =
        cli(&[&["authenticate"], &usb[..], &["--allow-credential", foreign]].concat(), 1).await;
    assert!(none["error"].as_str().unwrap().contains("no credential"), "{none}");
    let other_rp = ["--transport", "usb", "--device", d.as_str(), "--rp-id", "example.org"];
    let elsewhere =
        cli(&[&["authenticate"], &other_rp[..], &["--allow-credential", id]].concat(), 1).await;
    assert!(elsewhere["error"].as_str().unwrap().contains("no credential"), "{elsewhere}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_u2f_cannot_do_is_refused_naming_the_key_as_u2f_only() {
    let (_key, d, _) = u2f_key(0).await;
    let usb = ["--transport", "usb", "--device", d.as_str(), "--rp-id", "example.com"];
    let cases: [&[&str]; 3] = [
        &["register", "--user-name", "a", "--resident-key", "required"],
        &["register", "--user-name", "a", "--uv", "required"],
        // No allow list: U2F has no discoverable credentials.
        &["authenticate"],
    ];
    for case in cases {
        let out = cli(&[case, &usb[..]].concat(), 2).await;
        let error = out["error"].as_str().unwrap();
        assert!(error.contains("U2F-only (CTAP1) key"), "{case:?}: {out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_touch_that_never_comes_times_out_after_polling() {
    // The key wants a touch for 60 s; the user gives up after 800 ms: conditions not
    // satisfied on every poll, then a timeout (exit 1) that says the key waited for a touch.
    let (_key, d, _) = u2f_key(60_000).await;
    let mut args = common::register_args(&d, "example.com", "a");
    args.extend(["--user-timeout", "800ms"]);
    let out = cli(&args, 1).await;
    let error = out["error"].as_str().unwrap();
    assert!(error.contains("timed out") && error.contains("touch"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_while_polling_for_a_touch_cancels() {
    let (_key, d, _) = u2f_key(60_000).await;
    let mut child = bin()
        .args(["register", "--transport", "usb", "--device", &d, "--rp-id", "example.com"])
        .args(["--user-name", "a", "--json", "--no-daemon"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // The first 0x6985 is reported as "touch your key"; then Ctrl-C.
    let mut last = Value::Null;
    tokio::time::timeout(T, async {
        loop {
            let line = lines.next_line().await.unwrap().expect("ended before asking for a touch");
            let e: Value = serde_json::from_str(&line).unwrap();
            if e.to_string().contains("touch your key") {
                break;
            }
        }
    })
    .await
    .unwrap();
    common::sigint(&child);
    tokio::time::timeout(T, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            last = serde_json::from_str(&line).unwrap();
        }
    })
    .await
    .unwrap();
    assert_eq!(child.wait().await.unwrap().code(), Some(1), "{last}");
    assert_eq!(last["event"], "error", "{last}");
    assert!(last["message"].as_str().unwrap().contains("cancelled"), "{last}");
}
