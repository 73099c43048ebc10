//! The PIN itself (CTAP 2.1 §6.5.5.5 setPIN, §6.5.5.6 changePIN, §6.5.5.7 getting a token).
//!
//! A PIN is UTF-8, at least `minPINLength` (default 4) Unicode code points, at most 63 bytes
//! (so that the 64-byte zero-padded form always ends in a zero). It travels either padded
//! (`newPinEnc` = encrypt(paddedPin)) or hashed (`pinHashEnc` = encrypt(LEFT(SHA-256(PIN), 16))).
//! NUL is refused because the authenticator cuts the padded form at the first zero byte.

use crate::ctap2::error::Ctap2Error;
use crate::secret::{Secret, SecretBytes};
use sha2::{Digest, Sha256};

/// The default minimum PIN length in code points.
pub const DEFAULT_MIN_PIN_LENGTH: usize = 4;
/// The maximum PIN length in bytes.
pub const MAX_PIN_BYTES: usize = 63;
/// The padded PIN length.
pub const PADDED_PIN_LEN: usize = 64;

/// A validated PIN (secret: redacted Debug, zeroized).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Pin(SecretBytes);

impl Pin {
    /// Validates a PIN against the default minimum length (caller error if it breaks the rules).
    pub fn new(pin: &str) -> Result<Self, Ctap2Error> {
        Self::with_min_length(pin, DEFAULT_MIN_PIN_LENGTH)
    }

    /// Validates a PIN against an authenticator's `minPINLength` (from getInfo).
    pub fn with_min_length(pin: &str, min_code_points: usize) -> Result<Self, Ctap2Error> {
        check(pin.as_bytes(), min_code_points).map_err(Ctap2Error::InvalidPin)?;
        Ok(Pin(SecretBytes::new(pin.as_bytes().to_vec())))
    }

    /// Authenticator side: recovers the PIN from a decrypted 64-byte padded block. Violations
    /// are the platform's fault and map to `CTAP2_ERR_PIN_POLICY_VIOLATION`.
    pub fn from_padded(padded: &[u8], min_code_points: usize) -> Result<Self, Ctap2Error> {
        if padded.len() != PADDED_PIN_LEN {
            return Err(Ctap2Error::field("newPinEnc", "padded PIN is not 64 bytes"));
        }
        let end = padded.iter().position(|&b| b == 0).unwrap_or(padded.len());
        let pin = &padded[..end];
        if padded[end..].iter().any(|&b| b != 0) {
            return Err(Ctap2Error::PinPolicy("non-zero byte after the PIN's terminator"));
        }
        check(pin, min_code_points).map_err(Ctap2Error::PinPolicy)?;
        Ok(Pin(SecretBytes::new(pin.to_vec())))
    }

    /// The PIN's UTF-8 bytes.
    pub fn expose(&self) -> &[u8] {
        self.0.expose()
    }

    /// The PIN zero-padded to 64 bytes (the plaintext of `newPinEnc`).
    pub fn padded(&self) -> Secret<PADDED_PIN_LEN> {
        let mut b = [0u8; PADDED_PIN_LEN];
        // Length ≤ 63 was checked at construction, so this never truncates.
        let n = self.0.len().min(MAX_PIN_BYTES);
        b[..n].copy_from_slice(&self.0.expose()[..n]);
        let s = Secret::new(b);
        zeroize::Zeroize::zeroize(&mut b);
        s
    }

    /// `LEFT(SHA-256(PIN), 16)`, the plaintext of `pinHashEnc` and what an authenticator stores.
    pub fn hash16(&self) -> Secret<16> {
        let d = Sha256::digest(self.0.expose());
        let mut out = [0u8; 16];
        out.copy_from_slice(&d[..16]);
        Secret::new(out)
    }

    /// Length in Unicode code points (what `minPINLength` counts).
    pub fn code_points(&self) -> usize {
        core::str::from_utf8(self.0.expose()).map(|s| s.chars().count()).unwrap_or(0)
    }
}

fn check(pin: &[u8], min_code_points: usize) -> Result<(), &'static str> {
    let s = core::str::from_utf8(pin).map_err(|_| "PIN is not UTF-8")?;
    if pin.len() > MAX_PIN_BYTES {
        return Err("PIN is longer than 63 bytes");
    }
    if s.contains('\0') {
        return Err("PIN contains a NUL character");
    }
    if s.chars().count() < min_code_points.max(DEFAULT_MIN_PIN_LENGTH) {
        return Err("PIN is shorter than the minimum length");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_counts_code_points_and_bytes() {
        assert!(Pin::new("1234").is_ok());
        assert_eq!(
            Pin::new("123"),
            Err(Ctap2Error::InvalidPin("PIN is shorter than the minimum length"))
        );
        // Four code points, twelve bytes: long enough.
        assert_eq!(Pin::new("€€€€").unwrap().code_points(), 4);
        assert!(Pin::new(&"1".repeat(63)).is_ok());
        assert!(Pin::new(&"1".repeat(64)).is_err());
        assert!(Pin::new("12\u{0}45").is_err());
        assert!(Pin::with_min_length("12345", 6).is_err());
        assert!(!format!("{:?}", Pin::new("9876").unwrap()).contains("9876"));
    }

    #[test]
    fn padding_and_hash() {
        let p = Pin::new("1234").unwrap();
        let padded = p.padded();
        assert_eq!(&padded.expose()[..4], b"1234");
        assert!(padded.expose()[4..].iter().all(|&b| b == 0));
        // SHA-256("1234") = 03ac6742...
        assert_eq!(hex::encode(p.hash16().expose()), "03ac674216f3e15c761ee1a5e255f067");
        assert_eq!(Pin::from_padded(padded.expose(), 4).unwrap(), p);
        assert!(matches!(
            Pin::from_padded(&padded.expose()[..63], 4),
            Err(Ctap2Error::InvalidField { .. })
        ));
        let mut bad = *padded.expose();
        bad[10] = 1;
        assert!(matches!(Pin::from_padded(&bad, 4), Err(Ctap2Error::PinPolicy(_))));
        assert!(matches!(Pin::from_padded(&[b'1'; 64], 4), Err(Ctap2Error::PinPolicy(_))));
        let short = Pin::from_padded(&[0u8; 64], 4).unwrap_err();
        assert_eq!(short.to_status(), crate::ctap2::StatusCode::PinPolicyViolation);
    }
}
