//! `struct uhid_event` (linux/uhid.h) as bytes: the kernel side of `/dev/uhid`, byte-exact.
//!
//! Every event is `__u32 type` followed by a union; the kernel reads and writes whole events
//! of [`EVENT_LEN`] bytes, little-endian on every architecture we build for. The union is as
//! large as its largest member (`uhid_create2_req`, 4372 bytes, packed) rounded up to the
//! union's 8-byte alignment (`uhid_start_req` holds a `__u64`): 4376, so an event is 4380 bytes
//! (checked against `sizeof(struct uhid_event)` and `offsetof` from linux/uhid.h with gcc on
//! x86_64). We write CREATE2, INPUT2 and DESTROY and read START, STOP,
//! OPEN, CLOSE, OUTPUT (and GET_REPORT / SET_REPORT, which a FIDO device answers with an error).
//! Offsets are the packed C layout:
//!
//! | event | payload layout after the 4-byte type |
//! |---|---|
//! | CREATE2 (11) | name[128] phys[64] uniq[64] rd_size:u16 bus:u16 vendor:u32 product:u32 version:u32 country:u32 rd_data[4096] |
//! | INPUT2 (12) | size:u16 data[4096] |
//! | OUTPUT (6) | data[4096] size:u16 rtype:u8 |
//! | START (2) | dev_flags:u64 |
//! | GET_REPORT (9) | id:u32 rnum:u8 rtype:u8 |
//! | GET_REPORT_REPLY (10) | id:u32 err:u16 size:u16 data[4096] |
//! | SET_REPORT (13) | id:u32 rnum:u8 rtype:u8 size:u16 data[4096] |
//! | SET_REPORT_REPLY (14) | id:u32 err:u16 |
//!
//! What it is not: a general HID library. It knows the events a FIDO device needs; anything
//! else decodes as [`KernelEvent::Other`] and is ignored by the device loop.

/// `UHID_DATA_MAX`.
pub const DATA_MAX: usize = 4096;
/// `HID_MAX_DESCRIPTOR_SIZE`.
pub const DESCRIPTOR_MAX: usize = 4096;
/// `sizeof(struct uhid_event)`: 4 + the union (create2's 4372 bytes rounded up to 8) = 4380.
pub const EVENT_LEN: usize =
    4 + (128 + 64 + 64 + 2 + 2 + 4 * 4 + DESCRIPTOR_MAX).next_multiple_of(8);

/// `enum uhid_event_type` values we use.
pub mod kind {
    /// UHID_DESTROY.
    pub const DESTROY: u32 = 1;
    /// UHID_START.
    pub const START: u32 = 2;
    /// UHID_STOP.
    pub const STOP: u32 = 3;
    /// UHID_OPEN.
    pub const OPEN: u32 = 4;
    /// UHID_CLOSE.
    pub const CLOSE: u32 = 5;
    /// UHID_OUTPUT.
    pub const OUTPUT: u32 = 6;
    /// UHID_GET_REPORT.
    pub const GET_REPORT: u32 = 9;
    /// UHID_GET_REPORT_REPLY.
    pub const GET_REPORT_REPLY: u32 = 10;
    /// UHID_CREATE2.
    pub const CREATE2: u32 = 11;
    /// UHID_INPUT2.
    pub const INPUT2: u32 = 12;
    /// UHID_SET_REPORT.
    pub const SET_REPORT: u32 = 13;
    /// UHID_SET_REPORT_REPLY.
    pub const SET_REPORT_REPLY: u32 = 14;
}

/// `BUS_USB` (linux/input.h): clients (libfido2, Firefox) only look at hidraw nodes, whatever
/// the bus, but USB is what they are used to seeing for security keys.
pub const BUS_USB: u16 = 0x03;
/// `UHID_OUTPUT_REPORT` (rtype of OUTPUT events written through hidraw).
pub const RTYPE_OUTPUT: u8 = 1;

