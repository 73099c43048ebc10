//! `cablebridge present` through the daemon (`ceremony.present`) prints what it prints
//! in-process: the same Digital Credentials request runs with `--no-daemon` and with
//! `--daemon` (the service library on a temporary socket in this test process) against a
//! virtual phone holding a lab document, and the JSON lines are diffed after normalising
//! per-run values; a phone without the `"dc"` feature fails alike (stage post_handshake,
//! exit 1). The daemon's `status` counters show it really ran the second one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::time::Duration;

use cablebridge_service::client::Client;
use cablebridged::tunnel::server::{TunnelServer, TunnelServerConfig};
use common::{answer_qr, bin, daemon, hybrid_flags, phone_config, qr, spawn_lines, virtual_phone};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(60);

async fn counter(socket: &Path, name: &str) -> u64 {
    common::counter(&common::status(socket).await, name)
}

/// `present` in `mode`, answered by a virtual phone (with `document`, or CTAP-only without).
async fn present(
    mode: &str,
    socket: &Path,
    tunnel: &str,
    dir: &Path,
    document: Option<&[u8]>,
) -> (i32, Vec<Value>) {
    let request = common::dc_request(dir);
    let adverts = dir.join(format!("adverts{mode}{}.sock", document.is_some()));
    let mut c = bin();
    c.env("CABLEBRIDGE_SOCKET", socket)
        .arg(mode)
        .args(["present", "--json", "--request"])
        .arg(&request)
        .args(hybrid_flags(&adverts, tunnel, "20s"))
        .stdin(std::process::Stdio::null());
    let (mut child, mut lines) = spawn_lines(&mut c);
    let mut cfg = phone_config(tunnel, &adverts);
    cfg.dc_document = document.map(<[u8]>::to_vec);
    let mut phone = virtual_phone(cfg);
    let mut events: Vec<Value> = Vec::new();
    let answer = |url: String| async move {
        let qr = qr(&url);
        assert_eq!(qr.effective_hint().as_str(), "dcp");
        let _ = phone.run_qr(&qr).await;
    };
    tokio::time::timeout(T, answer_qr(&mut lines, &mut events, answer)).await.unwrap();
    (child.wait().await.unwrap().code().unwrap_or(-1), events)
}

/// Per-run values (QR URL, timings) replaced; consecutive equal lines counted once.
fn normalised(run: &(i32, Vec<Value>)) -> (i32, Vec<Value>) {
    fn walk(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| {
                        let v = match k.as_str() {
                            "url" | "session" | "routing_id" => json!("<random>"),
                            k if k.ends_with("_ms") => json!(0),
                            _ => walk(v),
                        };
                        (k.clone(), v)
                    })
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(walk).collect()),
            other => other.clone(),
        }
    }
    let mut lines: Vec<Value> = run.1.iter().map(walk).collect();
    lines.dedup();
    (run.0, lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn present_prints_the_same_in_process_and_through_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let socket = daemon(dir.path()).await;
    let server = TunnelServer::bind(TunnelServerConfig::default()).await.unwrap();
    let tunnel = server.base_url();
    let document = br#"{"protocol":"openid4vp","data":{"vp_token":"lab-token"}}"#;

    let here = present("--no-daemon", &socket, &tunnel, dir.path(), Some(document)).await;
    assert_eq!(counter(&socket, "sessions_started").await, 0);
    let there = present("--daemon", &socket, &tunnel, dir.path(), Some(document)).await;
    assert_eq!(counter(&socket, "sessions_started").await, 1, "the daemon ran it");
    assert_eq!(here.0, 0, "{:#?}", here.1);
    let last = here.1.last().unwrap();
    assert_eq!((&last["event"], &last["kind"]), (&json!("result"), &json!("presentation")));
    assert_eq!(last["response"]["data"]["vp_token"], "lab-token", "{last}");
    assert_eq!(normalised(&here), normalised(&there), "present: output differs");
    assert_eq!(counter(&socket, "sessions_succeeded").await, 1);

    // A CTAP-only phone: refused before anything is sent, alike in both.
    let here = present("--no-daemon", &socket, &tunnel, dir.path(), None).await;
    let there = present("--daemon", &socket, &tunnel, dir.path(), None).await;
    assert_eq!(here.0, 1, "{:#?}", here.1);
    let last = here.1.last().unwrap();
    assert_eq!((&last["event"], &last["stage"]), (&json!("error"), &json!("post_handshake")));
    assert_eq!(normalised(&here), normalised(&there), "refusal: output differs");
    assert_eq!(counter(&socket, "sessions_failed").await, 1);
}

#[tokio::test]
async fn ceremony_present_refuses_bad_params_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let socket = daemon(dir.path()).await;
    let mut client = Client::connect(&socket).await.unwrap();
    for (params, field) in [
        (json!({}), "request"),
        (json!({"request": "{not json"}), "request"),
        (json!({"request": "{}", "kind": "receipt"}), "kind"),
        (json!({"request": "{}", "linked": "Pixel"}), "linked"),
        (json!({"request": "{}", "nonsense": 1}), "nonsense"),
    ] {
        let e = client.call("ceremony.present", params.clone()).await.unwrap_err().to_string();
        assert!(e.contains(field), "{params}: {e}");
    }
    let version = client.call("version", json!({})).await.unwrap();
    assert!(version["methods"].as_array().unwrap().contains(&json!("ceremony.present")));
}
