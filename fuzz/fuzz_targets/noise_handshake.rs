//! Noise handshake messages (protocol/src/hybrid/noise.rs via the session types), both roles and
//! both patterns: the phone reading a hostile message 1 (KNpsk0 for a QR session, NKpsk0 for a
//! linked one) and the desktop reading a hostile message 2. Keys are the transcript's, so the
//! seed corpus (the transcript's real messages) completes the handshake and mutations of it
//! reach every check (length, point decoding, tag).
#![no_main]

use cablebridge_fuzz as fx;
use cablebridge_protocol::hybrid::noise::{InitiatorKeys, ResponderKeys};
use cablebridge_protocol::hybrid::session::{DesktopHandshake, PhoneHandshaken};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&role, msg)) = data.split_first() else { return };
    let psk = fx::psk();
    // Fixed identity keys with their public halves computed once per process; the handshakes'
    // own P-256 work (ephemeral keys, ECDH) still runs per input.
    let desktop_identity = fx::desktop_identity();
    let phone_identity = fx::key(fx::PHONE_IDENTITY);
    match role % 4 {
        // Phone, QR session: msg is message 1.
        0 => {
            let keys = ResponderKeys::Qr { desktop_identity: &desktop_identity.public_key() };
            let eph = fx::key(fx::PHONE_EPHEMERAL);
            if let Ok((phone, msg2)) = PhoneHandshaken::respond_with_ephemeral(keys, &psk, msg, eph)
            {
                assert_eq!(msg2.len(), 81);
                let _ = phone.handshake_hash();
            }
        }
        // Phone, linked session.
        1 => {
            let keys = ResponderKeys::Linked { phone_identity: &phone_identity };
            let eph = fx::key(fx::PHONE_EPHEMERAL);
            let _ = PhoneHandshaken::respond_with_ephemeral(keys, &psk, msg, eph);
        }
        // Desktop, QR session: msg is message 2.
        2 => {
            let keys = InitiatorKeys::Qr { desktop_identity };
            let (desktop, msg1) =
                DesktopHandshake::start_with_ephemeral(keys, &psk, fx::key(fx::DESKTOP_EPHEMERAL));
            assert_eq!(msg1.len(), 81);
            let _ = desktop.read_response(msg);
        }
        // Desktop, linked session.
        _ => {
            let keys = InitiatorKeys::Linked { phone_identity: fx::phone_identity_public() };
            let (desktop, _) =
                DesktopHandshake::start_with_ephemeral(keys, &psk, fx::key(fx::DESKTOP_EPHEMERAL));
            let _ = desktop.read_response(msg);
        }
    }
});
