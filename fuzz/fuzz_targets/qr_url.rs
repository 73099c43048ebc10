//! `FIDO:/` QR URLs (protocol/src/hybrid/{digits,qr}.rs), as `cablebridge phone --qr` and
//! `qr decode` read them: the digit decoding with its rejection rules, then the QR payload CBOR.
//! Round trips: a payload we accept re-encodes (canonically) to a URL that decodes to the same
//! payload, and decoded digits re-encode to the same digits.
#![no_main]

use cablebridge_protocol::hybrid::digits;
use cablebridge_protocol::hybrid::qr::QrPayload;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(url) = std::str::from_utf8(data) else {
        // Raw bytes: the QR payload CBOR on its own (what the digits carry).
        if let Ok(payload) = QrPayload::from_cbor(data) {
            assert_eq!(QrPayload::from_url(&payload.to_url()).ok(), Some(payload));
        }
        return;
    };
    if let Ok(payload) = QrPayload::from_url(url) {
        let again = QrPayload::from_url(&payload.to_url());
        assert_eq!(again.ok(), Some(payload), "to_url -> from_url changed the payload");
    }
    if let Ok(bytes) = digits::decode(url) {
        assert_eq!(digits::encode(&bytes), url, "digits do not round-trip");
    }
});