// Offsets inside an event (type included).
const NAME: usize = 4;
const PHYS: usize = NAME + 128;
const UNIQ: usize = PHYS + 64;
const RD_SIZE: usize = UNIQ + 64;
const BUS: usize = RD_SIZE + 2;
const VENDOR: usize = BUS + 2;
const PRODUCT: usize = VENDOR + 4;
const VERSION: usize = PRODUCT + 4;
const COUNTRY: usize = VERSION + 4;
const RD_DATA: usize = COUNTRY + 4;
const OUTPUT_SIZE: usize = 4 + DATA_MAX;
const OUTPUT_RTYPE: usize = OUTPUT_SIZE + 2;

/// The FIDO HID report descriptor (FIDO CTAP 2.1 §11.2.8.1 / HUTRR48): usage page 0xF1D0,
/// usage CTAPHID (0x01), one 64-byte input report (usage 0x20) and one 64-byte output report
/// (usage 0x21), no report ids.
pub const FIDO_REPORT_DESCRIPTOR: [u8; 34] = [
    0x06, 0xd0, 0xf1, // Usage Page (FIDO Alliance, 0xF1D0)
    0x09, 0x01, // Usage (CTAPHID)
    0xa1, 0x01, // Collection (Application)
    0x09, 0x20, //   Usage (Input Report Data)
    0x15, 0x00, //   Logical Minimum (0)
    0x26, 0xff, 0x00, //   Logical Maximum (255)
    0x75, 0x08, //   Report Size (8)
    0x95, 0x40, //   Report Count (64)
    0x81, 0x02, //   Input (Data, Variable, Absolute)
    0x09, 0x21, //   Usage (Output Report Data)
    0x15, 0x00, //   Logical Minimum (0)
    0x26, 0xff, 0x00, //   Logical Maximum (255)
    0x75, 0x08, //   Report Size (8)
    0x95, 0x40, //   Report Count (64)
    0x91, 0x02, //   Output (Data, Variable, Absolute)
    0xc0, // End Collection
];

/// A UHID_CREATE2 request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Create2 {
    /// Device name (at most 127 bytes; cut, NUL-terminated).
    pub name: String,
    /// Physical location string.
    pub phys: String,
    /// Unique id (serial) string.
    pub uniq: String,
    /// Bus (`BUS_USB`).
    pub bus: u16,
    /// Vendor id.
    pub vendor: u32,
    /// Product id.
    pub product: u32,
    /// Device version.
    pub version: u32,
    /// HID country code.
    pub country: u32,
    /// Report descriptor (at most [`DESCRIPTOR_MAX`] bytes).
    pub descriptor: Vec<u8>,
}

/// An event the kernel sends us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelEvent {
    /// The HID driver bound to the device (`dev_flags`).
    Start {
        /// `UHID_DEV_NUMBERED_*` flags.
        dev_flags: u64,
    },
    /// The driver unbound.
    Stop,
    /// A process opened the hidraw node (reports now have a reader).
    Open,
    /// The last process closed it.
    Close,
    /// A report written by a client (`write()` on hidraw).
    Output {
        /// The report bytes as the kernel passed them (the report-id byte included when the
        /// client wrote one).
        data: Vec<u8>,
        /// `UHID_OUTPUT_REPORT` / `UHID_FEATURE_REPORT`.
        rtype: u8,
    },
    /// GET_REPORT (feature reports): answered with an error by a FIDO device.
    GetReport {
        /// Request id to echo.
        id: u32,
    },
    /// SET_REPORT: answered with an error by a FIDO device.
    SetReport {
        /// Request id to echo.
        id: u32,
    },
    /// Any other type (legacy events, future ones).
    Other(u32),
}

