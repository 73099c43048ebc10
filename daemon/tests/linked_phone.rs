//! Linked phones (issue 8 item 3) end to end over loopback: desktop ↔ our tunnel server ↔ the
//! virtual phone's `serve_links`.
//!
//! - a phone that is not listening right now is "not reachable" and the link is kept; only a
//!   contact its phone revoked is `410 Gone` (and forgotten);
//! - a contact id is no listen credential: only the phone's listen secret holds it, and each
//!   linked desktop has its own contact id;
//! - one bad desktop (malformed payload, unknown link, broken handshake) or an unreachable
//!   tunnel server does not end the phone's linked service.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cablebridge_protocol::error::Fault;
use cablebridge_protocol::hybrid::qr::QrPayload;
use cablebridge_protocol::hybrid::tunnel::{
    url, ClientPayload, RequestHint, TunnelPath, CLIENT_PAYLOAD_HEADER,
};
use cablebridged::advert::AdvertSource;
use cablebridged::ceremony::{
    self, AuthenticateOptions, CeremonyError, CeremonyEvent, CeremonyOutcome, CeremonyRequest,
    CeremonyStage, HybridTransport, LinkedTransport, RegisterOptions, Transport,
};
use cablebridged::desktop::DesktopConfig;
use cablebridged::phone::{PhoneEvent, PhoneState, VirtualPhone};
use cablebridged::store::LinkStore;
use cablebridged::tunnel::client::{connect, ConnectOptions, TunnelClientError};
use cablebridged::tunnel::listen::{listen_headers, ListenSecret};
use cablebridged::tunnel::listen_url;
use cablebridged::tunnel::server::TunnelServerConfig;
use common::{desktop_config, phone_config, recording_sink, Seen, TunnelRig as Rig};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

/// Upper bound for any one step.
const T: Duration = Duration::from_secs(20);

impl Rig {
    /// The link store of desktop number `n`.
    fn store(&self, n: u32) -> LinkStore {
        LinkStore::in_dir(&self.dir.path().join(format!("desktop{n}")))
    }

    fn desktop(&self, n: u32) -> DesktopConfig {
        let mut c = desktop_config(self.server.base_url(), self.advert_path());
        c.link_store = Some(self.store(n));
        c.timeouts.late_updates = Duration::from_millis(300);
        c
    }

    fn linked(&self, n: u32) -> Transport {
        Transport::Linked(LinkedTransport::new("test phone", self.desktop(n)))
    }

    /// A phone recording its progress events in the returned list.
    fn phone(&self) -> (VirtualPhone, Seen) {
        let mut c = phone_config(self.server.base_url(), self.advert_path());
        c.desktop_timeout = Duration::from_secs(5);
        c.idle_timeout = Duration::from_secs(5);
        c.offer_linking = true;
        c.name = "Test Phone".into();
        let (seen, progress) = recording_sink();
        let phone = VirtualPhone::new(c, PhoneState::new(&mut rand::rngs::OsRng), None, progress);
        (phone, seen)
    }
}

fn count(seen: &Seen, what: impl Fn(&PhoneEvent) -> bool) -> usize {
    seen.lock().unwrap().iter().filter(|p| what(p)).count()
}

