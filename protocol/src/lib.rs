//! # cablebridge-protocol
//!
//! Sans-IO implementations of the wire protocols cablebridge speaks:
//!
//! * [`hybrid`] — the FIDO hybrid transport ("caBLE v2"): QR payload and `FIDO:/` digits, HKDF
//!   purposes, BLE EID seal/trial-open, tunnel domains and URLs, Noise KNpsk0/NKpsk0 for both
//!   roles, the in-place Crypter, post-handshake/typed/linking messages.
//! * [`ctap1`] — FIDO U2F (CTAP1) APDUs, their conversion to CTAP2-shaped results and a
//!   software U2F authenticator.
//! * [`ctaphid`] — CTAPHID framing and the host and device transaction state machines.
//! * [`ctap2`] — CTAP2 request/response types, status codes, PIN/UV auth protocols 1 and 2,
//!   attestation object and authenticator-data parsing.
//! * [`authenticator`] — a software CTAP2 authenticator as a pure state machine.
//! * [`cbor`] — the one CBOR codec, which always writes CTAP2 canonical form.
//!
//! ## What this crate does not do
//!
//! No IO, no clock reads, no global randomness. Time comes in as `now` arguments and randomness as
//! `&mut impl CryptoRngCore`; a `clippy.toml` `disallowed-methods` list and a CI step that builds
//! this crate's dependency tree without tokio keep it that way.
//!
//! ## How to drive a state machine
//!
//! Every stateful type here follows the same loop (the model is `quinn-proto`): feed one input
//! (bytes received, a timer that fired, a request from the application), then drain **all**
//! outputs (bytes to send, timers to arm, events) before feeding the next input. The types never
//! block and never panic on peer input; malformed input becomes an error that names the stage.
//!
//! ## Panic policy
//!
//! Peer input never panics. `unwrap`/`expect` are linted outside tests; indexing is only done
//! after a length check on the same slice.

pub mod authenticator;
pub mod cbor;
pub mod ctap1;
pub mod ctap2;
pub mod ctaphid;
pub mod error;
pub mod hybrid;
pub mod secret;

pub use error::{Fault, Stage};

/// Proptest case count: `n` in ordinary (CI) runs, `100 × n` when the tests are compiled with
/// `CB_SOAK` set (`CB_SOAK=1 bash scripts/test.sh`, the manual long mode). Read at compile time,
/// so the library itself still reads no environment at run time.
#[doc(hidden)]
#[macro_export]
macro_rules! proptest_cases {
    ($n:expr) => {
        if option_env!("CB_SOAK").is_some() {
            ($n) * 100
        } else {
            $n
        }
    };
}
