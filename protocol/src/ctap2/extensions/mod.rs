//! CTAP2 extensions processed on both sides (CTAP 2.1 §12, CTAP 2.2 §12.7, WebAuthn L3 §10.1.4):
//!
//! * [`hmac_secret`] — `hmac-secret` (getAssertion: salts encrypted under a PIN/UV protocol
//!   shared secret, outputs encrypted back) and `hmac-secret-mc` (the same at makeCredential),
//!   the platform's sealing/opening and the authenticator's evaluation.
//! * [`prf`] — WebAuthn `prf` on top: the client's salt hashing
//!   (`SHA-256("WebAuthn PRF" ‖ 0x00 ‖ input)`) and the CTAP-level `prf` extension that hybrid
//!   phones take (hashed salts in, plain results out in the unsigned extension outputs).
//! * [`cred_protect`] — `credProtect` levels.
//! * [`large_blob`] — `largeBlobKey` and the large-blob array of authenticatorLargeBlobs (0x0C).
//!
//! `credBlob` needs no type of its own: a byte string in, `true`/`false` or the blob out.
//!
//! Not here: policy (which credential gets what, UV rules) — that is the software authenticator's
//! (`crate::authenticator`) and the platform's business.

pub mod cred_protect;
pub mod hmac_secret;
pub mod large_blob;
pub mod prf;

pub use cred_protect::CredProtect;
pub use hmac_secret::{HmacSecretInput, PrfOutputs, Salts};
pub use prf::{prf_salt, PrfRequest, PrfResponse};

/// `credProtect` extension identifier.
pub const CRED_PROTECT: &str = "credProtect";
/// `credBlob` extension identifier.
pub const CRED_BLOB: &str = "credBlob";
/// `largeBlobKey` extension identifier.
pub const LARGE_BLOB_KEY: &str = "largeBlobKey";
/// `hmac-secret` extension identifier.
pub const HMAC_SECRET: &str = "hmac-secret";
/// `hmac-secret-mc` extension identifier (CTAP 2.2).
pub const HMAC_SECRET_MC: &str = "hmac-secret-mc";
/// `prf` extension identifier (the CTAP-level one phones take over hybrid).
pub const PRF: &str = "prf";
/// `minPinLength` extension identifier.
pub const MIN_PIN_LENGTH: &str = "minPinLength";

/// Reads extension `name` from an extensions map (text keys).
pub fn get<'a>(
    extensions: Option<&'a crate::cbor::Value>,
    name: &str,
) -> Option<&'a crate::cbor::Value> {
    extensions?.get_text(name)
}
