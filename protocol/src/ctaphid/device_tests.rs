//! Unit tests of [`DeviceState`]: the device rules one by one, and random reports (proptest)
//! checking that nothing panics and the internal invariants hold after every input.

use super::*;
use proptest::prelude::*;
use rand::{rngs::StdRng, SeedableRng};

fn t0() -> Instant {
    // One clock read per test, in test code only; the state machine never reads it.
    #[allow(clippy::disallowed_methods)]
    Instant::now()
}

fn reports(cid: Cid, cmd: Command, payload: &[u8]) -> Vec<Report> {
    fragment(cid, cmd, payload, ReportLen::DEFAULT).unwrap().collect()
}

fn drain(dev: &mut DeviceState) -> Vec<Message> {
    let mut r = Reassembler::new(ReportLen::DEFAULT);
    let mut out = vec![];
    while let Some(rep) = dev.poll_transmit() {
        if let Some(m) = r.push(Packet::parse(&rep).unwrap()).unwrap() {
            out.push(m);
        }
    }
    out
}

fn error(cid: Cid, code: ErrorCode) -> Message {
    Message { cid, cmd: Command::Error, payload: vec![code.to_u8()] }
}

/// Allocates a channel and returns it.
fn open(dev: &mut DeviceState, rng: &mut StdRng, now: Instant) -> Cid {
    dev.handle_report(&reports(Cid::BROADCAST, Command::Init, &[9; 8])[0], now, rng);
    let msgs = drain(dev);
    let (nonce, info) = DeviceInfo::parse(&msgs[0].payload).unwrap();
    assert_eq!(nonce, [9; 8]);
    assert_eq!(msgs[0].cid, Cid::BROADCAST);
    info.cid
}

impl DeviceState {
    fn check_invariants(&self) {
        let mut seen = std::collections::HashSet::new();
        for c in &self.channels {
            assert!(c.is_allocatable(), "allocated {c}");
            assert!(seen.insert(*c), "duplicate {c}");
        }
        assert!(self.channels.len() <= self.config.max_channels.max(1));
        match self.busy {
            Busy::Idle => assert!(self.reassembler.in_progress().is_none()),
            Busy::Receiving { cid, .. } => {
                assert_eq!(self.reassembler.in_progress().map(|p| p.0), Some(cid));
                assert!(cid == Cid::BROADCAST || self.channels.contains(&cid));
            }
            Busy::Processing { cid } => {
                assert!(self.reassembler.in_progress().is_none());
                assert!(self.channels.contains(&cid));
            }
        }
        for r in &self.transmit {
            assert_eq!(r.len(), self.config.report_len.get());
        }
    }
}

#[test]
fn allocates_unique_channels_and_answers_ping() {
    let mut rng = StdRng::seed_from_u64(1);
    let now = t0();
    let mut dev = DeviceState::new(DeviceConfig::default());
    let a = open(&mut dev, &mut rng, now);
    let b = open(&mut dev, &mut rng, now);
    assert_ne!(a, b);
    for rep in reports(a, Command::Ping, &[5; 100]) {
        dev.handle_report(&rep, now, &mut rng);
    }
    let msgs = drain(&mut dev);
    assert_eq!(msgs, vec![Message { cid: a, cmd: Command::Ping, payload: vec![5; 100] }]);
    dev.check_invariants();
}

#[test]
fn channel_errors() {
    let mut rng = StdRng::seed_from_u64(2);
    let now = t0();
    let mut dev = DeviceState::new(DeviceConfig::default());
    dev.handle_report(&reports(Cid(0x1234), Command::Ping, &[1])[0], now, &mut rng);
    dev.handle_report(&reports(Cid::RESERVED, Command::Ping, &[1])[0], now, &mut rng);
    dev.handle_report(&reports(Cid::BROADCAST, Command::Ping, &[1])[0], now, &mut rng);
    assert_eq!(
        drain(&mut dev),
        vec![
            error(Cid(0x1234), ErrorCode::InvalidChannel),
            error(Cid::RESERVED, ErrorCode::InvalidChannel),
            error(Cid::BROADCAST, ErrorCode::InvalidChannel),
        ]
    );
    let a = open(&mut dev, &mut rng, now);
    dev.handle_report(&reports(a, Command::KeepAlive, &[1])[0], now, &mut rng);
    dev.handle_report(&reports(a, Command::Init, &[1; 7])[0], now, &mut rng);
    dev.handle_report(&reports(a, Command::Msg, &[1])[0], now, &mut rng);
    assert_eq!(
        drain(&mut dev),
        vec![
            error(a, ErrorCode::InvalidCmd),
            error(a, ErrorCode::InvalidLen),
            // NMSG is set in the default capabilities.
            error(a, ErrorCode::InvalidCmd),
        ]
    );
}

