//! Hostile keys mid-ceremony (issue 14): the virtual key's eight lab faults fire only on
//! makeCredential (`VirtualKeyConfig::fault_on`), so INIT and getInfo succeed, the key is
//! selected, and the fault hits the transaction the user is waiting on — where a real key's
//! firmware bug or a flaky hub would. All eight run at once through the engine's public
//! `ceremony::run` (the path the daemon and the CLI take) while a well-behaved key registers
//! beside them.
//!
//! Asserted for each: a typed error at `user_presence` (not `device_select`: the fault came
//! after selection) naming the device, before the ceremony's deadline plus the host's cancel
//! grace; the kind each fault must produce; and the well-behaved ceremony verifies. Afterwards
//! each faulty key that still runs answers a normal ceremony once its fault is off.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use cablebridged::ceremony::{
    run, CeremonyError, CeremonyErrorKind, CeremonyOutcome, CeremonyRequest, CeremonyStage,
    RegisterOptions, Transport, UsbTransport,
};
use cablebridged::virtual_key::{LabFault, VirtualKey, VirtualKeyConfig, VirtualKeyHandle};
use tokio::time::{timeout, Instant};
use tokio_util::sync::CancellationToken;

const MAKE_CREDENTIAL: u8 = 0x01;
const DEADLINE: Duration = Duration::from_secs(3);
/// The host's 500 ms cancel grace plus slack for a loaded 2-core CI machine.
const MARGIN: Duration = Duration::from_millis(2500);
const LIMIT: Duration = Duration::from_secs(60);

const FAULTS: [LabFault; 8] = [
    LabFault::NeverAnswer,
    LabFault::KeepaliveForever,
    LabFault::WrongCid,
    LabFault::Busy,
    LabFault::BadSequence,
    LabFault::TruncatedResponse,
    LabFault::OversizedBcnt,
    LabFault::VanishMidTransaction,
];

async fn key(fault: LabFault) -> VirtualKeyHandle {
    let mut config = VirtualKeyConfig::new("127.0.0.1:0".parse().unwrap());
    config.fault = fault;
    config.fault_on = Some(MAKE_CREDENTIAL);
    VirtualKey::bind(config).await.unwrap()
}

async fn register(key: &VirtualKeyHandle) -> (Result<CeremonyOutcome, CeremonyError>, Duration) {
    let transport = Transport::Usb(UsbTransport {
        devices: vec![key.device_address().parse().unwrap()],
        timeout: DEADLINE,
        ..Default::default()
    });
    let request = CeremonyRequest::Register(RegisterOptions::new("mid.example", "alice"));
    let started = Instant::now();
    let result = run(transport, request, None, CancellationToken::new()).await;
    (result, started.elapsed())
}

/// What each fault must end as, once the key was selected.
fn expected_kind(fault: LabFault) -> &'static [CeremonyErrorKind] {
    use CeremonyErrorKind::*;
    match fault {
        // Silence, endless keepalives, answers on another channel (ignored as foreign), half a
        // response: the deadline fires, and CANCEL is sent.
        LabFault::NeverAnswer
        | LabFault::KeepaliveForever
        | LabFault::WrongCid
        | LabFault::TruncatedResponse => &[Timeout],
        // A UDP key that closes its socket goes quiet (a deadline) or draws ICMP port
        // unreachable (the device is gone): both are typed, neither hangs.
        LabFault::VanishMidTransaction => &[Timeout, Environment],
        // Still busy after the retries over the deadline: another client holds the key, which
        // is the machine's state, not the key's fault.
        LabFault::Busy => &[Environment],
        // A broken frame sequence, an impossible length: the device misbehaved.
        LabFault::BadSequence | LabFault::OversizedBcnt => &[Authenticator, Peer],
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_on_make_credential_ends_typed_at_user_presence_beside_a_good_ceremony() {
    timeout(LIMIT, async {
        let mut keys = Vec::new();
        for fault in FAULTS {
            keys.push((fault, key(fault).await));
        }
        let good = key(LabFault::None).await;
        let hostile = futures_util::future::join_all(
            keys.iter().map(|(fault, k)| async move { (*fault, register(k).await) }),
        );
        let (outcomes, (good_result, _)) = tokio::join!(hostile, register(&good));

        match good_result {
            Ok(CeremonyOutcome::Registered(r)) => assert!(r.attestation.is_ok(), "{r:?}"),
            other => panic!("the well-behaved key beside them: {other:?}"),
        }
        for (fault, (result, elapsed)) in outcomes {
            let device = keys.iter().find(|(f, _)| *f == fault).unwrap().1.device_address();
            let err = match result {
                Err(e) => e,
                Ok(o) => panic!("{fault}: succeeded: {o:?}"),
            };
            println!("{fault}: {elapsed:?} {:?} {:?}: {}", err.stage, err.kind, err.message);
            assert_eq!(err.stage, CeremonyStage::UserPresence, "{fault}: {err:?}");
            assert!(expected_kind(fault).contains(&err.kind), "{fault}: {err:?}");
            assert!(err.message.contains(&device), "{fault}: names the device: {}", err.message);
            assert!(elapsed < DEADLINE + MARGIN, "{fault}: took {elapsed:?}");
        }
        // With the fault off, the same keys register again; the two that are still stuck in
        // the faulted transaction (they ignore CANCEL: only an INIT on that channel frees
        // them) are reported busy at selection, typed and bounded, like a wedged real key.
        for (fault, k) in &keys {
            if k.is_finished() {
                continue; // the vanish fault stopped that key
            }
            k.set_fault(LabFault::None);
            let (next, elapsed) = register(k).await;
            match (fault, next) {
                (LabFault::NeverAnswer | LabFault::KeepaliveForever, Err(e)) => {
                    assert_eq!(e.stage, CeremonyStage::DeviceSelect, "{fault}: {e:?}");
                    assert_eq!(e.kind, CeremonyErrorKind::Environment, "{fault}: {e:?}");
                    assert!(e.message.contains("busy"), "{fault}: {}", e.message);
                    assert!(elapsed < DEADLINE + MARGIN, "{fault}: took {elapsed:?}");
                }
                (_, Ok(CeremonyOutcome::Registered(r))) => {
                    assert!(r.attestation.is_ok(), "{fault}: {r:?}")
                }
                (_, other) => panic!("{fault}: the next ceremony after the fault: {other:?}"),
            }
        }
    })
    .await
    .expect("bounded");
}
