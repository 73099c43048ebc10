//! The uhid event codec (`daemon/src/uhid/codec.rs`, `struct uhid_event` of linux/uhid.h),
//! both directions. The first input byte picks what the rest is:
//! * 0: an event from the kernel (`decode_kernel`: START, STOP, OPEN, CLOSE, OUTPUT,
//!   GET_REPORT, SET_REPORT, anything else) — what a hostile or buggy kernel/uhid peer hands the
//!   phone-as-a-key front; a decoded event re-encodes and decodes to itself;
//! * 1: a CREATE2 event (`Create2::decode`, tests playing the kernel); the re-encoding is a
//!   whole event and keeps every numeric field and the descriptor;
//! * 2: an INPUT2 event (`decode_input2`); the report re-encodes and decodes to itself;
//! * 3: what we send: the rest as an input report (`encode_input2`) and as a CREATE2 report
//!   descriptor with fuzzer-chosen strings and ids, and GET/SET_REPORT replies; each encodes to
//!   exactly one event (or a typed size error) that decodes back to what went in.
//!
//! A whole event is 4380 bytes and OUTPUT's size field sits at offset 4100: the seeds are whole
//! events so libFuzzer's `-max_len` starts large enough to reach it.
#![no_main]

use cablebridged::uhid::codec::{
    self, decode_input2, decode_kernel, encode_input2, encode_kernel, encode_report_reply, kind,
    CodecError, Create2, KernelEvent, DATA_MAX, DESCRIPTOR_MAX, EVENT_LEN,
};
use libfuzzer_sys::fuzz_target;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn u32_of(b: &[u8]) -> u32 {
    let mut w = [0u8; 4];
    for (d, s) in w.iter_mut().zip(b) {
        *d = *s;
    }
    u32::from_le_bytes(w)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    match mode % 4 {
        0 => {
            if let Ok(event) = decode_kernel(rest) {
                let again = encode_kernel(&event);
                assert_eq!(again.len(), EVENT_LEN);
                assert_eq!(decode_kernel(&again).as_ref(), Ok(&event), "kernel event round trip");
                if let KernelEvent::Output { data, .. } = &event {
                    assert!(data.len() <= DATA_MAX);
                }
            }
        }
        1 => {
            if let Ok(c) = Create2::decode(rest) {
                assert!(c.descriptor.len() <= DESCRIPTOR_MAX);
                let b = c.encode().expect("a decoded descriptor fits");
                assert_eq!(b.len(), EVENT_LEN);
                let d = Create2::decode(&b).expect("our CREATE2 decodes");
                assert_eq!(
                    (d.bus, d.vendor, d.product, d.version, d.country, &d.descriptor),
                    (c.bus, c.vendor, c.product, c.version, c.country, &c.descriptor)
                );
            }
        }
        2 => {
            if let Ok(report) = decode_input2(rest) {
                assert!(report.len() <= DATA_MAX);
                let b = encode_input2(&report).expect("a decoded report fits");
                assert_eq!(decode_input2(&b).as_ref(), Ok(&report));
            }
        }
        _ => {
            match encode_input2(rest) {
                Ok(b) => {
                    assert_eq!(b.len(), EVENT_LEN);
                    assert_eq!(decode_input2(&b).as_deref(), Ok(rest));
                }
                Err(e) => assert_eq!(e, CodecError::InputTooLong(rest.len())),
            }
            let (head, descriptor) = rest.split_at(rest.len().min(24));
            let c = Create2 {
                name: text(head.get(..8).unwrap_or(head)),
                phys: text(head.get(8..16).unwrap_or_default()),
                uniq: text(head.get(16..).unwrap_or_default()),
                bus: codec::BUS_USB,
                vendor: u32_of(head),
                product: u32_of(head.get(4..).unwrap_or_default()),
                version: u32_of(head.get(8..).unwrap_or_default()),
                country: u32_of(head.get(12..).unwrap_or_default()),
                descriptor: descriptor.to_vec(),
            };
            match c.encode() {
                Ok(b) => {
                    assert_eq!(b.len(), EVENT_LEN);
                    let d = Create2::decode(&b).expect("our CREATE2 decodes");
                    assert_eq!(
                        (d.vendor, d.product, &d.descriptor),
                        (c.vendor, c.product, &c.descriptor)
                    );
                    // Strings are cut to their C field and NUL-terminated, never overflow.
                    assert!(d.name.len() <= c.name.len().max(127) && !d.name.contains('\0'));
                }
                Err(e) => assert_eq!(e, CodecError::DescriptorTooLong(descriptor.len())),
            }
            for k in [kind::GET_REPORT_REPLY, kind::SET_REPORT_REPLY] {
                let id = u32_of(head);
                let b = encode_report_reply(k, id, 5);
                assert_eq!((b.len(), codec::event_kind(&b)), (EVENT_LEN, Ok(k)));
            }
        }
    }
});
