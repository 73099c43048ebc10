//! Large blobs (CTAP 2.1 §6.10 authenticatorLargeBlobs, §12.3 largeBlobKey).
//!
//! The authenticator keeps one opaque *serialized large-blob array*: a CBOR array of entries
//! followed by `LEFT(SHA-256(array), 16)`. The platform reads it in fragments, finds the entry
//! its credential's `largeBlobKey` opens and writes the whole array back in fragments.

use sha2::{Digest, Sha256};

/// The initial serialized array: an empty CBOR array (0x80) and its 16-byte SHA-256 trailer.
pub const EMPTY_ARRAY: [u8; 17] = [
    0x80, 0x76, 0xbe, 0x8b, 0x52, 0x8d, 0x00, 0x75, 0xf7, 0xaa, 0xe9, 0x8d, 0x6f, 0xa5, 0x7a, 0x6d,
    0x3c,
];

/// `LEFT(SHA-256(array), 16)`.
pub fn trailer(array: &[u8]) -> [u8; 16] {
    let h = Sha256::digest(array);
    let mut t = [0u8; 16];
    t.copy_from_slice(&h[..16]);
    t
}

/// Whether `serialized` ends in the right trailer (at least 17 bytes).
pub fn check_trailer(serialized: &[u8]) -> bool {
    serialized.len() >= 17 && {
        let (array, t) = serialized.split_at(serialized.len() - 16);
        trailer(array) == t
    }
}
