//! Linking through the USB bridge with the CLI alone (two processes and the virtual key): a
//! desktop `register` shows its QR, `cablebridge bridge --offer-linking --serve-links --state`
//! answers it through the key and links; the desktop's `authenticate --linked NAME` then reaches
//! the same key through the still-running bridge with no QR, twice; Ctrl-C stops the bridge (a
//! result, exit 0, with the linked sessions counted); `bridge --forget-links --state` revokes
//! the link on the tunnel server without a key, and the desktop's next linked request gets
//! 410 Gone and forgets it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use cablebridged::tunnel::server::{TunnelServer, TunnelServerConfig};
use common::{spawn_lines, until_qr, virtual_key};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const T: Duration = Duration::from_secs(60);

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cablebridge"));
    c.env_remove("CABLEBRIDGE_PIN").kill_on_drop(true);
    c
}

/// The desktop flags every step shares (its link store in `dir/desktop`).
fn desktop(c: &mut Command, dir: &Path, tunnel: &str) {
    c.args(["--json", "--no-daemon", "--rp-id", "example.com"])
        .arg("--advert-source")
        .arg(format!("unix:{}", dir.join("adverts.sock").display()))
        .args(["--tunnel-url", tunnel, "--advert-timeout", "20s", "--user-timeout", "20s"])
        .arg("--state-dir")
        .arg(dir.join("desktop"));
}

async fn finish(c: &mut Command) -> (Option<i32>, Value) {
    let out = tokio::time::timeout(T, c.stdin(Stdio::null()).output()).await.unwrap().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let last = stdout
        .lines()
        .last()
        .unwrap_or_else(|| panic!("no output; stderr: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), serde_json::from_str(last).unwrap())
}

async fn links(dir: &Path) -> Vec<Value> {
    let mut c = bin();
    c.args(["links", "list", "--json", "--state-dir"]).arg(dir.join("desktop"));
    let (code, listed) = finish(&mut c).await;
    assert_eq!(code, Some(0), "{listed}");
    listed["links"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_bridge_links_serves_linked_desktops_and_revokes() {
    let key = virtual_key().await;
    let server = TunnelServer::bind(TunnelServerConfig::default()).await.unwrap();
    let tunnel = server.base_url();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let bridge_state = dir.join("bridge-state.json");

    // The QR registration; the bridge answers it through the key and links.
    let mut reg = bin();
    reg.arg("register").args(["--user-name", "dora"]);
    desktop(&mut reg, dir, &tunnel);
    let (mut reg, mut lines) = spawn_lines(&mut reg);
    let url = tokio::time::timeout(T, until_qr(&mut lines, &mut Vec::new())).await.unwrap();
    let mut bridge = bin()
        .args(["bridge", "--json", "--qr", &url, "--device", &key.device_address()])
        .args(["--tunnel-url", &tunnel, "--timeout-secs", "20", "--touch-timeout-secs", "20"])
        .arg("--advert-sink")
        .arg(format!("unix:{}", dir.join("adverts.sock").display()))
        .args(["--offer-linking", "--serve-links", "--name", "Key Bridge", "--state"])
        .arg(&bridge_state)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut bridge_events = BufReader::new(bridge.stderr.take().unwrap()).lines();
    let mut registered = Value::Null;
    tokio::time::timeout(T, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            registered = serde_json::from_str(&line).unwrap();
        }
    })
    .await
    .unwrap();
    assert_eq!(reg.wait().await.unwrap().code(), Some(0), "{registered}");
    assert_eq!(registered["verification"]["ok"], true, "{registered}");
    let stored = links(dir).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(stored[0].to_string().contains("Key Bridge"), "{stored:?}");

    // The bridge keeps serving: wait for it to listen, then two linked authentications.
    tokio::time::timeout(T, async {
        loop {
            let line = bridge_events.next_line().await.unwrap().expect("bridge ended early");
            if serde_json::from_str::<Value>(&line).unwrap()["event"] == "listening" {
                break;
            }
        }
    })
    .await
    .unwrap();
    let id = registered["credential_id"].as_str().unwrap();
    let pk = registered["public_key_cose"].as_str().unwrap();
    for round in 0..2 {
        let mut auth = bin();
        auth.arg("authenticate").args(["--linked", "Key Bridge"]);
        auth.args(["--allow-credential", id, "--public-key", pk]);
        desktop(&mut auth, dir, &tunnel);
        let (code, result) = finish(&mut auth).await;
        assert_eq!(code, Some(0), "round {round}: {result}");
        assert_eq!(result["verification"]["ok"], true, "round {round}: {result}");
        assert_eq!(result["credential_id"], id);
    }

    // Ctrl-C: the serving bridge stops with its report.
    common::sigint(&bridge);
    let out = tokio::time::timeout(T, bridge.wait_with_output()).await.unwrap().unwrap();
    let report: Value =
        serde_json::from_str(String::from_utf8(out.stdout).unwrap().lines().last().unwrap())
            .unwrap();
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(report["linking_sent"], true, "{report}");
    assert_eq!(report["device"], key.device_address(), "{report}");

    // Revocation from the bridge side, no key needed.
    let mut forget = bin();
    forget.args(["bridge", "--json", "--forget-links", "--tunnel-url", &tunnel, "--state"]);
    forget.arg(&bridge_state);
    let (code, forgot) = finish(&mut forget).await;
    assert_eq!(code, Some(0), "{forgot}");
    assert_eq!(
        (forgot["revoked"].as_u64(), &forgot["revocations_unconfirmed"]),
        (Some(1), &serde_json::json!([]))
    );

    // The desktop's next linked request: 410 Gone, the link is forgotten.
    let mut auth = bin();
    auth.arg("authenticate").args(["--linked", "Key Bridge", "--allow-credential", id]);
    desktop(&mut auth, dir, &tunnel);
    let (code, failed) = finish(&mut auth).await;
    assert_ne!(code, Some(0), "{failed}");
    assert_eq!(failed["event"], "error", "{failed}");
    assert!(links(dir).await.is_empty(), "revoked link forgotten after {failed}");
}
