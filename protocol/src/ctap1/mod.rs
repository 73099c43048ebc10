//! CTAP1 / FIDO U2F (FIDO U2F Raw Message Formats v1.2, FIDO U2F HID Protocol §4.1.1 `U2FHID_MSG`;
//! CTAP 2.1 §11.2.9.1.1 `CTAPHID_MSG`), sans-IO, for both roles.
//!
//! * [`apdu`]: ISO 7816-4 command/response APDUs as U2F uses them — extended-length encoding the
//!   way libfido2 sends it (`CLA INS P1 P2 00 Lc₁ Lc₂ data 00 00`), short encoding accepted on
//!   receive — and the [`StatusWord`]s U2F defines (0x9000, 0x6985, 0x6A80, …).
//! * [`messages`]: `U2F_REGISTER` (0x01), `U2F_AUTHENTICATE` (0x02, control bytes 0x07
//!   check-only / 0x03 enforce-user-presence / 0x08 dont-enforce) and `U2F_VERSION` (0x03):
//!   typed requests and borrowing response parsers that reject every malformed shape with a
//!   [`U2fError`] naming the field.
//! * [`convert`]: a U2F registration/authentication as the CTAP2-shaped results the rest of the
//!   engine speaks — a `fido-u2f` attestation object (WebAuthn §8.6, CTAP 2.1 §10.3
//!   "Interoperating with CTAP1/U2F authenticators") and assertion authenticator data.
//! * [`authenticator`]: a software U2F authenticator (what `virtual-key --u2f-only` runs); user
//!   presence is an argument, so the caller owns the touch timing.
//!
//! What it is not: CTAPHID framing (that is [`crate::ctaphid`], command `Msg`), or the host's
//! polling loop (the daemon's `ctap::u2f` retries on 0x6985 until a touch or its deadline).

pub mod apdu;
pub mod authenticator;
pub mod convert;
pub mod messages;

pub use apdu::{CommandApdu, ResponseApdu, StatusWord};
pub use authenticator::U2fAuthenticator;
pub use messages::{
    AuthenticateRequest, AuthenticateResponse, Control, Instruction, RegisterRequest,
    RegisterResponse, U2fError,
};

/// The U2F version string `U2F_VERSION` answers.
pub const U2F_V2: &str = "U2F_V2";
/// Longest key handle U2F allows (its length travels in one byte).
pub const MAX_KEY_HANDLE_LEN: usize = 255;
/// First byte of a registration response ("reserved", always 0x05).
pub const REGISTER_RESERVED: u8 = 0x05;
/// Length of an uncompressed P-256 point (`0x04 ‖ x ‖ y`).
pub const P256_POINT_LEN: usize = 65;

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::proptest_cases!(256)))]

        /// Peer input never panics: every parser returns a value or a typed error, and the
        /// software key answers any byte string with a well-formed response APDU.
        #[test]
        fn parsers_and_the_software_key_survive_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = CommandApdu::parse(&bytes);
            let _ = ResponseApdu::parse(&bytes);
            let _ = RegisterResponse::parse(&bytes);
            let _ = AuthenticateResponse::parse(&bytes);
            let _ = messages::parse_version(&bytes);
            let mut rng = rand::rngs::StdRng::seed_from_u64(1);
            let master = crate::authenticator::MasterKey::random(&mut rng);
            let mut key = U2fAuthenticator::new(master, 0, &mut rng).unwrap();
            let reply = key.handle(&bytes, true, &mut rng);
            prop_assert!(ResponseApdu::parse(&reply.apdu).is_ok());
        }

        /// Whatever a host sends, the device side reads back the same command.
        #[test]
        fn command_apdus_round_trip(ins in any::<u8>(), p1 in any::<u8>(), p2 in any::<u8>(),
                                    data in proptest::collection::vec(any::<u8>(), 0..600)) {
            let apdu = CommandApdu { cla: 0, ins, p1, p2, data };
            let wire = apdu.encode().unwrap();
            prop_assert_eq!(CommandApdu::parse(&wire).unwrap(), apdu);
        }
    }
}
