//! Splitting a message into reports and putting it back together (CTAP 2.1 §11.2.4).
//!
//! [`fragment`] yields stack-allocated [`Report`]s lazily from a borrowed payload; nothing is
//! allocated per report. [`Reassembler`] collects one message at a time and enforces the framing
//! rules: continuation SEQ 0, 1, 2… in order (no wrap: SEQ is 7 bits and 128 continuations is the
//! maximum), BCNT within [`ReportLen::max_payload`], no continuation without an initialization
//! packet, no new initialization packet on the same channel mid-message. It has no timer: the
//! state machines around it own deadlines, which is how truncation is detected.

use super::codes::{Cid, Command};
use super::error::FrameError;
use super::packet::{write_cont_header, write_init_header, Packet, Report, ReportLen};

/// Lazily produces the reports carrying one message. Created by [`fragment`].
#[derive(Debug, Clone)]
pub struct Fragmenter<'p> {
    cid: Cid,
    cmd: Command,
    payload: &'p [u8],
    report_len: ReportLen,
    offset: usize,
    next_seq: u8,
    started: bool,
}

/// Splits `payload` into reports for channel `cid`. Fails if the payload exceeds
/// [`ReportLen::max_payload`] (7609 bytes for 64-byte reports).
pub fn fragment(
    cid: Cid,
    cmd: Command,
    payload: &[u8],
    report_len: ReportLen,
) -> Result<Fragmenter<'_>, FrameError> {
    let max = report_len.max_payload();
    if payload.len() > max {
        return Err(FrameError::PayloadTooLarge { len: payload.len(), max });
    }
    Ok(Fragmenter { cid, cmd, payload, report_len, offset: 0, next_seq: 0, started: false })
}

impl Iterator for Fragmenter<'_> {
    type Item = Report;

    fn next(&mut self) -> Option<Report> {
        let mut report = Report::zeroed(self.report_len);
        let out = report.as_mut_slice();
        let rest = self.payload.get(self.offset..).unwrap_or_default();
        let (header, body) = if !self.started {
            // `fragment` checked the length, and max_payload < u16::MAX for every ReportLen.
            let bcnt = u16::try_from(self.payload.len()).unwrap_or(u16::MAX);
            write_init_header(out, self.cid, self.cmd, bcnt);
            self.started = true;
            (7, self.report_len.init_data_len())
        } else if rest.is_empty() {
            return None;
        } else {
            write_cont_header(out, self.cid, self.next_seq);
            self.next_seq = self.next_seq.wrapping_add(1);
            (5, self.report_len.cont_data_len())
        };
        let take = rest.len().min(body);
        out[header..header + take].copy_from_slice(&rest[..take]);
        self.offset += take;
        Some(report)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = if self.started {
            let rest = self.payload.len() - self.offset;
            rest.div_ceil(self.report_len.cont_data_len())
        } else {
            self.report_len.reports_for(self.payload.len())
        };
        (n, Some(n))
    }
}

impl ExactSizeIterator for Fragmenter<'_> {}

/// A complete message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The channel it arrived on.
    pub cid: Cid,
    /// Its command.
    pub cmd: Command,
    /// Exactly BCNT bytes (padding removed).
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone)]
struct Partial {
    cid: Cid,
    cmd: Command,
    bcnt: usize,
    next_seq: u8,
    payload: Vec<u8>,
}

/// Reassembles one message at a time.
#[derive(Debug, Clone)]
pub struct Reassembler {
    max: usize,
    partial: Option<Partial>,
}

impl Reassembler {
    /// A reassembler for the given report length.
    pub fn new(report_len: ReportLen) -> Reassembler {
        Reassembler { max: report_len.max_payload(), partial: None }
    }

    /// The message in progress: (channel, command, bytes received, bytes announced).
    pub fn in_progress(&self) -> Option<(Cid, Command, usize, usize)> {
        self.partial.as_ref().map(|p| (p.cid, p.cmd, p.payload.len(), p.bcnt))
    }

    /// Drops the message in progress (timeout, resync).
    pub fn reset(&mut self) {
        self.partial = None;
    }

