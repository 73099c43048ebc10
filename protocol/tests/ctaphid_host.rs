//! The CTAPHID host against a scripted, misbehaving device: hand-built reports that break the
//! framing rules must end in typed errors, and traffic it cannot attribute must be ignored.

// Test helpers outside #[test] fns are not covered by clippy.toml allow-*-in-tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use cablebridge_protocol::ctaphid::{
    fragment, Capabilities, Cid, Command, DeviceInfo, ErrorCode, FrameError, HostChannel,
    HostConfig, HostError, HostEvent, Packet, Report, ReportLen,
};
use cablebridge_protocol::error::{Classify, Fault};
use rand::{rngs::StdRng, SeedableRng};

const CID: Cid = Cid(0x1122_3344);
const MS: Duration = Duration::from_millis(1);

fn reports(cid: Cid, cmd: Command, payload: &[u8]) -> Vec<Report> {
    fragment(cid, cmd, payload, ReportLen::DEFAULT).unwrap().collect()
}

fn init_response(nonce: [u8; 8], cid: Cid) -> Vec<u8> {
    let info = DeviceInfo {
        cid,
        protocol_version: 2,
        major: 5,
        minor: 4,
        build: 3,
        capabilities: Capabilities::CBOR | Capabilities::WINK,
    };
    info.encode(&nonce).to_vec()
}

/// A host with channel `CID` allocated, plus the clock origin.
fn ready() -> (HostChannel, Instant) {
    #[allow(clippy::disallowed_methods)] // test clock origin
    let now = Instant::now();
    let mut host = HostChannel::new(HostConfig::default());
    let mut rng = StdRng::seed_from_u64(1);
    host.init(&mut rng, now + 100 * MS).unwrap();
    let sent = host.poll_transmit().unwrap();
    assert_eq!(&sent[..7], &[0xff, 0xff, 0xff, 0xff, 0x86, 0, 8]);
    let nonce: [u8; 8] = sent[7..15].try_into().unwrap();
    // Another process's INIT response first (different nonce): ignored.
    host.handle_report(
        &reports(Cid::BROADCAST, Command::Init, &init_response([0; 8], Cid(9)))[0],
        now,
    );
    assert!(host.poll_event().is_none());
    host.handle_report(&reports(Cid::BROADCAST, Command::Init, &init_response(nonce, CID))[0], now);
    let Some(HostEvent::Initialized(info)) = host.poll_event() else { panic!("not initialized") };
    assert_eq!((info.cid, info.major, info.minor, info.build), (CID, 5, 4, 3));
    assert!(info.capabilities.contains(Capabilities::CBOR));
    assert!(!info.capabilities.contains(Capabilities::NMSG));
    assert_eq!(host.stats().stray_frames, 1);
    (host, now)
}

