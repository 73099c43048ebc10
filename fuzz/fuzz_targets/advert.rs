//! BLE adverts (service data of any length) against a fixed set of pending sessions (a QR session
//! and a linked phone), through the desktop's multi-session `AdvertMatcher` (trial-open, dedupe,
//! diagnostics) and a single pairing's diagnostic trial-open. Raw bytes almost never carry a
//! valid tag, so the first byte can also ask for the rest to be sealed under one of the session
//! keys first (as a phone would), which reaches the plaintext rules (reserved byte, domain id).
#![no_main]

use cablebridge_fuzz as fx;
use cablebridge_protocol::hybrid::eid::{EidKey, EidPlaintext};
use cablebridge_protocol::hybrid::session::{AdvertMatcher, DesktopPairing, MatchOutcome};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    // The fixed keys' public halves are computed once per process (fx::desktop_identity); the
    // pairings, their EID keys and the matcher are rebuilt per input, as a ceremony builds them.
    let desktop_identity = fx::desktop_identity();
    let phone = fx::phone_identity_public();
    let qr = DesktopPairing::from_qr(&fx::qr_secret(), desktop_identity);
    let linked = DesktopPairing::from_link(&fx::link_secret(), &fx::CLIENT_NONCE, phone);
    let mut matcher = AdvertMatcher::new(mode & 0x80 != 0);
    matcher.add(0, DesktopPairing::from_qr(&fx::qr_secret(), desktop_identity));
    matcher.add(1, DesktopPairing::from_link(&fx::link_secret(), &fx::CLIENT_NONCE, phone));

    let advert: Vec<u8> = match (mode & 0x03, rest.split_first_chunk::<16>()) {
        (1, Some((block, suffix))) => {
            let mut a =
                EidKey::from_qr_secret(&fx::qr_secret()).seal(&EidPlaintext(*block)).to_vec();
            a.extend_from_slice(suffix);
            a
        }
        (2, Some((block, suffix))) => {
            let key = EidKey::from_link(&fx::link_secret(), &fx::CLIENT_NONCE);
            let mut a = key.seal(&EidPlaintext(*block)).to_vec();
            a.extend_from_slice(suffix);
            a
        }
        _ => rest.to_vec(),
    };
    let _ = qr.offer_advert(&advert);
    let _ = qr.offer_advert_diagnostic(&advert);
    let _ = linked.offer_advert_diagnostic(&advert);
    let first = matcher.offer(&advert);
    let second = matcher.offer(&advert);
    // The same advert twice: a match becomes a duplicate, anything else stays what it was.
    match first {
        MatchOutcome::Matched { session, .. } => {
            assert_eq!(second, MatchOutcome::Duplicate { session });
            let pairing = matcher.take(session);
            assert!(pairing.is_some());
        }
        other => assert_eq!(second, other),
    }
});
