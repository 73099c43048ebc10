//! CTAPHID report layout (CTAP 2.1 §11.2.4): borrowing views over one HID report, the report
//! length parameter and a fixed-size owned report for outputs.
//!
//! ```text
//! initialization packet: CID(4, BE) | CMD(1, bit 7 set) | BCNTH | BCNTL | DATA (len - 7)
//! continuation packet:   CID(4, BE) | SEQ(1, 0..=0x7f)  | DATA (len - 5)
//! ```
//!
//! This is not the HID report descriptor parser and knows nothing about the Linux hidraw report-ID
//! prefix byte: drivers strip/add that before calling in.

use super::codes::{Cid, Command};
use super::error::FrameError;

/// Largest report length this module handles (full-speed USB interrupt endpoint).
pub const MAX_REPORT_LEN: usize = 64;
/// Header bytes of an initialization packet.
pub const INIT_HEADER_LEN: usize = 7;
/// Header bytes of a continuation packet.
pub const CONT_HEADER_LEN: usize = 5;
/// Number of continuation packets a message may have (SEQ 0..=0x7f).
pub const MAX_CONT_PACKETS: usize = 128;

/// The HID report length of a device (from its report descriptor). 64 in practice; 8..=64 accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReportLen(u8);

impl ReportLen {
    /// The 64-byte report every FIDO key in the wild uses.
    pub const DEFAULT: ReportLen = ReportLen(64);
    /// Smallest supported length: the init header plus one data byte.
    pub const MIN: usize = INIT_HEADER_LEN + 1;

    /// Validates a report length; `None` outside 8..=64.
    pub fn new(len: usize) -> Option<ReportLen> {
        if (Self::MIN..=MAX_REPORT_LEN).contains(&len) {
            u8::try_from(len).ok().map(ReportLen)
        } else {
            None
        }
    }

    /// The length in bytes.
    pub fn get(self) -> usize {
        usize::from(self.0)
    }

    /// Payload bytes carried by an initialization packet.
    pub fn init_data_len(self) -> usize {
        self.get() - INIT_HEADER_LEN
    }

    /// Payload bytes carried by a continuation packet.
    pub fn cont_data_len(self) -> usize {
        self.get() - CONT_HEADER_LEN
    }

    /// Largest message payload: `(len - 7) + 128 * (len - 5)`; 7609 for 64-byte reports.
    pub fn max_payload(self) -> usize {
        self.init_data_len() + MAX_CONT_PACKETS * self.cont_data_len()
    }

    /// How many reports a payload of `len` bytes needs (at least one).
    pub fn reports_for(self, len: usize) -> usize {
        let rest = len.saturating_sub(self.init_data_len());
        1 + rest.div_ceil(self.cont_data_len())
    }
}

impl Default for ReportLen {
    fn default() -> Self {
        ReportLen::DEFAULT
    }
}

/// One outgoing report, owned and fixed-size so that producing it allocates nothing.
/// Dereferences to exactly `report_len` bytes (unused tail bytes are zero, as the spec asks).
#[derive(Clone, PartialEq, Eq)]
pub struct Report {
    bytes: [u8; MAX_REPORT_LEN],
    len: u8,
}

impl Report {
    /// A zeroed report of the given length.
    pub fn zeroed(len: ReportLen) -> Report {
        Report { bytes: [0; MAX_REPORT_LEN], len: len.0 }
    }

    /// The report bytes (mutable), exactly `report_len` long.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.bytes[..usize::from(self.len)]
    }
}

impl core::ops::Deref for Report {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl AsRef<[u8]> for Report {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl core::fmt::Debug for Report {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Report({})", hex::encode(&**self))
    }
}

/// A view over an initialization packet.
#[derive(Debug, Clone, Copy)]
pub struct InitPacket<'a> {
    report: &'a [u8],
}

impl<'a> InitPacket<'a> {
    /// The channel.
    pub fn cid(&self) -> Cid {
        read_cid(self.report)
    }
    /// The command (bit 7 stripped).
    pub fn command(&self) -> Command {
        Command::from_byte(self.report[4])
    }
    /// The total message length the sender announced.
    pub fn bcnt(&self) -> usize {
        usize::from(u16::from_be_bytes([self.report[5], self.report[6]]))
    }
    /// The data bytes of this packet (includes padding when BCNT is smaller).
    pub fn data(&self) -> &'a [u8] {
        &self.report[INIT_HEADER_LEN..]
    }
}

/// A view over a continuation packet.
#[derive(Debug, Clone, Copy)]
pub struct ContPacket<'a> {
    report: &'a [u8],
}

