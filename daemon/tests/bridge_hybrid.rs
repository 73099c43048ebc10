//! The bridge end to end over real loopback sockets: desktop runner ↔ our tunnel server ↔
//! bridge ↔ virtual USB key over UDP-HID. Proves passthrough (the desktop gets the key's own
//! AAGUID and packed attestation chained to the key's CA; signatures verify independently),
//! the hybrid getInfo filtering on the wire, refusal of pinUvAuthParam and management commands,
//! a PIN-protected key's status reaching the desktop, and CTAPHID_CANCEL when the desktop
//! leaves mid-touch.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cablebridge_protocol::cbor::Value;
use cablebridge_protocol::ctap2::{
    AttestationType, Command, CoseAlgorithm, CredentialParameters, GetInfo, MakeCredentialRequest,
    RelyingParty, StatusCode, User,
};
use cablebridge_protocol::hybrid::eid::{EidKey, EidMode, TrialOpen};
use cablebridge_protocol::hybrid::noise::IdentityKeyPair;
use cablebridge_protocol::hybrid::qr::QrPayload;
use cablebridge_protocol::hybrid::session::{DesktopEvent, DesktopOpen};
use cablebridge_protocol::hybrid::tunnel::RequestHint;
use cablebridged::bridge::{self, Bridge, BridgeConfig, KeyBackend};
use cablebridged::ceremony::{
    AuthenticateOptions, CeremonyErrorKind, CeremonyOutcome, CeremonyRequest, HybridTransport,
    RegisterOptions, Transport,
};
use cablebridged::desktop::DesktopConfig;
use cablebridged::hid::DeviceAddress;
use cablebridged::phone::PhoneEvent;
use cablebridged::testkit::{with_phone, EventLog};
use cablebridged::tunnel::client::TunnelConnection;
use cablebridged::tunnel::server::{TunnelServer, TunnelServerConfig, TunnelServerHandle};
use cablebridged::virtual_key::{InitialPin, VirtualKey, VirtualKeyConfig, VirtualKeyHandle};
use common::{desktop_config, phone_config, qr_connect, recording_sink, Seen};
use p256::ecdsa::signature::Verifier;
use rand::rngs::OsRng;
use sha2::Digest;
use std::sync::Mutex;
use std::time::Duration;
use tokio::net::UnixDatagram;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

const T: Duration = Duration::from_secs(20);
const KEY_AAGUID: [u8; 16] = *b"bridge-test-key!";

struct Rig {
    server: TunnelServerHandle,
    key: VirtualKeyHandle,
    dir: tempfile::TempDir,
}

impl Rig {
    async fn new(tweak: impl FnOnce(&mut VirtualKeyConfig)) -> Rig {
        let server = TunnelServer::bind(TunnelServerConfig::default()).await.unwrap();
        let mut kc = VirtualKeyConfig::new("127.0.0.1:0".parse().unwrap());
        kc.aaguid = KEY_AAGUID;
        // Long enough for keepalives (every 100 ms) to say "touch the key".
        kc.presence_delay = Duration::from_millis(250);
        tweak(&mut kc);
        let key = VirtualKey::bind(kc).await.unwrap();
        Rig { server, key, dir: tempfile::tempdir().unwrap() }
    }

    fn advert_path(&self) -> std::path::PathBuf {
        self.dir.path().join("adverts.sock")
    }

    fn desktop(&self) -> DesktopConfig {
        desktop_config(self.server.base_url(), self.advert_path())
    }

    async fn bridge(&self) -> (Bridge, Seen) {
        let mut c = phone_config(self.server.base_url(), self.advert_path());
        c.desktop_timeout = Duration::from_secs(10);
        c.idle_timeout = Duration::from_secs(10);
        let address: DeviceAddress = self.key.device_address().parse().unwrap();
        let backend =
            KeyBackend::open(&address, &BridgeConfig::default(), &CancellationToken::new())
                .await
                .unwrap();
        let (seen, progress) = recording_sink();
        (bridge::bridge(c, backend, progress), seen)
    }
}

fn names(seen: &Mutex<Vec<PhoneEvent>>) -> Vec<&'static str> {
    seen.lock().unwrap().iter().map(PhoneEvent::name).collect()
}

/// One QR ceremony: the desktop runner against the bridge.
async fn ceremony(
    rig: &Rig,
    request: CeremonyRequest,
    bridge: &mut Bridge,
) -> Result<CeremonyOutcome, cablebridged::ceremony::CeremonyError> {
    let transport = Transport::Hybrid(HybridTransport::new(rig.desktop()));
    let mut log = EventLog::new();
    let phone = |qr| async move {
        let _ = bridge.run_qr(&qr).await;
    };
    timeout(T, with_phone(transport, request, &mut log, phone)).await.unwrap().0
}

