//! Large blobs (CTAP 2.1 §6.10 authenticatorLargeBlobs, §12.3 largeBlobKey).
//!
//! The authenticator keeps one opaque *serialized large-blob array*: a CBOR array of entries
//! followed by `LEFT(SHA-256(array), 16)`. The platform reads it in fragments ([`LargeBlobsRequest`]
//! `get`), opens the entry its credential's `largeBlobKey` decrypts, and writes the whole array
//! back in fragments (`set`, each authorised with
//! `authenticate(token, 32×0xff ‖ 0x0c 0x00 ‖ uint32LE(offset) ‖ SHA-256(fragment))` when the
//! authenticator is protected by a PIN/UV).
//!
//! An entry is `{1: ciphertext, 2: nonce (12), 3: origSize}`: AES-256-GCM under the
//! largeBlobKey with AAD `"blob" ‖ uint64LE(origSize)` over the raw-DEFLATE-compressed blob
//! (§6.10.3). Entries another key cannot open are kept verbatim when rewriting the array.

use crate::cbor::Value;
use crate::ctap2::error::Ctap2Error;
use crate::ctap2::fields::{self, opt, Fields, MapBuilder};
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use sha2::{Digest, Sha256};

/// The initial serialized array: an empty CBOR array (0x80) and its 16-byte SHA-256 trailer.
pub const EMPTY_ARRAY: [u8; 17] = [
    0x80, 0x76, 0xbe, 0x8b, 0x52, 0x8d, 0x00, 0x75, 0xf7, 0xaa, 0xe9, 0x8d, 0x6f, 0xa5, 0x7a, 0x6d,
    0x3c,
];

/// Largest decompressed blob we inflate (a hostile entry cannot make us allocate more).
pub const MAX_BLOB_LEN: usize = 1 << 20;

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

/// The entries of a serialized array (trailer checked).
pub fn parse_array(serialized: &[u8]) -> Result<Vec<Value>, Ctap2Error> {
    if !check_trailer(serialized) {
        return Err(Ctap2Error::InvalidField {
            field: "large-blob array",
            problem: "trailer does not match (corrupt array)",
        });
    }
    let array = &serialized[..serialized.len() - 16];
    match Value::decode(array)? {
        Value::Array(items) => Ok(items),
        _ => Err(Ctap2Error::InvalidField { field: "large-blob array", problem: "not an array" }),
    }
}

/// `CBOR(entries) ‖ trailer`.
pub fn serialize_array(entries: Vec<Value>) -> Vec<u8> {
    let mut out = Value::Array(entries).to_vec();
    let t = trailer(&out);
    out.extend_from_slice(&t);
    out
}

fn aad(orig_size: u64) -> Vec<u8> {
    let mut a = b"blob".to_vec();
    a.extend_from_slice(&orig_size.to_le_bytes());
    a
}

/// Compresses and encrypts `blob` under `key` into an array entry.
pub fn seal(key: &[u8; 32], blob: &[u8], rng: &mut impl rand_core::CryptoRngCore) -> Value {
    let compressed = miniz_oxide::deflate::compress_to_vec(blob, 6);
    let mut nonce = [0u8; 12];
    rng.fill_bytes(&mut nonce);
    let orig = blob.len() as u64;
    let cipher = Aes256Gcm::new(key.into());
    let mut ct = compressed;
    // AES-GCM fails only for plaintexts over 64 GiB.
    match cipher.encrypt_in_place_detached(&Nonce::from(nonce), &aad(orig), &mut ct) {
        Ok(tag) => ct.extend_from_slice(&tag),
        Err(_) => ct.clear(),
    }
    Value::int_map([
        (1, Value::bytes(ct)),
        (2, Value::bytes(nonce.to_vec())),
        (3, Value::Unsigned(orig)),
    ])
}

/// Decrypts and inflates an entry with `key`; `None` when it is not this key's (or corrupt).
pub fn open(key: &[u8; 32], entry: &Value) -> Option<Vec<u8>> {
    let ct = entry.get(1)?.as_bytes()?;
    let nonce: [u8; 12] = entry.get(2)?.as_bytes()?.try_into().ok()?;
    let orig = entry.get(3)?.as_u64()?;
    if orig > MAX_BLOB_LEN as u64 {
        return None;
    }
    let cipher = Aes256Gcm::new(key.into());
    let split = ct.len().checked_sub(16)?;
    let (body, tag) = ct.split_at(split);
    let mut compressed = body.to_vec();
    cipher
        .decrypt_in_place_detached(&Nonce::from(nonce), &aad(orig), &mut compressed, tag.into())
        .ok()?;
    let blob =
        miniz_oxide::inflate::decompress_to_vec_with_limit(&compressed, MAX_BLOB_LEN).ok()?;
    (blob.len() as u64 == orig).then_some(blob)
}

