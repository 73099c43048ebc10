//! Lab fault switches ([`LabFault`]): ways the virtual key can misbehave on purpose, for the
//! hostile-device suite and for lab rigs that want to see how a client copes. (Not to be
//! confused with the protocol's `Fault` taxonomy of who is to blame for an error.)
//!
//! Faults only touch CBOR transactions. INIT, PING, WINK and LOCK keep working, so a client can
//! always get a channel and then meet the fault where real keys misbehave: in the long answer to
//! a CTAP2 request. The first four are `--fault` values on the command line; the rest are
//! programmatic (tests) because they model wire corruption rather than a device "mode".
//!
//! This is not a fuzzer: each fault is one documented behaviour with one expected client outcome.

use std::fmt;
use std::str::FromStr;

use cablebridge_protocol::ctaphid::{Cid, Report};

/// How the key misbehaves on CBOR requests.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LabFault {
    /// Behave.
    #[default]
    None,
    /// Read CBOR requests, never answer them (not even CANCEL); only INIT resync frees the key.
    NeverAnswer,
    /// Answer every CBOR request only with KEEPALIVE(PROCESSING), every 100 ms, until resync.
    KeepaliveForever,
    /// Send CBOR responses on a different channel ID than the request's.
    WrongCid,
    /// Answer every CBOR request with `ERR_CHANNEL_BUSY`.
    Busy,
    /// Corrupt the SEQ number of the first continuation packet of a multi-packet response.
    BadSequence,
    /// Send only the initialization packet of a multi-packet response, then nothing.
    TruncatedResponse,
    /// Announce a BCNT larger than CTAPHID allows in the response's initialization packet.
    OversizedBcnt,
    /// Precede every response packet with a packet for another (foreign) channel.
    ForeignFrames,
    /// On a CBOR request send one KEEPALIVE, then close the socket and stop the key.
    VanishMidTransaction,
}

impl LabFault {
    /// The names accepted by `--fault` (the CLI-level faults).
    pub const CLI_NAMES: &'static [&'static str] =
        &["never-answer", "keepalive-forever", "wrong-cid", "busy"];

    /// The stable name (also used in logs and `--json` output).
    pub fn name(self) -> &'static str {
        match self {
            LabFault::None => "none",
            LabFault::NeverAnswer => "never-answer",
            LabFault::KeepaliveForever => "keepalive-forever",
            LabFault::WrongCid => "wrong-cid",
            LabFault::Busy => "busy",
            LabFault::BadSequence => "bad-sequence",
            LabFault::TruncatedResponse => "truncated-response",
            LabFault::OversizedBcnt => "oversized-bcnt",
            LabFault::ForeignFrames => "foreign-frames",
            LabFault::VanishMidTransaction => "vanish",
        }
    }

    /// Rewrites the reports of one CBOR response (`cid`'s, already fragmented) as this fault
    /// sends them. Faults that act before a response exists return the reports unchanged.
    pub(crate) fn mangle_response(self, cid: Cid, reports: Vec<Report>) -> Vec<Report> {
        match self {
            LabFault::WrongCid => reports
                .into_iter()
                .map(|mut r| {
                    set_cid(&mut r, other_cid(cid));
                    r
                })
                .collect(),
            LabFault::BadSequence => reports
                .into_iter()
                .enumerate()
                .map(|(i, mut r)| {
                    if i == 1 {
                        // The first continuation must carry SEQ 0; 5 is out of order.
                        if let Some(seq) = r.as_mut_slice().get_mut(4) {
                            *seq = 5;
                        }
                    }
                    r
                })
                .collect(),
            LabFault::TruncatedResponse => reports.into_iter().take(1).collect(),
            LabFault::OversizedBcnt => reports
                .into_iter()
                .take(1)
                .map(|mut r| {
                    // BCNT is bytes 5..7 of an initialization packet; 0xFFFF > the 7609 maximum.
                    if let Some(bcnt) = r.as_mut_slice().get_mut(5..7) {
                        bcnt.copy_from_slice(&[0xff, 0xff]);
                    }
                    r
                })
                .collect(),
            LabFault::ForeignFrames => reports
                .into_iter()
                .flat_map(|r| {
                    let mut foreign = r.clone();
                    set_cid(&mut foreign, other_cid(cid));
                    [foreign, r]
                })
                .collect(),
            _ => reports,
        }
    }
}

/// A channel ID that is not `cid` and not broadcast/reserved.
pub(crate) fn other_cid(cid: Cid) -> Cid {
    let flipped = cid.0 ^ 0x5a5a_5a5a;
    if flipped == 0 || flipped == u32::MAX {
        Cid(0x1234_5678)
    } else {
        Cid(flipped)
    }
}

fn set_cid(report: &mut Report, cid: Cid) {
    if let Some(head) = report.as_mut_slice().get_mut(..4) {
        head.copy_from_slice(&cid.0.to_be_bytes());
    }
}

impl fmt::Display for LabFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `--fault` parsing: only the CLI faults (the wire corruptions are for tests).
impl FromStr for LabFault {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "never-answer" => Ok(LabFault::NeverAnswer),
            "keepalive-forever" => Ok(LabFault::KeepaliveForever),
            "wrong-cid" => Ok(LabFault::WrongCid),
            "busy" => Ok(LabFault::Busy),
            other => Err(format!(
                "unknown fault {other:?}; expected one of {}",
                LabFault::CLI_NAMES.join(", ")
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cablebridge_protocol::ctaphid::{fragment, Command, Packet, ReportLen};

    fn response(cid: Cid) -> Vec<Report> {
        fragment(cid, Command::Cbor, &[0u8; 150], ReportLen::DEFAULT).unwrap().collect()
    }

    #[test]
    fn cli_names_round_trip_and_unknown_is_rejected() {
        for name in LabFault::CLI_NAMES {
            assert_eq!(name.parse::<LabFault>().unwrap().name(), *name);
        }
        assert!("truncated-response".parse::<LabFault>().unwrap_err().contains("never-answer"));
    }

    #[test]
    fn mangling_does_what_each_fault_says() {
        let cid = Cid(0x0102_0304);
        let plain = response(cid);
        assert_eq!(plain.len(), 3);
        assert_eq!(LabFault::None.mangle_response(cid, plain.clone()), plain);
        let wrong = LabFault::WrongCid.mangle_response(cid, plain.clone());
        assert!(wrong.iter().all(|r| Packet::parse(r).unwrap().cid() != cid));
        let bad = LabFault::BadSequence.mangle_response(cid, plain.clone());
        assert_eq!(bad[1][4], 5);
        assert_eq!(LabFault::TruncatedResponse.mangle_response(cid, plain.clone()).len(), 1);
        let big = LabFault::OversizedBcnt.mangle_response(cid, plain.clone());
        assert_eq!(&big[0][5..7], &[0xff, 0xff]);
        let foreign = LabFault::ForeignFrames.mangle_response(cid, plain.clone());
        assert_eq!(foreign.len(), 6);
        assert_eq!(foreign[1], plain[0]);
        assert_ne!(Packet::parse(&foreign[0]).unwrap().cid(), cid);
        assert_ne!(other_cid(Cid(0x5a5a_5a5a)), Cid(0));
    }
}
