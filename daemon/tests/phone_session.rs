//! The virtual phone against a protocol-level desktop (`hybrid::session::DesktopHandshake` driven
//! by hand) over our real tunnel server on loopback, with the advert travelling through a real
//! Unix datagram socket. Proves the phone role byte-for-byte independently of the desktop runner:
//! register + authenticate (allowList and discoverable) with signatures checked directly with
//! p256, linking + linked reconnect + 404 while the phone is away and 410 after it revoked the link, and each fault switch.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cablebridge_protocol::authenticator::AttestationMode;
use cablebridge_protocol::cbor::Value;
use cablebridge_protocol::ctap2::{
    AuthenticatorData, Command, CredentialDescriptor, CredentialParameters, GetAssertionRequest,
    GetAssertionResponse, MakeCredentialRequest, MakeCredentialResponse, RelyingParty, StatusCode,
    User,
};
use cablebridge_protocol::error::Classify;
use cablebridge_protocol::hybrid::eid::{EidKey, EidMode, OpenedAdvert};
use cablebridge_protocol::hybrid::keys::LinkSecret;
use cablebridge_protocol::hybrid::messages::LinkingInfo;
use cablebridge_protocol::hybrid::noise::IdentityKeyPair;
use cablebridge_protocol::hybrid::qr::QrPayload;
use cablebridge_protocol::hybrid::session::{DesktopEvent, DesktopHandshake, DesktopOpen};
use cablebridge_protocol::hybrid::tunnel::{url, ClientPayload, RequestHint, TunnelPath};
use cablebridge_protocol::Stage;
use cablebridged::ceremony::Events;
use cablebridged::phone::sink::AdvertSinkSpec;
use cablebridged::phone::{phone_sink, FailAt, PhoneConfig, PhoneEvent, PhoneState, VirtualPhone};
use cablebridged::tunnel::client::{connect, ConnectOptions, TunnelClientError, TunnelConnection};
use cablebridged::tunnel::server::{TunnelServer, TunnelServerConfig, TunnelServerHandle};
use common::{next_advert, qr_connect};
use p256::ecdsa::signature::Verifier;
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::Digest;
use std::time::Duration;
use tokio::net::UnixDatagram;
use tokio::sync::mpsc;
use tokio::time::timeout;

const T: Duration = Duration::from_secs(10);

struct Rig {
    server: TunnelServerHandle,
    _dir: tempfile::TempDir,
    adverts: UnixDatagram,
    sink: AdvertSinkSpec,
}

