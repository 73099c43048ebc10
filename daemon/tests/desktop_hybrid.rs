//! Hybrid ceremonies through `cablebridged::ceremony::run` end to end over real loopback sockets:
//! desktop ↔ our tunnel server ↔ the virtual phone, adverts travelling through the desktop's
//! Unix datagram advert source. Covers register, authenticate (allowList and discoverable),
//! linking stored + linked reconnect + not reachable / 410 Gone after revocation, foreign/malformed adverts, advert timeout, and
//! each failure stage — results checked with the ceremony's verify helpers *and* an independent
//! p256 check.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cablebridge_protocol::authenticator::AttestationMode;
use cablebridge_protocol::ctap2::AttestationType;
use cablebridge_protocol::error::Fault;
use cablebridge_protocol::hybrid::eid::{EidKey, EidPlaintext};
use cablebridge_protocol::hybrid::keys::QrSecret;
use cablebridge_protocol::hybrid::tunnel::RoutingId;
use cablebridged::advert::AdvertSource;
use cablebridged::ceremony::{
    self, AuthenticateOptions, AuthenticationResult, CeremonyError, CeremonyErrorKind,
    CeremonyOutcome, CeremonyRequest, CeremonyStage, HybridTransport, LinkedTransport,
    RegisterOptions, RegistrationResult, Transport,
};
use cablebridged::desktop::DesktopConfig;
use cablebridged::phone::{phone_sink, FailAt, PhoneConfig, PhoneEvent, PhoneState, VirtualPhone};
use cablebridged::testkit::{with_phone, EventLog};
use common::{phone_config, TunnelRig as Rig};
use p256::ecdsa::signature::Verifier;
use sha2::Digest;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

/// Upper bound for any one test ceremony.
const T: Duration = Duration::from_secs(20);

impl Rig {
    fn desktop(&self) -> DesktopConfig {
        self.linking_desktop(Duration::from_millis(500))
    }

    fn phone(&self, tweak: impl FnOnce(&mut PhoneConfig)) -> VirtualPhone {
        self.phone_with_listen_signal(tweak, Arc::new(tokio::sync::Notify::new()))
    }

    /// A phone that signals `listening` each time it holds its `/cable/listen` path.
    fn phone_with_listen_signal(
        &self,
        tweak: impl FnOnce(&mut PhoneConfig),
        listening: Arc<tokio::sync::Notify>,
    ) -> VirtualPhone {
        let mut c = phone_config(self.server.base_url(), self.advert_path());
        c.desktop_timeout = Duration::from_secs(5);
        c.idle_timeout = Duration::from_secs(5);
        c.offer_linking = true;
        c.name = "Test Phone".into();
        tweak(&mut c);
        let progress = phone_sink(move |_: u64, p: &PhoneEvent| {
            if matches!(p, PhoneEvent::Listening { .. }) {
                listening.notify_one();
            }
        });
        VirtualPhone::new(c, PhoneState::new(&mut rand::rngs::OsRng), None, progress)
    }
}

/// Runs one QR ceremony with `phone` answering; `before_phone` runs once the QR is shown.
async fn qr_ceremony(
    config: &DesktopConfig,
    request: CeremonyRequest,
    phone: &mut VirtualPhone,
    before_phone: impl std::future::Future<Output = ()>,
) -> (Result<CeremonyOutcome, CeremonyError>, EventLog) {
    let mut log = EventLog::new();
    let transport = Transport::Hybrid(HybridTransport::new(config.clone()));
    let (result, answered) = timeout(
        T,
        with_phone(transport, request, &mut log, |qr| async move {
            before_phone.await;
            let _ = phone.run_qr(&qr).await;
        }),
    )
    .await
    .unwrap();
    assert!(answered.is_some() || result.is_err(), "desktop showed no QR");
    (result, log)
}

/// One ceremony with nobody answering.
async fn alone(transport: Transport, request: CeremonyRequest) -> CeremonyError {
    failed(
        timeout(T, ceremony::run(transport, request, None, CancellationToken::new()))
            .await
            .unwrap(),
    )
}

fn hybrid(config: &DesktopConfig) -> Transport {
    Transport::Hybrid(HybridTransport::new(config.clone()))
}

