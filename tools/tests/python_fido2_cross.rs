//! Credentials cross-checked with an independent client, python-fido2 (pinned in
//! scripts/test.sh), through the built CLI, on the virtual key over UDP-HID — as a CTAP2 key and
//! as a U2F-only key (`--u2f-only`, where python-fido2 speaks CTAP1 and verifies the U2F
//! attestation signature itself): a credential `cablebridge register` made is asserted by
//! python-fido2 with the signature verified, and one python-fido2 made is asserted by
//! `cablebridge authenticate --public-key` (`verification.ok`). The same script runs against a
//! real key in hw-tests/tests/python_fido2_cross_real.rs.
//!
//! Like daemon/tests/vkey_python_interop.rs it FAILS without python-fido2 (the message says how
//! to install it); CB_SKIP_PYTHON_INTEROP=1 skips it locally.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Stdio;
use std::time::Duration;

use cablebridged::virtual_key::{VirtualKey, VirtualKeyConfig};
use serde_json::Value;
use tokio::process::Command;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/interop/python_fido2_cross.py");
const T: Duration = Duration::from_secs(60);

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

async fn json_of(mut c: Command, what: &str) -> Value {
    let out = tokio::time::timeout(T, c.stdin(Stdio::null()).kill_on_drop(true).output())
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {T:?}"))
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

fn cli(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cablebridge"));
    c.args(args).args(["--json", "--no-daemon"]).env_remove("CABLEBRIDGE_PIN");
    c
}

fn py(args: &[&str]) -> Command {
    let mut c = Command::new(python());
    c.arg(SCRIPT).args(args).env_remove("CABLEBRIDGE_PIN");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_fido2_and_the_cli_assert_each_others_credentials() {
    if std::env::var("CB_SKIP_PYTHON_INTEROP").as_deref() == Ok("1") {
        eprintln!("CB_SKIP_PYTHON_INTEROP=1: python-fido2 cross-check skipped on request");
        return;
    }
    let probe = Command::new(python()).args(["-c", "import fido2.ctap1, fido2.ctap2"]).output();
    match probe.await {
        Ok(out) if out.status.success() => {}
        other => panic!(
            "python-fido2 is needed ({other:?}): `python3 -m pip install 'fido2==2.2.1'` \
             (scripts/test.sh does), or CB_SKIP_PYTHON_INTEROP=1 to skip locally"
        ),
    }
    for (u2f, protocol) in [(false, "ctap2"), (true, "ctap1/u2f")] {
        let mut config = VirtualKeyConfig::new("127.0.0.1:0".parse().unwrap());
        config.u2f_only = u2f;
        // A real "touch" delay: U2F polls through 0x6985, CTAP2 sees keepalives.
        config.presence_delay = Duration::from_millis(150);
        let key = VirtualKey::bind(config).await.unwrap();
        let d = key.device_address();
        let rp = "cross.example";
        let usb = ["--transport", "usb", "--device", d.as_str(), "--rp-id", rp];

        // Ours → theirs.
        let reg =
            json_of(cli(&[&["register"], &usb[..], &["--user-name", "a"]].concat()), "register")
                .await;
        assert_eq!(reg["protocol"], protocol, "{reg}");
        let (id, pk) =
            (reg["credential_id"].as_str().unwrap(), reg["public_key_cose"].as_str().unwrap());
        let asserted = json_of(py(&[&d, "assert", rp, id, pk]), "python-fido2 assert").await;
        assert_eq!(
            (&asserted["verified"], asserted["protocol"].as_str()),
            (&Value::Bool(true), Some(protocol))
        );

        // Theirs → ours.
        let made = json_of(py(&[&d, "create", rp]), "python-fido2 create").await;
        let (id, pk) =
            (made["credential_id"].as_str().unwrap(), made["public_key_cose"].as_str().unwrap());
        let auth = json_of(
            cli(&[&["authenticate"], &usb[..], &["--allow-credential", id, "--public-key", pk]]
                .concat()),
            "authenticate",
        )
        .await;
        assert_eq!(auth["protocol"], protocol, "{auth}");
        assert_eq!(auth["verification"]["ok"], true, "{auth}");
        assert_eq!(auth["credential_id"], id);
    }
}