#[test]
fn busy_seq_and_message_timeout() {
    let mut rng = StdRng::seed_from_u64(3);
    let now = t0();
    let mut dev = DeviceState::new(DeviceConfig::default());
    let a = open(&mut dev, &mut rng, now);
    let b = open(&mut dev, &mut rng, now);
    let big = reports(a, Command::Cbor, &[1; 200]);
    dev.handle_report(&big[0], now, &mut rng);
    // Another channel while receiving: busy. A spurious continuation: ignored.
    dev.handle_report(&reports(b, Command::Ping, &[])[0], now, &mut rng);
    dev.handle_report(&reports(b, Command::Cbor, &[1; 100])[1], now, &mut rng);
    // Skipped SEQ: INVALID_SEQ and the message is dropped.
    dev.handle_report(&big[2], now, &mut rng);
    assert_eq!(
        drain(&mut dev),
        vec![error(b, ErrorCode::ChannelBusy), error(a, ErrorCode::InvalidSeq)]
    );
    // Continuations stop: MSG_TIMEOUT at the deadline, not before.
    dev.handle_report(&big[0], now, &mut rng);
    dev.handle_report(&big[1], now + Duration::from_millis(400), &mut rng);
    let deadline = dev.poll_timeout().unwrap();
    assert_eq!(deadline, now + Duration::from_millis(900));
    dev.handle_timeout(deadline - Duration::from_millis(1));
    assert!(drain(&mut dev).is_empty());
    dev.handle_timeout(deadline);
    assert_eq!(drain(&mut dev), vec![error(a, ErrorCode::MsgTimeout)]);
    dev.check_invariants();
}

#[test]
fn request_keepalive_cancel_and_resync() {
    let mut rng = StdRng::seed_from_u64(4);
    let now = t0();
    let mut dev = DeviceState::new(DeviceConfig::default());
    let a = open(&mut dev, &mut rng, now);
    assert_eq!(dev.respond(a, Command::Cbor, &[0]), Err(DeviceError::NoPendingRequest { cid: a }));
    dev.handle_report(&reports(a, Command::Cbor, &[4])[0], now, &mut rng);
    assert_eq!(
        dev.poll_event(),
        Some(DeviceEvent::Request { cid: a, cmd: Command::Cbor, payload: vec![4] })
    );
    dev.keepalive(a, KeepAliveStatus::UpNeeded).unwrap();
    dev.handle_report(&reports(a, Command::Cancel, &[])[0], now, &mut rng);
    assert_eq!(dev.poll_event(), Some(DeviceEvent::Cancel { cid: a }));
    dev.respond(a, Command::Cbor, &[0x2d]).unwrap();
    assert_eq!(
        drain(&mut dev),
        vec![
            Message { cid: a, cmd: Command::KeepAlive, payload: vec![2] },
            Message { cid: a, cmd: Command::Cbor, payload: vec![0x2d] },
        ]
    );
    // Resync while processing: the request is cancelled and the late answer refused.
    dev.handle_report(&reports(a, Command::Cbor, &[4])[0], now, &mut rng);
    dev.poll_event();
    dev.handle_report(&reports(a, Command::Init, &[7; 8])[0], now, &mut rng);
    assert_eq!(dev.poll_event(), Some(DeviceEvent::Cancel { cid: a }));
    let init = drain(&mut dev);
    assert_eq!(init[0].cid, a);
    assert_eq!(DeviceInfo::parse(&init[0].payload).unwrap().1.cid, a);
    assert!(dev.respond(a, Command::Cbor, &[0]).is_err());
}

#[test]
fn wink_and_lock() {
    let mut rng = StdRng::seed_from_u64(5);
    let now = t0();
    let mut dev = DeviceState::new(DeviceConfig::default());
    let a = open(&mut dev, &mut rng, now);
    let b = open(&mut dev, &mut rng, now);
    dev.handle_report(&reports(a, Command::Wink, &[])[0], now, &mut rng);
    assert_eq!(dev.poll_event(), Some(DeviceEvent::Wink { cid: a }));
    dev.handle_report(&reports(a, Command::Lock, &[11])[0], now, &mut rng);
    dev.handle_report(&reports(a, Command::Lock, &[2])[0], now, &mut rng);
    dev.handle_report(&reports(b, Command::Ping, &[1])[0], now, &mut rng);
    dev.handle_report(&reports(a, Command::Ping, &[1])[0], now, &mut rng);
    assert_eq!(dev.poll_timeout(), Some(now + Duration::from_secs(2)));
    dev.handle_report(&reports(b, Command::Ping, &[2])[0], now + Duration::from_secs(2), &mut rng);
    let empty = |cmd| Message { cid: a, cmd, payload: vec![] };
    assert_eq!(
        drain(&mut dev),
        vec![
            empty(Command::Wink),
            error(a, ErrorCode::InvalidPar),
            empty(Command::Lock),
            error(b, ErrorCode::ChannelBusy),
            Message { cid: a, cmd: Command::Ping, payload: vec![1] },
            Message { cid: b, cmd: Command::Ping, payload: vec![2] },
        ]
    );
}