fn register_request() -> (RegisterOptions, CeremonyRequest) {
    let o = RegisterOptions::new("example.com", "alice@example.com");
    (o.clone(), CeremonyRequest::Register(o))
}

fn registered(r: Result<CeremonyOutcome, CeremonyError>) -> RegistrationResult {
    match r {
        Ok(CeremonyOutcome::Registered(r)) => r,
        other => panic!("expected a registration, got {other:?}"),
    }
}

fn authenticated(r: Result<CeremonyOutcome, CeremonyError>) -> AuthenticationResult {
    match r {
        Ok(CeremonyOutcome::Authenticated(r)) => r,
        other => panic!("expected an authentication, got {other:?}"),
    }
}

fn failed(r: Result<CeremonyOutcome, CeremonyError>) -> CeremonyError {
    match r {
        Err(e) => e,
        Ok(o) => panic!("expected a failure, got {o:?}"),
    }
}

/// Independent ES256 check with p256 over `authData ‖ SHA-256(clientDataJSON)`.
fn independent_check(reg: &RegistrationResult, auth: &AuthenticationResult) {
    let key = reg.public_key.as_p256().expect("ES256 credential");
    let vk = p256::ecdsa::VerifyingKey::from(key);
    let sig = p256::ecdsa::Signature::from_der(&auth.signature).unwrap();
    let msg =
        [auth.authenticator_data.clone(), sha2::Sha256::digest(&auth.client_data_json).to_vec()]
            .concat();
    vk.verify(&msg, &sig).expect("independent signature check");
    let cd: serde_json::Value = serde_json::from_slice(&auth.client_data_json).unwrap();
    assert_eq!(cd["type"], "webauthn.get");
    assert_eq!(cd["origin"], "https://example.com");
}

