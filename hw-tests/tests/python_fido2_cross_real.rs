//! Real-hardware tier: an independent client cross-checks what our CLI does on a **real** key.
//!
//! The independent client here is python-fido2 (Yubico's library, PyPI, pinned in
//! scripts/test.sh) through `tests/interop/python_fido2_cross.py`; it also covers U2F-only keys.
//! The design card's Rust crate, `ctap-hid-fido2`, does the same for CTAP2 keys in
//! `ctap_hid_fido2_cross.rs`. ARCHITECTURE.md ("Independent clients") says why neither is our
//! driver.
//!
//! Both tests are `#[ignore]`d (CI has no USB). Procedure (hw-tests/README.md "Cross-check with
//! an independent client"):
//! 1. One FIDO key attached, readable by you (the udev rule; see "Real USB security keys").
//!    Close browsers and other FIDO clients (they hold the libfido2 lock).
//! 2. `python3 -m pip install 'fido2==2.2.1'` and `cargo build -p cablebridge` (the CLI under
//!    test: `target/debug/cablebridge`, or set `CABLEBRIDGE_BIN`).
//! 3. `CABLEBRIDGE_HIDRAW=/dev/hidrawN [CABLEBRIDGE_PIN=…] cargo test -p cablebridge-hw-tests
//!    --test python_fido2_cross_real -- --ignored --test-threads=1 --nocapture`
//! 4. Touch the key each time it blinks: twice per test (one registration, one assertion).
//!    A U2F-only key works too (python-fido2 then speaks CTAP1, our CLI its U2F fallback).
//!
//! Environment: `CABLEBRIDGE_BIN` (the CLI; default `target/debug/cablebridge` of this
//! workspace), `CABLEBRIDGE_HIDRAW` (default: the first key each side finds),
//! `CABLEBRIDGE_PIN` (keys with a PIN), `CABLEBRIDGE_RP_ID` (default `cablebridge.test`),
//! `PYTHON` (default `python3`). Each test prints the JSON both sides produced.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};

use serde_json::Value;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/interop/python_fido2_cross.py");

fn rp_id() -> String {
    std::env::var("CABLEBRIDGE_RP_ID").unwrap_or_else(|_| "cablebridge.test".to_owned())
}

fn device() -> Option<String> {
    std::env::var("CABLEBRIDGE_HIDRAW").ok()
}

fn run_json(mut c: Command, what: &str) -> Value {
    let out = c.stdin(Stdio::null()).stderr(Stdio::inherit()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{what} failed ({}): {stdout}", out.status);
    let v: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    eprintln!("{what}: {v}");
    v
}

/// `cablebridge <args> --transport usb [--device D] --rp-id RP --json --no-daemon`.
fn ours(args: &[&str]) -> Command {
    let bin = std::env::var("CABLEBRIDGE_BIN").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../target/debug/cablebridge").to_owned()
    });
    let mut c = Command::new(bin);
    c.args(args).args(["--transport", "usb", "--rp-id", &rp_id(), "--json", "--no-daemon"]);
    if let Some(d) = device() {
        c.args(["--device", &d]);
    }
    c
}

fn theirs(args: &[&str]) -> Command {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let mut c = Command::new(python);
    c.arg(SCRIPT).arg(device().unwrap_or_else(|| "auto".to_owned())).args(args);
    c
}

#[test]
#[ignore = "needs a real FIDO key and python-fido2; see the procedure in this file's docs"]
fn a_credential_our_cli_creates_is_asserted_by_python_fido2() {
    eprintln!("touch the key to register (our CLI)…");
    let reg = run_json(ours(&["register", "--user-name", "cross-check"]), "cablebridge register");
    assert_eq!(reg["verification"]["ok"], true, "{reg}");
    let id = reg["credential_id"].as_str().unwrap();
    let pk = reg["public_key_cose"].as_str().unwrap();
    eprintln!("touch the key to assert (python-fido2)…");
    let asserted = run_json(theirs(&["assert", &rp_id(), id, pk]), "python-fido2 assert");
    assert_eq!(asserted["verified"], true, "signature verified by python-fido2: {asserted}");
    assert_eq!(asserted["protocol"], reg["protocol"], "both sides spoke the same protocol");
}

#[test]
#[ignore = "needs a real FIDO key and python-fido2; see the procedure in this file's docs"]
fn a_credential_python_fido2_creates_is_asserted_by_our_cli() {
    eprintln!("touch the key to register (python-fido2)…");
    let made = run_json(theirs(&["create", &rp_id()]), "python-fido2 create");
    let id = made["credential_id"].as_str().unwrap();
    let pk = made["public_key_cose"].as_str().unwrap();
    eprintln!("touch the key to assert (our CLI)…");
    let auth = run_json(
        ours(&["authenticate", "--allow-credential", id, "--public-key", pk]),
        "cablebridge authenticate",
    );
    assert_eq!(auth["verification"]["ok"], true, "signature verified: {auth}");
    assert_eq!(auth["credential_id"], id, "{auth}");
    assert_eq!(auth["protocol"], made["protocol"], "{auth}");
}
