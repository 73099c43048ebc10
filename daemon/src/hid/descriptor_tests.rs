//! Descriptor parser tests over real FIDO and non-FIDO report descriptors.

use super::*;

/// The FIDO interface descriptor of YubiKey 5 series keys (identical on the Security Key series;
/// recorded by the OpenBSD Chromium port with USB_GET_REPORT_DESC, and the one the FIDO U2F HID
/// spec and the SoloKeys / Nitrokey 3 (usbd-ctaphid) / Trezor firmwares ship byte for byte).
pub(crate) const YUBIKEY5_FIDO: [u8; 34] = [
    0x06, 0xD0, 0xF1, // Usage Page (FIDO Alliance)
    0x09, 0x01, // Usage (CTAPHID device)
    0xA1, 0x01, // Collection (Application)
    0x09, 0x20, //   Usage (Input Report Data)
    0x15, 0x00, //   Logical Minimum (0)
    0x26, 0xFF, 0x00, //   Logical Maximum (255)
    0x75, 0x08, //   Report Size (8)
    0x95, 0x40, //   Report Count (64)
    0x81, 0x02, //   Input (Data, Var, Abs)
    0x09, 0x21, //   Usage (Output Report Data)
    0x15, 0x00, //   Logical Minimum (0)
    0x26, 0xFF, 0x00, //   Logical Maximum (255)
    0x75, 0x08, //   Report Size (8)
    0x95, 0x40, //   Report Count (64)
    0x91, 0x02, //   Output (Data, Var, Abs)
    0xC0, // End Collection
];

/// The boot keyboard descriptor of HID 1.11 Appendix E.6 (what a YubiKey's OTP interface and
/// every plain keyboard look like to this parser).
pub(crate) const BOOT_KEYBOARD: [u8; 63] = [
    0x05, 0x01, 0x09, 0x06, 0xA1, 0x01, 0x05, 0x07, 0x19, 0xE0, 0x29, 0xE7, 0x15, 0x00, 0x25, 0x01,
    0x75, 0x01, 0x95, 0x08, 0x81, 0x02, 0x95, 0x01, 0x75, 0x08, 0x81, 0x01, 0x95, 0x05, 0x75, 0x01,
    0x05, 0x08, 0x19, 0x01, 0x29, 0x05, 0x91, 0x02, 0x95, 0x01, 0x75, 0x03, 0x91, 0x01, 0x95, 0x06,
    0x75, 0x08, 0x15, 0x00, 0x25, 0x65, 0x05, 0x07, 0x19, 0x00, 0x29, 0x65, 0x81, 0x00, 0xC0,
];

#[test]
fn yubikey_fido_descriptor_is_fido_with_64_byte_reports() {
    let layout = fido_layout(&YUBIKEY5_FIDO).unwrap().unwrap();
    assert_eq!(layout, FidoReportLayout { report_id: None, input_len: 64, output_len: 64 });
    let collections = parse(&YUBIKEY5_FIDO).unwrap();
    assert_eq!(collections.len(), 1);
    assert_eq!((collections[0].usage_page, collections[0].usage), (0xF1D0, 0x01));
}

#[test]
fn keyboard_is_not_fido_and_sizes_are_right() {
    assert_eq!(fido_layout(&BOOT_KEYBOARD).unwrap(), None);
    let collections = parse(&BOOT_KEYBOARD).unwrap();
    assert_eq!(collections.len(), 1);
    let kb = &collections[0];
    assert_eq!((kb.usage_page, kb.usage), (0x01, 0x06));
    // 8 modifier bits + 8 reserved + 6 key bytes in; 5 LED bits + 3 padding out.
    assert_eq!(kb.reports.get(&None), Some(&ReportBits { input: 64, output: 8, feature: 0 }));
}

