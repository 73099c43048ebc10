//! Secrets never reach the daemon's logs or its control-socket notifications. Full ceremonies
//! run through the daemon with `RUST_LOG=debug`: a hybrid registration with linking answered by
//! a virtual-phone bridge session of the same daemon (so the phone side logs too), a linked
//! reconnect to that phone, and a USB registration + authentication with a PIN on a virtual key
//! over `udp:`. The test captures the QR secret (decoded from the QR URL), the PSK (derived from
//! a relayed advert with the QR secret, as `cablebridge advert decrypt --show-secrets` does), the
//! link secret (from the daemon's link store file) and the PIN, then searches the whole debug log
//! and every notification for each in hex (both cases), base64, base64url, FIDO:/ decimal
//! digits and Rust's decimal byte-list form. The `qr` event is the one place the QR URL is meant
//! to go (the client must show it); it is left out of the notification search.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use cablebridge_protocol::hybrid::digits;
use cablebridge_protocol::hybrid::eid::{EidKey, EidMode, TrialOpen};
use cablebridge_protocol::hybrid::qr::QrPayload;
use cablebridge_service::client::Client;
use cablebridged::tunnel::server::{TunnelServer, TunnelServerConfig};
use common::{Daemon, T};
use serde_json::{json, Value};
use tokio::time::timeout;

/// Every notification seen, as text (qr events left out), and the QR URLs.
struct Recorder {
    client: Client,
    seen: String,
    qr_urls: Vec<String>,
    /// Events of other sessions read while waiting for one session, in arrival order, for
    /// their own `until` (the bridge may say `listening` before the desktop's `result`).
    backlog: Vec<Value>,
}

impl Recorder {
    async fn next(&mut self) -> Value {
        let n = timeout(T, self.client.next_notification()).await.unwrap().unwrap();
        if n["params"]["event"] == "qr" {
            self.qr_urls.push(n["params"]["url"].as_str().unwrap().to_owned());
        } else {
            self.seen.push_str(&n.to_string());
            self.seen.push('\n');
        }
        n["params"].clone()
    }

    /// Notifications until `session` emits `event` (or ends; then it must be `event`): first
    /// from the backlog, then from the socket, keeping other sessions' events in the backlog.
    async fn until(&mut self, session: u64, event: &str) -> Value {
        loop {
            let p = match self.backlog.iter().position(|p| p["session"] == session) {
                Some(i) => self.backlog.remove(i),
                None => self.next().await,
            };
            if p["session"] != session {
                self.backlog.push(p);
                continue;
            }
            if p["event"] == event {
                return p;
            }
            assert!(p["event"] != "result" && p["event"] != "error", "waiting for {event}: {p}");
        }
    }

    async fn start(&mut self, method: &str, params: Value) -> u64 {
        let r = self.client.call(method, params).await.unwrap();
        r["session"].as_u64().unwrap()
    }
}

/// The spellings a secret could leak in.
fn forms(bytes: &[u8]) -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let b64_nopad = base64::engine::general_purpose::STANDARD_NO_PAD;
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    vec![
        hex::encode(bytes),
        hex::encode_upper(bytes),
        b64.encode(bytes),
        b64_nopad.encode(bytes),
        url.encode(bytes),
        digits::encode(bytes),
        format!("{bytes:?}"),
        format!("{bytes:?}").replace(' ', ""),
    ]
}

