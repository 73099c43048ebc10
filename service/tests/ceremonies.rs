//! Ceremonies through the daemon's control socket, with a tunnel server and virtual phones in
//! the test process and adverts injected on per-session Unix datagram sockets: register +
//! link + authenticate (results verified, the stream shaped like the CLI's `--json` lines,
//! no secret in the debug log), links.list/forget, 20 concurrent hybrid ceremonies, cancel,
//! client disconnect (sessions cancelled, fds back to baseline), detached sessions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cablebridge_protocol::hybrid::qr::QrPayload;
use cablebridged::tunnel::server::{TunnelServer, TunnelServerConfig};
use common::{
    eventually, hybrid_register, hybrid_rig, phone, plain_key, session_of, wait_end, wait_qr,
    Daemon, T,
};
use serde_json::{json, Value};
use tokio::time::timeout;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_link_authenticate_and_links_through_the_daemon() {
    let (_server, tunnel, daemon, adverts) = hybrid_rig().await;
    let mut phone = phone(&tunnel, &adverts);
    let mut c = daemon.client().await;

    // Register: the session id comes back at once, then the CLI's JSON lines as notifications.
    let started = c.call("ceremony.register", hybrid_register(&tunnel, &adverts)).await.unwrap();
    let id = session_of(&started);
    assert_eq!(started["transport"], "hybrid");
    let url = wait_qr(&mut c, id).await;
    assert!(url.starts_with("FIDO:/"));
    let status = c.call("status", json!({})).await.unwrap();
    assert_eq!(status["sessions"][0]["session"], id, "{status}");
    let qr = QrPayload::from_url(&url).unwrap();
    let (_, events) = tokio::join!(phone.run_qr(&qr), wait_end(&mut c, id));
    let result = events.last().unwrap().clone();
    assert_eq!(result["event"], "result", "{events:?}");
    assert_eq!(
        (result["ceremony"].as_str(), result["transport"].as_str()),
        (Some("register"), Some("hybrid"))
    );
    assert_eq!(result["verification"]["ok"], true, "{result}");
    for e in &events[..events.len() - 1] {
        assert!(["progress", "warning"].contains(&e["event"].as_str().unwrap()), "{e}");
        assert!(e["stage"].is_string() && e["elapsed_ms"].is_u64(), "{e}");
    }
    let stages: Vec<&str> = events.iter().filter_map(|e| e["stage"].as_str()).collect();
    for s in ["advert", "tunnel_connect", "handshake", "user_response", "linking", "done"] {
        assert!(stages.contains(&s), "missing {s} in {stages:?}");
    }
    let credential = result["credential_id"].as_str().unwrap().to_owned();
    let public_key = result["public_key_cose"].as_str().unwrap().to_owned();

    // The link is in the daemon's state dir (its secret is read from the file for the log check
    // below; the API never returns it).
    let stored: Value =
        serde_json::from_str(&std::fs::read_to_string(daemon.path("state/links.json")).unwrap())
            .unwrap();
    let link_secret = stored.to_string();
    let link_secret = link_secret
        .split("\"link_secret\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    assert_eq!(link_secret.len(), 64);
    let links = c.call("links.list", json!({})).await.unwrap();
    assert!(!links.to_string().contains(&link_secret), "links.list never returns secrets");
    let list = links["links"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{links}");
    assert_eq!(list[0]["name"], "Test Phone");

    // Authenticate with the new credential; the signature verifies with public_key.
    let mut params = hybrid_register(&tunnel, &adverts);
    params.as_object_mut().unwrap().remove("user_name");
    params["allow_credentials"] = json!([credential]);
    params["public_key"] = json!(public_key);
    params["no_linking"] = json!(true);
    let id = session_of(&c.call("ceremony.authenticate", params).await.unwrap());
    let url = wait_qr(&mut c, id).await;
    let qr = QrPayload::from_url(&url).unwrap();
    let (_, events) = tokio::join!(phone.run_qr(&qr), wait_end(&mut c, id));
    let result = events.last().unwrap();
    assert_eq!(result["event"], "result", "{events:?}");
    assert_eq!(result["credential_id"], credential.as_str());
    assert_eq!(result["verification"], json!({"ok": true, "detail": "signature verified"}));

    // links.forget, then forgetting again is refused naming the parameter.
    let name = list[0]["name"].as_str().unwrap();
    let forgotten = c.call("links.forget", json!({"name_or_id": name})).await.unwrap();
    assert_eq!(forgotten["forgotten"]["name"], "Test Phone");
    assert_eq!(c.call("links.list", json!({})).await.unwrap()["links"], json!([]));
    match c.call("links.forget", json!({"name_or_id": name})).await {
        Err(cablebridge_service::client::ClientError::Rpc(e)) => {
            assert_eq!((e.code, e.data), (-32006, Some(json!({"field": "name_or_id"}))))
        }
        other => panic!("{other:?}"),
    }

    // Debug logging never shows the QR secret (the FIDO:/ digits) or the QR URL.
    let (status, log) = daemon.terminate();
    assert!(status.success());
    assert!(log.contains("ceremony succeeded"), "{log}");
    let digits = url.trim_start_matches("FIDO:/");
    assert!(!log.contains(digits), "the QR URL leaked into the log");
    let secret = hex::encode(qr.secret.expose());
    assert!(!log.to_lowercase().contains(&secret), "the QR secret leaked into the log");
    assert!(!log.to_lowercase().contains(&link_secret), "the link secret leaked into the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_hybrid_ceremonies_all_succeed() {
    const N: usize = 20;
    let server = TunnelServer::bind(TunnelServerConfig::default()).await.unwrap();
    let tunnel = server.base_url();
    let daemon = Daemon::start("");
    let mut tasks = Vec::new();
    for i in 0..N {
        let tunnel = tunnel.clone();
        let adverts = daemon.path(&format!("adverts-{i}.sock"));
        let mut c = daemon.client().await;
        tasks.push(tokio::spawn(async move {
            let mut phone = phone(&tunnel, &adverts);
            let mut params = hybrid_register(&tunnel, &adverts);
            params["user_name"] = json!(format!("user{i}@example.com"));
            params["no_linking"] = json!(true);
            let id = session_of(&c.call("ceremony.register", params).await.unwrap());
            let url = wait_qr(&mut c, id).await;
            let qr = QrPayload::from_url(&url).unwrap();
            let (_, events) = tokio::join!(phone.run_qr(&qr), wait_end(&mut c, id));
            events.last().unwrap().clone()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let last = match timeout(T * 3, t).await {
            Ok(Ok(last)) => last,
            other => panic!("{other:?}\ndaemon log:\n{}", daemon.log_text()),
        };
        assert_eq!(last["event"], "result", "{last}");
        assert_eq!(last["verification"]["ok"], true, "{last}");
        ok += 1;
    }
    assert_eq!(ok, N);
    let mut c = daemon.client().await;
    let status = c.call("status", json!({})).await.unwrap();
    assert_eq!(status["counters"]["sessions_succeeded"], N as u64, "{status}");
    assert_eq!(status["sessions"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_ends_one_session_and_leaves_the_other() {
    let daemon = Daemon::start("");
    let mut c = daemon.client().await;
    let tunnel = "ws://127.0.0.1:9"; // never reached: nobody answers the QR
    let a = session_of(
        &c.call("ceremony.register", hybrid_register(tunnel, &daemon.path("a.sock")))
            .await
            .unwrap(),
    );
    let b = session_of(
        &c.call("ceremony.register", hybrid_register(tunnel, &daemon.path("b.sock")))
            .await
            .unwrap(),
    );
    wait_qr(&mut c, a).await;
    let cancelled = c.call("ceremony.cancel", json!({"session": a})).await.unwrap();
    assert_eq!(cancelled, json!({"session": a, "cancelled": true}));
    let events = wait_end(&mut c, a).await;
    let last = events.last().unwrap();
    assert_eq!(last["event"], "error", "{last}");
    assert!(last["message"].as_str().unwrap().ends_with("cancelled"), "{last}");
    assert_eq!(last["exit_code"], 1);
    // b is untouched and still waits for its phone.
    let status = c.call("status", json!({})).await.unwrap();
    let sessions = status["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{status}");
    assert_eq!(sessions[0]["session"], b);
    assert_eq!(status["counters"]["sessions_cancelled"], 1);
    // Cancelling a finished session is an error naming the parameter.
    match c.call("ceremony.cancel", json!({"session": a})).await {
        Err(cablebridge_service::client::ClientError::Rpc(e)) => assert_eq!(e.code, -32002),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_disconnecting_mid_ceremony_frees_everything_unless_detached() {
    let daemon = Daemon::start("");
    let tunnel = "ws://127.0.0.1:9";
    // Baseline after one connection came and went (lazy runtime resources are in place).
    {
        let mut c = daemon.client().await;
        c.call("status", json!({})).await.unwrap();
    }
    let mut watcher = daemon.client().await;
    // The first connection's close is noticed by the daemon asynchronously: wait (bounded) until
    // only the watcher is counted.
    let mut connections = json!(null);
    for _ in 0..200 {
        connections = watcher.call("status", json!({})).await.unwrap()["connections"].clone();
        if connections == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(connections, 1);
    let baseline = daemon.fd_count();

    let mut c = daemon.client().await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let params = hybrid_register(tunnel, &daemon.path(&format!("d{i}.sock")));
        ids.push(session_of(&c.call("ceremony.register", params).await.unwrap()));
    }
    common::wait_qrs(&mut c, &ids).await;
    let mut detached_params = hybrid_register(tunnel, &daemon.path("detached.sock"));
    detached_params["detach"] = json!(true);
    let kept = session_of(&c.call("ceremony.register", detached_params).await.unwrap());
    wait_qr(&mut c, kept).await;
    assert!(daemon.fd_count() > baseline + 3, "three advert sockets and a connection are open");
    drop(c);

    // The three owned sessions are cancelled; the detached one keeps running.
    eventually("owned sessions cancelled", || {
        let s = common::status_now(&daemon);
        s["sessions"].as_array().map(|a| a.len()) == Some(1)
    })
    .await;
    let status = watcher.call("status", json!({})).await.unwrap();
    assert_eq!(status["sessions"][0]["session"], kept, "{status}");
    assert_eq!(status["sessions"][0]["detached"], true);
    assert_eq!(status["counters"]["sessions_cancelled"], 3);
    // Any allowed client can follow and cancel a detached session.
    let sub = watcher.call("events.subscribe", json!({"session": kept})).await.unwrap();
    assert_eq!(sub, json!({"subscribed": kept}));
    watcher.call("ceremony.cancel", json!({"session": kept})).await.unwrap();
    let last = wait_end(&mut watcher, kept).await.pop().unwrap();
    assert!(last["message"].as_str().unwrap().ends_with("cancelled"), "{last}");
    eventually("fds back to baseline", || daemon.fd_count() == baseline).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usb_register_and_authenticate_with_a_pin_through_the_daemon() {
    use cablebridged::virtual_key::{InitialPin, VirtualKey, VirtualKeyConfig};
    const PIN: &str = "4826-secret-pin";
    let mut config = VirtualKeyConfig::new("127.0.0.1:0".parse().unwrap());
    config.initial_pin = Some(InitialPin::new(PIN).unwrap());
    let key = VirtualKey::bind(config).await.unwrap();
    let device = key.device_address();
    let daemon = Daemon::start("");
    let mut c = daemon.client().await;

    // Without the PIN the key cannot verify the user (uv required): the session ends with an
    // error event and the daemon carries on.
    let params = json!({"transport": "usb", "device": device, "rp_id": "example.com",
                        "user_name": "bob", "uv": "required", "user_timeout": "10s"});
    let id = session_of(&c.call("ceremony.register", params.clone()).await.unwrap());
    let last = wait_end(&mut c, id).await.pop().unwrap();
    assert_eq!(last["event"], "error", "{last}");

    let mut with_pin = params;
    with_pin["pin"] = json!(PIN);
    let id = session_of(&c.call("ceremony.register", with_pin).await.unwrap());
    let events = wait_end(&mut c, id).await;
    let result = events.last().unwrap();
    assert_eq!(result["event"], "result", "{events:?}");
    assert_eq!(result["transport"], "usb");
    assert_eq!(result["verification"]["ok"], true, "{result}");
    assert!(events.iter().any(|e| e["stage"] == "device_select"), "{events:?}");

    let auth = json!({"transport": "usb", "device": device, "rp_id": "example.com",
                      "allow_credentials": [result["credential_id"]],
                      "public_key": result["public_key_cose"], "pin": PIN, "user_timeout": "10s"});
    let id = session_of(&c.call("ceremony.authenticate", auth).await.unwrap());
    let last = wait_end(&mut c, id).await.pop().unwrap();
    assert_eq!(last["verification"], json!({"ok": true, "detail": "signature verified"}), "{last}");

    let (_, log) = daemon.terminate();
    assert!(log.contains("transport=usb") || log.contains("transport=\"usb\""), "{log}");
    assert!(!log.contains(PIN), "the PIN leaked into the debug log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_asking_for_the_same_key_are_serialised_not_broken() {
    use cablebridged::virtual_key::{VirtualKey, VirtualKeyConfig};
    let mut config = VirtualKeyConfig::new("127.0.0.1:0".parse().unwrap());
    // The "user" takes a moment to touch, so the two ceremonies overlap on the key.
    config.presence_delay = std::time::Duration::from_millis(300);
    let key = VirtualKey::bind(config).await.unwrap();
    let device = key.device_address();
    let daemon = Daemon::start("");
    let mut runs = Vec::new();
    for user in ["carol", "dave"] {
        let mut c = daemon.client().await;
        let device = device.clone();
        runs.push(tokio::spawn(async move {
            let params = json!({"transport": "usb", "device": device, "rp_id": "example.com",
                                "user_name": user, "user_timeout": "20s"});
            let id = session_of(&c.call("ceremony.register", params).await.unwrap());
            wait_end(&mut c, id).await.pop().unwrap()
        }));
    }
    for r in runs {
        let last = timeout(T, r).await.unwrap().unwrap();
        assert_eq!(last["event"], "result", "{last}");
        assert_eq!(last["verification"]["ok"], true, "{last}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usb_register_min_pin_length_and_enterprise_attestation_through_the_daemon() {
    use cablebridge_protocol::ctap2::SetMinPinLengthParams;
    use cablebridged::ctap::{open_client, Call, ConfigChange, OpenOptions};
    let key = plain_key().await;
    let device = key.device_address();
    let daemon = Daemon::start("");
    let mut c = daemon.client().await;
    let params = json!({"transport": "usb", "device": device, "rp_id": "example.com",
                        "user_name": "ep", "user_timeout": "10s", "enterprise_attestation": 2,
                        "min_pin_length": true});
    // ep is still off on the key: refused, naming the remedy.
    let id = session_of(&c.call("ceremony.register", params.clone()).await.unwrap());
    let last = wait_end(&mut c, id).await.pop().unwrap();
    assert!(last["message"].as_str().unwrap().contains("enable-ep"), "{last}");

    // Turn ep on and list the RP for minPinLength (no PIN: no token needed).
    let cancel = tokio_util::sync::CancellationToken::new();
    let mut sink = |_| {};
    let mut call = Call {
        deadline: tokio::time::Instant::now() + std::time::Duration::from_secs(5),
        cancel: &cancel,
        progress: &mut sink,
    };
    let mut client =
        open_client(&device.parse().unwrap(), &OpenOptions::default(), &mut call).await.unwrap();
    let mut rng = rand::rngs::OsRng;
    let ep = ConfigChange::EnableEnterpriseAttestation;
    client.configure(&mut rng, None, &ep, &mut call).await.unwrap();
    let min = ConfigChange::SetMinPinLength(SetMinPinLengthParams {
        new_min_pin_length: Some(7),
        min_pin_length_rp_ids: Some(vec!["example.com".into()]),
        ..Default::default()
    });
    client.configure(&mut rng, None, &min, &mut call).await.unwrap();
    drop(client);

    let id = session_of(&c.call("ceremony.register", params).await.unwrap());
    let result = wait_end(&mut c, id).await.pop().unwrap();
    assert_eq!(result["event"], "result", "{result}");
    assert_eq!(result["enterprise_attestation"], true, "{result}");
    assert_eq!(result["min_pin_length"], 7, "{result}");
    daemon.terminate();
}
