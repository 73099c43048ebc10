//! Interop with phones other than today's Chrome-style one, end to end through
//! `cablebridged::ceremony::run` over loopback (desktop ↔ our tunnel server ↔ the virtual
//! phone, adverts through the desktop's Unix datagram source):
//! CTAP 2.3 adverts longer than 20 bytes (issue 15), the legacy revision-0 post-handshake, and
//! linking updates that arrive after the desktop's shutdown (also behind `run_raw`, which
//! answers first).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cablebridge_protocol::cbor::Value;
use cablebridge_protocol::hybrid::advert_suffix::ble_suffix;
use cablebridge_protocol::hybrid::qr::QrPayload;
use cablebridged::ceremony::{
    CeremonyError, CeremonyEvent, CeremonyOutcome, CeremonyRequest, HybridTransport,
    ProgressDetail, RegisterOptions, RegistrationResult, Transport,
};
use cablebridged::desktop::DesktopConfig;
use cablebridged::phone::{
    phone_sink, AdvertSuffixPolicy, PhoneConfig, PhoneEvent, PhoneState, VirtualPhone,
};
use cablebridged::testkit::{with_phone, EventLog};
use common::{phone_config, TunnelRig as Rig};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::timeout;

/// Upper bound for any one test ceremony.
const T: Duration = Duration::from_secs(30);

/// The hex adverts a phone put out (its `Advertising` events).
type Adverts = Arc<Mutex<Vec<String>>>;

impl Rig {
    fn desktop(&self) -> DesktopConfig {
        self.linking_desktop(Duration::from_millis(300))
    }

    fn phone(&self, tweak: impl FnOnce(&mut PhoneConfig)) -> (VirtualPhone, Adverts) {
        let mut c = phone_config(self.server.base_url(), self.advert_path());
        c.desktop_timeout = Duration::from_secs(5);
        c.idle_timeout = Duration::from_secs(5);
        c.name = "Compat Phone".into();
        tweak(&mut c);
        let adverts: Adverts = Arc::default();
        let seen = Arc::clone(&adverts);
        let events = phone_sink(move |_: u64, p: &PhoneEvent| {
            if let PhoneEvent::Advertising { advert, .. } = p {
                seen.lock().unwrap().push(advert.clone());
            }
        });
        let phone = VirtualPhone::new(c, PhoneState::new(&mut rand::rngs::OsRng), None, events);
        (phone, adverts)
    }
}

/// One QR registration; `edit_qr` changes what the phone "scanned" (e.g. adds QR key 6).
async fn register(
    config: &DesktopConfig,
    phone: &mut VirtualPhone,
    edit_qr: impl FnOnce(&mut QrPayload),
) -> (Result<CeremonyOutcome, CeremonyError>, EventLog) {
    let mut log = EventLog::new();
    let request = CeremonyRequest::Register(RegisterOptions::new("example.com", "bob"));
    let transport = Transport::Hybrid(HybridTransport::new(config.clone()));
    let (result, answered) = timeout(
        T,
        with_phone(transport, request, &mut log, |mut qr| async move {
            edit_qr(&mut qr);
            phone.run_qr(&qr).await
        }),
    )
    .await
    .unwrap();
    assert!(answered.is_some(), "desktop showed no QR: {result:?}");
    (result, log)
}

fn registered(r: Result<CeremonyOutcome, CeremonyError>) -> RegistrationResult {
    match r {
        Ok(CeremonyOutcome::Registered(r)) => r,
        other => panic!("expected a registration, got {other:?}"),
    }
}

/// The `advert_suffix` the desktop reported with its matched advert.
fn reported_suffix(log: &EventLog) -> Option<String> {
    log.events().iter().find_map(|e| match e {
        CeremonyEvent::Progress(p) => match &p.detail {
            ProgressDetail::Advert { suffix, .. } => Some(suffix.clone()),
            _ => None,
        },
        _ => None,
    })?
}

fn offer_ble(qr: &mut QrPayload) {
    qr.unknown_keys.push((Value::int(6), Value::Array(vec![Value::int(0), Value::int(1)])));
}

#[tokio::test]
async fn suffixed_advert_matches_and_its_suffix_is_reported_not_trusted() {
    let rig = Rig::new().await;
    let config = rig.desktop();

    // Forced {1: 4097} after the 20 bytes: the ceremony completes over the tunnel and the
    // progress event names the PSM as unauthenticated.
    let (mut phone, adverts) =
        rig.phone(|c| c.advert_suffix = AdvertSuffixPolicy::Force(ble_suffix(4097)));
    let (r, log) = register(&config, &mut phone, |_| {}).await;
    registered(r).verify().unwrap();
    assert_eq!(adverts.lock().unwrap()[0].len(), 2 * 25, "20 + 5 suffix bytes were sent");
    let reported = reported_suffix(&log).expect("suffix reported");
    assert!(reported.contains("PSM 4097") && reported.contains("unauthenticated"), "{reported}");
    let json =
        log.events().iter().map(CeremonyEvent::to_json).find(|j| j["stage"] == "advert").unwrap();
    assert!(json["advert_suffix"].as_str().unwrap().contains("PSM 4097"), "{json}");

    // A malformed suffix is reported as ignored; it changes nothing about the ceremony.
    let (mut phone, _) =
        rig.phone(|c| c.advert_suffix = AdvertSuffixPolicy::Force(vec![0xff, 0x00, 0x13]));
    let (r, log) = register(&config, &mut phone, |_| {}).await;
    registered(r);
    let reported = reported_suffix(&log).unwrap();
    assert!(reported.contains("3 suffix bytes ignored"), "{reported}");
}

