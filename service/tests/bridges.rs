//! `bridge.start` / `bridge.stop` over the real control socket: a virtual phone run by the
//! daemon answers a desktop ceremony run by the same daemon, links, keeps serving the linked
//! desktop (`serve_linked`) until stopped, and is gone with its resources afterwards; a USB key
//! (virtual, over `udp:`) bridged as a phone; bad params are refused naming the field.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cablebridge_service::client::ClientError;
use common::{
    eventually, hybrid_register, hybrid_rig, plain_key, session_of, wait_end, wait_event, wait_qr,
    Daemon,
};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_virtual_phone_bridge_answers_links_serves_linked_and_stops() {
    let (_server, tunnel, daemon, adverts) = hybrid_rig().await;
    let mut desk = daemon.client().await;
    let mut phones = daemon.client().await;
    desk.call("status", json!({})).await.unwrap();
    phones.call("status", json!({})).await.unwrap();
    let baseline = daemon.fd_count();

    // A desktop registration (linking on), answered by a bridge session of the same daemon.
    let reg = session_of(
        &desk.call("ceremony.register", hybrid_register(&tunnel, &adverts)).await.unwrap(),
    );
    let url = wait_qr(&mut desk, reg).await;
    let started = phones
        .call(
            "bridge.start",
            json!({"kind": "virtual", "qr_url": url, "tunnel_url": tunnel,
                   "advert_sink": format!("unix:{}", adverts.display()),
                   "offer_linking": true, "serve_linked": true, "name": "Daemon Phone",
                   "timeout_secs": 20}),
        )
        .await
        .unwrap();
    let bridge = session_of(&started);
    assert_eq!(
        (started["kind"].as_str(), started["detached"].as_bool()),
        (Some("virtual"), Some(false))
    );
    let events = wait_end(&mut desk, reg).await;
    let result = events.last().unwrap().clone();
    assert_eq!(result["event"], "result", "{events:?}");
    assert_eq!(result["verification"]["ok"], true, "{result}");

    // The bridge keeps running, now listening for the desktop it linked with.
    let listening = wait_event(&mut phones, bridge, "listening").await;
    assert!(listening["elapsed_ms"].is_u64(), "{listening}");
    let status = desk.call("status", json!({})).await.unwrap();
    let sessions = status["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{status}");
    assert_eq!(
        (sessions[0]["ceremony"].as_str(), sessions[0]["transport"].as_str()),
        (Some("bridge"), Some("virtual"))
    );

    // A linked authentication reaches the bridge through /cable/contact → /cable/listen.
    let auth = json!({"transport": "linked", "linked": "Daemon Phone", "rp_id": "example.com",
                      "tunnel_url": tunnel,
                      "advert_source": format!("unix:{}", adverts.display()),
                      "allow_credentials": [result["credential_id"]],
                      "public_key": result["public_key_cose"],
                      "advert_timeout": "20s", "user_timeout": "20s"});
    let started = desk.call("ceremony.authenticate", auth).await.unwrap();
    assert_eq!(started["transport"], "linked", "{started}");
    let id = session_of(&started);
    let last = wait_end(&mut desk, id).await.pop().unwrap();
    assert_eq!(last["event"], "result", "{last}");
    assert_eq!(last["verification"], json!({"ok": true, "detail": "signature verified"}));
    let arrived = wait_event(&mut phones, bridge, "desktop_arrived").await;
    assert_eq!(arrived["known"], true, "{arrived}");

    // bridge.stop on a ceremony id is refused; on the bridge it ends with a stopped result.
    match phones.call("bridge.stop", json!({"session": 9999})).await {
        Err(ClientError::Rpc(e)) => assert_eq!(e.code, -32002),
        other => panic!("{other:?}"),
    }
    let stopped = phones.call("bridge.stop", json!({"session": bridge})).await.unwrap();
    assert_eq!(stopped, json!({"session": bridge, "stopped": true}));
    let end = wait_end(&mut phones, bridge).await.pop().unwrap();
    assert_eq!(end["event"], "result", "{end}");
    assert_eq!((end["stopped"].as_bool(), end["linking_sent"].as_bool()), (Some(true), Some(true)));
    assert!(end["routing_id"].is_string(), "{end}");

    // Gone, and everything it held (tunnel listener, advert socket) is released.
    let status = desk.call("status", json!({})).await.unwrap();
    assert_eq!(status["sessions"], json!([]), "{status}");
    // A serving phone that is stopped ends with a result (stopping is how it normally ends).
    assert_eq!(status["counters"]["sessions_succeeded"], 3, "{status}");
    match phones.call("bridge.stop", json!({"session": bridge})).await {
        Err(ClientError::Rpc(e)) => assert_eq!(e.code, -32002),
        other => panic!("{other:?}"),
    }
    eventually("the advert intake closed", || {
        common::status_now(&daemon)["adverts"]["intakes_open"] == 0
    })
    .await;
    eventually("fds back to baseline", || daemon.fd_count() <= baseline).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_usb_key_bridged_as_a_phone_answers_a_desktop() {
    let key = plain_key().await;
    let (_server, tunnel, daemon, adverts) = hybrid_rig().await;
    let mut c = daemon.client().await;
    let mut params = hybrid_register(&tunnel, &adverts);
    params["no_linking"] = json!(true);
    let reg = session_of(&c.call("ceremony.register", params).await.unwrap());
    let url = wait_qr(&mut c, reg).await;
    let mut b = daemon.client().await;
    let started = b
        .call(
            "bridge.start",
            json!({"kind": "usb", "device": key.device_address(), "qr_url": url,
                   "tunnel_url": tunnel, "advert_sink": format!("unix:{}", adverts.display()),
                   "timeout_secs": 20, "touch_timeout_secs": 20}),
        )
        .await
        .unwrap();
    let bridge = session_of(&started);
    let last = wait_end(&mut c, reg).await.pop().unwrap();
    assert_eq!(last["event"], "result", "{last}");
    assert_eq!(last["verification"]["ok"], true, "{last}");
    let events = wait_end(&mut b, bridge).await;
    let end = events.last().unwrap();
    assert_eq!(end["event"], "result", "{events:?}");
    assert_eq!(end["device"], key.device_address(), "{end}");
    assert_eq!(end["aaguid"], last["aaguid"].as_str().unwrap().replace('-', ""), "{end}");
    assert!(events.iter().any(|e| e["event"] == "key_ready"), "{events:?}");
    assert_eq!(c.call("status", json!({})).await.unwrap()["sessions"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bridge_params_name_the_field() {
    let daemon = Daemon::start("");
    let mut c = daemon.client().await;
    for (params, field) in [
        (json!({}), "kind"),
        (json!({"kind": "phone"}), "kind"),
        (json!({"kind": "virtual", "qr_url": "FIDO:/123"}), "qr_url"),
        (json!({"kind": "virtual", "serve_linked": true}), "state"),
        (json!({"kind": "virtual", "serve_linked": true, "state": "../etc/x"}), "state"),
        (json!({"kind": "usb", "advert_sink": "stdout"}), "advert_sink"),
        (json!({"kind": "usb", "device": "nowhere"}), "device"),
        (json!({"kind": "virtual", "serve_linked": true, "state": "p", "colour": 1}), "colour"),
    ] {
        match c.call("bridge.start", params.clone()).await {
            Err(ClientError::Rpc(e)) => {
                assert_eq!((e.code, e.data), (-32602, Some(json!({"field": field}))), "{params}")
            }
            other => panic!("{params}: {other:?}"),
        }
    }
    assert_eq!(c.call("status", json!({})).await.unwrap()["sessions"], json!([]));
}