    /// Feeds one packet. `Ok(Some)` when a message completes, `Ok(None)` when more is needed.
    ///
    /// On [`FrameError::BadSequence`] and [`FrameError::InitDuringMessage`] the message in
    /// progress is dropped (push the init packet again to restart with it); on
    /// [`FrameError::WrongChannel`] it is kept, because a packet from another channel says
    /// nothing about this one.
    pub fn push(&mut self, packet: Packet<'_>) -> Result<Option<Message>, FrameError> {
        match packet {
            Packet::Init(init) => {
                if let Some(p) = &self.partial {
                    if p.cid != init.cid() {
                        return Err(FrameError::WrongChannel { expected: p.cid, got: init.cid() });
                    }
                    self.partial = None;
                    return Err(FrameError::InitDuringMessage { cid: init.cid() });
                }
                let bcnt = init.bcnt();
                if bcnt > self.max {
                    return Err(FrameError::BcntTooLarge { bcnt, max: self.max });
                }
                let mut payload = Vec::with_capacity(bcnt);
                let data = init.data();
                payload.extend_from_slice(&data[..bcnt.min(data.len())]);
                let partial =
                    Partial { cid: init.cid(), cmd: init.command(), bcnt, next_seq: 0, payload };
                Ok(self.finish_if_complete(partial))
            }
            Packet::Cont(cont) => {
                let Some(mut p) = self.partial.take() else {
                    return Err(FrameError::ContinuationWithoutInit { cid: cont.cid() });
                };
                if p.cid != cont.cid() {
                    let expected = p.cid;
                    self.partial = Some(p);
                    return Err(FrameError::WrongChannel { expected, got: cont.cid() });
                }
                if cont.seq() != p.next_seq {
                    return Err(FrameError::BadSequence {
                        cid: p.cid,
                        expected: p.next_seq,
                        got: cont.seq(),
                    });
                }
                // SEQ is 7 bits, so after 0x7f nothing can match the expected 0x80: no wrap.
                p.next_seq = p.next_seq.saturating_add(1);
                let data = cont.data();
                let need = p.bcnt - p.payload.len();
                p.payload.extend_from_slice(&data[..need.min(data.len())]);
                Ok(self.finish_if_complete(p))
            }
        }
    }

    fn finish_if_complete(&mut self, p: Partial) -> Option<Message> {
        if p.payload.len() >= p.bcnt {
            Some(Message { cid: p.cid, cmd: p.cmd, payload: p.payload })
        } else {
            self.partial = Some(p);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(r: &Report) -> Packet<'_> {
        Packet::parse(r).unwrap()
    }

    #[test]
    fn small_and_boundary_payloads() {
        let rl = ReportLen::DEFAULT;
        for len in [0usize, 1, 57, 58, 116, 117, 7609] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let reports: Vec<Report> =
                fragment(Cid(9), Command::Ping, &payload, rl).unwrap().collect();
            assert_eq!(reports.len(), rl.reports_for(len), "len {len}");
            let mut r = Reassembler::new(rl);
            let mut out = None;
            for rep in &reports {
                assert!(out.is_none());
                out = r.push(parse(rep)).unwrap();
            }
            let msg = out.unwrap();
            assert_eq!((msg.cid, msg.cmd, msg.payload), (Cid(9), Command::Ping, payload));
        }
    }

    #[test]
    fn too_large_payload_is_a_caller_error() {
        let err = fragment(Cid(1), Command::Cbor, &[0; 7610], ReportLen::DEFAULT).unwrap_err();
        assert_eq!(err, FrameError::PayloadTooLarge { len: 7610, max: 7609 });
    }

    #[test]
    fn framing_violations_are_typed() {
        let rl = ReportLen::DEFAULT;
        let payload = [7u8; 200];
        let reports: Vec<Report> = fragment(Cid(1), Command::Cbor, &payload, rl).unwrap().collect();
        let mut r = Reassembler::new(rl);
        // Continuation first.
        assert_eq!(
            r.push(parse(&reports[1])),
            Err(FrameError::ContinuationWithoutInit { cid: Cid(1) })
        );
        // Skipped SEQ.
        r.push(parse(&reports[0])).unwrap();
        assert!(matches!(
            r.push(parse(&reports[2])),
            Err(FrameError::BadSequence { expected: 0, got: 1, .. })
        ));
        assert!(r.in_progress().is_none());
        // Other channel mid-message keeps the message; same-channel init drops it.
        r.push(parse(&reports[0])).unwrap();
        let other: Vec<Report> = fragment(Cid(2), Command::Ping, &[1], rl).unwrap().collect();
        assert!(matches!(r.push(parse(&other[0])), Err(FrameError::WrongChannel { .. })));
        assert_eq!(r.in_progress(), Some((Cid(1), Command::Cbor, 57, 200)));
        assert_eq!(r.push(parse(&reports[0])), Err(FrameError::InitDuringMessage { cid: Cid(1) }));
        // BCNT too large.
        let mut big = reports[0].clone();
        big.as_mut_slice()[5..7].copy_from_slice(&7610u16.to_be_bytes());
        assert_eq!(r.push(parse(&big)), Err(FrameError::BcntTooLarge { bcnt: 7610, max: 7609 }));
    }
}