#[tokio::test]
async fn phone_appends_the_suffix_only_when_the_qr_offers_ble() {
    let rig = Rig::new().await;
    let config = rig.desktop();

    // Our desktop's QR has no key 6: exactly 20 bytes, so Chrome-style desktops see it.
    let (mut phone, adverts) = rig.phone(|c| c.advert_suffix = AdvertSuffixPolicy::BlePsm(0x81));
    let (r, log) = register(&config, &mut phone, |_| {}).await;
    registered(r);
    assert!(adverts.lock().unwrap().iter().all(|a| a.len() == 40));
    assert_eq!(reported_suffix(&log), None);

    // The same phone scanning a QR whose key 6 offers channel 1 appends {1: PSM}.
    let (mut phone, adverts) = rig.phone(|c| c.advert_suffix = AdvertSuffixPolicy::BlePsm(0x81));
    let (r, log) = register(&config, &mut phone, offer_ble).await;
    registered(r);
    let sent = adverts.lock().unwrap()[0].clone();
    assert_eq!(&sent[40..], hex::encode(ble_suffix(0x81)));
    assert!(reported_suffix(&log).unwrap().contains("PSM 129"));
}

/// Index of the first event matching `pred`.
fn position(log: &EventLog, pred: impl Fn(&CeremonyEvent) -> bool) -> Option<usize> {
    log.events().iter().position(pred)
}

fn is_result(e: &CeremonyEvent) -> bool {
    matches!(e, CeremonyEvent::Result(_))
}

fn is_linking(e: &CeremonyEvent) -> bool {
    matches!(e, CeremonyEvent::Progress(p) if p.stage.as_str() == "linking")
}

#[tokio::test]
async fn revision0_phone_registers_authenticates_and_links_through_key_2() {
    let rig = Rig::new().await;
    let config = rig.desktop();
    let (mut phone, _) = rig.phone(|c| {
        c.legacy_revision_0 = true;
        c.offer_linking = true;
    });
    let (r, log) = register(&config, &mut phone, |_| {}).await;
    let reg = registered(r);
    reg.verify().unwrap();
    let said = log.events().iter().any(|e| {
        matches!(e, CeremonyEvent::Progress(p)
            if p.stage.as_str() == "post_handshake"
                && matches!(&p.detail, ProgressDetail::Text(t) if t.contains("revision 0")))
    });
    assert!(said, "the post_handshake progress names revision 0");
    assert!(log.warnings().is_empty(), "{:?}", log.warnings());
    // Linking info came in post-handshake key 2, verified, and was stored.
    let links = rig.state_store().load().unwrap();
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].name, "Compat Phone");

    // And a getAssertion over revision 0 verifies against the registered key.
    let mut log = EventLog::new();
    let mut a = cablebridged::ceremony::AuthenticateOptions::new("example.com");
    a.allow_credentials = vec![reg.credential_id.clone()];
    let transport = Transport::Hybrid(HybridTransport::new(config.clone()));
    let (r, _) = timeout(
        T,
        with_phone(transport, CeremonyRequest::Authenticate(a), &mut log, |qr| async move {
            phone.run_qr(&qr).await
        }),
    )
    .await
    .unwrap();
    match r {
        Ok(CeremonyOutcome::Authenticated(auth)) => auth.verify(&reg.public_key).unwrap(),
        other => panic!("expected an assertion, got {other:?}"),
    }
}

