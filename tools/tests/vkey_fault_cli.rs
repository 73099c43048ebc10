//! `cablebridge virtual-key --fault F --fault-on COMMAND` through the binary: the key answers
//! INIT and getInfo, then misbehaves on makeCredential, so `register --transport usb` fails
//! typed at `user_presence` (after the key was selected), not at `device_select`; the flag's
//! own mistakes are usage errors (exit 2).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{bin, json_command, last_json, register_args, run_expecting};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

const T: Duration = Duration::from_secs(30);

/// Starts `virtual-key --json` with `extra` flags; returns the child and its listening line.
async fn key(extra: &[&str]) -> (Child, Value) {
    let mut key = bin()
        .args(["virtual-key", "--json", "--listen", "udp:127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(key.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(T, lines.next_line()).await.unwrap().unwrap().unwrap();
    (key, serde_json::from_str(&line).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_on_make_credential_fails_the_ceremony_after_selection() {
    let (_key, listening) = key(&["--fault", "busy", "--fault-on", "make-credential"]).await;
    assert_eq!(listening["fault"], "busy", "{listening}");
    assert_eq!(listening["fault_on"], 1, "{listening}");
    let device = listening["address"].as_str().unwrap();
    let mut c = json_command(&register_args(device, "example.com", "alice"));
    c.args(["--no-daemon", "--user-timeout", "2s"]);
    let (stdout, stderr) = tokio::time::timeout(T, run_expecting(c, "register", 3)).await.unwrap();
    let err = last_json(&stdout);
    assert_eq!(err["stage"], "user_presence", "{err} {stderr}");
    let message = err["error"].as_str().or(err["message"].as_str()).unwrap_or_default();
    assert!(message.contains("busy"), "{err}");
    assert!(message.contains(device), "{err}");

    // The same fault on every request fails at selection instead (getInfo is refused).
    let (_key2, listening) = key(&["--fault", "busy"]).await;
    assert_eq!(listening["fault_on"], Value::Null, "{listening}");
    let device = listening["address"].as_str().unwrap();
    let mut c = json_command(&register_args(device, "example.com", "alice"));
    c.args(["--no-daemon", "--user-timeout", "2s"]);
    let (stdout, _) = tokio::time::timeout(T, run_expecting(c, "register", 3)).await.unwrap();
    assert_eq!(last_json(&stdout)["stage"], "device_select", "{stdout}");
}

#[tokio::test]
async fn fault_on_mistakes_are_usage_errors() {
    for (args, needle) in [
        (&["--fault-on", "make-credential"][..], "--fault"),
        (&["--fault", "busy", "--fault-on", "sign-everything"][..], "unknown CTAP2 command"),
        (&["--fault", "busy", "--fault-on", "0x1ff"][..], "unknown CTAP2 command"),
    ] {
        let out = bin()
            .args(["virtual-key", "--listen", "udp:127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}
