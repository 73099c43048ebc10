//! The data-phase "Crypter" (§7.5): 32-byte-granular padding plus AES-256-GCM with per-direction
//! big-endian sequence numbers, working **in place on a buffer the caller owns**.
//!
//! Each direction's AES key schedule and GHASH key are computed once, when the session is
//! established, and reused for every frame; sealing or opening a frame performs no heap
//! allocation (proved by `tests/crypter_alloc.rs`). Only the current ("new") construction is
//! implemented: current Chrome, Android and iOS speak nothing else (§7.5, legacy note).
//!
//! Not here: what the plaintexts mean (`messages`), or where the keys come from (`noise`).

use crate::error::{Classify, Fault, Stage};
use crate::hybrid::messages::FrameType;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Tag};

type Nonce = aes_gcm::Nonce<aes_gcm::aead::consts::U12>;
use core::fmt;

/// Length of the AES-GCM tag appended to every frame.
pub const TAG_LEN: usize = 16;
/// Padded plaintexts are a multiple of this many bytes.
pub const PADDING_GRANULE: usize = 32;
/// Highest sequence number used, like Chrome (§11.2 item 18): 2^24 − 1.
pub const MAX_SEQUENCE: u32 = (1 << 24) - 1;

/// Which direction a counter belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Frames this side sends.
    Write,
    /// Frames this side receives.
    Read,
}

/// Errors from sealing or opening a frame.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrypterError {
    /// The caller's buffer cannot hold the sealed frame.
    BufferTooSmall {
        /// Bytes required ([`sealed_len`]).
        needed: usize,
        /// Bytes available.
        have: usize,
    },
    /// A received frame shorter than a tag plus the padding trailer byte.
    FrameTooShort(usize),
    /// AES-GCM authentication failed (wrong key, replayed, reordered or corrupted frame).
    TagMismatch {
        /// The sequence number the frame was expected to carry.
        sequence: u32,
    },
    /// The padding trailer claims more zeros than the plaintext holds.
    BadPadding,
    /// More than [`MAX_SEQUENCE`] frames in one direction.
    SequenceExhausted(Direction),
    /// A plaintext beyond AES-GCM's per-message limit (about 64 GiB).
    TooLarge(usize),
}

impl fmt::Display for CrypterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CrypterError::BufferTooSmall { needed, have } => {
                write!(f, "buffer for the sealed frame is {have} bytes, {needed} needed")
            }
            CrypterError::FrameTooShort(n) => {
                write!(f, "encrypted frame of {n} bytes is shorter than tag and padding")
            }
            CrypterError::TagMismatch { sequence } => write!(
                f,
                "encrypted frame did not authenticate at read sequence {sequence} \
                 (corrupted, replayed or reordered)"
            ),
            CrypterError::BadPadding => write!(f, "decrypted frame has an invalid padding trailer"),
            CrypterError::SequenceExhausted(d) => {
                write!(f, "{d:?} sequence number exceeded {MAX_SEQUENCE}")
            }
            CrypterError::TooLarge(n) => {
                write!(f, "plaintext of {n} bytes exceeds AES-GCM's limit")
            }
        }
    }
}

impl std::error::Error for CrypterError {}

impl Classify for CrypterError {
    fn fault(&self) -> Fault {
        match self {
            CrypterError::BufferTooSmall { .. }
            | CrypterError::TooLarge(_)
            | CrypterError::SequenceExhausted(Direction::Write) => Fault::Caller,
            _ => Fault::Peer,
        }
    }
    fn stage(&self) -> Stage {
        Stage::Transport
    }
}

/// Padded length of a plaintext: the smallest multiple of 32 that is ≥ `plaintext_len + 1`.
pub const fn padded_len(plaintext_len: usize) -> usize {
    (plaintext_len / PADDING_GRANULE + 1) * PADDING_GRANULE
}

/// Length of the sealed frame (padded plaintext plus tag) for a plaintext length.
pub const fn sealed_len(plaintext_len: usize) -> usize {
    padded_len(plaintext_len) + TAG_LEN
}

/// `8 zero bytes ‖ BE u32` (§7.5 step 2).
fn nonce(sequence: u32) -> Nonce {
    let mut n = [0u8; 12];
    n[8..].copy_from_slice(&sequence.to_be_bytes());
    Nonce::from(n)
}

/// The two directions of an established session. Keys live only inside the AES-GCM instances
/// (the `aes`/`aes-gcm` `zeroize` features wipe the expanded keys on drop).
pub struct Crypter {
    write: Aes256Gcm,
    read: Aes256Gcm,
    write_sequence: u32,
    read_sequence: u32,
}

impl fmt::Debug for Crypter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Crypter")
            .field("keys", &"<redacted>")
            .field("write_sequence", &self.write_sequence)
            .field("read_sequence", &self.read_sequence)
            .finish()
    }
}

impl Crypter {
    /// A crypter from the split traffic keys (desktop: write = k1, read = k2; phone: reversed).
    pub fn new(write_key: &[u8; 32], read_key: &[u8; 32]) -> Self {
        Crypter {
            write: Aes256Gcm::new(write_key.into()),
            read: Aes256Gcm::new(read_key.into()),
            write_sequence: 0,
            read_sequence: 0,
        }
    }