#[tokio::test]
async fn late_linking_update_is_stored_after_the_result_event() {
    let rig = Rig::new().await;
    let mut config = rig.desktop();
    // The CLI's --wait-for-linking: result first, then up to the window for late updates.
    config.late_update_mode = cablebridged::desktop::LateUpdateMode::AfterResult;
    config.timeouts.late_updates = Duration::from_secs(20);
    let (mut phone, _) = rig.phone(|c| {
        c.offer_linking = true;
        c.late_linking = Some(Duration::from_millis(300));
    });
    let (r, log) = register(&config, &mut phone, |_| {}).await;
    registered(r);
    let result_at = position(&log, is_result).expect("result event");
    let linked_at = position(&log, is_linking).expect("linking stored");
    assert!(result_at < linked_at, "the late link did not delay the result");
    assert_eq!(rig.state_store().load().unwrap().len(), 1);

    // Detached (the daemon): `run` returns right after the result; the read goes on in a task
    // and stores the link when it arrives.
    let mut config = rig.desktop();
    config.read_late_updates_like_chrome();
    assert_eq!(config.timeouts.late_updates, Duration::from_secs(180));
    let (mut phone, _) = rig.phone(|c| {
        c.offer_linking = true;
        c.name = "Late Phone".into();
        c.late_linking = Some(Duration::from_millis(300));
    });
    let (r, log) = register(&config, &mut phone, |_| {}).await;
    registered(r);
    // `register` also waited for the phone, which sent the late update before returning; the
    // detached reader stores it shortly after.
    timeout(T, async {
        while !rig.state_store().load().unwrap().iter().any(|l| l.name == "Late Phone") {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the detached reader stored the late link");
    let result_at = position(&log, is_result).unwrap();
    timeout(T, async {
        while position(&log, is_linking).is_none() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    assert!(result_at < position(&log, is_linking).unwrap());
}

#[tokio::test]
async fn cancel_ends_the_wait_for_late_updates_without_touching_the_result() {
    let rig = Rig::new().await;
    let mut config = rig.desktop();
    config.late_update_mode = cablebridged::desktop::LateUpdateMode::AfterResult;
    config.timeouts.late_updates = Duration::from_secs(600);
    let (mut phone, _) = rig.phone(|c| {
        c.offer_linking = true;
        c.late_linking = Some(Duration::from_secs(2));
    });
    let cancel = tokio_util::sync::CancellationToken::new();
    let on_result = cancel.clone();
    let mut log = EventLog::forwarding(Box::new(move |e| {
        if is_result(e) {
            on_result.cancel(); // Ctrl-C once the result is shown
        }
    }));
    let request = CeremonyRequest::Register(RegisterOptions::new("example.com", "carol"));
    let transport = Transport::Hybrid(HybridTransport::new(config.clone()));
    let (r, _) = timeout(
        T,
        cablebridged::testkit::with_phone_cancel(
            transport,
            request,
            &mut log,
            cancel,
            |qr| async move { phone.run_qr(&qr).await },
        ),
    )
    .await
    .expect("cancel ended the 600 s window");
    registered(r);
    // The link never arrived: the desktop stopped reading when cancelled.
    assert!(rig.state_store().load().unwrap().is_empty());
}

#[tokio::test]
async fn raw_request_is_answered_before_the_late_linking_update_which_is_still_stored() {
    use cablebridge_protocol::ctap2::{Command, GetInfo, MakeCredentialResponse};
    use cablebridged::ceremony::{run_raw, Events, RawCtapRequest};

    let rig = Rig::new().await;
    let mut config = rig.desktop();
    // Even a config that reads late updates before the result must not hold back the answer
    // a uhid client is waiting for.
    config.late_update_mode = cablebridged::desktop::LateUpdateMode::BeforeResult;
    config.timeouts.late_updates = Duration::from_secs(600);
    let (mut phone, _) = rig.phone(|c| {
        c.offer_linking = true;
        c.name = "Raw Phone".into();
        c.late_linking = Some(Duration::from_secs(4));
    });
    let opts = RegisterOptions::new("example.com", "dave");
    let cd = opts.client_data();
    let params = opts.to_request(&GetInfo::default(), &cd).unwrap().to_cbor().to_vec();
    let raw = RawCtapRequest { command: Command::MakeCredential, params };

    let (qr_tx, mut qr_rx) = tokio::sync::mpsc::unbounded_channel();
    let events: Events = Some(Arc::new(move |e: &CeremonyEvent| {
        if let CeremonyEvent::Qr { url } = e {
            let _ = qr_tx.send(url.clone());
        }
    }));
    let phone_task = tokio::spawn(async move {
        let url = qr_rx.recv().await.expect("desktop showed a QR code");
        phone.run_qr(&QrPayload::from_url(&url).unwrap()).await
    });
    let transport = Transport::Hybrid(HybridTransport::new(config));
    let cancel = tokio_util::sync::CancellationToken::new();
    let reply = timeout(T, run_raw(transport, raw, events, cancel))
        .await
        .expect("run_raw answered without waiting for the 600 s window")
        .unwrap();
    // Answered before the phone sent its late update (4 s after the shutdown).
    assert!(rig.state_store().load().unwrap().is_empty(), "run_raw waited for the late update");
    assert!(reply.status.is_ok(), "{reply:?}");
    let resp = MakeCredentialResponse::from_cbor(&Value::decode(&reply.body).unwrap()).unwrap();
    assert!(!resp.auth_data.is_empty(), "the phone's makeCredential answer, verbatim");

    // The spawned late read still stores the phone's linking info.
    timeout(T, phone_task).await.unwrap().unwrap().unwrap();
    timeout(T, async {
        while !rig.state_store().load().unwrap().iter().any(|l| l.name == "Raw Phone") {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the detached reader stored the late link");
}
