//! CTAPHID host(s) against the CTAPHID device in memory, under a simulated clock (STYLE.md
//! principle 8). Every device report is delivered to every host, as on a shared hidraw node.

// Test helpers outside #[test] fns are not covered by clippy.toml allow-*-in-tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use cablebridge_protocol::ctaphid::{
    Cid, Command, DeviceConfig, DeviceEvent, DeviceState, ErrorCode, HostChannel, HostConfig,
    HostError, HostEvent, KeepAliveStatus, Packet, Report, Waiting,
};
use cablebridge_protocol::error::{Classify, Fault, Stage};
use rand::{rngs::StdRng, SeedableRng};

const MS: Duration = Duration::from_millis(1);

struct Pair {
    hosts: Vec<HostChannel>,
    host_events: Vec<Vec<HostEvent>>,
    dev: DeviceState,
    dev_events: Vec<DeviceEvent>,
    /// Every report each side sent, for assertions on the wire.
    to_device: Vec<Report>,
    base: Instant,
    now: Instant,
    rng: StdRng,
    /// Fault injection: reports from the device for which this returns false are dropped.
    device_filter: Box<dyn FnMut(&Report) -> bool>,
}

impl Pair {
    fn new(hosts: usize) -> Pair {
        #[allow(clippy::disallowed_methods)] // the one clock read: the simulated clock's origin
        let base = Instant::now();
        Pair {
            hosts: (0..hosts).map(|_| HostChannel::new(HostConfig::default())).collect(),
            host_events: vec![vec![]; hosts],
            dev: DeviceState::new(DeviceConfig::default()),
            dev_events: vec![],
            to_device: vec![],
            base,
            now: base,
            rng: StdRng::seed_from_u64(42),
            device_filter: Box::new(|_| true),
        }
    }

    /// A pair whose hosts all have a channel.
    fn initialized(hosts: usize) -> Pair {
        let mut p = Pair::new(hosts);
        for h in 0..hosts {
            p.hosts[h].init(&mut p.rng, p.now + 100 * MS).unwrap();
            p.run();
            match p.host_events[h].pop() {
                Some(HostEvent::Initialized(info)) => {
                    assert_eq!(Some(info.cid), p.hosts[h].cid());
                    assert_eq!(info.protocol_version, 2);
                }
                other => panic!("host {h}: expected Initialized, got {other:?}"),
            }
        }
        p
    }

    /// Delivers reports until nothing moves.
    fn run(&mut self) {
        loop {
            let mut moved = false;
            for h in 0..self.hosts.len() {
                while let Some(r) = self.hosts[h].poll_transmit() {
                    moved = true;
                    self.to_device.push(r.clone());
                    self.dev.handle_report(&r, self.now, &mut self.rng);
                }
            }
            while let Some(r) = self.dev.poll_transmit() {
                moved = true;
                if (self.device_filter)(&r) {
                    self.deliver_to_hosts(&r);
                }
            }
            self.collect();
            if !moved {
                return;
            }
        }
    }

    fn deliver_to_hosts(&mut self, report: &[u8]) {
        for h in &mut self.hosts {
            h.handle_report(report, self.now);
        }
    }

    fn collect(&mut self) {
        for (h, evs) in self.hosts.iter_mut().zip(&mut self.host_events) {
            while let Some(e) = h.poll_event() {
                evs.push(e);
            }
        }
        while let Some(e) = self.dev.poll_event() {
            self.dev_events.push(e);
        }
    }

    /// Moves the clock, firing timers that are due on the way (in order).
    fn advance(&mut self, by: Duration) {
        let target = self.now + by;
        loop {
            let next = self
                .hosts
                .iter()
                .filter_map(|h| h.poll_timeout())
                .chain(self.dev.poll_timeout())
                .filter(|t| *t <= target)
                .min();
            let Some(t) = next else { break };
            self.now = self.now.max(t);
            for h in &mut self.hosts {
                h.handle_timeout(self.now);
            }
            self.dev.handle_timeout(self.now);
            self.run();
        }
        self.now = target;
        self.run();
    }

    fn cid(&self, h: usize) -> Cid {
        self.hosts[h].cid().unwrap()
    }

    fn elapsed(&self) -> Duration {
        self.now - self.base
    }