    /// Sequence number of the next frame to seal.
    pub fn write_sequence(&self) -> u32 {
        self.write_sequence
    }

    /// Sequence number the next received frame must carry.
    pub fn read_sequence(&self) -> u32 {
        self.read_sequence
    }

    /// Test hook: jump the counters (to exercise [`MAX_SEQUENCE`] without 2^24 frames).
    #[doc(hidden)]
    pub fn set_sequences_for_tests(&mut self, write: u32, read: u32) {
        self.write_sequence = write;
        self.read_sequence = read;
    }

    /// Pads and seals the plaintext in `buf[..plaintext_len]`, in place. `buf` must be at least
    /// [`sealed_len`]`(plaintext_len)` bytes; bytes after the plaintext are overwritten. Returns
    /// the sealed length (the frame is `buf[..returned]`).
    pub fn seal_in_place(
        &mut self,
        buf: &mut [u8],
        plaintext_len: usize,
    ) -> Result<usize, CrypterError> {
        let padded = padded_len(plaintext_len);
        let needed = padded + TAG_LEN;
        if buf.len() < needed {
            return Err(CrypterError::BufferTooSmall { needed, have: buf.len() });
        }
        if self.write_sequence > MAX_SEQUENCE {
            return Err(CrypterError::SequenceExhausted(Direction::Write));
        }
        let zeros = padded - plaintext_len - 1;
        let (body, rest) = buf.split_at_mut(padded);
        body[plaintext_len..padded - 1].fill(0);
        // zeros ≤ 31, fits a byte.
        body[padded - 1] = zeros as u8;
        let tag = self
            .write
            .encrypt_in_place_detached(&nonce(self.write_sequence), &[], body)
            // Only fails beyond AES-GCM's ~64 GiB message limit.
            .map_err(|_| CrypterError::TooLarge(plaintext_len))?;
        rest[..TAG_LEN].copy_from_slice(&tag);
        self.write_sequence += 1;
        Ok(needed)
    }

    /// Opens the frame occupying all of `buf` in place and strips the padding. Returns the
    /// plaintext length (the plaintext is `buf[..returned]`). The read counter advances only
    /// when the frame authenticates.
    pub fn open_in_place(&mut self, buf: &mut [u8]) -> Result<usize, CrypterError> {
        if buf.len() < TAG_LEN + 1 {
            return Err(CrypterError::FrameTooShort(buf.len()));
        }
        if self.read_sequence > MAX_SEQUENCE {
            return Err(CrypterError::SequenceExhausted(Direction::Read));
        }
        let (body, tag) = buf.split_at_mut(buf.len() - TAG_LEN);
        let mut tag_bytes = [0u8; TAG_LEN];
        tag_bytes.copy_from_slice(tag);
        let tag = Tag::from(tag_bytes);
        self.read
            .decrypt_in_place_detached(&nonce(self.read_sequence), &[], body, &tag)
            .map_err(|_| CrypterError::TagMismatch { sequence: self.read_sequence })?;
        self.read_sequence += 1;
        // Padding need not be 32-granular on receipt: libwebauthn pads before prepending the
        // type byte (§11.1), so only the trailer is checked.
        let zeros = usize::from(body[body.len() - 1]);
        if zeros + 1 > body.len() {
            return Err(CrypterError::BadPadding);
        }
        Ok(body.len() - zeros - 1)
    }

    /// Convenience: seals `frame_type ‖ payload` into `out`, reusing its capacity (no allocation
    /// once `out` has grown to the largest frame size).
    pub fn seal_frame(
        &mut self,
        frame_type: FrameType,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), CrypterError> {
        out.clear();
        out.push(frame_type as u8);
        out.extend_from_slice(payload);
        let plaintext_len = out.len();
        out.resize(sealed_len(plaintext_len), 0);
        match self.seal_in_place(out, plaintext_len) {
            Ok(n) => {
                out.truncate(n);
                Ok(())
            }
            Err(e) => {
                out.clear();
                Err(e)
            }
        }
    }