/// Whether `leaf` (DER) is signed by `ca` (DER) with ES256.
fn signed_by(leaf: &[u8], ca: &[u8]) -> bool {
    use x509_cert::der::{Decode, Encode};
    let leaf = x509_cert::Certificate::from_der(leaf).unwrap();
    let ca = x509_cert::Certificate::from_der(ca).unwrap();
    let ca_key = ca.tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes();
    let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(ca_key).unwrap();
    let sig = p256::ecdsa::Signature::from_der(leaf.signature.raw_bytes()).unwrap();
    leaf.tbs_certificate.issuer == ca.tbs_certificate.subject
        && vk.verify(&leaf.tbs_certificate.to_der().unwrap(), &sig).is_ok()
}

#[tokio::test]
async fn register_and_authenticate_pass_the_keys_attestation_through() {
    let rig = Rig::new(|_| {}).await;
    let (mut bridge, seen) = rig.bridge().await;

    let o = RegisterOptions::new("example.com", "alice@example.com");
    let reg = match ceremony(&rig, CeremonyRequest::Register(o), &mut bridge).await {
        Ok(CeremonyOutcome::Registered(r)) => r,
        other => panic!("expected a registration, got {other:?}"),
    };
    // The key's AAGUID and its packed attestation, chained to the key's own CA: passthrough.
    assert_eq!(reg.aaguid.0, KEY_AAGUID);
    assert_eq!(reg.attestation_format, "packed");
    assert_eq!(reg.verify().unwrap(), AttestationType::Basic);
    let ao = Value::decode(&reg.attestation_object).unwrap();
    let x5c = ao.get_text("attStmt").and_then(|s| s.get_text("x5c")).unwrap();
    let leaf = x5c.as_array().unwrap()[0].as_bytes().unwrap();
    assert!(signed_by(leaf, rig.key.attestation_ca_der().unwrap()), "leaf not from the key's CA");
    let events = names(&seen);
    for e in ["key_ready", "advertising", "handshake_done", "key_waiting", "responded", "closed"] {
        assert!(events.contains(&e), "missing {e} in {events:?}");
    }

    // Authenticate with the new credential; check the signature independently.
    let mut a = AuthenticateOptions::new("example.com");
    a.allow_credentials = vec![reg.credential_id.clone()];
    let auth = match ceremony(&rig, CeremonyRequest::Authenticate(a), &mut bridge).await {
        Ok(CeremonyOutcome::Authenticated(r)) => r,
        other => panic!("expected an authentication, got {other:?}"),
    };
    assert_eq!(auth.credential_id, reg.credential_id);
    let vk = p256::ecdsa::VerifyingKey::from(reg.public_key.as_p256().unwrap());
    let sig = p256::ecdsa::Signature::from_der(&auth.signature).unwrap();
    let msg =
        [auth.authenticator_data.clone(), sha2::Sha256::digest(&auth.client_data_json).to_vec()]
            .concat();
    vk.verify(&msg, &sig).expect("assertion signature");
    let stats = rig.key.shutdown().await.unwrap();
    assert_eq!(stats.cbor_requests, 3, "getInfo at open, makeCredential, getAssertion");
}

#[tokio::test]
async fn a_pin_protected_key_answers_puat_required_to_the_desktop() {
    let rig = Rig::new(|k| k.initial_pin = Some(InitialPin::new("1234").unwrap())).await;
    let (mut bridge, seen) = rig.bridge().await;
    let info = bridge.backend().announced_info();
    assert_eq!(info.option("clientPin"), None, "the PIN is not announced");
    assert!(info.pin_uv_auth_protocols.is_empty());

    let o = RegisterOptions::new("example.com", "alice@example.com");
    let err = ceremony(&rig, CeremonyRequest::Register(o), &mut bridge).await.unwrap_err();
    assert_eq!(err.kind, CeremonyErrorKind::Authenticator, "{err:?}");
    assert!(err.message.contains("0x36") || err.message.to_lowercase().contains("puat"), "{err:?}");
    let seen = seen.lock().unwrap();
    assert!(matches!(&seen[0], PhoneEvent::KeyReady { pin_needed: true, .. }), "{:?}", seen[0]);
    let warnings: Vec<_> = seen
        .iter()
        .filter_map(|p| match p {
            PhoneEvent::Warning { message } => Some(message.clone()),
            _ => None,
        })
        .collect();
    assert!(
        warnings.iter().any(|w| w.contains("requires a PIN, which cannot be entered over hybrid")),
        "{warnings:?}"
    );
    assert!(seen
        .iter()
        .any(|p| matches!(p, PhoneEvent::Responded { status: StatusCode::PuatRequired })));
}