    fn take_request(&mut self) -> (Cid, Command, Vec<u8>) {
        match self.dev_events.remove(0) {
            DeviceEvent::Request { cid, cmd, payload } => (cid, cmd, payload),
            other => panic!("expected a request, got {other:?}"),
        }
    }
}

#[test]
fn init_then_ping_of_boundary_sizes() {
    let mut p = Pair::initialized(1);
    for len in [0usize, 1, 57, 58, 7609] {
        let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        p.hosts[0].start_transaction(Command::Ping, &payload, p.now + 1000 * MS).unwrap();
        p.run();
        assert_eq!(
            p.host_events[0].pop(),
            Some(HostEvent::Response { cmd: Command::Ping, payload }),
            "len {len}"
        );
        assert!(p.hosts[0].is_idle());
    }
    // 7609 bytes took 129 reports each way.
    assert_eq!(p.to_device.len(), 1 + 1 + 1 + 1 + 2 + 129);
    assert_eq!(p.hosts[0].stats().foreign_frames, 0);
}

#[test]
fn cbor_round_trip_with_keepalives_surfaced() {
    let mut p = Pair::initialized(1);
    p.hosts[0].start_transaction(Command::Cbor, &[0x04], p.now + 30_000 * MS).unwrap();
    p.run();
    let (cid, cmd, payload) = p.take_request();
    assert_eq!((cid, cmd, payload), (p.cid(0), Command::Cbor, vec![0x04]));
    // The app waits 1 s for a touch, sending keepalives every 100 ms.
    for i in 0..10 {
        p.advance(100 * MS);
        let status = if i < 2 { KeepAliveStatus::Processing } else { KeepAliveStatus::UpNeeded };
        p.dev.keepalive(cid, status).unwrap();
        p.run();
    }
    let response: Vec<u8> = [0x00].into_iter().chain(vec![0xa5; 300]).collect();
    p.dev.respond(cid, Command::Cbor, &response).unwrap();
    p.run();
    let evs = std::mem::take(&mut p.host_events[0]);
    let keepalives = evs.iter().filter(|e| matches!(e, HostEvent::KeepAlive(_))).count();
    assert_eq!(keepalives, 10);
    assert_eq!(evs[2], HostEvent::KeepAlive(KeepAliveStatus::UpNeeded));
    assert_eq!(evs.last(), Some(&HostEvent::Response { cmd: Command::Cbor, payload: response }));
    assert_eq!(p.hosts[0].stats().keepalives, 10);
}

#[test]
fn deadline_sends_cancel_and_times_out() {
    let mut p = Pair::initialized(1);
    let start = p.elapsed();
    p.hosts[0].start_transaction(Command::Cbor, &[0x01, 0xa0], p.now + 2000 * MS).unwrap();
    p.run();
    let (cid, _, _) = p.take_request();
    p.advance(1999 * MS);
    assert!(p.host_events[0].is_empty());
    p.advance(MS);
    // CANCEL went out on our channel at the deadline, and the device app was told.
    let last = p.to_device.last().unwrap();
    assert_eq!((&last[..4], last[4]), (&cid.to_bytes()[..], 0x91));
    assert_eq!(p.dev_events, vec![DeviceEvent::Cancel { cid }]);
    assert!(p.host_events[0].is_empty(), "waits the grace period for the device's answer");
    // The app answers as CTAP 2.1 says: CTAP2_ERR_KEEPALIVE_CANCEL.
    p.advance(20 * MS);
    p.dev.respond(cid, Command::Cbor, &[0x2d]).unwrap();
    p.run();
    let err = HostError::Timeout { command: Command::Cbor, waiting: Waiting::Response };
    assert_eq!(p.host_events[0], vec![HostEvent::Failed(err.clone())]);
    assert_eq!((err.fault(), err.stage()), (Fault::Peer, Stage::CtapHid));
    assert_eq!(p.elapsed() - start, 2020 * MS);
    // The channel is usable afterwards.
    p.hosts[0].start_transaction(Command::Ping, b"again", p.now + 100 * MS).unwrap();
    p.run();
    assert!(matches!(p.host_events[0].last(), Some(HostEvent::Response { .. })));
}

