//! Linking through the USB bridge, end to end over the real control socket: a (virtual) USB
//! key bridged as a phone (`bridge.start` `kind: "usb"`, `offer_linking`, `serve_linked`)
//! answers a desktop's QR registration and links; the same daemon's desktop then authenticates
//! over the link (`transport: "linked"`, no QR) and the key — through the bridge — signs, as
//! often as asked while the bridge runs; `bridge.stop` with `revoke_links` revokes the link on
//! the tunnel server, after which the desktop's next linked request gets 410 Gone and forgets
//! the phone.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{hybrid_register, hybrid_rig, plain_key, session_of, wait_end, wait_event, wait_qr};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_usb_key_bridge_links_serves_linked_desktops_and_revokes() {
    let key = plain_key().await;
    let (_server, tunnel, daemon, adverts) = hybrid_rig().await;
    let mut desk = daemon.client().await;
    let mut bridges = daemon.client().await;

    // The QR registration, answered by the key through the bridge, which offers linking.
    let reg = session_of(
        &desk.call("ceremony.register", hybrid_register(&tunnel, &adverts)).await.unwrap(),
    );
    let url = wait_qr(&mut desk, reg).await;
    let started = bridges
        .call(
            "bridge.start",
            json!({"kind": "usb", "device": key.device_address(), "qr_url": url,
                   "tunnel_url": tunnel, "advert_sink": format!("unix:{}", adverts.display()),
                   "offer_linking": true, "serve_linked": true, "name": "Key Bridge",
                   "timeout_secs": 20, "touch_timeout_secs": 20}),
        )
        .await
        .unwrap();
    let bridge = session_of(&started);
    assert_eq!(started["kind"], "usb", "{started}");
    let registered = wait_end(&mut desk, reg).await.pop().unwrap();
    assert_eq!(registered["event"], "result", "{registered}");
    assert_eq!(registered["verification"]["ok"], true, "{registered}");
    let linked = desk.call("links.list", json!({})).await.unwrap();
    let links = linked["links"].as_array().unwrap();
    assert_eq!(links.len(), 1, "the desktop stored the bridge's link: {linked}");
    assert!(links[0].to_string().contains("Key Bridge"), "{linked}");

    // Still running: the bridge now listens for the desktop it linked with.
    wait_event(&mut bridges, bridge, "listening").await;

    // Linked requests, no QR: the key signs through the bridge, more than once.
    let auth = json!({"transport": "linked", "linked": "Key Bridge", "rp_id": "example.com",
                      "tunnel_url": tunnel,
                      "advert_source": format!("unix:{}", adverts.display()),
                      "allow_credentials": [registered["credential_id"]],
                      "public_key": registered["public_key_cose"],
                      "advert_timeout": "20s", "user_timeout": "20s"});
    for round in 0..2 {
        let started = desk.call("ceremony.authenticate", auth.clone()).await.unwrap();
        assert_eq!(started["transport"], "linked", "{started}");
        let events = wait_end(&mut desk, session_of(&started)).await;
        assert!(!events.iter().any(|e| e["event"] == "qr"), "linked: no QR code: {events:?}");
        let last = events.last().unwrap();
        assert_eq!(last["event"], "result", "round {round}: {last}");
        assert_eq!(last["verification"], json!({"ok": true, "detail": "signature verified"}));
        assert_eq!(last["credential_id"], registered["credential_id"]);
        let arrived = wait_event(&mut bridges, bridge, "desktop_arrived").await;
        assert_eq!(arrived["known"], true, "{arrived}");
    }

    // Revocation from the bridge side: stop with revoke_links.
    let stopped = bridges
        .call("bridge.stop", json!({"session": bridge, "revoke_links": true}))
        .await
        .unwrap();
    assert_eq!(stopped, json!({"session": bridge, "stopped": true, "revoke_links": true}));
    let end = wait_end(&mut bridges, bridge).await.pop().unwrap();
    assert_eq!(end["event"], "result", "{end}");
    assert_eq!(end["stopped"], true, "{end}");
    assert_eq!(end["links_revoked"], 1, "{end}");
    assert_eq!(end["revocations_unconfirmed"], json!([]), "{end}");
    assert_eq!(end["device"], key.device_address(), "{end}");

    // The desktop's next linked request: 410 Gone → the link is forgotten.
    let started = desk.call("ceremony.authenticate", auth).await.unwrap();
    let last = wait_end(&mut desk, session_of(&started)).await.pop().unwrap();
    assert_eq!(last["event"], "error", "{last}");
    let listed = desk.call("links.list", json!({})).await.unwrap();
    assert_eq!(listed["links"], json!([]), "revoked link forgotten: {listed} after {last}");
}
