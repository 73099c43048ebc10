//! The daemon's shared advert intake: several concurrent hybrid ceremonies fed from ONE `unix:`
//! datagram socket that every virtual phone advertises into (interleaved) and the test floods
//! with junk; all succeed, the socket is opened once (status `adverts` counters) and closed once
//! nobody waits for adverts any more.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use cablebridge_protocol::hybrid::qr::QrPayload;
use cablebridged::tunnel::server::{TunnelServer, TunnelServerConfig};
use common::{eventually, hybrid_register, phone, Daemon, T};
use serde_json::{json, Value};
use tokio::time::timeout;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_hybrid_ceremonies_share_one_advert_socket() {
    const N: usize = 5;
    let server = TunnelServer::bind(TunnelServerConfig::default()).await.unwrap();
    let tunnel = server.base_url();
    let daemon = Daemon::start("");
    let shared = daemon.path("shared-adverts.sock");
    let mut c = daemon.client().await;

    let mut ids = Vec::new();
    for i in 0..N {
        let mut params = hybrid_register(&tunnel, &shared);
        params["user_name"] = json!(format!("user{i}@example.com"));
        params["no_linking"] = json!(true);
        ids.push(c.call("ceremony.register", params).await.unwrap()["session"].as_u64().unwrap());
    }
    // Every session shows its QR; the source was opened once and all of them wait on it.
    let mut urls: HashMap<u64, String> = HashMap::new();
    while urls.len() < N {
        let n = timeout(T, c.next_notification()).await.unwrap().unwrap();
        let p = &n["params"];
        assert_ne!(p["event"], "error", "{n}");
        if p["event"] == "qr" {
            urls.insert(p["session"].as_u64().unwrap(), p["url"].as_str().unwrap().to_owned());
        }
    }
    let status = c.call("status", json!({})).await.unwrap();
    let adverts = &status["adverts"];
    assert_eq!(adverts["intakes_opened"], 1, "{status}");
    assert_eq!(adverts["intakes_open"], 1, "{status}");
    assert_eq!(adverts["intakes"][0]["source"], format!("unix:{}", shared.display()));
    assert_eq!(adverts["intakes"][0]["pending_sessions"], N as u64, "{status}");
    assert!(shared.exists());

    // Junk on the same socket while the phones advertise: foreign adverts (random bytes, which
    // no session can open), lines that are not hex, a short advert.
    let junk_to = shared.clone();
    let stop = tokio_util::sync::CancellationToken::new();
    let stop_junk = stop.clone();
    let junk = tokio::spawn(async move {
        let sock = tokio::net::UnixDatagram::unbound().unwrap();
        let mut sent = 0u32;
        while !stop_junk.is_cancelled() && sent < 2000 {
            let random: [u8; 20] = rand::random();
            let text = format!("{}\nnot-hex\n0011\n# comment\n", hex::encode(random));
            let _ = sock.send_to(text.as_bytes(), &junk_to).await;
            sent += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        sent
    });

    // The phones all advertise into the one socket at once.
    let mut phones = Vec::new();
    for id in &ids {
        let qr = QrPayload::from_url(&urls[id]).unwrap();
        let mut p = phone(&tunnel, &shared);
        phones.push(tokio::spawn(async move { p.run_qr(&qr).await.map(|_| ()) }));
    }
    let mut ended: HashMap<u64, Value> = HashMap::new();
    while ended.len() < N {
        let n = timeout(T * 2, c.next_notification())
            .await
            .unwrap_or_else(|_| panic!("no end; log:\n{}", daemon.log_text()))
            .unwrap();
        let p = n["params"].clone();
        if p["event"] == "result" || p["event"] == "error" {
            ended.insert(p["session"].as_u64().unwrap(), p);
        }
    }
    stop.cancel();
    let junk_sent = junk.await.unwrap();
    for p in phones {
        timeout(T, p).await.unwrap().unwrap().unwrap();
    }
    for (id, last) in &ended {
        assert_eq!(last["event"], "result", "session {id}: {last}");
        assert_eq!(last["verification"]["ok"], true, "{last}");
    }
    assert!(junk_sent > 0);

    // Nobody waits any more: the intake is closed (socket file gone), and was opened once.
    let mut status = json!(null);
    eventually("the shared intake closed", || {
        status = common::status_now(&daemon);
        status["adverts"]["intakes_open"] == 0 && !shared.exists()
    })
    .await;
    let a = &status["adverts"];
    assert_eq!((a["intakes_opened"].as_u64(), a["intakes_closed"].as_u64()), (Some(1), Some(1)));
    assert_eq!(a["subscriptions"], N as u64, "{status}");
    assert!(a["received"].as_u64().unwrap() >= N as u64, "{status}");
    assert!(a["warnings"].as_u64().unwrap() > 0, "the junk lines were read: {status}");
    assert_eq!(status["counters"]["sessions_succeeded"], N as u64, "{status}");

    // A new session opens the source afresh.
    let params = hybrid_register(&tunnel, &shared);
    let id = c.call("ceremony.register", params).await.unwrap()["session"].as_u64().unwrap();
    let _ = common::wait_qr(&mut c, id).await;
    let status = c.call("status", json!({})).await.unwrap();
    assert_eq!(status["adverts"]["intakes_opened"], 2, "{status}");
    c.call("ceremony.cancel", json!({"session": id})).await.unwrap();
    eventually("closed after the cancel", || {
        common::status_now(&daemon)["adverts"]["intakes_closed"] == 2 && !shared.exists()
    })
    .await;
}

/// A session naming another source gets its own intake; a bad source fails only its session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_are_keyed_and_a_bad_one_fails_only_its_session() {
    let daemon = Daemon::start("");
    let mut c = daemon.client().await;
    let tunnel = "ws://127.0.0.1:9";
    let a = c.call("ceremony.register", hybrid_register(tunnel, &daemon.path("a.sock"))).await;
    let a = a.unwrap()["session"].as_u64().unwrap();
    let b = c.call("ceremony.register", hybrid_register(tunnel, &daemon.path("b.sock"))).await;
    let b = b.unwrap()["session"].as_u64().unwrap();
    common::wait_qrs(&mut c, &[a, b]).await;
    // A regular file at the socket path is never replaced: that session fails at once.
    std::fs::write(daemon.path("precious"), b"x").unwrap();
    let bad = hybrid_register(tunnel, &daemon.path("precious"));
    let id = c.call("ceremony.register", bad).await.unwrap()["session"].as_u64().unwrap();
    let last = common::wait_end(&mut c, id).await.pop().unwrap();
    assert_eq!(last["event"], "error", "{last}");
    assert!(last["message"].as_str().unwrap().contains("cannot receive adverts"), "{last}");
    assert_eq!(std::fs::read(daemon.path("precious")).unwrap(), b"x");
    let status = c.call("status", json!({})).await.unwrap();
    assert_eq!(status["adverts"]["intakes_open"], 2, "{status}");
    assert_eq!(status["sessions"].as_array().unwrap().len(), 2, "{status}");
}