#[test]
fn silent_device_times_out_after_grace() {
    let mut p = Pair::initialized(1);
    p.hosts[0].start_transaction(Command::Cbor, &[0x01], p.now + 1000 * MS).unwrap();
    p.run();
    p.advance(1000 * MS + 499 * MS);
    assert!(p.host_events[0].is_empty());
    p.advance(MS);
    assert_eq!(
        p.host_events[0],
        vec![HostEvent::Failed(HostError::Timeout {
            command: Command::Cbor,
            waiting: Waiting::Response
        })]
    );
}

#[test]
fn explicit_cancel_for_touch_to_select_losers() {
    let mut p = Pair::initialized(1);
    p.hosts[0].start_transaction(Command::Cbor, &[0x01], p.now + 30_000 * MS).unwrap();
    p.run();
    let (cid, _, _) = p.take_request();
    p.advance(50 * MS);
    p.hosts[0].cancel(p.now);
    p.run();
    assert_eq!(p.dev_events, vec![DeviceEvent::Cancel { cid }]);
    p.dev.respond(cid, Command::Cbor, &[0x2d]).unwrap();
    p.run();
    let err = HostError::Cancelled { command: Command::Cbor };
    assert_eq!(p.host_events[0], vec![HostEvent::Failed(err.clone())]);
    assert_eq!(err.fault(), Fault::Caller);
}

#[test]
fn foreign_frames_interleaved_are_ignored_and_counted() {
    let mut p = Pair::initialized(1);
    let payload = vec![0x5a; 1000];
    p.hosts[0].start_transaction(Command::Ping, &payload, p.now + 1000 * MS).unwrap();
    // Let the device answer, but interleave another process's traffic with every report.
    let foreign: Vec<Report> = cablebridge_protocol::ctaphid::fragment(
        Cid(0x0bad_0bad),
        Command::Cbor,
        &[1; 200],
        Default::default(),
    )
    .unwrap()
    .collect();
    let mut interleave = foreign.into_iter().cycle();
    while let Some(r) = p.hosts[0].poll_transmit() {
        p.dev.handle_report(&r, p.now, &mut p.rng);
    }
    let mut sent = 0;
    while let Some(r) = p.dev.poll_transmit() {
        let f = interleave.next().unwrap();
        p.deliver_to_hosts(&f);
        p.deliver_to_hosts(&r);
        sent += 1;
    }
    p.collect();
    assert_eq!(p.host_events[0], vec![HostEvent::Response { cmd: Command::Ping, payload }]);
    assert_eq!(p.hosts[0].stats().foreign_frames, sent);
}

#[test]
fn truncated_response_ends_in_timeout_naming_the_continuation() {
    let mut p = Pair::initialized(1);
    // The device stops after the init packet and one continuation.
    let mut n = 0;
    p.device_filter = Box::new(move |_| {
        n += 1;
        n <= 2
    });
    p.hosts[0].start_transaction(Command::Ping, &[3; 500], p.now + 800 * MS).unwrap();
    p.run();
    p.advance(800 * MS);
    assert_eq!(
        p.host_events[0],
        vec![HostEvent::Failed(HostError::Timeout {
            command: Command::Ping,
            waiting: Waiting::Continuation { received: 57 + 59, expected: 500 },
        })]
    );
}

#[test]
fn truncated_request_makes_the_device_answer_msg_timeout() {
    let mut p = Pair::initialized(1);
    p.hosts[0].start_transaction(Command::Cbor, &[3; 500], p.now + 5000 * MS).unwrap();
    // Only the first two request reports reach the device.
    for _ in 0..2 {
        let r = p.hosts[0].poll_transmit().unwrap();
        p.dev.handle_report(&r, p.now, &mut p.rng);
    }
    while p.hosts[0].poll_transmit().is_some() {}
    p.advance(600 * MS);
    assert_eq!(
        p.host_events[0],
        vec![HostEvent::Failed(HostError::Device {
            command: Command::Cbor,
            code: ErrorCode::MsgTimeout
        })]
    );
}