    /// Seals an untyped plaintext (the post-handshake message) into `out`, reusing its capacity.
    pub fn seal_plain(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), CrypterError> {
        out.clear();
        out.extend_from_slice(plaintext);
        out.resize(sealed_len(plaintext.len()), 0);
        match self.seal_in_place(out, plaintext.len()) {
            Ok(n) => {
                out.truncate(n);
                Ok(())
            }
            Err(e) => {
                out.clear();
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Crypter, Crypter) {
        let (a, b) = ([1u8; 32], [2u8; 32]);
        (Crypter::new(&a, &b), Crypter::new(&b, &a))
    }

    #[test]
    fn padding_lengths_match_spec_examples() {
        assert_eq!(padded_len(0), 32);
        assert_eq!(padded_len(31), 32);
        assert_eq!(padded_len(32), 64);
        assert_eq!(sealed_len(1), 48);
    }

    #[test]
    fn round_trip_and_padding_bytes() {
        let (mut d, mut p) = pair();
        let mut buf = [0xAAu8; 64 + TAG_LEN];
        buf[..32].fill(7);
        let n = d.seal_in_place(&mut buf, 32).unwrap();
        assert_eq!(n, 80);
        let m = p.open_in_place(&mut buf[..n]).unwrap();
        assert_eq!(m, 32);
        assert!(buf[..32].iter().all(|b| *b == 7));
        assert!(buf[32..63].iter().all(|b| *b == 0));
        assert_eq!(buf[63], 31);
    }

    #[test]
    fn small_buffer_is_a_caller_error() {
        let (mut d, _) = pair();
        let mut buf = [0u8; 47];
        let e = d.seal_in_place(&mut buf, 1).unwrap_err();
        assert_eq!(e, CrypterError::BufferTooSmall { needed: 48, have: 47 });
        assert_eq!(e.fault(), Fault::Caller);
        assert_eq!(d.write_sequence(), 0);
    }

    #[test]
    fn failed_open_does_not_advance_counter() {
        let (mut d, mut p) = pair();
        let mut buf = Vec::new();
        d.seal_frame(FrameType::Ctap, b"hi", &mut buf).unwrap();
        let mut bad = buf.clone();
        bad[0] ^= 1;
        assert_eq!(p.open_in_place(&mut bad), Err(CrypterError::TagMismatch { sequence: 0 }));
        assert_eq!(p.read_sequence(), 0);
        assert_eq!(p.open_in_place(&mut buf), Ok(3));
        assert_eq!(p.open_in_place(&mut [0u8; 16]), Err(CrypterError::FrameTooShort(16)));
    }

    #[test]
    fn sequence_limit_is_enforced() {
        let (mut d, mut p) = pair();
        d.set_sequences_for_tests(MAX_SEQUENCE, 0);
        p.set_sequences_for_tests(0, MAX_SEQUENCE);
        let mut buf = Vec::new();
        d.seal_frame(FrameType::Ctap, b"x", &mut buf).unwrap();
        assert_eq!(p.open_in_place(&mut buf), Ok(2));
        let e = d.seal_frame(FrameType::Ctap, b"x", &mut buf).unwrap_err();
        assert_eq!(e, CrypterError::SequenceExhausted(Direction::Write));
        let e = p.open_in_place(&mut [0u8; 48]).unwrap_err();
        assert_eq!(e, CrypterError::SequenceExhausted(Direction::Read));
        assert_eq!(e.fault(), Fault::Peer);
    }
}

#[cfg(test)]
mod round_trip {
    use super::*;
    use proptest::prelude::*;

    /// Every plaintext length 0..4096 (deterministic), sealed and opened with a fresh pattern.
    #[test]
    fn every_length_round_trips_and_wrong_key_or_counter_fails() {
        let mut d = Crypter::new(&[3; 32], &[4; 32]);
        let mut p = Crypter::new(&[4; 32], &[3; 32]);
        let mut wrong_key = Crypter::new(&[4; 32], &[5; 32]);
        let mut buf = vec![0u8; sealed_len(4096)];
        for len in 0..4096usize {
            for (i, b) in buf[..len].iter_mut().enumerate() {
                *b = (i ^ len) as u8;
            }
            let n = d.seal_in_place(&mut buf, len).unwrap();
            assert_eq!(n, sealed_len(len));
            assert_eq!(n % PADDING_GRANULE, TAG_LEN);
            if len % 512 == 0 {
                let mut copy = buf[..n].to_vec();
                assert!(wrong_key.open_in_place(&mut copy).is_err(), "wrong key at {len}");
            }
            assert_eq!(p.open_in_place(&mut buf[..n]), Ok(len), "length {len}");
            assert!(buf[..len].iter().enumerate().all(|(i, b)| *b == (i ^ len) as u8));
        }
        // Counter mismatch: a frame sealed at sequence 4096 does not open at 4097.
        let n = d.seal_in_place(&mut buf, 10).unwrap();
        p.set_sequences_for_tests(0, 4097);
        assert!(matches!(p.open_in_place(&mut buf[..n]), Err(CrypterError::TagMismatch { .. })));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::proptest_cases!(64)))]
        #[test]
        fn arbitrary_content_round_trips(data in proptest::collection::vec(any::<u8>(), 0..2048), ty in 0u8..4) {
            let frame_type = [FrameType::Shutdown, FrameType::Ctap, FrameType::Update, FrameType::Json][usize::from(ty)];
            let mut d = Crypter::new(&[1; 32], &[2; 32]);
            let mut p = Crypter::new(&[2; 32], &[1; 32]);
            let mut out = Vec::new();
            d.seal_frame(frame_type, &data, &mut out).unwrap();
            prop_assert_eq!(out.len(), sealed_len(data.len() + 1));
            let n = p.open_in_place(&mut out).unwrap();
            prop_assert_eq!(out[0], ty);
            prop_assert_eq!(&out[1..n], &data[..]);
        }
    }
}