#[test]
fn composite_device_with_report_ids_finds_the_fido_report() {
    // Keyboard as report 1, FIDO as report 2, with a 2-byte Report Count for the FIDO fields.
    let mut desc = vec![0x05, 0x01, 0x09, 0x06, 0xA1, 0x01, 0x85, 0x01];
    desc.extend_from_slice(&[0x75, 0x08, 0x95, 0x08, 0x81, 0x02, 0xC0]);
    desc.extend_from_slice(&[0x06, 0xD0, 0xF1, 0x09, 0x01, 0xA1, 0x01, 0x85, 0x02]);
    desc.extend_from_slice(&[0x75, 0x08, 0x96, 0x40, 0x00, 0x81, 0x02, 0x91, 0x02, 0xC0]);
    let layout = fido_layout(&desc).unwrap().unwrap();
    assert_eq!(layout, FidoReportLayout { report_id: Some(2), input_len: 64, output_len: 64 });
    assert_eq!(parse(&desc).unwrap().len(), 2);
}

#[test]
fn fido_after_a_vendor_collection_is_found_by_collection_not_last_page() {
    // libfido2 keys on the last Usage Page item; a vendor page after the FIDO collection would
    // hide the key from it. We classify per collection.
    let mut desc = YUBIKEY5_FIDO.to_vec();
    desc.extend_from_slice(&[0x06, 0x00, 0xFF, 0x09, 0x01, 0xA1, 0x01, 0x75, 0x08, 0x95, 0x20]);
    desc.extend_from_slice(&[0x81, 0x02, 0xC0]);
    assert_eq!(fido_layout(&desc).unwrap().map(|l| l.input_len), Some(64));
}

#[test]
fn long_items_are_skipped() {
    let mut desc = vec![0xFE, 0x03, 0x10, 0xAA, 0xBB, 0xCC];
    desc.extend_from_slice(&YUBIKEY5_FIDO);
    assert_eq!(fido_layout(&desc).unwrap().map(|l| l.output_len), Some(64));
    assert!(parse(&[0xFE, 0x05, 0x10, 0xAA]).is_err(), "truncated long item");
}

#[test]
fn extended_usage_carries_its_own_page() {
    // Usage Page (Generic Desktop) then a 4-byte usage 0xF1D0_0001.
    let desc = [
        0x05, 0x01, 0x0B, 0x01, 0x00, 0xD0, 0xF1, 0xA1, 0x01, 0x75, 0x08, 0x95, 0x40, 0x81, 0x02,
        0x91, 0x02, 0xC0,
    ];
    assert!(fido_layout(&desc).unwrap().is_some());
}

#[test]
fn push_and_pop_restore_report_size() {
    let desc = [
        0x06, 0xD0, 0xF1, 0x09, 0x01, 0xA1, 0x01, 0x75, 0x08, 0x95, 0x40, 0xA4, // Push
        0x75, 0x01, 0x95, 0x03, 0xB1, 0x02, // 3-bit feature
        0xB4, // Pop: back to 8 × 64
        0x81, 0x02, 0x91, 0x02, 0xC0,
    ];
    let collections = parse(&desc).unwrap();
    assert_eq!(collections[0].reports[&None], ReportBits { input: 512, output: 512, feature: 3 });
}

#[test]
fn malformed_descriptors_are_errors_not_panics() {
    for (desc, why) in [
        (&[0x06, 0xD0][..], "descriptor ends"),
        (&[0xC0][..], "without Collection"),
        (&[0xB4][..], "Pop without Push"),
        (&[0xA1, 0x01][..], "not closed"),
        (&[0x85, 0x00][..], "report ID"),
    ] {
        let err = parse(desc).unwrap_err();
        assert!(err.0.contains(why), "{desc:02x?}: {}", err.0);
    }
    let input_only = [0x06, 0xD0, 0xF1, 0x09, 0x01, 0xA1, 0x01, 0x75, 0x08, 0x95, 0x40, 0x81, 0x02];
    let mut input_only = input_only.to_vec();
    input_only.push(0xC0);
    assert!(fido_layout(&input_only).is_err());
}

#[test]
fn odd_bit_counts_round_up_to_bytes() {
    let desc = [
        0x06, 0xD0, 0xF1, 0x09, 0x01, 0xA1, 0x01, 0x75, 0x01, 0x95, 0x09, 0x81, 0x02, 0x91, 0x02,
        0xC0,
    ];
    let layout = fido_layout(&desc).unwrap().unwrap();
    assert_eq!((layout.input_len, layout.output_len), (2, 2));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(cablebridge_protocol::proptest_cases!(256)))]
    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
        let _ = fido_layout(&bytes);
    }
}