#[tokio::test]
async fn register_authenticate_link_and_linked_reconnect() {
    let rig = Rig::new().await;
    let config = rig.desktop();
    let listening = Arc::new(tokio::sync::Notify::new());
    let mut phone = rig.phone_with_listen_signal(
        |c| c.attestation = AttestationMode::PackedSelf,
        Arc::clone(&listening),
    );

    // Register: packed self attestation verifies; the phone's linking info is stored.
    let (o, req) = register_request();
    let (r, ev) = qr_ceremony(&config, req, &mut phone, async {}).await;
    let reg = registered(r);
    assert_eq!(reg.attestation_format, "packed");
    assert_eq!(reg.verify().unwrap(), AttestationType::SelfAttestation);
    assert_eq!(
        reg.aaguid.0,
        cablebridge_protocol::authenticator::CABLEBRIDGE_AAGUID,
        "the AAGUID comes from the attested credential data"
    );
    let stages = ev.stages();
    for s in [
        "qr_shown",
        "advert",
        "tunnel_connect",
        "handshake",
        "post_handshake",
        "user_response",
        "linking",
        "done",
    ] {
        assert!(stages.contains(&s), "missing {s} in {stages:?}");
    }
    for s in ["advert", "tunnel_connect", "handshake", "post_handshake", "user_response"] {
        assert!(reg.timings.entries().iter().any(|(st, _)| st.as_str() == s), "timing {s}");
    }
    let json = reg.to_json();
    for f in
        ["credential_id", "aaguid", "attestation_object", "client_data_json", "public_key_cose"]
    {
        assert!(json[f].is_string(), "{f} in {json}");
    }
    let links = rig.state_store().load().unwrap();
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].name, "Test Phone");

    // Authenticate with an allowList.
    let mut a = AuthenticateOptions::new("example.com");
    a.allow_credentials = vec![reg.credential_id.clone()];
    let (r, _) = qr_ceremony(&config, CeremonyRequest::Authenticate(a), &mut phone, async {}).await;
    let auth = authenticated(r);
    assert_eq!(auth.credential_id, reg.credential_id);
    auth.verify(&reg.public_key).unwrap();
    independent_check(&reg, &auth);

    // Authenticate discoverable: the user handle comes back.
    let a = AuthenticateOptions::new("example.com");
    let (r, _) = qr_ceremony(&config, CeremonyRequest::Authenticate(a), &mut phone, async {}).await;
    let auth = authenticated(r);
    assert_eq!(auth.user_handle.as_deref(), Some(o.user.id.as_slice()));
    auth.verify(&reg.public_key).unwrap();
    // A tampered signature base does not verify.
    let mut bad = auth.clone();
    bad.client_data_json.push(b' ');
    assert!(bad.verify(&reg.public_key).is_err());

    // Linked reconnect: no QR, /cable/contact + NKpsk0 with the stored phone key.
    let linked = || Transport::Linked(LinkedTransport::new("test phone", config.clone()));
    let a = AuthenticateOptions::new("example.com");
    let ev = EventLog::new();
    let (r, served) = timeout(T, async {
        tokio::join!(
            async {
                // The phone must hold its listen path before the desktop contacts it.
                listening.notified().await;
                ceremony::run(
                    linked(),
                    CeremonyRequest::Authenticate(a),
                    ev.sink(),
                    CancellationToken::new(),
                )
                .await
            },
            phone.serve_links(Some(1))
        )
    })
    .await
    .unwrap();
    assert_eq!(served.unwrap(), 1);
    let auth = authenticated(r);
    auth.verify(&reg.public_key).unwrap();
    assert!(!ev.stages().contains(&"qr_shown"));
    assert!(ev.stages().contains(&"advert"));

    // Nobody listens on the contact id right now: "not reachable", the link is kept.
    let a = AuthenticateOptions::new("example.com");
    let e = alone(linked(), CeremonyRequest::Authenticate(a)).await;
    assert_eq!(e.stage, CeremonyStage::TunnelConnect);
    assert_eq!(e.fault, Fault::Peer);
    assert!(e.message.contains("not reachable"), "{e}");
    assert_eq!(rig.state_store().load().unwrap().len(), 1, "an offline phone is not forgotten");
    // The phone revokes its links (one per linking QR session above): 410 Gone forgets the link.
    assert_eq!(timeout(T, phone.forget_links()).await.unwrap().unwrap().revoked, 3);
    let a = AuthenticateOptions::new("example.com");
    let e = alone(linked(), CeremonyRequest::Authenticate(a)).await;
    assert_eq!(e.stage, CeremonyStage::TunnelConnect);
    assert!(e.message.contains("410"), "{e}");
    assert!(rig.state_store().load().unwrap().is_empty(), "the dead link is forgotten");
    // And an unknown name is a usage error.
    let e = alone(linked(), CeremonyRequest::Authenticate(AuthenticateOptions::new("example.com")))
        .await;
    assert_eq!((e.stage, e.fault), (CeremonyStage::Setup, Fault::Caller));
}

#[tokio::test]
async fn foreign_and_malformed_adverts_are_ignored_with_warnings() {
    let rig = Rig::new().await;
    let config = rig.desktop();
    let mut phone = rig.phone(|_| {});
    let path = rig.advert_path();
    let noise = async move {
        let sock = tokio::net::UnixDatagram::unbound().unwrap();
        let foreign = EidKey::from_qr_secret(&QrSecret::new([9; 16])).seal(&EidPlaintext::new(
            [1; 10],
            RoutingId([1, 2, 3]),
            0,
        ));
        let lines = format!("# relay start\n{}\nnot-hex\n", hex::encode(foreign));
        sock.send_to(lines.as_bytes(), &path).await.unwrap();
    };
    let (_, req) = register_request();
    let (r, ev) = qr_ceremony(&config, req, &mut phone, noise).await;
    let reg = registered(r);
    reg.verify().unwrap();
    let warnings = ev.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("not hex"));
}

#[tokio::test]
async fn advert_timeout_names_the_advert_stage() {
    let rig = Rig::new().await;
    let mut config = rig.desktop();
    config.timeouts.advert = Duration::from_millis(300);
    let (_, req) = register_request();
    let e = alone(hybrid(&config), req).await;
    assert_eq!(e.stage, CeremonyStage::Advert);
    assert_eq!((e.kind, e.fault), (CeremonyErrorKind::Timeout, Fault::Peer));
    assert!(!rig.advert_path().exists(), "advert socket removed");
}