/// The message a `set` fragment's pinUvAuthParam authenticates (§6.10.2 step 5).
pub fn write_auth_message(offset: u32, fragment: &[u8]) -> Vec<u8> {
    let mut m = vec![0xff; 32];
    m.extend_from_slice(&[0x0c, 0x00]);
    m.extend_from_slice(&offset.to_le_bytes());
    m.extend_from_slice(&Sha256::digest(fragment));
    m
}

/// An authenticatorLargeBlobs request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LargeBlobsRequest {
    /// Read this many bytes.
    pub get: Option<u64>,
    /// Write this fragment.
    pub set: Option<Vec<u8>>,
    /// Where in the array.
    pub offset: u64,
    /// The whole array's length (with the first `set`).
    pub length: Option<u64>,
    /// `authenticate(token, write_auth_message(..))`.
    pub pin_uv_auth_param: Option<Vec<u8>>,
    /// Its protocol.
    pub pin_uv_auth_protocol: Option<u64>,
}

impl LargeBlobsRequest {
    /// Encodes the request body.
    pub fn to_cbor(&self) -> Value {
        MapBuilder::new()
            .put_opt(1, self.get)
            .put_opt(2, self.set.clone())
            .put(3, self.offset)
            .put_opt(4, self.length)
            .put_opt(5, self.pin_uv_auth_param.clone())
            .put_opt(6, self.pin_uv_auth_protocol)
            .build()
    }

    /// Decodes the request body.
    pub fn from_cbor(v: &Value) -> Result<Self, Ctap2Error> {
        let f = Fields::new(v, "largeBlobs request")?;
        Ok(LargeBlobsRequest {
            get: opt(f.get(1), "get", fields::uint)?,
            set: opt(f.get(2), "set", fields::bytes)?,
            offset: fields::uint(fields::req(f.get(3), "offset")?, "offset")?,
            length: opt(f.get(4), "length", fields::uint)?,
            pin_uv_auth_param: opt(f.get(5), "pinUvAuthParam", fields::bytes)?,
            pin_uv_auth_protocol: opt(f.get(6), "pinUvAuthProtocol", fields::uint)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn empty_array_is_an_empty_cbor_array_with_its_trailer() {
        assert_eq!(serialize_array(Vec::new()), EMPTY_ARRAY);
        assert!(parse_array(&EMPTY_ARRAY).unwrap().is_empty());
        let mut bad = EMPTY_ARRAY;
        bad[16] ^= 1;
        assert!(parse_array(&bad).is_err());
        assert!(parse_array(&EMPTY_ARRAY[..16]).is_err());
    }

    #[test]
    fn entries_open_only_with_their_key() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(12);
        let blob = b"a large blob, a large blob, a large blob".repeat(10);
        let e = seal(&[1; 32], &blob, &mut rng);
        let array = serialize_array(vec![e.clone(), Value::int_map([(1, Value::int(0))])]);
        let entries = parse_array(&array).unwrap();
        assert_eq!(open(&[1; 32], &entries[0]), Some(blob.clone()));
        assert_eq!(open(&[2; 32], &entries[0]), None);
        assert_eq!(open(&[1; 32], &entries[1]), None);
        assert!(e.get(1).unwrap().as_bytes().unwrap().len() < blob.len(), "compressed");
    }

    #[test]
    fn request_round_trip_and_auth_message() {
        let r = LargeBlobsRequest {
            set: Some(vec![1, 2]),
            offset: 0,
            length: Some(19),
            ..LargeBlobsRequest::default()
        };
        assert_eq!(LargeBlobsRequest::from_cbor(&r.to_cbor()).unwrap(), r);
        let m = write_auth_message(0x0102_0304, b"x");
        assert_eq!(&m[32..38], &[0x0c, 0x00, 0x04, 0x03, 0x02, 0x01]);
        assert_eq!(m.len(), 70);
    }
}