fn failure(host: &mut HostChannel) -> HostError {
    match host.poll_event() {
        Some(HostEvent::Failed(e)) => e,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn bad_sequence_is_a_typed_peer_error() {
    let (mut host, now) = ready();
    host.start_transaction(Command::Ping, &[1; 200], now + 100 * MS).unwrap();
    let resp = reports(CID, Command::Ping, &[1; 200]);
    host.handle_report(&resp[0], now);
    host.handle_report(&resp[2], now);
    let err = failure(&mut host);
    assert_eq!(
        err,
        HostError::Frame {
            command: Command::Ping,
            source: FrameError::BadSequence { cid: CID, expected: 0, got: 1 }
        }
    );
    assert_eq!(err.fault(), Fault::Peer);
    assert!(host.is_idle());
}

#[test]
fn oversized_bcnt_is_rejected_at_the_first_packet() {
    let (mut host, now) = ready();
    host.start_transaction(Command::Cbor, &[4], now + 100 * MS).unwrap();
    let mut r = reports(CID, Command::Cbor, &[0; 10]).remove(0);
    r.as_mut_slice()[5..7].copy_from_slice(&7610u16.to_be_bytes());
    host.handle_report(&r, now);
    assert_eq!(
        failure(&mut host),
        HostError::Frame {
            command: Command::Cbor,
            source: FrameError::BcntTooLarge { bcnt: 7610, max: 7609 }
        }
    );
}

#[test]
fn wrong_command_and_error_frames_are_typed() {
    let (mut host, now) = ready();
    host.start_transaction(Command::Cbor, &[4], now + 100 * MS).unwrap();
    host.handle_report(&reports(CID, Command::Msg, &[0x90, 0])[0], now);
    assert_eq!(
        failure(&mut host),
        HostError::UnexpectedCommand { expected: Command::Cbor, got: Command::Msg }
    );
    host.start_transaction(Command::Cbor, &[4], now + 100 * MS).unwrap();
    host.handle_report(&reports(CID, Command::Error, &[0x06])[0], now);
    assert_eq!(failure(&mut host), HostError::Busy);
    host.start_transaction(Command::Wink, &[], now + 100 * MS).unwrap();
    host.handle_report(&reports(CID, Command::Error, &[0x01])[0], now);
    let err = failure(&mut host);
    assert_eq!(err, HostError::Device { command: Command::Wink, code: ErrorCode::InvalidCmd });
    assert!(err.to_string().contains("ERR_INVALID_CMD"), "{err}");
    host.start_transaction(Command::Ping, &[], now + 100 * MS).unwrap();
    host.handle_report(&reports(CID, Command::Error, &[])[0], now);
    assert_eq!(failure(&mut host), HostError::BadErrorFrame { len: 0 });
}

#[test]
fn stray_and_malformed_reports_are_counted_not_fatal() {
    let (mut host, now) = ready();
    host.handle_report(&[1, 2], now);
    host.handle_report(&reports(CID, Command::Ping, &[1])[0], now); // idle: a late answer
    host.start_transaction(Command::Ping, &[7; 100], now + 100 * MS).unwrap();
    let resp = reports(CID, Command::Ping, &[7; 100]);
    host.handle_report(&resp[1], now); // leftover continuation before our init packet
    host.handle_report(&reports(Cid(5), Command::Error, &[6])[0], now); // someone else's BUSY
    host.handle_report(&resp[0], now);
    host.handle_report(&resp[1], now);
    assert_eq!(
        host.poll_event(),
        Some(HostEvent::Response { cmd: Command::Ping, payload: vec![7; 100] })
    );
    let s = host.stats();
    assert_eq!((s.malformed_reports, s.stray_frames, s.foreign_frames), (1, 3, 1));
}

#[test]
fn caller_misuse_is_refused_synchronously() {
    #[allow(clippy::disallowed_methods)] // test clock origin
    let now = Instant::now();
    let mut fresh = HostChannel::new(HostConfig::default());
    assert_eq!(fresh.start_transaction(Command::Ping, &[], now), Err(HostError::NoChannel));
    let (mut host, now) = ready();
    for cmd in [Command::Init, Command::Cancel, Command::KeepAlive, Command::Error] {
        assert_eq!(host.start_transaction(cmd, &[], now), Err(HostError::CommandNotAllowed(cmd)));
    }
    let err = host.start_transaction(Command::Cbor, &[0; 7610], now).unwrap_err();
    assert_eq!(err, HostError::PayloadTooLarge { len: 7610, max: 7609 });
    assert_eq!(err.fault(), Fault::Caller);
    host.start_transaction(Command::Cbor, &[1], now + MS).unwrap();
    assert_eq!(host.start_transaction(Command::Cbor, &[1], now), Err(HostError::InProgress));
    let mut rng = StdRng::seed_from_u64(2);
    assert_eq!(host.init(&mut rng, now), Err(HostError::InProgress));
}

#[test]
fn resync_on_a_forgotten_channel_falls_back_to_broadcast() {
    let (mut host, now) = ready();
    while host.poll_transmit().is_some() {}
    let mut rng = StdRng::seed_from_u64(3);
    host.init(&mut rng, now + 100 * MS).unwrap();
    let resync = host.poll_transmit().unwrap();
    assert_eq!(Packet::parse(&resync).unwrap().cid(), CID);
    // The device was re-plugged and does not know CID any more.
    host.handle_report(&reports(CID, Command::Error, &[0x0b])[0], now);
    let again = host.poll_transmit().unwrap();
    assert_eq!(Packet::parse(&again).unwrap().cid(), Cid::BROADCAST);
    let nonce: [u8; 8] = again[7..15].try_into().unwrap();
    assert_eq!(nonce, <[u8; 8]>::try_from(&resync[7..15]).unwrap());
    host.handle_report(
        &reports(Cid::BROADCAST, Command::Init, &init_response(nonce, Cid(77)))[0],
        now,
    );
    assert!(matches!(host.poll_event(), Some(HostEvent::Initialized(i)) if i.cid == Cid(77)));
    assert_eq!(host.cid(), Some(Cid(77)));
}

#[test]
fn init_timeout_and_malformed_init_response() {
    let (mut host, now) = ready();
    host.forget_channel();
    let mut rng = StdRng::seed_from_u64(4);
    host.init(&mut rng, now + 100 * MS).unwrap();
    let nonce: [u8; 8] = host.poll_transmit().unwrap()[7..15].try_into().unwrap();
    host.handle_report(&reports(Cid::BROADCAST, Command::Init, &nonce)[0], now);
    assert!(matches!(failure(&mut host), HostError::BadInitResponse { .. }));
    host.init(&mut rng, now + 100 * MS).unwrap();
    assert_eq!(host.poll_timeout(), Some(now + 100 * MS));
    host.handle_timeout(now + 100 * MS);
    assert!(matches!(failure(&mut host), HostError::Timeout { command: Command::Init, .. }));
}