async fn rig() -> Rig {
    let server = TunnelServer::bind(TunnelServerConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("adverts.sock");
    let adverts = UnixDatagram::bind(&path).unwrap();
    Rig { server, _dir: dir, adverts, sink: AdvertSinkSpec::Unix(path) }
}

impl Rig {
    fn phone_config(&self) -> PhoneConfig {
        let mut c = PhoneConfig::new(self.server.base_url());
        c.sink = self.sink.clone();
        c.advert_interval = Duration::from_millis(20);
        c.desktop_timeout = T;
        c.idle_timeout = T;
        c
    }

    /// Reads adverts until one opens under `key`.
    async fn await_advert(&self, key: &EidKey, mode: EidMode) -> OpenedAdvert {
        timeout(T, next_advert(&self.adverts, key, mode)).await.expect("no advert of ours")
    }

    /// Waits (bounded) until the server holds no tunnels or listeners.
    async fn assert_drained(&self) {
        timeout(T, async {
            loop {
                let s = self.server.stats();
                if s.active_tunnels() == 0 && s.listening == 0 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("tunnels left open");
    }
}

fn progress_channel() -> (Events, mpsc::UnboundedReceiver<PhoneEvent>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (phone_sink(move |_ms, p: &PhoneEvent| drop(tx.send(p.clone()))), rx)
}

fn quiet() -> Events {
    None
}

async fn recv(conn: &mut TunnelConnection) -> Option<Vec<u8>> {
    match timeout(T, conn.recv()).await.expect("desktop recv timed out") {
        Some(Ok(b)) => Some(b.to_vec()),
        Some(Err(_)) | None => None,
    }
}

/// Handshake through post-handshake, from the desktop's side.
async fn qr_desktop_open(
    rig: &Rig,
    sk: &IdentityKeyPair,
    qr: &QrPayload,
) -> Result<(TunnelConnection, DesktopOpen), Stage> {
    let opened = rig.await_advert(&EidKey::from_qr_secret(&qr.secret), EidMode::Qr).await;
    let (mut conn, hs) = qr_connect(&rig.server.base_url(), &opened, qr, sk).await;
    let msg2 = recv(&mut conn).await.ok_or(Stage::Handshake)?;
    let hs = hs.read_response(&msg2).map_err(|e| e.stage())?;
    let post = recv(&mut conn).await.ok_or(Stage::PostHandshake)?;
    // Name the phase, as a desktop runner does (a bad GCM tag classifies as transport).
    let open = hs.read_post_handshake(&post).map_err(|_| Stage::PostHandshake)?;
    Ok((conn, open))
}

/// Sends one request and returns `(status, body)`; shuts down afterwards.
async fn request(
    mut conn: TunnelConnection,
    open: DesktopOpen,
    command: Command,
    params: &Value,
) -> Option<(StatusCode, Vec<u8>)> {
    let (mut waiting, ct) = open.send_ctap(command, &params.to_vec()).unwrap();
    conn.send(&ct).await.unwrap();
    let reply = loop {
        let frame = recv(&mut conn).await?;
        match waiting.receive(&frame).unwrap() {
            DesktopEvent::CtapResponse { status, body } => break (status, body),
            _ => continue,
        }
    };
    let (_closed, bye) = waiting.shutdown().unwrap();
    conn.send(&bye).await.unwrap();
    let _ = conn.close().await;
    Some(reply)
}

fn new_qr(linking: bool) -> (IdentityKeyPair, QrPayload) {
    QrPayload::generate(&mut OsRng, 1_700_000_000, RequestHint::MakeCredential, linking)
}

fn make_credential(cdh: [u8; 32], rk: bool) -> Value {
    let mut req = MakeCredentialRequest {
        client_data_hash: cdh,
        rp: RelyingParty { id: "example.com".into(), name: Some("Example".into()) },
        user: User {
            id: b"user-1".to_vec(),
            name: Some("alice".into()),
            display_name: Some("Alice".into()),
        },
        pub_key_cred_params: vec![CredentialParameters::public_key(
            cablebridge_protocol::ctap2::CoseAlgorithm::Es256,
        )],
        exclude_list: Vec::new(),
        extensions: None,
        options: Default::default(),
        pin_uv_auth_param: None,
        pin_uv_auth_protocol: None,
        enterprise_attestation: None,
    };
    req.options.rk = Some(rk);
    req.to_cbor()
}

fn get_assertion(cdh: [u8; 32], allow: Option<Vec<u8>>) -> Value {
    GetAssertionRequest {
        rp_id: "example.com".into(),
        client_data_hash: cdh,
        allow_list: allow.map(|id| vec![CredentialDescriptor::public_key(id)]).unwrap_or_default(),
        extensions: None,
        options: Default::default(),
        pin_uv_auth_param: None,
        pin_uv_auth_protocol: None,
    }
    .to_cbor()
}

/// Independent ES256 check: DER signature over `authData ‖ cdh` with a SEC1 key.
fn es256_ok(sec1: &[u8], auth_data: &[u8], cdh: &[u8; 32], der: &[u8]) -> bool {
    let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(sec1).unwrap();
    let sig = p256::ecdsa::Signature::from_der(der).unwrap();
    vk.verify(&[auth_data, cdh.as_slice()].concat(), &sig).is_ok()
}

fn leaf_key_sec1(att_stmt: &Value) -> Vec<u8> {
    use x509_cert::der::Decode;
    let x5c = att_stmt.get_text("x5c").and_then(Value::as_array).expect("x5c");
    let leaf = x509_cert::Certificate::from_der(x5c[0].as_bytes().unwrap()).unwrap();
    leaf.tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes().to_vec()
}

fn cred_key_sec1(auth_data: &AuthenticatorData) -> Vec<u8> {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    let cred = auth_data.attested_credential.as_ref().unwrap();
    cred.public_key.as_p256().unwrap().to_encoded_point(false).as_bytes().to_vec()
}

fn cdh(seed: &str) -> [u8; 32] {
    sha2::Sha256::digest(seed.as_bytes()).into()
}

#[tokio::test]
async fn register_then_authenticate_allowlist_and_discoverable() {
    let rig = rig().await;
    let mut config = rig.phone_config();
    config.attestation = AttestationMode::PackedTestCa;
    config.presence_delay = Duration::from_millis(30);
    let mut phone = VirtualPhone::new(config, PhoneState::new(&mut OsRng), None, quiet());

    // Register (resident key, packed attestation with x5c).
    let (sk, qr) = new_qr(false);
    let phone_qr = qr.clone();
    let task = tokio::spawn(async move { (phone.run_qr(&phone_qr).await, phone) });
    let (conn, open) = qr_desktop_open(&rig, &sk, &qr).await.unwrap();
    assert!(open.get_info().is_some());
    let (status, body) =
        request(conn, open, Command::MakeCredential, &make_credential(cdh("mc"), true))
            .await
            .unwrap();
    assert_eq!(status, StatusCode::Ok);
    let (summary, mut phone) = timeout(T, task).await.unwrap().unwrap();
    let summary = summary.unwrap();
    assert_eq!((summary.requests, summary.last_status), (1, Some(0)));
    let mc = MakeCredentialResponse::from_cbor(&Value::decode(&body).unwrap()).unwrap();
    assert_eq!(mc.fmt, "packed");
    let sig = mc.att_stmt.get_text("sig").and_then(Value::as_bytes).unwrap();
    assert!(es256_ok(&leaf_key_sec1(&mc.att_stmt), &mc.auth_data, &cdh("mc"), sig));
    let ad = AuthenticatorData::parse(&mc.auth_data).unwrap();
    let cred_id = ad.attested_credential.as_ref().unwrap().credential_id.clone();
    let cred_key = cred_key_sec1(&ad);

    // Authenticate twice: allowList, then discoverable (no allowList).
    for allow in [Some(cred_id.clone()), None] {
        let (sk, qr) = new_qr(false);
        let phone_qr = qr.clone();
        let task = tokio::spawn(async move { (phone.run_qr(&phone_qr).await, phone) });
        let (conn, open) = qr_desktop_open(&rig, &sk, &qr).await.unwrap();
        let (status, body) =
            request(conn, open, Command::GetAssertion, &get_assertion(cdh("ga"), allow.clone()))
                .await
                .unwrap();
        assert_eq!(status, StatusCode::Ok);
        let ga = GetAssertionResponse::from_cbor(&Value::decode(&body).unwrap()).unwrap();
        assert!(es256_ok(&cred_key, &ga.auth_data, &cdh("ga"), &ga.signature));
        assert!(!es256_ok(&cred_key, &ga.auth_data, &cdh("other"), &ga.signature));
        assert_eq!(ga.credential.unwrap().id, cred_id);
        if allow.is_none() {
            assert_eq!(ga.user.unwrap().id, b"user-1");
        }
        let (summary, back) = timeout(T, task).await.unwrap().unwrap();
        summary.unwrap();
        phone = back;
    }
    rig.assert_drained().await;
}

#[tokio::test]
async fn linking_then_linked_reconnect_then_gone() {
    let rig = rig().await;
    let dir = tempfile::tempdir().unwrap();
    let state_path = dir.path().join("phone.json");
    let mut config = rig.phone_config();
    config.offer_linking = true;
    let phone = VirtualPhone::with_state_file(config.clone(), state_path.clone(), quiet()).unwrap();
    let mut phone = phone;

    let (sk, qr) = new_qr(true);
    let phone_qr = qr.clone();
    let task = tokio::spawn(async move { (phone.run_qr(&phone_qr).await, phone) });
    let (mut conn, mut open) = qr_desktop_open(&rig, &sk, &qr).await.unwrap();
    // The update (verified against this session's handshake hash) precedes our request.
    let link: LinkingInfo = match open.receive(&recv(&mut conn).await.unwrap()).unwrap() {
        DesktopEvent::LinkingInfo(l) => l,
        other => panic!("expected linking info, got {other:?}"),
    };
    let (status, _) =
        request(conn, open, Command::MakeCredential, &make_credential(cdh("mc"), false))
            .await
            .unwrap();
    assert_eq!(status, StatusCode::Ok);
    let (summary, _phone) = timeout(T, task).await.unwrap().unwrap();
    assert!(summary.unwrap().linking_sent);

    // A new process: load the state file and hold the contact.
    let (progress, mut events) = progress_channel();
    let mut phone = VirtualPhone::with_state_file(config, state_path, progress).unwrap();
    let listener = tokio::spawn(async move {
        let served = phone.serve_links(Some(1)).await;
        (served, phone)
    });
    timeout(T, async {
        while !matches!(events.recv().await.unwrap(), PhoneEvent::Listening { .. }) {}
    })
    .await
    .unwrap();

    let mut nonce = [0u8; 16];
    OsRng.fill_bytes(&mut nonce);
    let payload = ClientPayload {
        link_id: link.link_id,
        client_nonce: nonce,
        hint: RequestHint::GetAssertion,
    };
    let contact = TunnelPath::Contact { contact_id: link.contact_id.clone() };
    let opts =
        ConnectOptions { client_payload: Some(payload.header_value()), ..Default::default() };
    let mut conn = connect(&url(&rig.server.base_url(), &contact), &opts).await.unwrap();
    let secret: &LinkSecret = &link.link_secret;
    let opened = rig.await_advert(&EidKey::from_link(secret, &nonce), EidMode::Linked).await;
    // Linked adverts carry a valid domain id (pitfall 16).
    assert!(
        !cablebridge_protocol::hybrid::domain::DomainId(opened.plaintext.domain_id()).is_reserved()
    );
    let psk = opened.psk(secret);
    let (hs, msg1) = DesktopHandshake::start_linked(&psk, &link.phone_public_key, &mut OsRng);
    conn.send(&msg1).await.unwrap();
    let hs = hs.read_response(&recv(&mut conn).await.unwrap()).unwrap();
    let open = hs.read_post_handshake(&recv(&mut conn).await.unwrap()).unwrap();
    let (status, _) =
        request(conn, open, Command::GetAssertion, &get_assertion(cdh("ga"), None)).await.unwrap();
    // The credential was non-resident, so a discoverable request finds nothing: the point is
    // the request went through the linked channel and got a CTAP answer.
    assert_eq!(status, StatusCode::NoCredentials, "CTAP2_ERR_NO_CREDENTIALS");
    let (served, mut phone) = timeout(T, listener).await.unwrap().unwrap();
    assert_eq!(served.unwrap(), 1);

    // Nobody listens right now: 404, "not reachable" (the desktop keeps the link).
    let err = connect(&url(&rig.server.base_url(), &contact), &opts).await.unwrap_err();
    assert!(matches!(err, TunnelClientError::HttpStatus { status: 404, .. }), "{err}");
    // The phone revokes its links: now the server answers 410 and the desktop forgets the link.
    let done = timeout(T, phone.forget_links()).await.unwrap().unwrap();
    assert_eq!(done.revoked, 1);
    let err = connect(&url(&rig.server.base_url(), &contact), &opts).await.unwrap_err();
    assert!(matches!(err, TunnelClientError::HttpStatus { status: 410, .. }), "{err}");
    rig.assert_drained().await;
}

async fn faulty_session(
    configure: impl FnOnce(&mut PhoneConfig),
) -> (Result<(StatusCode, Vec<u8>), Stage>, bool) {
    let rig = rig().await;
    let mut config = rig.phone_config();
    configure(&mut config);
    let mut phone = VirtualPhone::new(config, PhoneState::new(&mut OsRng), None, quiet());
    let (sk, qr) = new_qr(false);
    let phone_qr = qr.clone();
    let task = tokio::spawn(async move { phone.run_qr(&phone_qr).await });
    let result = match qr_desktop_open(&rig, &sk, &qr).await {
        Ok((conn, open)) => {
            request(conn, open, Command::MakeCredential, &make_credential(cdh("x"), false))
                .await
                .ok_or(Stage::Transport)
        }
        Err(stage) => Err(stage),
    };
    let summary = timeout(T, task).await.unwrap().unwrap().unwrap();
    rig.assert_drained().await;
    (result, summary.fault_injected)
}

#[tokio::test]
async fn corrupt_msg2_fails_the_desktop_handshake() {
    let (r, injected) = faulty_session(|c| c.faults.fail_at = Some(FailAt::Handshake)).await;
    assert_eq!(r.unwrap_err(), Stage::Handshake);
    assert!(injected);
}

#[tokio::test]
async fn drop_mid_handshake_closes_before_msg2() {
    let (r, injected) = faulty_session(|c| c.faults.drop_after = Some(0)).await;
    assert_eq!(r.unwrap_err(), Stage::Handshake);
    assert!(injected);
}

#[tokio::test]
async fn corrupt_post_handshake_fails_there() {
    let (r, _) = faulty_session(|c| c.faults.fail_at = Some(FailAt::PostHandshake)).await;
    assert_eq!(r.unwrap_err(), Stage::PostHandshake);
}

#[tokio::test]
async fn ctap_fault_answers_operation_denied() {
    let (r, injected) = faulty_session(|c| c.faults.fail_at = Some(FailAt::Ctap)).await;
    assert_eq!(r.unwrap(), (StatusCode::OperationDenied, Vec::new()));
    assert!(injected);
}