#[tokio::test]
async fn bluez_source_without_bluez_is_a_precise_environment_error() {
    // No mock bus in this process: the real scanner finds no system bus (containers, CI) or no
    // org.bluez on it. Either way: exit 3 at the advert stage, with the remedy, before any QR.
    let rig = Rig::new().await;
    let mut config = rig.desktop();
    config.advert_source = AdvertSource::Bluez;
    let (_, req) = register_request();
    let e = alone(hybrid(&config), req).await;
    assert_eq!((e.stage, e.fault), (CeremonyStage::Advert, Fault::Environment), "{e}");
    assert!(e.message.contains("BLE scanning (--advert-source bluez) cannot start"), "{e}");
    assert!(
        e.message.contains("DBUS_SYSTEM_BUS_ADDRESS")
            || e.message.contains("systemctl start bluetooth")
            || e.message.contains("Bluetooth adapter")
            || e.message.contains("'bluetooth' group"),
        "names a remedy: {e}"
    );
}

async fn failing_phone(tweak: impl FnOnce(&mut PhoneConfig)) -> CeremonyError {
    let rig = Rig::new().await;
    let mut config = rig.desktop();
    config.timeouts.handshake = Duration::from_secs(3);
    let mut phone = rig.phone(tweak);
    let (_, req) = register_request();
    failed(qr_ceremony(&config, req, &mut phone, async {}).await.0)
}

#[tokio::test]
async fn each_failure_names_its_stage() {
    let e = failing_phone(|c| c.faults.fail_at = Some(FailAt::Handshake)).await;
    assert_eq!((e.stage, e.fault), (CeremonyStage::Handshake, Fault::Peer), "{e}");

    let e = failing_phone(|c| c.faults.fail_at = Some(FailAt::PostHandshake)).await;
    assert_eq!((e.stage, e.fault), (CeremonyStage::PostHandshake, Fault::Peer), "{e}");

    let e = failing_phone(|c| c.faults.fail_at = Some(FailAt::Ctap)).await;
    assert_eq!(e.stage, CeremonyStage::UserResponse, "{e}");
    assert_eq!(e.kind, CeremonyErrorKind::Authenticator);
    assert!(e.message.contains("OPERATION_DENIED"), "{e}");

    // The tunnel drops right after message 1 arrived at the phone: mid-handshake.
    let e = failing_phone(|c| c.faults.drop_after = Some(0)).await;
    assert_eq!((e.stage, e.fault), (CeremonyStage::Handshake, Fault::Peer), "{e}");
}

#[tokio::test]
async fn unreachable_tunnel_is_an_environment_error_at_tunnel_connect() {
    let rig = Rig::new().await;
    let mut config = rig.desktop();
    // A port nobody listens on (bound then released).
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    config.tunnel_url = Some(format!("ws://{dead}"));
    config.timeouts.connect = Duration::from_secs(3);
    let mut phone = rig.phone(|c| c.desktop_timeout = Duration::from_millis(500));
    let (_, req) = register_request();
    let e = failed(qr_ceremony(&config, req, &mut phone, async {}).await.0);
    assert_eq!((e.stage, e.fault), (CeremonyStage::TunnelConnect, Fault::Environment), "{e}");

    // Plain ws:// to a non-loopback host is refused before connecting (usage).
    config.tunnel_url = Some("ws://192.0.2.1:80".into());
    let mut phone = rig.phone(|c| c.desktop_timeout = Duration::from_millis(500));
    let (_, req) = register_request();
    let e = failed(qr_ceremony(&config, req, &mut phone, async {}).await.0);
    assert_eq!((e.stage, e.fault), (CeremonyStage::TunnelConnect, Fault::Caller), "{e}");
}

