//! WebAuthn `prf` through the bridge: desktop runner (sending `prf` with hashed salts, as Chrome
//! does towards a hybrid phone) ↔ our tunnel server ↔ bridge (translating to hmac-secret /
//! hmac-secret-mc) ↔ virtual USB key over UDP-HID. The outputs must equal what a USB ceremony
//! with the same PRF inputs gets from the key directly, and the signatures still verify.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cablebridged::bridge::{self, Bridge, BridgeConfig, KeyBackend};
use cablebridged::ceremony::{
    AuthenticateOptions, AuthenticationResult, CeremonyOutcome, CeremonyRequest, HybridTransport,
    PrfInputs, RegisterOptions, Transport, UsbTransport,
};
use cablebridged::hid::DeviceAddress;
use cablebridged::phone::PhoneEvent;
use cablebridged::testkit::{with_phone, EventLog};
use cablebridged::tunnel::server::{TunnelServer, TunnelServerConfig, TunnelServerHandle};
use cablebridged::virtual_key::{VirtualKey, VirtualKeyConfig, VirtualKeyHandle};
use common::{desktop_config, phone_config, recording_sink, Seen};
use std::time::Duration;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

const T: Duration = Duration::from_secs(20);

struct Rig {
    server: TunnelServerHandle,
    key: VirtualKeyHandle,
    dir: tempfile::TempDir,
}

impl Rig {
    async fn new() -> Rig {
        let server = TunnelServer::bind(TunnelServerConfig::default()).await.unwrap();
        let key =
            VirtualKey::bind(VirtualKeyConfig::new("127.0.0.1:0".parse().unwrap())).await.unwrap();
        Rig { server, key, dir: tempfile::tempdir().unwrap() }
    }

    fn advert_path(&self) -> std::path::PathBuf {
        self.dir.path().join("adverts.sock")
    }

    fn address(&self) -> DeviceAddress {
        self.key.device_address().parse().unwrap()
    }

    async fn bridge(&self) -> (Bridge, Seen) {
        let c = phone_config(self.server.base_url(), self.advert_path());
        let backend =
            KeyBackend::open(&self.address(), &BridgeConfig::default(), &CancellationToken::new())
                .await
                .unwrap();
        let announced = backend.announced_info();
        assert!(announced.extensions.iter().any(|e| e == "prf"), "{:?}", announced.extensions);
        assert!(!announced.extensions.iter().any(|e| e == "hmac-secret"));
        let (seen, progress) = recording_sink();
        (bridge::bridge(c, backend, progress), seen)
    }

    async fn via_bridge(&self, request: CeremonyRequest) -> CeremonyOutcome {
        let (mut bridge, seen) = self.bridge().await;
        let c = desktop_config(self.server.base_url(), self.advert_path());
        let transport = Transport::Hybrid(HybridTransport::new(c));
        let mut log = EventLog::new();
        let phone = |qr| async move {
            let _ = bridge.run_qr(&qr).await;
        };
        let out = timeout(T, with_phone(transport, request, &mut log, phone)).await.unwrap().0;
        let warnings: Vec<_> = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|e| matches!(e, PhoneEvent::Warning { .. }))
            .cloned()
            .collect();
        assert!(warnings.is_empty(), "{warnings:?}");
        out.unwrap()
    }

    async fn via_usb(&self, request: CeremonyRequest) -> CeremonyOutcome {
        let transport = Transport::Usb(UsbTransport {
            devices: vec![self.address()],
            timeout: T,
            ..UsbTransport::default()
        });
        let log = EventLog::new();
        let run =
            cablebridged::ceremony::run(transport, request, log.sink(), CancellationToken::new());
        timeout(T, run).await.unwrap().unwrap()
    }
}

fn prf(first: &[u8], second: Option<&[u8]>) -> Option<PrfInputs> {
    Some(PrfInputs { first: first.to_vec(), second: second.map(<[u8]>::to_vec) })
}

fn authenticated(o: CeremonyOutcome) -> AuthenticationResult {
    match o {
        CeremonyOutcome::Authenticated(a) => a,
        other => panic!("{other:?}"),
    }
}

fn results(json: &serde_json::Value) -> (String, Option<String>) {
    let r = &json["prf"]["results"];
    (r["first"].as_str().unwrap().to_owned(), r["second"].as_str().map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desktop_prf_through_the_bridge_equals_the_keys_hmac_secret() {
    let rig = Rig::new().await;
    let mut reg = RegisterOptions::new("example.com", "alice");
    reg.extensions.prf = prf(b"first input", None);
    let CeremonyOutcome::Registered(registered) =
        rig.via_bridge(CeremonyRequest::Register(reg)).await
    else {
        panic!("not a registration")
    };
    registered.verify().unwrap();
    let json = registered.to_json();
    assert_eq!(json["prf"]["enabled"], true, "{json}");
    let (at_mc, _) = results(&json);

    let mut auth = AuthenticateOptions::new("example.com");
    auth.allow_credentials = vec![registered.credential_id.clone()];
    auth.extensions.prf = prf(b"first input", Some(b"second input"));
    let bridged = authenticated(rig.via_bridge(CeremonyRequest::Authenticate(auth.clone())).await);
    bridged.verify(&registered.public_key).unwrap();
    let direct = authenticated(rig.via_usb(CeremonyRequest::Authenticate(auth)).await);
    let (b1, b2) = results(&bridged.to_json());
    let (d1, d2) = results(&direct.to_json());
    assert_eq!(b1, at_mc, "hmac-secret-mc at registration = hmac-secret later");
    assert_eq!((b1, b2.clone()), (d1, d2), "bridge = the key asked directly");
    assert!(b2.is_some());

    // Without prf the request goes through untouched, and no prf field appears.
    let mut plain = AuthenticateOptions::new("example.com");
    plain.allow_credentials = vec![registered.credential_id.clone()];
    let r = authenticated(rig.via_bridge(CeremonyRequest::Authenticate(plain)).await);
    assert!(r.to_json().get("prf").is_none());
}