/// Reads adverts from `sock` until one opens under the QR's key, then runs the handshake by
/// hand (a protocol-level desktop) and returns the open session.
async fn hand_desktop(
    rig: &Rig,
    sock: &UnixDatagram,
    sk: &IdentityKeyPair,
    qr: &QrPayload,
) -> (TunnelConnection, DesktopOpen) {
    let key = EidKey::from_qr_secret(&qr.secret);
    let mut buf = [0u8; 256];
    let opened = loop {
        let n = timeout(T, sock.recv(&mut buf)).await.unwrap().unwrap();
        let line = std::str::from_utf8(&buf[..n]).unwrap().trim();
        if let TrialOpen::Match(o) = key.trial_open(&hex::decode(line).unwrap(), EidMode::Qr) {
            break o;
        }
    };
    let (mut conn, hs) = qr_connect(&rig.server.base_url(), &opened, qr, sk).await;
    let msg2 = timeout(T, conn.recv()).await.unwrap().unwrap().unwrap();
    let hs = hs.read_response(&msg2).unwrap();
    let post = timeout(T, conn.recv()).await.unwrap().unwrap().unwrap();
    (conn, hs.read_post_handshake(&post).unwrap())
}

/// One bridge session carrying one request (the hybrid desktop sends one per connection, §8.3):
/// returns the getInfo the desktop received, the status, and the bridge back.
async fn one_request(
    rig: &Rig,
    mut bridge: Bridge,
    request: &[u8],
) -> (GetInfo, StatusCode, Bridge) {
    let sock = UnixDatagram::bind(rig.advert_path()).unwrap();
    let (sk, qr) = QrPayload::generate(&mut OsRng, 1_700_000_000, RequestHint::GetAssertion, false);
    let phone_qr = qr.clone();
    let task = tokio::spawn(async move { (bridge.run_qr(&phone_qr).await, bridge) });
    let (mut conn, open) = hand_desktop(rig, &sock, &sk, &qr).await;
    let info = GetInfo::from_cbor(&Value::decode(open.get_info().unwrap()).unwrap()).unwrap();
    let (command, params) = request.split_first().unwrap();
    let (mut waiting, ct) = open.send_ctap(Command::from_u8(*command), params).unwrap();
    conn.send(&ct).await.unwrap();
    let status = loop {
        let frame = timeout(T, conn.recv()).await.unwrap().unwrap().unwrap();
        if let DesktopEvent::CtapResponse { status, .. } = waiting.receive(&frame).unwrap() {
            break status;
        }
    };
    let (_closed, bye) = waiting.shutdown().unwrap();
    conn.send(&bye).await.unwrap();
    let (result, bridge) = timeout(T, task).await.unwrap().unwrap();
    assert_eq!(result.unwrap().requests, 1);
    drop(sock);
    std::fs::remove_file(rig.advert_path()).unwrap();
    (info, status, bridge)
}

#[tokio::test]
async fn wire_get_info_is_filtered_and_pin_requests_are_refused() {
    let rig = Rig::new(|_| {}).await;
    let (bridge, seen) = rig.bridge().await;

    // getAssertion with pinUvAuthParam (key 6): refused without reaching the key.
    let with_pin = Value::int_map([
        (1, Value::Text("example.com".into())),
        (2, Value::Bytes(vec![0; 32])),
        (6, Value::Bytes(vec![0; 16])),
        (7, Value::Unsigned(2)),
    ]);
    let mut req = vec![0x02];
    req.extend(with_pin.to_vec());
    let (info, status, bridge) = one_request(&rig, bridge, &req).await;
    assert_eq!(status, StatusCode::PinAuthInvalid);

    // The getInfo on the wire: the key's AAGUID, no PIN machinery, "hybrid" added.
    assert_eq!(info.aaguid, KEY_AAGUID);
    assert!(info.pin_uv_auth_protocols.is_empty());
    assert!(info.transports.iter().any(|t| t == "hybrid"), "{:?}", info.transports);
    for gone in ["clientPin", "pinUvAuthToken", "credMgmt"] {
        assert_eq!(info.option(gone), None, "{gone} announced");
    }

    // clientPIN getRetries and reset: not forwarded.
    let (_, status, bridge) =
        one_request(&rig, bridge, &[0x06, 0xa2, 0x01, 0x02, 0x02, 0x01]).await;
    assert_eq!(status, StatusCode::InvalidCommand);
    let (_, status, _bridge) = one_request(&rig, bridge, &[0x07]).await;
    assert_eq!(status, StatusCode::InvalidCommand);

    let refused =
        seen.lock().unwrap().iter().filter(|p| matches!(p, PhoneEvent::Refused { .. })).count();
    assert_eq!(refused, 3);
    // Only the getInfo at open reached the key.
    assert_eq!(rig.key.shutdown().await.unwrap().cbor_requests, 1);
}

