//! The hostile-device suite against the daemon (issue 14): `ceremony.register` on eight
//! misbehaving UDP-HID keys (the virtual key's lab faults: never answers, keepalive forever,
//! wrong channel, busy, bad sequence, truncated response, oversized length, vanishes
//! mid-transaction), all at once and while a USB ceremony on a well-behaved key and a hybrid
//! ceremony through the virtual phone are in flight. Asserted: every hostile session ends with
//! an `error` event naming its stage (none hangs past its timeout), the two others end with a
//! verified `result`, the daemon answers `status` throughout, and its fds, threads and tokio
//! tasks return to their baseline. (A key unplugged mid-transaction — a hot-plug `remove` —
//! is daemon/tests/hid_unplug.rs: the daemon's event source is the kernel's, which a test
//! cannot inject into.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod faults_common;

use std::collections::HashMap;
use std::time::Duration;

use cablebridge_protocol::hybrid::qr::QrPayload;
use cablebridge_service::client::Client;
use cablebridged::tunnel::server::{TunnelServer, TunnelServerConfig};
use cablebridged::virtual_key::{LabFault, VirtualKey, VirtualKeyConfig, VirtualKeyHandle};
use common::{hybrid_register, phone, wait_end, wait_qr, Daemon, T};
use faults_common::Baseline;
use serde_json::{json, Value};
use tokio::time::timeout;

const HOSTILE: [LabFault; 8] = [
    LabFault::NeverAnswer,
    LabFault::KeepaliveForever,
    LabFault::WrongCid,
    LabFault::Busy,
    LabFault::BadSequence,
    LabFault::TruncatedResponse,
    LabFault::OversizedBcnt,
    LabFault::VanishMidTransaction,
];

async fn key(fault: LabFault, presence_ms: u64) -> VirtualKeyHandle {
    let mut cfg = VirtualKeyConfig::new("127.0.0.1:0".parse().unwrap());
    cfg.fault = fault;
    cfg.presence_delay = Duration::from_millis(presence_ms);
    VirtualKey::bind(cfg).await.unwrap()
}

fn usb_register(key: &VirtualKeyHandle, user: &str, user_timeout: &str) -> Value {
    json!({
        "transport": "usb",
        "device": key.device_address(),
        "rp_id": "hostile.example",
        "user_name": user,
        "user_timeout": user_timeout,
    })
}

/// Reads notifications until each of `ids` has ended; returns each one's last event.
async fn ends(client: &mut Client, ids: &[u64]) -> HashMap<u64, Value> {
    let mut done = HashMap::new();
    while done.len() < ids.len() {
        let n = timeout(T, client.next_notification()).await.expect("bounded").unwrap();
        let p = &n["params"];
        let Some(id) = p["session"].as_u64().filter(|id| ids.contains(id)) else { continue };
        if p["event"] == "result" || p["event"] == "error" {
            done.insert(id, p.clone());
        }
    }
    done
}

fn k_address(keys: &[(LabFault, VirtualKeyHandle)], fault: LabFault) -> String {
    keys.iter().find(|(f, _)| *f == fault).map(|(_, k)| k.device_address()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_keys_fail_typed_while_other_sessions_complete() {
    let server = TunnelServer::bind(TunnelServerConfig::default()).await.unwrap();
    let tunnel = server.base_url();
    let daemon = Daemon::start("");
    let base = Baseline::settled(&daemon).await;

    let mut hostile_keys = Vec::new();
    for fault in HOSTILE {
        hostile_keys.push((fault, key(fault, 0).await));
    }
    let good = key(LabFault::None, 300).await;

    // The hostile ceremonies, all at once on one connection.
    let mut h = daemon.client().await;
    let mut hostile_ids = HashMap::new();
    for (fault, k) in &hostile_keys {
        let r = h.call("ceremony.register", usb_register(k, &fault.to_string(), "3s")).await;
        hostile_ids.insert(r.unwrap()["session"].as_u64().unwrap(), *fault);
    }
    // A well-behaved key and a phone, each on its own connection.
    let mut g = daemon.client().await;
    let good_id = g.call("ceremony.register", usb_register(&good, "good", "20s")).await.unwrap()
        ["session"]
        .as_u64()
        .unwrap();
    let adverts = daemon.path("adverts.sock");
    let mut phone = phone(&tunnel, &adverts);
    let mut p = daemon.client().await;
    let mut params = hybrid_register(&tunnel, &adverts);
    params["no_linking"] = json!(true);
    let hybrid_id = p.call("ceremony.register", params).await.unwrap()["session"].as_u64().unwrap();
    let url = wait_qr(&mut p, hybrid_id).await;

    // The daemon answers while all ten are in flight.
    let mut s = daemon.client().await;
    let status = s.call("status", json!({})).await.unwrap();
    assert!(status["sessions"].as_array().unwrap().len() >= 2, "{status}");

    let ids: Vec<u64> = hostile_ids.keys().copied().collect();
    let qr = QrPayload::from_url(&url).unwrap();
    let (_, hybrid, good_end, hostile) = tokio::join!(
        phone.run_qr(&qr),
        wait_end(&mut p, hybrid_id),
        wait_end(&mut g, good_id),
        ends(&mut h, &ids),
    );

    let hybrid = hybrid.last().unwrap();
    assert_eq!((&hybrid["event"], &hybrid["verification"]["ok"]), (&json!("result"), &json!(true)));
    let good_end = good_end.last().unwrap();
    assert_eq!(good_end["event"], "result", "{good_end}");
    assert_eq!(good_end["transport"], "usb", "{good_end}");
    assert_eq!(good_end["verification"]["ok"], true, "{good_end}");
    for (id, end) in &hostile {
        let fault = hostile_ids[id];
        println!("{fault}: {end}");
        assert_eq!(end["event"], "error", "{fault}: {end}");
        let stage = end["stage"].as_str().unwrap_or_else(|| panic!("{fault}: no stage: {end}"));
        assert!(["device_select", "user_presence"].contains(&stage), "{fault}: {end}");
        // The message names the stage and the device.
        let message = end["message"].as_str().unwrap_or_default();
        assert!(message.starts_with(&format!("{stage} failed")), "{fault}: {end}");
        assert!(message.contains(&k_address(&hostile_keys, fault)), "{fault}: {end}");
        assert!(end["exit_code"].as_u64().is_some_and(|c| c > 0), "{fault}: {end}");
    }
    let after = s.call("status", json!({})).await.unwrap();
    assert_eq!(after["sessions"], json!([]), "{after}");
    assert!(after["counters"]["sessions_failed"].as_u64().unwrap() >= 8, "{after}");

    drop((h, g, p, s));
    for (_, k) in hostile_keys {
        if !k.is_finished() {
            k.shutdown().await.unwrap();
        }
    }
    good.shutdown().await.unwrap();
    base.check(&daemon, "hostile keys").await;
}