/// Waits until the phone has held its listen paths `n` times in all.
async fn listening(seen: &Seen, n: usize) {
    timeout(T, async {
        while count(seen, |p| matches!(p, PhoneEvent::Listening { .. })) < n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the phone never listened");
}

/// Registers through a QR ceremony with desktop `n`, which stores the phone's link.
async fn link(rig: &Rig, n: u32, phone: &mut VirtualPhone) {
    let (tx, mut qr) = mpsc::unbounded_channel();
    let sink = move |e: &CeremonyEvent| {
        if let CeremonyEvent::Qr { url } = e {
            let _ = tx.send(url.clone());
        }
    };
    let request = CeremonyRequest::Register(RegisterOptions::new("example.com", "alice"));
    let transport = Transport::Hybrid(HybridTransport::new(rig.desktop(n)));
    let desktop = ceremony::run(transport, request, Some(Arc::new(sink)), CancellationToken::new());
    let phone_side = async {
        let url = qr.recv().await.expect("desktop showed no QR");
        phone.run_qr(&QrPayload::from_url(&url).unwrap()).await.unwrap();
    };
    let (r, ()) = timeout(T, async { tokio::join!(desktop, phone_side) }).await.unwrap();
    assert!(matches!(r, Ok(CeremonyOutcome::Registered(_))), "{r:?}");
    assert_eq!(rig.store(n).load().unwrap().len(), 1, "desktop {n} stored the link");
}

async fn linked_authenticate(rig: &Rig, n: u32) -> Result<CeremonyOutcome, CeremonyError> {
    let request = CeremonyRequest::Authenticate(AuthenticateOptions::new("example.com"));
    timeout(T, ceremony::run(rig.linked(n), request, None, CancellationToken::new())).await.unwrap()
}

fn failed(r: Result<CeremonyOutcome, CeremonyError>) -> CeremonyError {
    match r {
        Err(e) => e,
        Ok(o) => panic!("expected a failure, got {o:?}"),
    }
}

#[tokio::test]
async fn offline_phone_is_not_reachable_and_keeps_the_link_revoked_one_is_gone() {
    let rig = Rig::new().await;
    let (mut phone, _) = rig.phone();
    link(&rig, 1, &mut phone).await;

    // Nobody listens right now: a typed "not reachable" at tunnel_connect, the link stays.
    let e = failed(linked_authenticate(&rig, 1).await);
    assert_eq!(e.stage, CeremonyStage::TunnelConnect);
    assert_eq!(e.fault, Fault::Peer, "{e}");
    assert!(e.message.contains("not reachable"), "{e}");
    assert!(e.message.contains("404"), "{e}");
    assert_eq!(rig.store(1).load().unwrap().len(), 1, "an offline phone is not forgotten");

    // The phone unlinks: the server confirms the revocation, and only now is the link gone.
    let done = timeout(T, phone.forget_links()).await.unwrap().unwrap();
    assert_eq!((done.revoked, done.unconfirmed.len()), (1, 0), "{done:?}");
    let e = failed(linked_authenticate(&rig, 1).await);
    assert_eq!(e.stage, CeremonyStage::TunnelConnect);
    assert!(e.message.contains("410"), "{e}");
    assert!(rig.store(1).load().unwrap().is_empty(), "a revoked link is forgotten");
}

#[tokio::test]
async fn a_contact_id_cannot_displace_the_phone_and_each_desktop_has_its_own() {
    let rig = Rig::new().await;
    let (mut phone, seen) = rig.phone();
    link(&rig, 1, &mut phone).await;
    link(&rig, 2, &mut phone).await;
    let one = rig.store(1).load().unwrap().remove(0);
    let two = rig.store(2).load().unwrap().remove(0);
    assert_ne!(one.contact_id, two.contact_id, "each desktop gets its own contact id");
    assert_ne!(one.link_id, two.link_id);

    // What a desktop knows (the contact id) does not open the listen path, with or without a
    // made-up secret.
    let base = rig.server.base_url();
    let hijack = |headers: Vec<(String, String)>| {
        let url = listen_url(&base, &one.contact_id);
        let opts = ConnectOptions { extra_headers: headers, ..ConnectOptions::default() };
        async move { connect(&url, &opts).await }
    };
    for headers in [
        Vec::new(),
        listen_headers(&ListenSecret::random(&mut rand::rngs::OsRng), false),
        vec![("X-Cablebridge-Listen-Secret".to_owned(), hex::encode(&one.contact_id))],
    ] {
        match hijack(headers).await {
            Err(TunnelClientError::HttpStatus { status: 403, .. }) => {}
            other => panic!("a listener without the secret must get 403, got {other:?}"),
        }
    }
    // Nor can a made-up secret revoke it.
    let forged = listen_headers(&ListenSecret::random(&mut rand::rngs::OsRng), true);
    assert!(matches!(hijack(forged).await, Err(TunnelClientError::HttpStatus { status: 403, .. })));

    // The phone holds both contacts and serves both desktops.
    let serve = async { timeout(T, phone.serve_links(Some(2))).await.unwrap() };
    let desktops = async {
        listening(&seen, 2).await;
        let a = linked_authenticate(&rig, 1).await;
        let b = linked_authenticate(&rig, 2).await;
        (a, b)
    };
    let (served, (a, b)) = tokio::join!(serve, desktops);
    assert_eq!(served.unwrap(), 2);
    assert!(matches!(a, Ok(CeremonyOutcome::Authenticated(_))), "{a:?}");
    assert!(matches!(b, Ok(CeremonyOutcome::Authenticated(_))), "{b:?}");
}

/// A hostile or broken desktop on `/cable/contact`: connects with `payload_hex` and, if given,
/// waits for the phone's advert on `adverts` and sends `after` as its "message 1".
async fn fake_desktop(
    base: &str,
    contact_id: &[u8],
    payload_hex: String,
    after: Option<(Vec<u8>, PathBuf)>,
) {
    let path = TunnelPath::Contact { contact_id: contact_id.to_vec() };
    let opts = ConnectOptions {
        extra_headers: vec![(CLIENT_PAYLOAD_HEADER.to_owned(), payload_hex)],
        ..ConnectOptions::default()
    };
    let adverts = after.as_ref().map(|(_, p)| tokio::net::UnixDatagram::bind(p).unwrap());
    let mut conn = connect(&url(base, &path), &opts).await.expect("the phone listens");
    if let (Some((bytes, p)), Some(adverts)) = (after, adverts) {
        let mut buf = [0u8; 64];
        timeout(T, adverts.recv(&mut buf)).await.unwrap().unwrap();
        conn.send(&bytes).await.unwrap();
        // Wait for the phone to give up on us.
        let _ = timeout(T, conn.recv()).await;
        drop(adverts);
        let _ = std::fs::remove_file(p);
    }
    let _ = conn.close().await;
}

#[tokio::test]
async fn bad_desktops_are_reported_and_the_service_keeps_serving() {
    let rig = Rig::new().await;
    let (mut phone, seen) = rig.phone();
    link(&rig, 1, &mut phone).await;
    let link1 = rig.store(1).load().unwrap().remove(0);
    let base = rig.server.base_url();
    let payload = |link_id: [u8; 8]| {
        ClientPayload { link_id, client_nonce: [9; 16], hint: RequestHint::GetAssertion }
            .header_value()
    };

    let serve = async { timeout(T, phone.serve_links(Some(4))).await.unwrap() };
    let desktops = async {
        // 1. Not a client payload at all (an empty CBOR map).
        listening(&seen, 1).await;
        fake_desktop(&base, &link1.contact_id, "a0".into(), None).await;
        // 2. A link id this phone never issued.
        listening(&seen, 2).await;
        fake_desktop(&base, &link1.contact_id, payload([0xee; 8]), None).await;
        // 3. The right link, then garbage instead of Noise message 1.
        listening(&seen, 3).await;
        let garbage = Some((vec![4; 81], rig.advert_path()));
        fake_desktop(&base, &link1.contact_id, payload(link1.link_id), garbage).await;
        // 4. The real desktop still gets served.
        listening(&seen, 4).await;
        linked_authenticate(&rig, 1).await
    };
    let (served, real) = tokio::join!(serve, desktops);
    assert_eq!(served.unwrap(), 4);
    assert!(matches!(real, Ok(CeremonyOutcome::Authenticated(_))), "{real:?}");
    let failures: Vec<(String, String)> = seen
        .lock()
        .unwrap()
        .iter()
        .filter_map(|p| match p {
            PhoneEvent::SessionFailed { stage, reason } => Some((stage.clone(), reason.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(failures.len(), 3, "{failures:?}");
    assert!(failures[0].1.contains("client payload"), "{failures:?}");
    assert!(failures[1].1.contains("did not issue"), "{failures:?}");
    assert_eq!(failures[2].0, "handshake", "{failures:?}");
}

#[tokio::test]
async fn listener_retries_with_backoff_until_the_tunnel_server_is_back() {
    let rig = Rig::new().await;
    let addr = rig.server.local_addr();
    let (mut phone, seen) = rig.phone();
    link(&rig, 1, &mut phone).await;
    let Rig { server, dir } = rig;
    server.shutdown().await;

    let serve = async { timeout(T, phone.serve_links(Some(1))).await.unwrap() };
    let desktop = async {
        // Connection refused, twice: the listener reports and backs off instead of failing.
        timeout(T, async {
            while count(&seen, |p| matches!(p, PhoneEvent::ListenRetry { .. })) < 2 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("no listen retries reported");
        let delays: Vec<u64> = seen
            .lock()
            .unwrap()
            .iter()
            .filter_map(|p| match p {
                PhoneEvent::ListenRetry { after_ms, .. } => Some(*after_ms),
                _ => None,
            })
            .collect();
        assert!(delays[1] > delays[0], "backoff grows: {delays:?}");
        let config = TunnelServerConfig { listen: addr, ..TunnelServerConfig::default() };
        let rig = Rig::on(config).await;
        // Same state directory: move the old link store over.
        let old = LinkStore::in_dir(&dir.path().join("desktop1")).load().unwrap();
        for l in old {
            rig.store(1).upsert(l).unwrap();
        }
        let mut config = rig.desktop(1);
        config.advert_source = AdvertSource::UnixDatagram(dir.path().join("adverts.sock"));
        let linked = Transport::Linked(LinkedTransport::new("test phone", config));
        listening(&seen, 1).await;
        let request = CeremonyRequest::Authenticate(AuthenticateOptions::new("example.com"));
        let r = timeout(T, ceremony::run(linked, request, None, CancellationToken::new()))
            .await
            .unwrap();
        (r, rig)
    };
    let (served, (r, _rig)) = tokio::join!(serve, desktop);
    assert_eq!(served.unwrap(), 1);
    assert!(matches!(r, Ok(CeremonyOutcome::Authenticated(_))), "{r:?}");
}