fn assert_absent(haystack: &str, what: &str, secret: &[u8], place: &str) {
    for form in forms(secret) {
        assert!(!haystack.contains(&form), "{what} leaked into {place} as {form}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_debug_logs_or_notifications() {
    use cablebridged::virtual_key::{InitialPin, VirtualKey, VirtualKeyConfig};
    const PIN: &str = "731952-pin";
    let server = TunnelServer::bind(TunnelServerConfig::default()).await.unwrap();
    let tunnel = server.base_url();
    let daemon = Daemon::start("");
    let desktop_sock = daemon.path("adverts.sock");
    let mut r = Recorder {
        client: daemon.client().await,
        seen: String::new(),
        qr_urls: vec![],
        backlog: vec![],
    };

    // The phone's adverts pass through a relay that records them (for the PSK).
    let relay_path = daemon.path("relay.sock");
    let relay = tokio::net::UnixDatagram::bind(&relay_path).unwrap();
    let recorded = Arc::new(Mutex::new(Vec::<String>::new()));
    let rec = Arc::clone(&recorded);
    let forward_to = desktop_sock.clone();
    let relay_task = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok(n) = relay.recv(&mut buf).await {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            rec.lock().unwrap().extend(text.lines().map(str::to_owned));
            let _ = relay.send_to(&buf[..n], &forward_to).await;
        }
    });

    // 1. Hybrid registration with linking, answered by a virtual-phone bridge session.
    let mut params = common::hybrid_register(&tunnel, &desktop_sock);
    params["user_name"] = json!("secret-test@example.com");
    let reg = r.start("ceremony.register", params).await;
    while r.qr_urls.is_empty() {
        r.next().await;
    }
    let url = r.qr_urls[0].clone();
    let bridge = r
        .start(
            "bridge.start",
            json!({"kind": "virtual", "qr_url": url, "tunnel_url": tunnel,
                   "advert_sink": format!("unix:{}", relay_path.display()),
                   "offer_linking": true, "serve_linked": true, "name": "Secret Phone",
                   "timeout_secs": 20}),
        )
        .await;
    let result = r.until(reg, "result").await;
    assert_eq!(result["verification"]["ok"], true, "{result}");
    r.until(bridge, "listening").await;

    // 2. A linked reconnect to the same phone.
    let auth = json!({"transport": "linked", "linked": "Secret Phone", "rp_id": "example.com",
                      "tunnel_url": tunnel,
                      "advert_source": format!("unix:{}", desktop_sock.display()),
                      "allow_credentials": [result["credential_id"]],
                      "public_key": result["public_key_cose"],
                      "advert_timeout": "20s", "user_timeout": "20s"});
    let linked = r.start("ceremony.authenticate", auth).await;
    let last = r.until(linked, "result").await;
    assert_eq!(last["verification"]["ok"], true, "{last}");
    r.client.call("bridge.stop", json!({"session": bridge})).await.unwrap();
    r.until(bridge, "result").await;

    // 3. USB with a PIN (virtual key over udp:).
    let mut config = VirtualKeyConfig::new("127.0.0.1:0".parse().unwrap());
    config.initial_pin = Some(InitialPin::new(PIN).unwrap());
    let key = VirtualKey::bind(config).await.unwrap();
    let device = key.device_address();
    let usb = json!({"transport": "usb", "device": device, "rp_id": "example.com",
                     "user_name": "bob", "uv": "required", "pin": PIN, "user_timeout": "10s"});
    let id = r.start("ceremony.register", usb).await;
    let usb_result = r.until(id, "result").await;
    let auth = json!({"transport": "usb", "device": device, "rp_id": "example.com",
                      "allow_credentials": [usb_result["credential_id"]], "pin": PIN,
                      "user_timeout": "10s"});
    let id = r.start("ceremony.authenticate", auth).await;
    r.until(id, "result").await;
    // A wrong PIN: the error must not echo it either.
    let wrong = json!({"transport": "usb", "device": device, "rp_id": "example.com",
                       "user_name": "eve", "uv": "required", "pin": "000000-wrong",
                       "user_timeout": "10s"});
    let id = r.start("ceremony.register", wrong).await;
    let err = r.until(id, "error").await;
    assert!(!err.to_string().contains("000000-wrong"), "{err}");
    relay_task.abort();

    // The secrets.
    let qr = QrPayload::from_url(&url).unwrap();
    // secret-export: the test needs the bytes to search the log for them.
    let qr_secret = qr.secret.expose().to_vec();
    let key = EidKey::from_qr_secret(&qr.secret);
    let psk = recorded
        .lock()
        .unwrap()
        .iter()
        .filter_map(|line| hex::decode(line.split_whitespace().next()?).ok())
        .find_map(|data| match key.trial_open_diagnostic(&data, EidMode::Qr) {
            // secret-export: the PSK's bytes, to search the log for them.
            TrialOpen::Match(opened) => Some(opened.psk(&qr.secret).expose().to_vec()),
            _ => None,
        })
        .expect("a relayed advert opens with the QR secret");
    let store = std::fs::read_to_string(daemon.path("state/links.json")).unwrap();
    let link_secrets: Vec<Vec<u8>> = store
        .split("\"link_secret\":")
        .skip(1)
        .filter_map(|rest| rest.trim_start().trim_start_matches('"').split('"').next())
        .map(|h| hex::decode(h).unwrap())
        .collect();
    assert_eq!(link_secrets.len(), 1, "{store}");
    assert_eq!(link_secrets[0].len(), 32);

    let notifications = r.seen.clone();
    drop(r);
    let (status, log) = daemon.terminate();
    assert!(status.success());
    assert!(log.contains("DEBUG"), "debug logging was on");
    assert!(log.contains("ceremony succeeded") && log.contains("bridge"), "{log}");
    for (place, text) in [("the debug log", &log), ("the notifications", &notifications)] {
        assert_absent(text, "the QR secret", &qr_secret, place);
        assert_absent(text, "the PSK", &psk, place);
        assert_absent(text, "the link secret", &link_secrets[0], place);
        assert_absent(text, "the PIN", PIN.as_bytes(), place);
        assert!(!text.contains(PIN), "the PIN leaked into {place}");
        assert!(!text.contains(url.trim_start_matches("FIDO:/")), "the QR URL leaked into {place}");
    }
}
