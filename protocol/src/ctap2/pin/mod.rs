//! PIN/UV auth protocols one and two (CTAP 2.1 §6.5.6 and §6.5.7), for both the platform and the
//! authenticator.
//!
//! * [`protocol`] — the primitives: KDF, encrypt/decrypt, authenticate/verify, the shared secret
//!   and the PIN/UV auth token types.
//! * [`key_agreement`] — P-256 ECDH with COSE keys (alg -25): the platform's encapsulate and the
//!   authenticator's key agreement key pair.
//! * [`pin_code`] — the PIN itself: validation, 64-byte zero padding, `LEFT(SHA-256(PIN), 16)`.
//! * [`client`] — platform flows: a [`client::PinSession`] built from a getKeyAgreement answer
//!   that produces setPIN / changePIN / getPinToken / get…WithPermissions requests and decrypts
//!   the token.
//! * [`authenticator`] — the matching authenticator-side helpers (decrypt newPinEnc / pinHashEnc,
//!   verify pinUvAuthParam, encrypt the token).
//!
//! Randomness (ephemeral keys, v2 IVs, tokens) always comes from a caller-supplied
//! `CryptoRngCore`. Secrets (shared secrets, tokens, PINs) are secret types. PIN *policy*
//! (retry counters, blocking) is the authenticator's business, not this module's.

pub mod authenticator;
pub mod client;
pub mod key_agreement;
pub mod pin_code;
pub mod protocol;

pub use key_agreement::{AuthenticatorKeyAgreement, KeyAgreementKey, PlatformKeyAgreement};
pub use pin_code::Pin;
pub use protocol::{PinUvAuthProtocol, PinUvAuthToken, SharedSecret};