/// A kernel event that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// Shorter than the 4-byte type.
    #[error("uhid event of {0} bytes is too short for its type field")]
    Short(usize),
    /// The type's payload is cut off.
    #[error("uhid event type {kind} is truncated ({len} bytes)")]
    Truncated {
        /// Event type.
        kind: u32,
        /// Bytes received.
        len: usize,
    },
    /// OUTPUT claims more data than the event holds.
    #[error("uhid OUTPUT claims {0} bytes (at most 4096)")]
    OutputSize(usize),
    /// A descriptor longer than the kernel accepts.
    #[error("report descriptor of {0} bytes is longer than 4096")]
    DescriptorTooLong(usize),
    /// An INPUT2 report longer than the kernel accepts.
    #[error("input report of {0} bytes is longer than 4096")]
    InputTooLong(usize),
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2).and_then(|s| s.try_into().ok()).map(u16::from_le_bytes)
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4).and_then(|s| s.try_into().ok()).map(u32::from_le_bytes)
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dst) = buf.get_mut(at..at + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

/// Copies `s` into a `len`-byte C string field (cut to leave the NUL).
fn put_str(buf: &mut [u8], at: usize, len: usize, s: &str) {
    let bytes = s.as_bytes();
    put(buf, at, &bytes[..bytes.len().min(len - 1)]);
}

fn str_at(b: &[u8], at: usize, len: usize) -> String {
    let field = b.get(at..at + len).unwrap_or_default();
    let end = field.iter().position(|&c| c == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

impl Create2 {
    /// The whole event ([`EVENT_LEN`] bytes).
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        if self.descriptor.len() > DESCRIPTOR_MAX {
            return Err(CodecError::DescriptorTooLong(self.descriptor.len()));
        }
        let mut b = vec![0u8; EVENT_LEN];
        put(&mut b, 0, &kind::CREATE2.to_le_bytes());
        put_str(&mut b, NAME, 128, &self.name);
        put_str(&mut b, PHYS, 64, &self.phys);
        put_str(&mut b, UNIQ, 64, &self.uniq);
        // Fits: checked against DESCRIPTOR_MAX above.
        let rd_size = u16::try_from(self.descriptor.len()).unwrap_or(u16::MAX);
        put(&mut b, RD_SIZE, &rd_size.to_le_bytes());
        put(&mut b, BUS, &self.bus.to_le_bytes());
        put(&mut b, VENDOR, &self.vendor.to_le_bytes());
        put(&mut b, PRODUCT, &self.product.to_le_bytes());
        put(&mut b, VERSION, &self.version.to_le_bytes());
        put(&mut b, COUNTRY, &self.country.to_le_bytes());
        put(&mut b, RD_DATA, &self.descriptor);
        Ok(b)
    }

    /// Decodes a CREATE2 event (what the kernel does; used by tests playing the kernel).
    pub fn decode(b: &[u8]) -> Result<Create2, CodecError> {
        let short = CodecError::Truncated { kind: kind::CREATE2, len: b.len() };
        if b.len() < RD_DATA || u32_at(b, 0) != Some(kind::CREATE2) {
            return Err(short);
        }
        let rd_size = usize::from(u16_at(b, RD_SIZE).ok_or(short.clone())?);
        if rd_size > DESCRIPTOR_MAX {
            return Err(CodecError::DescriptorTooLong(rd_size));
        }
        let descriptor = b.get(RD_DATA..RD_DATA + rd_size).ok_or(short.clone())?.to_vec();
        Ok(Create2 {
            name: str_at(b, NAME, 128),
            phys: str_at(b, PHYS, 64),
            uniq: str_at(b, UNIQ, 64),
            bus: u16_at(b, BUS).ok_or(short.clone())?,
            vendor: u32_at(b, VENDOR).ok_or(short.clone())?,
            product: u32_at(b, PRODUCT).ok_or(short.clone())?,
            version: u32_at(b, VERSION).ok_or(short.clone())?,
            country: u32_at(b, COUNTRY).ok_or(short)?,
            descriptor,
        })
    }
}

/// UHID_INPUT2 carrying `report` (what a client's `read()` on hidraw returns).
pub fn encode_input2(report: &[u8]) -> Result<Vec<u8>, CodecError> {
    if report.len() > DATA_MAX {
        return Err(CodecError::InputTooLong(report.len()));
    }
    let mut b = vec![0u8; EVENT_LEN];
    put(&mut b, 0, &kind::INPUT2.to_le_bytes());
    let size = u16::try_from(report.len()).unwrap_or(u16::MAX);
    put(&mut b, 4, &size.to_le_bytes());
    put(&mut b, 6, report);
    Ok(b)
}

/// Decodes an INPUT2 event's report (tests playing the kernel).
pub fn decode_input2(b: &[u8]) -> Result<Vec<u8>, CodecError> {
    let short = CodecError::Truncated { kind: kind::INPUT2, len: b.len() };
    if u32_at(b, 0) != Some(kind::INPUT2) {
        return Err(short);
    }
    let size = usize::from(u16_at(b, 4).ok_or(short.clone())?);
    if size > DATA_MAX {
        return Err(CodecError::InputTooLong(size));
    }
    Ok(b.get(6..6 + size).ok_or(short)?.to_vec())
}

/// UHID_DESTROY.
pub fn encode_destroy() -> Vec<u8> {
    let mut b = vec![0u8; EVENT_LEN];
    put(&mut b, 0, &kind::DESTROY.to_le_bytes());
    b
}

/// GET_REPORT_REPLY / SET_REPORT_REPLY with `err` (an errno; EIO for "not supported").
pub fn encode_report_reply(kind_: u32, id: u32, err: u16) -> Vec<u8> {
    let mut b = vec![0u8; EVENT_LEN];
    put(&mut b, 0, &kind_.to_le_bytes());
    put(&mut b, 4, &id.to_le_bytes());
    put(&mut b, 8, &err.to_le_bytes());
    b
}

/// Encodes an event the kernel would send (tests playing the kernel): START, STOP, OPEN,
/// CLOSE and OUTPUT.
pub fn encode_kernel(event: &KernelEvent) -> Vec<u8> {
    let mut b = vec![0u8; EVENT_LEN];
    let t = match event {
        KernelEvent::Start { dev_flags } => {
            put(&mut b, 4, &dev_flags.to_le_bytes());
            kind::START
        }
        KernelEvent::Stop => kind::STOP,
        KernelEvent::Open => kind::OPEN,
        KernelEvent::Close => kind::CLOSE,
        KernelEvent::Output { data, rtype } => {
            let n = data.len().min(DATA_MAX);
            put(&mut b, 4, &data[..n]);
            put(&mut b, OUTPUT_SIZE, &u16::try_from(n).unwrap_or(u16::MAX).to_le_bytes());
            b[OUTPUT_RTYPE] = *rtype;
            kind::OUTPUT
        }
        KernelEvent::GetReport { id } => {
            put(&mut b, 4, &id.to_le_bytes());
            kind::GET_REPORT
        }
        KernelEvent::SetReport { id } => {
            put(&mut b, 4, &id.to_le_bytes());
            kind::SET_REPORT
        }
        KernelEvent::Other(t) => *t,
    };
    put(&mut b, 0, &t.to_le_bytes());
    b
}

/// The type field of any event.
pub fn event_kind(b: &[u8]) -> Result<u32, CodecError> {
    u32_at(b, 0).ok_or(CodecError::Short(b.len()))
}

/// Decodes an event from the kernel. Shorter events than [`EVENT_LEN`] are accepted as long as
/// the type's fields are present (the kernel always sends whole events).
pub fn decode_kernel(b: &[u8]) -> Result<KernelEvent, CodecError> {
    let t = event_kind(b)?;
    let short = CodecError::Truncated { kind: t, len: b.len() };
    Ok(match t {
        kind::START => KernelEvent::Start {
            dev_flags: b
                .get(4..12)
                .and_then(|s| s.try_into().ok())
                .map(u64::from_le_bytes)
                .ok_or(short)?,
        },
        kind::STOP => KernelEvent::Stop,
        kind::OPEN => KernelEvent::Open,
        kind::CLOSE => KernelEvent::Close,
        kind::OUTPUT => {
            let size = usize::from(u16_at(b, OUTPUT_SIZE).ok_or(short.clone())?);
            if size > DATA_MAX {
                return Err(CodecError::OutputSize(size));
            }
            let rtype = *b.get(OUTPUT_RTYPE).ok_or(short.clone())?;
            KernelEvent::Output { data: b.get(4..4 + size).ok_or(short)?.to_vec(), rtype }
        }
        kind::GET_REPORT => KernelEvent::GetReport { id: u32_at(b, 4).ok_or(short)? },
        kind::SET_REPORT => KernelEvent::SetReport { id: u32_at(b, 4).ok_or(short)? },
        other => KernelEvent::Other(other),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sizes_match_linux_uhid_h() {
        // gcc on linux/uhid.h: sizeof(struct uhid_event) = 4380, offsetof rd_data = 4 + 276,
        // vendor = 4 + 260, output.size = 4 + 4096, output.rtype = 4 + 4098, input2.data = 4 + 2.
        assert_eq!(EVENT_LEN, 4380);
        assert_eq!(VENDOR, 264);
        assert_eq!(OUTPUT_SIZE, 4100);
        // name 128 + phys 64 + uniq 64 + rd_size 2 + bus 2 + 4 x u32 = 276 before rd_data.
        assert_eq!(RD_DATA, 4 + 276);
        assert_eq!(OUTPUT_RTYPE, 4 + 4096 + 2);
    }

    #[test]
    fn create2_round_trips_at_the_c_offsets() {
        let c = Create2 {
            name: "cablebridge phone".into(),
            phys: "cablebridge".into(),
            uniq: "x".into(),
            bus: BUS_USB,
            vendor: 0x1209,
            product: 0xcab1,
            version: 1,
            country: 0,
            descriptor: FIDO_REPORT_DESCRIPTOR.to_vec(),
        };
        let b = c.encode().unwrap();
        assert_eq!(b.len(), EVENT_LEN);
        assert_eq!(&b[0..4], &[11, 0, 0, 0]);
        assert_eq!(&b[4..21], b"cablebridge phone");
        assert_eq!(&b[260..262], &[34, 0]); // rd_size
        assert_eq!(&b[262..264], &[3, 0]); // bus
        assert_eq!(&b[264..268], &[0x09, 0x12, 0, 0]); // vendor
        assert_eq!(&b[268..272], &[0xb1, 0xca, 0, 0]); // product
        assert_eq!(&b[280..283], &[0x06, 0xd0, 0xf1]);
        assert_eq!(Create2::decode(&b).unwrap(), c);
    }

    #[test]
    fn kernel_events_round_trip_and_bad_ones_are_typed() {
        for e in [
            KernelEvent::Start { dev_flags: 7 },
            KernelEvent::Stop,
            KernelEvent::Open,
            KernelEvent::Close,
            KernelEvent::Output { data: vec![0; 65], rtype: RTYPE_OUTPUT },
            KernelEvent::GetReport { id: 9 },
            KernelEvent::SetReport { id: 10 },
            KernelEvent::Other(99),
        ] {
            assert_eq!(decode_kernel(&encode_kernel(&e)).unwrap(), e);
        }
        assert_eq!(decode_kernel(&[1, 0]), Err(CodecError::Short(2)));
        let mut bad = encode_kernel(&KernelEvent::Output { data: vec![1], rtype: 1 });
        bad[OUTPUT_SIZE..OUTPUT_SIZE + 2].copy_from_slice(&5000u16.to_le_bytes());
        assert_eq!(decode_kernel(&bad), Err(CodecError::OutputSize(5000)));
        assert!(matches!(decode_kernel(&[6, 0, 0, 0, 1]), Err(CodecError::Truncated { .. })));
        let input = encode_input2(&[0xAA; 64]).unwrap();
        assert_eq!(&input[4..6], &[64, 0]);
        assert_eq!(decode_input2(&input).unwrap(), vec![0xAA; 64]);
        assert_eq!(encode_input2(&[0; 5000]), Err(CodecError::InputTooLong(5000)));
    }
}
