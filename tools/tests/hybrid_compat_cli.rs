//! The built `cablebridge register` against the built `cablebridge phone` (two processes, our
//! tunnel server in this test process, adverts over a Unix datagram socket) for issue 15's
//! interop switches: `--wait-for-linking` with a phone that links late (`--late-linking-ms`),
//! a suffixed advert (`--force-advert-suffix`), a revision-0 phone (`--legacy-revision-0`), and
//! `present` (Digital Credentials) against a phone with and without `--dc-document`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cablebridged::tunnel::server::{TunnelServer, TunnelServerConfig, TunnelServerHandle};
use serde_json::Value;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const T: Duration = Duration::from_secs(60);

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cablebridge"))
}

/// Runs `register` with `desktop_flags` and, once it shows its QR, `phone` with `phone_flags`;
/// returns the desktop's JSON lines, its exit code and the phone's exit code.
async fn register_with_phone_process(
    server: &TunnelServerHandle,
    dir: &Path,
    desktop_flags: &[&str],
    phone_flags: &[&str],
) -> (Vec<Value>, Option<i32>, Option<i32>) {
    let sock = dir.join("adverts.sock");
    let state = dir.join("state");
    let command: &[&str] = if desktop_flags.first() == Some(&"present") {
        &["--json"]
    } else {
        &["register", "--json", "--rp-id", "example.com", "--user-name", "dora"]
    };
    let mut desktop = bin()
        .args(&desktop_flags[..usize::from(desktop_flags.first() == Some(&"present"))])
        .args(command)
        .args(["--advert-source", &format!("unix:{}", sock.display())])
        .args(["--tunnel-url", &server.base_url(), "--state-dir", state.to_str().unwrap()])
        .args(["--advert-timeout", "30s", "--user-timeout", "30s"])
        .args(&desktop_flags[usize::from(desktop_flags.first() == Some(&"present"))..])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(desktop.stdout.take().unwrap()).lines();
    let mut events: Vec<Value> = Vec::new();
    let phone_code = tokio::time::timeout(T, async {
        let url = loop {
            let line = lines.next_line().await.unwrap().expect("desktop ended before its QR");
            let e: Value = serde_json::from_str(&line).unwrap();
            events.push(e.clone());
            if e["event"] == "qr" {
                break e["url"].as_str().unwrap().to_owned();
            }
        };
        let mut phone = bin()
            .args(["phone", "--json", "--qr", &url, "--tunnel-url", &server.base_url()])
            .args(["--advert-sink", &format!("unix:{}", sock.display()), "--timeout-secs", "30"])
            .args(phone_flags)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let (status, ()) = tokio::join!(phone.wait(), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                events.push(serde_json::from_str(&line).unwrap());
            }
        });
        status.unwrap().code()
    })
    .await
    .expect("bounded");
    let code = desktop.wait().await.unwrap().code();
    (events, code, phone_code)
}

fn index(events: &[Value], pred: impl Fn(&Value) -> bool) -> Option<usize> {
    events.iter().position(pred)
}

#[tokio::test]
async fn wait_for_linking_stores_a_late_link_and_reports_the_advert_suffix() {
    let server = TunnelServer::bind(TunnelServerConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (events, code, phone) = register_with_phone_process(
        &server,
        dir.path(),
        &["--wait-for-linking=30s"],
        &["--offer-linking", "--late-linking-ms", "300", "--force-advert-suffix", "a10119ffff"],
    )
    .await;
    assert_eq!((code, phone), (Some(0), Some(0)), "{events:#?}");
    // The link arrived 300 ms after the shutdown, inside the window: its progress line is
    // printed, and the CLI's result line comes last, once the wait ended (the engine's result
    // event came first: desktop_hybrid_compat::late_linking_update_is_stored_after_the_result_event).
    let result = index(&events, |e| e["event"] == "result").expect("a result line");
    let linking = index(&events, |e| e["event"] == "progress" && e["stage"] == "linking")
        .expect("the late link was stored while waiting");
    assert!(linking < result && result == events.len() - 1, "{events:#?}");
    assert_eq!(events[result]["verification"]["ok"], true);
    let advert = events.iter().find(|e| e["stage"] == "advert").unwrap();
    assert!(advert["advert_suffix"].as_str().unwrap().contains("PSM 65535"), "{advert}");
    let out = bin()
        .args(["links", "list", "--json", "--state-dir"])
        .arg(dir.path().join("state"))
        .output()
        .await
        .unwrap();
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed["links"].as_array().unwrap().len(), 1, "{listed}");
}

#[tokio::test]
async fn revision0_phone_completes_a_registration_and_links() {
    let server = TunnelServer::bind(TunnelServerConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (events, code, phone) = register_with_phone_process(
        &server,
        dir.path(),
        &[],
        &["--legacy-revision-0", "--offer-linking", "--name", "Old Phone"],
    )
    .await;
    assert_eq!((code, phone), (Some(0), Some(0)), "{events:#?}");
    let post = events.iter().find(|e| e["stage"] == "post_handshake").unwrap();
    assert!(post["detail"].as_str().unwrap().contains("revision 0"), "{post}");
    assert_eq!(events.last().unwrap()["event"], "result");
    let linking = events.iter().find(|e| e["stage"] == "linking").expect("linked via key 2");
    assert!(linking["detail"].as_str().unwrap().contains("Old Phone"), "{linking}");
}

#[tokio::test]
async fn present_gets_the_phone_documents_reply_and_a_ctap_only_phone_is_refused() {
    let server = TunnelServer::bind(TunnelServerConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let request = dir.path().join("request.json");
    std::fs::write(&request, r#"{"requests":[{"protocol":"openid4vp","data":{"nonce":"n1"}}]}"#)
        .unwrap();
    let document = dir.path().join("document.json");
    std::fs::write(&document, r#"{"protocol":"openid4vp","data":{"vp_token":"lab-token"}}"#)
        .unwrap();
    let req = request.to_str().unwrap();
    let (events, code, phone) = register_with_phone_process(
        &server,
        dir.path(),
        &["present", "--request", req],
        &["--dc-document", document.to_str().unwrap()],
    )
    .await;
    assert_eq!((code, phone), (Some(0), Some(0)), "{events:#?}");
    let qr = events.iter().find(|e| e["event"] == "qr").unwrap();
    let hint = cablebridge_protocol::hybrid::qr::QrPayload::from_url(qr["url"].as_str().unwrap())
        .unwrap()
        .effective_hint();
    assert_eq!(hint.as_str(), "dcp");
    let last = events.last().unwrap();
    assert_eq!(last["event"], "result", "{last}");
    assert_eq!(last["response"]["data"]["vp_token"], "lab-token");

    // A phone without the "dc" feature: refused before sending, stage post_handshake, exit 1.
    let (events, code, _) = register_with_phone_process(
        &server,
        dir.path(),
        &["present", "--request", req, "--issuance"],
        &[],
    )
    .await;
    assert_eq!(code, Some(1), "{events:#?}");
    let last = events.last().unwrap();
    assert_eq!(last["event"], "error", "{last}");
    assert_eq!(last["stage"], "post_handshake");
    assert!(last["message"].as_str().unwrap().contains("\"dc\""), "{last}");
}
