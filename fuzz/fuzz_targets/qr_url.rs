//! `FIDO:/` QR URLs (protocol/src/hybrid/{digits,qr}.rs), as `cablebridge phone --qr` and
//! `qr decode` read them: the digit decoding with its rejection rules, then the QR payload CBOR.
//! Round trips: a payload we accept re-encodes to a URL that decodes to the same payload up to
//! the documented normalisation (`to_cbor` always writes key 4, `linking` absent = false, and
//! never re-emits unknown keys), the URL is then stable, and decoded digits re-encode to the
//! same digits.
#![no_main]

use cablebridge_protocol::hybrid::digits;
use cablebridge_protocol::hybrid::qr::QrPayload;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(url) = std::str::from_utf8(data) else {
        // Raw bytes: the QR payload CBOR on its own (what the digits carry).
        if let Ok(payload) = QrPayload::from_cbor(data) {
            round_trip(&payload);
        }
        return;
    };
    if let Ok(payload) = QrPayload::from_url(url) {
        round_trip(&payload);
    }
    if let Ok(bytes) = digits::decode(url) {
        assert_eq!(digits::encode(&bytes), url, "digits do not round-trip");
    }
});

fn round_trip(payload: &QrPayload) {
    let url = payload.to_url();
    let Ok(again) = QrPayload::from_url(&url) else { panic!("our own URL does not decode: {url}") };
    let mut expected = payload.clone();
    expected.linking = Some(payload.linking.unwrap_or(false));
    expected.unknown_keys.clear();
    assert_eq!(again, expected, "to_url -> from_url changed the payload");
    assert_eq!(again.to_url(), url, "the URL is not stable");
}