#[test]
fn keepalive_storm_does_not_extend_the_deadline() {
    let mut p = Pair::initialized(1);
    p.hosts[0].start_transaction(Command::Cbor, &[0x01], p.now + 1000 * MS).unwrap();
    p.run();
    let (cid, _, _) = p.take_request();
    let start = p.now;
    // Keepalives every 5 ms, delivered only through handle_report: the driver never calls
    // handle_timeout, as a naive read-first loop under a flood would.
    let mut t = start;
    while p.host_events[0].iter().all(|e| !matches!(e, HostEvent::Failed(_))) {
        t += 5 * MS;
        assert!(t < start + 3000 * MS, "host never timed out");
        p.dev.keepalive(cid, KeepAliveStatus::UpNeeded).unwrap();
        let r = p.dev.poll_transmit().unwrap();
        p.hosts[0].handle_report(&r, t);
        p.collect();
    }
    assert_eq!(
        p.host_events[0].last(),
        Some(&HostEvent::Failed(HostError::Timeout {
            command: Command::Cbor,
            waiting: Waiting::Response
        }))
    );
    // CANCEL at the deadline, failure at deadline + grace (500 ms), to the 5 ms tick.
    assert_eq!(t - start, 1500 * MS);
    let cancel = p.hosts[0].poll_transmit().unwrap();
    assert_eq!(cancel[4], 0x91);
}

#[test]
fn two_hosts_racing_one_device() {
    let mut p = Pair::initialized(2);
    let (a, b) = (p.cid(0), p.cid(1));
    assert_ne!(a, b);
    p.hosts[0].start_transaction(Command::Cbor, &[0x01, 0xaa], p.now + 5000 * MS).unwrap();
    p.run();
    p.hosts[1].start_transaction(Command::Cbor, &[0x01, 0xbb], p.now + 5000 * MS).unwrap();
    p.run();
    // B is told to retry; A's request is the one the device holds.
    assert_eq!(p.host_events[1], vec![HostEvent::Failed(HostError::Busy)]);
    assert_eq!(p.take_request(), (a, Command::Cbor, vec![0x01, 0xaa]));
    p.advance(100 * MS);
    p.dev.respond(a, Command::Cbor, &[0x00, 0xaa]).unwrap();
    p.run();
    assert_eq!(
        p.host_events[0],
        vec![HostEvent::Response { cmd: Command::Cbor, payload: vec![0x00, 0xaa] }]
    );
    // B retries and completes; each host saw the other's frames only as foreign.
    p.hosts[1].start_transaction(Command::Cbor, &[0x01, 0xbb], p.now + 5000 * MS).unwrap();
    p.run();
    assert_eq!(p.take_request(), (b, Command::Cbor, vec![0x01, 0xbb]));
    p.dev.respond(b, Command::Cbor, &[0x00, 0xbb]).unwrap();
    p.run();
    assert_eq!(
        p.host_events[1].last(),
        Some(&HostEvent::Response { cmd: Command::Cbor, payload: vec![0x00, 0xbb] })
    );
    assert_eq!(p.host_events[0].len(), 1, "A saw nothing of B's transaction");
    assert!(p.hosts[0].stats().foreign_frames >= 2);
    assert!(p.hosts[1].stats().foreign_frames >= 1);
}

#[test]
fn resync_after_timeout_keeps_the_channel() {
    let mut p = Pair::initialized(1);
    let cid = p.cid(0);
    p.hosts[0].start_transaction(Command::Cbor, &[0x01], p.now + 100 * MS).unwrap();
    p.run();
    p.advance(700 * MS);
    assert!(matches!(p.host_events[0].pop(), Some(HostEvent::Failed(HostError::Timeout { .. }))));
    // The app never answered; resync makes the device drop the request.
    p.hosts[0].init(&mut p.rng, p.now + 100 * MS).unwrap();
    p.run();
    assert!(matches!(p.host_events[0].pop(), Some(HostEvent::Initialized(i)) if i.cid == cid));
    assert_eq!(p.dev.processing(), None);
    assert_eq!(p.dev_events.last(), Some(&DeviceEvent::Cancel { cid }));
}

#[test]
fn packets_on_the_wire_have_the_report_length() {
    let mut p = Pair::initialized(1);
    p.hosts[0].start_transaction(Command::Ping, &[1; 100], p.now + 100 * MS).unwrap();
    p.run();
    assert!(p.to_device.iter().all(|r| r.len() == 64));
    assert!(p.to_device.iter().all(|r| Packet::parse(r).is_ok()));
}
