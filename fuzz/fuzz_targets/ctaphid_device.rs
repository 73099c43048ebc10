//! CTAPHID device side (protocol/src/ctaphid/device.rs), as the virtual key runs it: reports from a
//! hostile host (fragments, interleaved channels, bad sequence numbers, LOCK, INIT resync) with
//! the application answering, cancelling and time passing; every reassembled request is also
//! fed to the host-side reassembler through the device's own fragmenter (both directions).
#![no_main]

use arbitrary::Arbitrary;
use cablebridge_protocol::ctaphid::{
    Cid, Command, DeviceConfig, DeviceEvent, DeviceState, ErrorCode, KeepAliveStatus, Packet,
    Reassembler, ReportLen,
};
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};

#[derive(Debug, Arbitrary)]
enum Op {
    Report(Vec<u8>),
    Answer { payload: Vec<u8> },
    AnswerError(u8),
    KeepAlive(u8),
    Advance(u16),
}

#[derive(Debug, Arbitrary)]
struct Input {
    report_len: u8,
    max_channels: u8,
    ops: Vec<Op>,
}

fuzz_target!(|input: Input| {
    let report_len = ReportLen::new(usize::from(input.report_len)).unwrap_or(ReportLen::DEFAULT);
    let config = DeviceConfig {
        report_len,
        max_channels: usize::from(input.max_channels % 32) + 1,
        ..DeviceConfig::default()
    };
    let mut device = DeviceState::new(config);
    let mut rng = cablebridge_fuzz::rng(2);
    let mut now = Instant::now();
    let mut pending: Option<(Cid, Command)> = None;
    // The host's view of what the device sends back.
    let mut host_side = Reassembler::new(report_len);
    for op in input.ops.into_iter().take(256) {
        match op {
            Op::Report(r) => device.handle_report(&r, now, &mut rng),
            Op::Answer { payload } => {
                if let Some((cid, cmd)) = pending.take() {
                    let _ = device.respond(cid, cmd, &payload);
                }
            }
            Op::AnswerError(code) => {
                if let Some((cid, _)) = pending.take() {
                    let _ = device.respond_error(cid, ErrorCode::from_u8(code));
                }
            }
            Op::KeepAlive(status) => {
                if let Some((cid, _)) = pending {
                    let _ = device.keepalive(cid, KeepAliveStatus::from_u8(status));
                }
            }
            Op::Advance(ms) => {
                now += Duration::from_millis(u64::from(ms));
                device.handle_timeout(now);
            }
        }
        while let Some(report) = device.poll_transmit() {
            let bytes: &[u8] = &report;
            assert_eq!(bytes.len(), report_len.get(), "report of the wrong length");
            if let Ok(packet) = Packet::parse(bytes) {
                let _ = host_side.push(packet);
            }
        }
        while let Some(event) = device.poll_event() {
            match event {
                DeviceEvent::Request { cid, cmd, payload } => {
                    assert!(payload.len() <= report_len.max_payload());
                    pending = Some((cid, cmd));
                }
                DeviceEvent::Cancel { cid } if pending.is_some_and(|(p, _)| p == cid) => {
                    pending = None;
                }
                _ => {}
            }
        }
        if let Some(cid) = device.processing() {
            assert!(device.channels().any(|c| c == cid), "processing an unknown channel");
        }
    }
});