/// The daemon-facing side of issue 8.1: when a ceremony ends (here: cancelled while waiting for
/// the advert), its advert source lets go of the feed at once even though the feed's writer
/// is still there. A FIFO shows it: the writer's next write fails with EPIPE (no reader left),
/// which a blocking reader thread parked in `read` would have prevented.
#[tokio::test]
async fn cancel_at_the_advert_stage_releases_a_live_fifo_feed() {
    let rig = Rig::new().await;
    let fifo = rig.dir.path().join("adverts.fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let mut config = rig.desktop();
    config.advert_source = AdvertSource::Fifo(fifo.clone());
    let mut log = EventLog::new();
    let cancel = CancellationToken::new();
    let run = ceremony::run(hybrid(&config), register_request().1, log.sink(), cancel.clone());
    let (result, writer) = timeout(T, async {
        tokio::join!(run, async {
            log.next_qr().await.expect("a QR");
            // The relay connects and keeps the feed open.
            let writer = tokio::net::unix::pipe::OpenOptions::new().open_sender(&fifo).unwrap();
            use tokio::io::AsyncWriteExt;
            let mut writer = writer;
            writer.write_all(b"# relay up\n").await.unwrap();
            cancel.cancel();
            writer
        })
    })
    .await
    .unwrap();
    let e = failed(result);
    assert_eq!((e.stage, e.kind), (CeremonyStage::Advert, CeremonyErrorKind::Cancelled));
    // The source is gone: writing now is a broken pipe (retry briefly: the abort is async).
    let mut writer = writer;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        use tokio::io::AsyncWriteExt;
        match writer.write_all(b"# still here\n").await {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => break,
            _ if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await
            }
            other => panic!("the FIFO still has a reader after the ceremony ended: {other:?}"),
        }
    }
}

/// Cancel while the phone holds the request: the error names `user_response`, and the phone's
/// session ends because the desktop sent shutdown and closed the tunnel.
#[tokio::test]
async fn cancel_while_the_user_decides_names_the_stage() {
    let rig = Rig::new().await;
    let config = rig.desktop();
    let mut phone = rig.phone(|c| c.presence_delay = Duration::from_secs(30));
    let cancel = CancellationToken::new();
    // Cancel the moment the request is with the phone (post_handshake finished).
    let on_event = cancel.clone();
    let mut log = EventLog::forwarding(Box::new(move |e| {
        if let cablebridged::ceremony::CeremonyEvent::Progress(p) = e {
            if p.stage == CeremonyStage::PostHandshake {
                on_event.cancel();
            }
        }
    }));
    let (result, _) = timeout(
        T,
        cablebridged::testkit::with_phone_cancel(
            hybrid(&config),
            register_request().1,
            &mut log,
            cancel,
            |qr| async move {
                tokio::select! {
                    _ = phone.run_qr(&qr) => {}
                    () = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
            },
        ),
    )
    .await
    .unwrap();
    let e = failed(result);
    assert_eq!(
        (e.stage, e.kind),
        (CeremonyStage::UserResponse, CeremonyErrorKind::Cancelled),
        "{e} after {:?}",
        log.stages()
    );
}

/// The daemon's shape (issue 10): the ceremony gets an already-open `AdvertFeed` (here fed by
/// the test from its own socket, as a shared scan would fan adverts out) instead of a source
/// spec to open, and drops it when it ends.
#[tokio::test]
async fn an_already_open_feed_drives_a_ceremony() {
    use cablebridged::advert::{parse_advert_line, AdvertFeed};
    use cablebridged::ceremony::AdvertInput;
    let rig = Rig::new().await;
    let sock = tokio::net::UnixDatagram::bind(rig.advert_path()).unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let closed = tx.clone();
    let forward = tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while let Ok(n) = sock.recv(&mut buf).await {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            for line in text.lines() {
                if let Ok(Some(item)) = parse_advert_line(line) {
                    if tx.send(item).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    let transport = Transport::Hybrid(HybridTransport {
        config: rig.desktop(),
        adverts: AdvertInput::Feed(AdvertFeed::from_channel(rx)),
    });
    let mut phone = rig.phone(|_| {});
    let mut log = EventLog::new();
    let (r, _) = timeout(
        T,
        with_phone(transport, register_request().1, &mut log, |qr| async move {
            let _ = phone.run_qr(&qr).await;
        }),
    )
    .await
    .unwrap();
    registered(r).verify().unwrap();
    let last = log.events().pop().map(|e| e.to_json());
    let last = last.expect("events");
    assert_eq!((&last["event"], &last["verification"]["ok"]), (&"result".into(), &true.into()));
    assert!(closed.is_closed(), "the ceremony dropped its feed when it ended");
    forward.abort();
}