#[test]
fn full_channel_table_evicts_the_oldest_idle_channel() {
    let mut rng = StdRng::seed_from_u64(6);
    let now = t0();
    let config = DeviceConfig { max_channels: 2, ..DeviceConfig::default() };
    let mut dev = DeviceState::new(config);
    let a = open(&mut dev, &mut rng, now);
    dev.handle_report(&reports(a, Command::Cbor, &[1])[0], now, &mut rng);
    let b = open(&mut dev, &mut rng, now);
    let c = open(&mut dev, &mut rng, now);
    // `a` is processing, so `b` goes.
    assert_eq!(dev.channels().collect::<Vec<_>>(), vec![a, c]);
    dev.handle_report(&reports(b, Command::Ping, &[])[0], now, &mut rng);
    assert!(drain(&mut dev).contains(&error(b, ErrorCode::InvalidChannel)));
    dev.check_invariants();
}

fn arb_report() -> impl Strategy<Value = Vec<u8>> {
    // Bias the CID towards the few values that matter so that random input reaches deep states.
    let cid = prop_oneof![
        Just(vec![0xff; 4]),
        Just(vec![0; 4]),
        Just(vec![0xa1, 0xb2, 0xc3, 0xd4]),
        prop::collection::vec(any::<u8>(), 4),
    ];
    let cmd = prop_oneof![
        Just(0x86u8),
        Just(0x81),
        Just(0x84),
        Just(0x88),
        Just(0x90),
        Just(0x91),
        0u8..4,
        any::<u8>()
    ];
    let bcnt = prop_oneof![
        Just(vec![0, 8]),
        Just(vec![0, 1]),
        Just(vec![1, 0]),
        prop::collection::vec(any::<u8>(), 2)
    ];
    let tail = prop::collection::vec(any::<u8>(), 0..64);
    (cid, cmd, bcnt, tail, 0usize..70).prop_map(|(mut c, cmd, b, t, cut)| {
        c.push(cmd);
        c.extend(b);
        c.extend(t);
        c.truncate(cut.max(1));
        c
    })
}

/// An RNG that hands out 0xa1b2c3d4 first, so random reports can hit an allocated channel.
struct FixedFirst(u32, StdRng);
impl rand_core::RngCore for FixedFirst {
    fn next_u32(&mut self) -> u32 {
        let v = self.0;
        self.0 = self.1.next_u32();
        v
    }
    fn next_u64(&mut self) -> u64 {
        self.1.next_u64()
    }
    fn fill_bytes(&mut self, d: &mut [u8]) {
        self.1.fill_bytes(d)
    }
    fn try_fill_bytes(&mut self, d: &mut [u8]) -> Result<(), rand_core::Error> {
        self.1.try_fill_bytes(d)
    }
}
impl rand_core::CryptoRng for FixedFirst {}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(crate::proptest_cases!(128)))]
    #[test]
    fn random_reports_never_panic_and_keep_state_consistent(
        inputs in prop::collection::vec((arb_report(), 0u64..400, any::<u8>()), 1..60),
    ) {
        let mut rng = FixedFirst(0xa1b2_c3d4, StdRng::seed_from_u64(7));
        let base = t0();
        let mut now = base;
        let mut dev = DeviceState::new(DeviceConfig { max_channels: 3, ..DeviceConfig::default() });
        for (report, dt, app) in inputs {
            now += Duration::from_millis(dt);
            dev.handle_report(&report, now, &mut rng);
            dev.check_invariants();
            // The application sometimes answers whatever is pending.
            if let Some(cid) = dev.processing() {
                match app % 3 {
                    0 => dev.respond(cid, Command::Cbor, &[0]).unwrap(),
                    1 => dev.keepalive(cid, KeepAliveStatus::Processing).unwrap(),
                    _ => {}
                }
            }
            dev.handle_timeout(now);
            dev.check_invariants();
            while dev.poll_event().is_some() {}
            while let Some(r) = dev.poll_transmit() {
                prop_assert!(Packet::parse(&r).is_ok());
            }
        }
    }
}
