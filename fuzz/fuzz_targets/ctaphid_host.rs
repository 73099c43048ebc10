//! CTAPHID host side (protocol/src/ctaphid/host.rs): the channel state machine fed reports from a
//! hostile device (any length, any channel, any sequence), interleaved with INIT, transactions,
//! cancels and time passing. Checks the machine never panics, stays drainable, and ends idle
//! after its deadline.
#![no_main]

use arbitrary::Arbitrary;
use cablebridge_protocol::ctaphid::{Command, HostChannel, HostConfig, ReportLen};
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};

#[derive(Debug, Arbitrary)]
enum Op {
    Report(Vec<u8>),
    Init,
    Transaction { cmd: u8, payload: Vec<u8> },
    Cancel,
    ForgetChannel,
    Advance(u16),
}

#[derive(Debug, Arbitrary)]
struct Input {
    report_len: u8,
    ops: Vec<Op>,
}

fuzz_target!(|input: Input| {
    let report_len = ReportLen::new(usize::from(input.report_len)).unwrap_or(ReportLen::DEFAULT);
    let config = HostConfig { report_len, cancel_grace: Duration::from_millis(500) };
    let mut host = HostChannel::new(config);
    let mut rng = cablebridge_fuzz::rng(1);
    let mut now = Instant::now();
    let deadline = Duration::from_secs(5);
    for op in input.ops.into_iter().take(256) {
        match op {
            Op::Report(r) => host.handle_report(&r, now),
            Op::Init => {
                let _ = host.init(&mut rng, now + deadline);
            }
            Op::Transaction { cmd, payload } => {
                let _ = host.start_transaction(Command::from_byte(cmd), &payload, now + deadline);
            }
            Op::Cancel => host.cancel(now),
            Op::ForgetChannel => host.forget_channel(),
            Op::Advance(ms) => {
                now += Duration::from_millis(u64::from(ms));
                host.handle_timeout(now);
            }
        }
        while host.poll_transmit().is_some() {}
        while host.poll_event().is_some() {}
        if let Some(at) = host.poll_timeout() {
            assert!(at <= now + deadline + Duration::from_secs(1), "timer beyond every deadline");
        }
    }
    // Whatever happened, the deadlines end every pending operation.
    now += deadline + Duration::from_secs(2);
    host.handle_timeout(now);
    while host.poll_event().is_some() {}
    assert!(host.is_idle(), "host still busy after every deadline passed");
});