impl<'a> ContPacket<'a> {
    /// The channel.
    pub fn cid(&self) -> Cid {
        read_cid(self.report)
    }
    /// The sequence number, 0..=0x7f.
    pub fn seq(&self) -> u8 {
        self.report[4]
    }
    /// The data bytes of this packet (includes padding on the last one).
    pub fn data(&self) -> &'a [u8] {
        &self.report[CONT_HEADER_LEN..]
    }
}

/// A parsed report: bit 7 of byte 4 tells the two kinds apart.
#[derive(Debug, Clone, Copy)]
pub enum Packet<'a> {
    /// Starts a message.
    Init(InitPacket<'a>),
    /// Continues a message.
    Cont(ContPacket<'a>),
}

impl<'a> Packet<'a> {
    /// Parses one report. Only the header is checked; reports longer than 64 bytes are cut to 64
    /// and shorter ones are accepted as long as the header fits (the data is then just shorter).
    pub fn parse(report: &'a [u8]) -> Result<Packet<'a>, FrameError> {
        let report = report.get(..MAX_REPORT_LEN).unwrap_or(report);
        let Some(&kind) = report.get(4) else {
            return Err(FrameError::ReportTooShort { len: report.len(), min: CONT_HEADER_LEN });
        };
        if kind & 0x80 == 0 {
            return Ok(Packet::Cont(ContPacket { report }));
        }
        if report.len() < INIT_HEADER_LEN {
            return Err(FrameError::ReportTooShort { len: report.len(), min: INIT_HEADER_LEN });
        }
        Ok(Packet::Init(InitPacket { report }))
    }

    /// The channel of either kind.
    pub fn cid(&self) -> Cid {
        match self {
            Packet::Init(p) => p.cid(),
            Packet::Cont(p) => p.cid(),
        }
    }
}

fn read_cid(report: &[u8]) -> Cid {
    Cid::from_bytes([report[0], report[1], report[2], report[3]])
}

/// Writes an initialization header into `out` (at least 7 bytes).
pub(crate) fn write_init_header(out: &mut [u8], cid: Cid, cmd: Command, bcnt: u16) {
    out[..4].copy_from_slice(&cid.to_bytes());
    out[4] = cmd.to_byte();
    out[5..7].copy_from_slice(&bcnt.to_be_bytes());
}

/// Writes a continuation header into `out` (at least 5 bytes).
pub(crate) fn write_cont_header(out: &mut [u8], cid: Cid, seq: u8) {
    out[..4].copy_from_slice(&cid.to_bytes());
    out[4] = seq & 0x7f;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_len_bounds_and_max_payload() {
        assert_eq!(ReportLen::new(7), None);
        assert_eq!(ReportLen::new(65), None);
        assert_eq!(ReportLen::DEFAULT.max_payload(), 7609);
        assert_eq!(ReportLen::new(8).unwrap().max_payload(), 1 + 128 * 3);
        let r = ReportLen::DEFAULT;
        assert_eq!(r.reports_for(0), 1);
        assert_eq!(r.reports_for(57), 1);
        assert_eq!(r.reports_for(58), 2);
        assert_eq!(r.reports_for(7609), 129);
    }

    #[test]
    fn parses_both_packet_kinds() {
        let mut init = [0u8; 64];
        write_init_header(&mut init, Cid(0xdead_beef), Command::Cbor, 300);
        match Packet::parse(&init).unwrap() {
            Packet::Init(p) => {
                assert_eq!(p.cid(), Cid(0xdead_beef));
                assert_eq!(p.command(), Command::Cbor);
                assert_eq!(p.bcnt(), 300);
                assert_eq!(p.data().len(), 57);
            }
            Packet::Cont(_) => panic!("expected init"),
        }
        let mut cont = [0u8; 64];
        write_cont_header(&mut cont, Cid(7), 0x7f);
        match Packet::parse(&cont).unwrap() {
            Packet::Cont(p) => {
                assert_eq!((p.cid(), p.seq(), p.data().len()), (Cid(7), 0x7f, 59));
            }
            Packet::Init(_) => panic!("expected cont"),
        }
    }

    #[test]
    fn short_reports_are_errors_not_panics() {
        assert!(matches!(
            Packet::parse(&[1, 2, 3]),
            Err(FrameError::ReportTooShort { len: 3, min: 5 })
        ));
        assert!(matches!(
            Packet::parse(&[1, 2, 3, 4, 0x81, 0]),
            Err(FrameError::ReportTooShort { len: 6, min: 7 })
        ));
        // A five-byte continuation is a legal (empty) continuation.
        assert!(matches!(Packet::parse(&[1, 2, 3, 4, 0]), Ok(Packet::Cont(_))));
    }
}
