//! The built `cablebridge register` against the built `cablebridge phone` (two processes, our
//! tunnel server in this test process, adverts over a Unix datagram socket) for issue 15's
//! interop switches: `--wait-for-linking` with a phone that links late (`--late-linking-ms`),
//! a suffixed advert (`--force-advert-suffix`), a revision-0 phone (`--legacy-revision-0`), and
//! `present` (Digital Credentials) against a phone with and without `--dc-document`, and Ctrl-C
//! while `present` waits for its phone.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{answer_qr, bin, hybrid_flags, spawn_lines, Hybrid};
use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

/// Runs `register` with `desktop_flags` and, once it shows its QR, `phone` with `phone_flags`;
/// returns the desktop's JSON lines, its exit code and the phone's exit code.
async fn register_with_phone_process(
    rig: &Hybrid,
    desktop_flags: &[&str],
    phone_flags: &[&str],
) -> (Vec<Value>, Option<i32>, Option<i32>) {
    let state = rig.dir.path().join("state");
    let command: &[&str] = if desktop_flags.first() == Some(&"present") {
        &["--json"]
    } else {
        &["register", "--json", "--rp-id", "example.com", "--user-name", "dora"]
    };
    let present = usize::from(desktop_flags.first() == Some(&"present"));
    let mut c = bin();
    c.args(&desktop_flags[..present])
        .args(command)
        .args(hybrid_flags(&rig.adverts, &rig.tunnel(), "30s"))
        .args(["--state-dir", state.to_str().unwrap()])
        .args(&desktop_flags[present..]);
    let (mut desktop, mut lines) = spawn_lines(&mut c);
    let mut events: Vec<Value> = Vec::new();
    let (tunnel, sink) = (rig.tunnel(), format!("unix:{}", rig.adverts.display()));
    let answer = |url: String| async move {
        let mut phone = bin()
            .args(["phone", "--json", "--qr", &url, "--tunnel-url", &tunnel])
            .args(["--advert-sink", &sink, "--timeout-secs", "30"])
            .args(phone_flags)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        phone.wait().await.unwrap().code()
    };
    let phone_code =
        tokio::time::timeout(T, answer_qr(&mut lines, &mut events, answer)).await.expect("bounded");
    let code = desktop.wait().await.unwrap().code();
    (events, code, phone_code)
}

fn index(events: &[Value], pred: impl Fn(&Value) -> bool) -> Option<usize> {
    events.iter().position(pred)
}

#[tokio::test]
async fn wait_for_linking_stores_a_late_link_and_reports_the_advert_suffix() {
    let rig = Hybrid::start().await;
    let dir = rig.dir.path();
    let (events, code, phone) = register_with_phone_process(
        &rig,
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
        .arg(dir.join("state"))
        .output()
        .await
        .unwrap();
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed["links"].as_array().unwrap().len(), 1, "{listed}");
}

#[tokio::test]
async fn revision0_phone_completes_a_registration_and_links() {
    let rig = Hybrid::start().await;
    let (events, code, phone) = register_with_phone_process(
        &rig,
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
    let rig = Hybrid::start().await;
    let dir = rig.dir.path();
    let request = common::dc_request(dir);
    let document = dir.join("document.json");
    std::fs::write(&document, r#"{"protocol":"openid4vp","data":{"vp_token":"lab-token"}}"#)
        .unwrap();
    let req = request.to_str().unwrap();
    let (events, code, phone) = register_with_phone_process(
        &rig,
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
    let (events, code, _) =
        register_with_phone_process(&rig, &["present", "--request", req, "--issuance"], &[]).await;
    assert_eq!(code, Some(1), "{events:#?}");
    let last = events.last().unwrap();
    assert_eq!(last["event"], "error", "{last}");
    assert_eq!(last["stage"], "post_handshake");
    assert!(last["message"].as_str().unwrap().contains("\"dc\""), "{last}");
}

/// Ctrl-C while `present` waits for the phone to scan its QR: an error naming `advert`, exit 1,
/// as for `register` (tools/tests/ceremony_live.rs).
#[tokio::test]
async fn ctrl_c_while_present_waits_for_the_phone() {
    let rig = Hybrid::start().await;
    let dir = rig.dir.path();
    let request = common::dc_request(dir);
    let mut c = bin();
    c.args(["present", "--json", "--no-daemon", "--request", request.to_str().unwrap()])
        .args(hybrid_flags(&rig.adverts, &rig.tunnel(), "60s"))
        .args(["--state-dir", dir.join("state").to_str().unwrap()])
        .stdin(Stdio::null());
    let (mut desktop, mut lines) = spawn_lines(&mut c);
    let mut events: Vec<Value> = Vec::new();
    tokio::time::timeout(T, common::until_qr(&mut lines, &mut events)).await.unwrap();
    let sent = std::time::Instant::now();
    common::sigint(&desktop);
    tokio::time::timeout(T, common::read_rest(&mut lines, &mut events)).await.unwrap();
    let code = tokio::time::timeout(T, desktop.wait()).await.unwrap().unwrap().code();
    println!("SIGINT while present waits for the advert: exited {:?} after", sent.elapsed());
    let last = events.last().unwrap();
    assert_eq!(code, Some(1), "{events:#?}");
    assert_eq!((last["event"].as_str(), last["stage"].as_str()), (Some("error"), Some("advert")));
    assert!(last["message"].as_str().unwrap().contains("cancelled"), "{last}");
}
