//! Property tests of CTAPHID fragmentation: fragment → reassemble is the identity for every
//! payload size the report length allows, across report lengths 8..=64.

// Test helpers outside #[test] fns are not covered by clippy.toml allow-*-in-tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cablebridge_protocol::ctaphid::{fragment, Cid, Command, Packet, Reassembler, ReportLen};
use proptest::prelude::*;

fn round_trip(report_len: ReportLen, payload: &[u8]) {
    let reports: Vec<_> =
        fragment(Cid(0x0102_0304), Command::Cbor, payload, report_len).unwrap().collect();
    assert_eq!(reports.len(), report_len.reports_for(payload.len()));
    let mut r = Reassembler::new(report_len);
    let (last, rest) = reports.split_last().unwrap();
    for rep in rest {
        assert_eq!(rep.len(), report_len.get());
        assert_eq!(r.push(Packet::parse(rep).unwrap()).unwrap(), None);
    }
    let msg = r.push(Packet::parse(last).unwrap()).unwrap().unwrap();
    assert_eq!(msg.payload, payload);
    assert_eq!(msg.cmd, Command::Cbor);
}

#[test]
fn maximum_payload_for_every_report_length() {
    for len in 8..=64 {
        let rl = ReportLen::new(len).unwrap();
        let payload: Vec<u8> = (0..rl.max_payload()).map(|i| (i % 251) as u8).collect();
        round_trip(rl, &payload);
        assert_eq!(rl.reports_for(rl.max_payload()), 129);
        assert!(fragment(Cid(1), Command::Ping, &[0; 8000][..rl.max_payload() + 1], rl).is_err());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cablebridge_protocol::proptest_cases!(96)))]

    #[test]
    fn fragment_then_reassemble_is_identity(
        len in 8usize..=64,
        frac in 0.0f64..=1.0,
        seed in any::<u8>(),
    ) {
        let rl = ReportLen::new(len).unwrap();
        let size = ((rl.max_payload() as f64) * frac) as usize;
        let payload: Vec<u8> = (0..size).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect();
        round_trip(rl, &payload);
    }

    #[test]
    fn default_report_length_any_size(size in 0usize..=7609) {
        let payload = vec![0xa5u8; size];
        round_trip(ReportLen::DEFAULT, &payload);
    }
}