#[tokio::test]
async fn silent_assertions_are_refused_and_the_rp_id_is_shown() {
    let rig = Rig::new(|_| {}).await;
    let (bridge, seen) = rig.bridge().await;
    let get_assertion = |up: bool| {
        let params = Value::int_map([
            (1, Value::Text("probe.example".into())),
            (2, Value::Bytes(vec![0; 32])),
            (
                3,
                Value::Array(vec![Value::text_map([
                    ("type", Value::text("public-key")),
                    ("id", Value::Bytes(vec![9; 32])),
                ])]),
            ),
            (5, Value::text_map([("up", Value::Bool(up))])),
        ]);
        let mut req = vec![0x02];
        req.extend(params.to_vec());
        req
    };

    // up: false never reaches the key: no touch, no answer about the credential id.
    let (_, status, bridge) = one_request(&rig, bridge, &get_assertion(false)).await;
    assert_eq!(status, StatusCode::UnsupportedOption);
    {
        let seen = seen.lock().unwrap();
        let refused = seen.iter().find_map(|p| match p {
            PhoneEvent::Refused { status, reason, rp_id, .. } => Some((*status, reason, rp_id)),
            _ => None,
        });
        let (status, reason, rp_id) = refused.expect("a refused event");
        assert_eq!(status, StatusCode::UnsupportedOption);
        assert!(reason.contains("up: false"), "{reason}");
        assert_eq!(rp_id.as_deref(), Some("probe.example"));
        assert!(!seen.iter().any(|p| matches!(p, PhoneEvent::Forwarding { .. })), "{seen:?}");
        // Human and JSON progress both name the relying party.
        let refusal = seen.iter().find(|p| p.name() == "refused").unwrap();
        assert!(refusal.to_human(1).contains("probe.example"), "{}", refusal.to_human(1));
        assert_eq!(refusal.to_json(1)["rp_id"], "probe.example");
    }

    // up: true is forwarded, announced with its RP id first (the key answers NO_CREDENTIALS).
    let (_, status, _bridge) = one_request(&rig, bridge, &get_assertion(true)).await;
    assert_eq!(status, StatusCode::NoCredentials);
    let forwarding = seen.lock().unwrap().iter().find(|p| p.name() == "forwarding").cloned();
    let forwarding = forwarding.expect("forwarding event");
    assert!(matches!(
        &forwarding,
        PhoneEvent::Forwarding { command, rp_id: Some(rp) }
            if command == "authenticatorGetAssertion" && rp == "probe.example"
    ));
    let json = forwarding.to_json(1);
    assert_eq!(
        (json["event"].as_str(), json["rp_id"].as_str()),
        (Some("forwarding"), Some("probe.example"))
    );
    assert!(forwarding.to_human(1).contains("probe.example"));
    // getInfo at open and the up: true request reached the key; the silent probe did not.
    assert_eq!(rig.key.shutdown().await.unwrap().cbor_requests, 2);
}

#[tokio::test]
async fn desktop_leaving_mid_touch_cancels_the_key() {
    let rig = Rig::new(|k| k.presence_delay = Duration::from_secs(30)).await;
    let (mut bridge, seen) = rig.bridge().await;
    let sock = UnixDatagram::bind(rig.advert_path()).unwrap();
    let (sk, qr) = QrPayload::generate(&mut OsRng, 1_700_000_000, RequestHint::GetAssertion, false);
    let phone_qr = qr.clone();
    let task = tokio::spawn(async move { bridge.run_qr(&phone_qr).await });
    let (mut conn, open) = hand_desktop(&rig, &sock, &sk, &qr).await;
    let req = MakeCredentialRequest {
        client_data_hash: [3; 32],
        rp: RelyingParty { id: "example.com".into(), name: None },
        user: User { id: vec![1], name: Some("alice".into()), display_name: None },
        pub_key_cred_params: vec![CredentialParameters::public_key(CoseAlgorithm::Es256)],
        exclude_list: Vec::new(),
        extensions: None,
        options: Default::default(),
        pin_uv_auth_param: None,
        pin_uv_auth_protocol: None,
        enterprise_attestation: None,
    };
    let (_waiting, ct) = open.send_ctap(Command::MakeCredential, &req.to_cbor().to_vec()).unwrap();
    conn.send(&ct).await.unwrap();
    // Wait until the key asks for a touch, then leave.
    timeout(T, async {
        while !names(&seen).contains(&"key_waiting") {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    conn.close().await.unwrap();
    let err = timeout(T, task).await.unwrap().unwrap().unwrap_err();
    assert!(err.to_string().contains("desktop closed"), "{err}");
    let stats = rig.key.shutdown().await.unwrap();
    assert_eq!(stats.cancels, 1, "the key got CTAPHID_CANCEL");
}
