//! The `FIDO:/` decimal digit encoding of the QR payload (§2.2).
//!
//! Bytes are cut into 7-byte chunks (the last may be 1–6 bytes); each chunk, read as a
//! **little-endian** integer, is printed in decimal zero-padded to a width fixed by the chunk
//! length. Decimal digits fit QR numeric mode, which is the point of the scheme.
//!
//! What it is not: the `FIDO:/` prefix or the CBOR inside — see [`super::qr`].

use crate::error::{Classify, Fault, Stage};
use core::fmt;

/// Decimal width for a chunk of `i` bytes (index 0 unused). Chrome's nibble table `0x0fda8530`.
const WIDTHS: [usize; 8] = [0, 3, 5, 8, 10, 13, 15, 17];
/// Bytes per full chunk.
const CHUNK: usize = 7;
/// Digits per full chunk.
const CHUNK_DIGITS: usize = 17;

/// Why a digit string was rejected. Each §2.2 rule is its own variant.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigitsError {
    /// A character other than `0`–`9`.
    NonDigit {
        /// Byte offset in the digit string.
        position: usize,
        /// The offending character.
        found: char,
    },
    /// After the 17-digit groups, the remaining digits are not 0, 3, 5, 8, 10, 13 or 15 long.
    BadTailLength(usize),
    /// A 17-digit group is ≥ 2^56, so it does not fit 7 bytes.
    ChunkOverflow {
        /// Zero-based index of the 17-digit group.
        chunk: usize,
    },
    /// The final short group's value does not fit the byte count its length implies.
    TailTooLarge {
        /// Number of digits in the tail.
        digits: usize,
        /// Bytes that many digits must encode.
        bytes: usize,
    },
}

impl fmt::Display for DigitsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DigitsError::NonDigit { position, found } => {
                write!(f, "non-digit character {found:?} at position {position}")
            }
            DigitsError::BadTailLength(n) => write!(
                f,
                "digit count leaves a final group of {n} digits; only 3, 5, 8, 10, 13 or 15 are valid"
            ),
            DigitsError::ChunkOverflow { chunk } => {
                write!(f, "17-digit group #{chunk} is 2^56 or more and does not fit 7 bytes")
            }
            DigitsError::TailTooLarge { digits, bytes } => write!(
                f,
                "final {digits}-digit group is too large for the {bytes} byte(s) it must encode"
            ),
        }
    }
}

impl std::error::Error for DigitsError {}

impl Classify for DigitsError {
    fn fault(&self) -> Fault {
        Fault::Peer
    }
    fn stage(&self) -> Stage {
        Stage::Qr
    }
}

/// Encodes bytes as decimal digits. Empty input gives an empty string.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(CHUNK) * CHUNK_DIGITS);
    for chunk in bytes.chunks(CHUNK) {
        let mut le = [0u8; 8];
        le[..chunk.len()].copy_from_slice(chunk);
        let v = u64::from_le_bytes(le);
        let width = WIDTHS[chunk.len()];
        out.push_str(&format!("{v:0width$}"));
    }
    out
}

/// Value of an all-ASCII-digit string (at most 17 digits, so it cannot overflow u64).
fn value(digits: &[u8]) -> u64 {
    digits.iter().fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'))
}

/// Decodes a digit string, enforcing every rule of §2.2.
pub fn decode(digits: &str) -> Result<Vec<u8>, DigitsError> {
    let raw = digits.as_bytes();
    if let Some((position, found)) = digits.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        return Err(DigitsError::NonDigit { position, found });
    }
    let tail_len = raw.len() % CHUNK_DIGITS;
    // Bytes a tail of `tail_len` digits encodes; None for an invalid length.
    let tail_bytes = match WIDTHS.iter().position(|w| *w == tail_len) {
        Some(n) => n,
        None => return Err(DigitsError::BadTailLength(tail_len)),
    };
    let mut out = Vec::with_capacity(raw.len() / CHUNK_DIGITS * CHUNK + tail_bytes);
    let mut groups = raw.chunks_exact(CHUNK_DIGITS);
    for (chunk, group) in groups.by_ref().enumerate() {
        let v = value(group);
        if v >> 56 != 0 {
            return Err(DigitsError::ChunkOverflow { chunk });
        }
        out.extend_from_slice(&v.to_le_bytes()[..CHUNK]);
    }
    let tail = groups.remainder();
    if tail_bytes > 0 {
        let v = value(tail);
        if v >> (8 * tail_bytes) != 0 {
            return Err(DigitsError::TailTooLarge { digits: tail_len, bytes: tail_bytes });
        }
        out.extend_from_slice(&v.to_le_bytes()[..tail_bytes]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chromium_and_libwebauthn_vectors() {
        assert_eq!(encode(&[0x61, 0x62, 0xff]), "16736865");
        assert_eq!(decode("16736865").unwrap(), vec![0x61, 0x62, 0xff]);
        assert_eq!(encode(b"hello world"), "335311851610699281684828783");
        for n in 0..=8 {
            let zeros = vec![0u8; n];
            let d = encode(&zeros);
            assert!(d.bytes().all(|c| c == b'0'));
            assert_eq!(decode(&d).unwrap(), zeros);
        }
        assert_eq!(encode(&[0; 8]).len(), 20);
    }

    #[test]
    fn each_rule_has_its_own_error() {
        assert_eq!(decode("12a"), Err(DigitsError::NonDigit { position: 2, found: 'a' }));
        assert_eq!(decode("1"), Err(DigitsError::BadTailLength(1)));
        assert_eq!(decode(&"0".repeat(18)), Err(DigitsError::BadTailLength(1)));
        assert_eq!(decode("99999999999999999"), Err(DigitsError::ChunkOverflow { chunk: 0 }));
        // 2^56 - 1 is the largest 7-byte value and must pass.
        assert_eq!(decode("72057594037927935").unwrap(), vec![0xff; 7]);
        assert_eq!(decode("999"), Err(DigitsError::TailTooLarge { digits: 3, bytes: 1 }));
        assert_eq!(decode("255").unwrap(), vec![0xff]);
        assert_eq!(decode("").unwrap(), Vec::<u8>::new());
    }
}
