//! Noise KNpsk0 (QR-initiated, prologue `0x01`) and NKpsk0 (linked, prologue `0x00`) over P-256,
//! both roles (§7): the desktop is the initiator, the phone the responder.
//!
//! Both messages are exactly 81 bytes (65-byte uncompressed ephemeral ‖ 16-byte tag of an empty
//! payload); any other length, a non-empty payload or an invalid point is an error. After
//! message 2 both sides hold an [`Established`] session: the data-phase [`Crypter`] with the
//! right key direction and the handshake hash (channel binding for linking signatures, §9.1).
//!
//! Hand-written rather than `snow`: the symmetric state is ~60 lines, and writing it lets the
//! ephemeral come from an injected RNG (or a fixed key for vectors), checks the exact 81-byte
//! sizes and empty payloads, exposes the handshake hash, and hands the split keys straight to
//! the in-place [`Crypter`] without snow's allocating transport state.
//!
//! The P-256 work (key pairs, point parsing, ECDH) goes through [`ecdh::Selected`]: `p256` by
//! default, `aws-lc-rs` with the crate feature `aws-lc`. The handshake code above it is one generic
//! path; both backends produce the same transcripts byte for byte.
//!
//! Not here: the PSK (`keys`), what is sent afterwards (`messages`, `session`).

use crate::error::{Classify, Fault, Stage};
use crate::hybrid::crypter::Crypter;
use crate::hybrid::ecdh::{self, EcdhError, P256Backend, Selected, POINT_LEN};
use crate::hybrid::keys::Psk;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Tag};
use core::fmt;
use hkdf::Hkdf;
use p256::{PublicKey, SecretKey};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length of both handshake messages.
pub const HANDSHAKE_MESSAGE_LEN: usize = 81;

const KN_NAME: &[u8; 31] = b"Noise_KNpsk0_P256_AESGCM_SHA256";
const NK_NAME: &[u8; 31] = b"Noise_NKpsk0_P256_AESGCM_SHA256";
const KN_PROLOGUE: u8 = 0x01;
const NK_PROLOGUE: u8 = 0x00;

/// Why a handshake message was rejected.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// A handshake message that is not exactly 81 bytes.
    WrongLength(usize),
    /// The ephemeral key is not an uncompressed point on P-256.
    BadPoint,
    /// The tag did not authenticate (wrong PSK, wrong static key, or tampering).
    TagMismatch,
    /// The decrypted handshake payload was not empty.
    NonEmptyPayload(usize),
    /// The P-256 backend failed on valid input (an allocation or internal error of AWS-LC with
    /// the `aws-lc` feature; the p256 backend never fails this way). Names the operation.
    Backend(&'static str),
}

impl From<EcdhError> for HandshakeError {
    fn from(e: EcdhError) -> Self {
        match e {
            EcdhError::BadPoint => HandshakeError::BadPoint,
            EcdhError::Backend(op) => HandshakeError::Backend(op),
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::WrongLength(n) => {
                write!(f, "Noise handshake message is {n} bytes, expected {HANDSHAKE_MESSAGE_LEN}")
            }
            HandshakeError::BadPoint => {
                write!(f, "Noise ephemeral key is not an uncompressed P-256 point")
            }
            HandshakeError::TagMismatch => write!(
                f,
                "Noise handshake tag did not authenticate (wrong PSK or static key, or tampering)"
            ),
            HandshakeError::NonEmptyPayload(n) => {
                write!(f, "Noise handshake message carried a {n}-byte payload, expected none")
            }
            HandshakeError::Backend(op) => {
                write!(f, "Noise handshake: the {} backend failed to {op}", Selected::NAME)
            }
        }
    }
}

impl std::error::Error for HandshakeError {}

impl Classify for HandshakeError {
    fn fault(&self) -> Fault {
        match self {
            HandshakeError::Backend(_) => Fault::Environment,
            _ => Fault::Peer,
        }
    }
    fn stage(&self) -> Stage {
        Stage::Handshake
    }
}

/// The result of a completed handshake.
#[derive(Debug)]
pub struct Established {
    /// Data-phase encryption with this role's key directions (§7.4).
    pub crypter: Crypter,
    /// `h` after message 2: what linking signatures cover (§9.1, pitfall 17).
    pub handshake_hash: [u8; 32],
}

/// A static P-256 key with its public half computed once, when the key is made or loaded.
///
/// Computing a public key is a scalar multiplication: as much work as an ECDH, about a quarter
/// of a desktop's KNpsk0 handshake. The desktop's QR identity key needs its public half twice
/// (key 0 of the QR code, and the handshake transcript `-> s`), so [`QrPayload::generate`]
/// returns this pair and the handshake hashes the cached half instead of recomputing it.
///
/// The secret half is zeroized on drop (`SecretKey` does that) and never printed by `Debug`.
/// With the `aws-lc` feature the pair also keeps the key imported into AWS-LC (importing is a
/// base-point multiplication, so it is done once here, and it yields the public half too).
///
/// [`QrPayload::generate`]: crate::hybrid::qr::QrPayload::generate
#[derive(Clone)]
pub struct IdentityKeyPair {
    secret: SecretKey,
    public: PublicKey,
    #[cfg(feature = "aws-lc")]
    aws_lc: Option<ecdh::AwsLcKey>,
}

impl IdentityKeyPair {
    /// The pair of `secret` (computes the public half: one scalar multiplication).
    #[cfg(not(feature = "aws-lc"))]
    pub fn new(secret: SecretKey) -> Self {
        let public = secret.public_key();
        IdentityKeyPair { secret, public }
    }

    /// The pair of `secret` (computes the public half: one scalar multiplication, in AWS-LC;
    /// should AWS-LC fail, with p256 and the handshake imports the key when it needs it).
    #[cfg(feature = "aws-lc")]
    pub fn new(secret: SecretKey) -> Self {
        let imported = ecdh::AwsLcKey::import(&secret).ok().and_then(|key| {
            let public = PublicKey::from_sec1_bytes(&key.public_bytes().ok()?).ok()?;
            Some((key, public))
        });
        match imported {
            Some((key, public)) => IdentityKeyPair { secret, public, aws_lc: Some(key) },
            None => IdentityKeyPair { public: secret.public_key(), secret, aws_lc: None },
        }
    }

    /// The key as imported into AWS-LC, when that worked.
    #[cfg(feature = "aws-lc")]
    pub(crate) fn aws_lc_key(&self) -> Option<&ecdh::AwsLcKey> {
        self.aws_lc.as_ref()
    }

    /// The private half.
    pub fn secret(&self) -> &SecretKey {
        &self.secret
    }

    /// The public half (cached).
    pub fn public_key(&self) -> PublicKey {
        self.public
    }
}

impl From<SecretKey> for IdentityKeyPair {
    fn from(secret: SecretKey) -> Self {
        IdentityKeyPair::new(secret)
    }
}

impl fmt::Debug for IdentityKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityKeyPair").field("public", &self.public).finish_non_exhaustive()
    }
}

/// The desktop's static-key knowledge per handshake kind.
#[derive(Debug, Clone, Copy)]
pub enum InitiatorKeys<'a> {
    /// KNpsk0: the desktop's QR identity key (`-> s`), with its public half cached.
    Qr {
        /// The key pair whose public half the QR code carries.
        desktop_identity: &'a IdentityKeyPair,
    },
    /// NKpsk0: the phone's identity public key from stored linking info (`<- s`).
    Linked {
        /// The phone's long-term identity key.
        phone_identity: &'a PublicKey,
    },
}

/// The phone's static-key knowledge per handshake kind.
#[derive(Debug, Clone, Copy)]
pub enum ResponderKeys<'a> {
    /// KNpsk0: the desktop's QR identity public key, read from the QR code.
    Qr {
        /// Decompressed key 0 of the QR payload.
        desktop_identity: &'a PublicKey,
    },
    /// NKpsk0: the phone's own long-term identity key.
    Linked {
        /// The phone's identity private key.
        phone_identity: &'a SecretKey,
    },
}

/// Noise symmetric state (§7.1). The cipher key is used at most once per MixKey (nonce 0).
#[derive(Zeroize, ZeroizeOnDrop)]
struct SymmetricState {
    ck: [u8; 32],
    h: [u8; 32],
    k: [u8; 32],
}

impl SymmetricState {
    /// `static_key`: the 65-byte uncompressed static public key.
    fn new(name: &[u8; 31], prologue: u8, static_key: &[u8; POINT_LEN]) -> Self {
        let mut h = [0u8; 32];
        h[..31].copy_from_slice(name);
        let mut s = SymmetricState { ck: h, h, k: [0; 32] };
        s.mix_hash(&[prologue]);
        s.mix_hash(static_key);
        s
    }

    fn mix_hash(&mut self, data: &[u8]) {
        self.h = Sha256::new().chain_update(self.h).chain_update(data).finalize().into();
    }

    fn hkdf<const N: usize>(&self, ikm: &[u8]) -> [u8; N] {
        let mut out = [0u8; N];
        // N ≤ 96 ≤ 255·32: expand cannot fail.
        let _ = Hkdf::<Sha256>::new(Some(&self.ck), ikm).expand(&[], &mut out);
        out
    }

    fn mix_key(&mut self, ikm: &[u8]) {
        let mut out: [u8; 64] = self.hkdf(ikm);
        self.ck.copy_from_slice(&out[..32]);
        self.k.copy_from_slice(&out[32..]);
        out.zeroize();
    }

    fn mix_key_and_hash(&mut self, ikm: &[u8]) {
        let mut out: [u8; 96] = self.hkdf(ikm);
        self.ck.copy_from_slice(&out[..32]);
        self.mix_hash(&out[32..64]);
        self.k.copy_from_slice(&out[64..]);
        out.zeroize();
    }

    fn mix_dh<B: P256Backend>(
        &mut self,
        secret: &B::Private,
        public: &B::Peer,
    ) -> Result<(), EcdhError> {
        let shared = B::agree(secret, public)?;
        self.mix_key(&shared[..]);
        Ok(())
    }

    /// EncryptAndHash of the empty payload: the tag, which is also what gets hashed.
    fn encrypt_empty(&mut self) -> [u8; 16] {
        let cipher = Aes256Gcm::new((&self.k).into());
        let tag: [u8; 16] = cipher
            .encrypt_in_place_detached(&Default::default(), &self.h, &mut [])
            .map(Into::into)
            // Unreachable for an empty buffer; a zero tag would simply fail at the peer.
            .unwrap_or_default();
        self.mix_hash(&tag);
        tag
    }

    /// DecryptAndHash, requiring an empty payload; hashes ciphertext ‖ tag (§7.1).
    fn decrypt_empty(&mut self, ciphertext: &[u8]) -> Result<(), HandshakeError> {
        if ciphertext.len() != 16 {
            return Err(HandshakeError::NonEmptyPayload(ciphertext.len().saturating_sub(16)));
        }
        let cipher = Aes256Gcm::new((&self.k).into());
        let mut tag = [0u8; 16];
        tag.copy_from_slice(ciphertext);
        cipher
            .decrypt_in_place_detached(&Default::default(), &self.h, &mut [], &Tag::from(tag))
            .map_err(|_| HandshakeError::TagMismatch)?;
        self.mix_hash(ciphertext);
        Ok(())
    }

    /// Split (§7.1): `(k1, k2)`.
    fn split(&self) -> ([u8; 32], [u8; 32]) {
        let mut out: [u8; 64] = self.hkdf(&[]);
        let mut k1 = [0u8; 32];
        let mut k2 = [0u8; 32];
        k1.copy_from_slice(&out[..32]);
        k2.copy_from_slice(&out[32..]);
        out.zeroize();
        (k1, k2)
    }
}

fn establish(sym: &SymmetricState, initiator: bool) -> Established {
    let (mut k1, mut k2) = sym.split();
    let crypter = if initiator { Crypter::new(&k1, &k2) } else { Crypter::new(&k2, &k1) };
    k1.zeroize();
    k2.zeroize();
    Established { crypter, handshake_hash: sym.h }
}

/// A received handshake message: the peer's parsed ephemeral, its 65 wire bytes, the tag.
type Received<'a, B> = (<B as P256Backend>::Peer, &'a [u8], &'a [u8]);

/// The peer's ephemeral (parsed, and its 65 wire bytes: the parse accepted only the uncompressed
/// form, so they are exactly what re-encoding the point would give, without the work) and the tag.
fn split_message<B: P256Backend>(msg: &[u8]) -> Result<Received<'_, B>, HandshakeError> {
    if msg.len() != HANDSHAKE_MESSAGE_LEN {
        return Err(HandshakeError::WrongLength(msg.len()));
    }
    let (point, tag) = msg.split_at(POINT_LEN);
    Ok((B::parse(point)?, point, tag))
}

/// `e_bytes`: the 65-byte uncompressed ephemeral (already encoded for the transcript).
fn write_message(e_bytes: &[u8], tag: &[u8; 16]) -> [u8; HANDSHAKE_MESSAGE_LEN] {
    let mut msg = [0u8; HANDSHAKE_MESSAGE_LEN];
    msg[..POINT_LEN].copy_from_slice(e_bytes);
    msg[POINT_LEN..].copy_from_slice(tag);
    msg
}

/// The desktop after sending message 1, waiting for message 2.
pub struct Initiator(InitiatorState<Selected>);

/// [`Initiator`] over any backend (the backend comparison test runs both).
struct InitiatorState<B: P256Backend> {
    sym: SymmetricState,
    /// The ephemeral and, KN only, the desktop static key for `se`; or the backend failure met
    /// while building message 1 (reported by `read_response`).
    keys: Result<(B::Private, Option<B::Private>), EcdhError>,
}

impl fmt::Debug for Initiator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Initiator(<redacted>)")
    }
}

impl Initiator {
    /// Builds message 1 with a fresh ephemeral key drawn from `rng`.
    pub fn start(
        keys: InitiatorKeys<'_>,
        psk: &Psk,
        rng: &mut impl rand_core::CryptoRngCore,
    ) -> (Initiator, [u8; HANDSHAKE_MESSAGE_LEN]) {
        Self::start_with_ephemeral(keys, psk, SecretKey::random(rng))
    }

    /// [`Initiator::start`] with a given ephemeral key (deterministic vectors only).
    #[doc(hidden)]
    pub fn start_with_ephemeral(
        keys: InitiatorKeys<'_>,
        psk: &Psk,
        ephemeral: SecretKey,
    ) -> (Initiator, [u8; HANDSHAKE_MESSAGE_LEN]) {
        let (state, msg1) = InitiatorState::start(keys, psk, &ephemeral);
        (Initiator(state), msg1)
    }

    /// Processes message 2 and completes the handshake (desktop: write = k1, read = k2).
    pub fn read_response(self, msg2: &[u8]) -> Result<Established, HandshakeError> {
        self.0.read_response(msg2)
    }
}

impl<B: P256Backend> InitiatorState<B> {
    /// A backend failure here cannot be returned (`start` has no error: it is infallible with
    /// p256, and AWS-LC fails only on allocation or internal errors). It is kept and reported by
    /// `read_response`; message 1 is still well-formed (its point comes from p256 then), but in
    /// NKpsk0 its tag will not authenticate at the phone.
    fn start(
        keys: InitiatorKeys<'_>,
        psk: &Psk,
        ephemeral: &SecretKey,
    ) -> (Self, [u8; HANDSHAKE_MESSAGE_LEN]) {
        let mut sym = match keys {
            InitiatorKeys::Qr { desktop_identity } => {
                SymmetricState::new(KN_NAME, KN_PROLOGUE, &ecdh::encode(&desktop_identity.public))
            }
            InitiatorKeys::Linked { phone_identity } => {
                SymmetricState::new(NK_NAME, NK_PROLOGUE, &ecdh::encode(phone_identity))
            }
        };
        sym.mix_key_and_hash(psk.expose());
        let (e, e_bytes) = match B::key_pair(ephemeral) {
            Ok((e, e_bytes)) => (Ok(e), e_bytes),
            Err(err) => (Err(err), ecdh::encode(&ephemeral.public_key())),
        };
        sym.mix_hash(&e_bytes);
        sym.mix_key(&e_bytes);
        let keys = e.and_then(|e| match keys {
            InitiatorKeys::Qr { desktop_identity } => Ok((e, Some(B::identity(desktop_identity)?))),
            InitiatorKeys::Linked { phone_identity } => {
                sym.mix_dh::<B>(&e, &B::peer(phone_identity)?)?; // es
                Ok((e, None))
            }
        });
        let tag = sym.encrypt_empty();
        (InitiatorState { sym, keys }, write_message(&e_bytes, &tag))
    }

    fn read_response(mut self, msg2: &[u8]) -> Result<Established, HandshakeError> {
        let (re, re_bytes, tag) = split_message::<B>(msg2)?;
        let (ephemeral, desktop_identity) = self.keys.as_ref().map_err(|e| *e)?;
        self.sym.mix_hash(re_bytes);
        self.sym.mix_key(re_bytes);
        self.sym.mix_dh::<B>(ephemeral, &re)?; // ee
        if let Some(s) = desktop_identity {
            self.sym.mix_dh::<B>(s, &re)?; // se
        }
        self.sym.decrypt_empty(tag)?;
        Ok(establish(&self.sym, true))
    }
}

/// The phone's side: processes message 1 and builds message 2 with an ephemeral from `rng`.
pub fn respond(
    keys: ResponderKeys<'_>,
    psk: &Psk,
    msg1: &[u8],
    rng: &mut impl rand_core::CryptoRngCore,
) -> Result<(Established, [u8; HANDSHAKE_MESSAGE_LEN]), HandshakeError> {
    respond_with_ephemeral(keys, psk, msg1, SecretKey::random(rng))
}

/// [`respond`] with a given ephemeral key (deterministic vectors only).
#[doc(hidden)]
pub fn respond_with_ephemeral(
    keys: ResponderKeys<'_>,
    psk: &Psk,
    msg1: &[u8],
    ephemeral: SecretKey,
) -> Result<(Established, [u8; HANDSHAKE_MESSAGE_LEN]), HandshakeError> {
    respond_with::<Selected>(keys, psk, msg1, &ephemeral)
}

/// [`respond`] over any backend.
fn respond_with<B: P256Backend>(
    keys: ResponderKeys<'_>,
    psk: &Psk,
    msg1: &[u8],
    ephemeral: &SecretKey,
) -> Result<(Established, [u8; HANDSHAKE_MESSAGE_LEN]), HandshakeError> {
    let (re, re_bytes, tag1) = split_message::<B>(msg1)?;
    let (mut sym, phone_identity) = match keys {
        ResponderKeys::Qr { desktop_identity } => {
            (SymmetricState::new(KN_NAME, KN_PROLOGUE, &ecdh::encode(desktop_identity)), None)
        }
        ResponderKeys::Linked { phone_identity } => {
            let (s, s_bytes) = B::key_pair(phone_identity)?;
            (SymmetricState::new(NK_NAME, NK_PROLOGUE, &s_bytes), Some(s))
        }
    };
    sym.mix_key_and_hash(psk.expose());
    sym.mix_hash(re_bytes);
    sym.mix_key(re_bytes);
    if let Some(s) = &phone_identity {
        sym.mix_dh::<B>(s, &re)?; // es
    }
    sym.decrypt_empty(tag1)?;

    let (e, e_bytes) = B::key_pair(ephemeral)?;
    sym.mix_hash(&e_bytes);
    sym.mix_key(&e_bytes);
    sym.mix_dh::<B>(&e, &re)?; // ee
    if let ResponderKeys::Qr { desktop_identity } = keys {
        sym.mix_dh::<B>(&e, &B::peer(desktop_identity)?)?; // se
    }
    let tag2 = sym.encrypt_empty();
    Ok((establish(&sym, false), write_message(&e_bytes, &tag2)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hybrid::messages::FrameType;
    use rand::SeedableRng;

    fn run(kn: bool) -> (Established, Established) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let psk = Psk::new([9; 32]);
        let desktop = IdentityKeyPair::new(SecretKey::random(&mut rng));
        let phone = SecretKey::random(&mut rng);
        let (dpub, ppub) = (desktop.public_key(), phone.public_key());
        let (ik, rk) = if kn {
            (
                InitiatorKeys::Qr { desktop_identity: &desktop },
                ResponderKeys::Qr { desktop_identity: &dpub },
            )
        } else {
            (
                InitiatorKeys::Linked { phone_identity: &ppub },
                ResponderKeys::Linked { phone_identity: &phone },
            )
        };
        let (init, m1) = Initiator::start(ik, &psk, &mut rng);
        let (p, m2) = respond(rk, &psk, &m1, &mut rng).unwrap();
        (init.read_response(&m2).unwrap(), p)
    }

    #[test]
    fn both_patterns_agree_on_hash_and_keys() {
        for kn in [true, false] {
            let (mut d, mut p) = run(kn);
            assert_eq!(d.handshake_hash, p.handshake_hash);
            let mut buf = Vec::new();
            d.crypter.seal_frame(FrameType::Ctap, b"abc", &mut buf).unwrap();
            assert_eq!(p.crypter.open_in_place(&mut buf), Ok(4));
            p.crypter.seal_frame(FrameType::Ctap, b"xyz", &mut buf).unwrap();
            assert_eq!(d.crypter.open_in_place(&mut buf), Ok(4));
        }
    }

    #[test]
    fn malformed_messages_are_rejected() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(8);
        let psk = Psk::new([9; 32]);
        let desktop = IdentityKeyPair::new(SecretKey::random(&mut rng));
        let dpub = desktop.public_key();
        let rk = ResponderKeys::Qr { desktop_identity: &dpub };
        let (_, m1) =
            Initiator::start(InitiatorKeys::Qr { desktop_identity: &desktop }, &psk, &mut rng);
        let e = respond(rk, &psk, &m1[..80], &mut rng).unwrap_err();
        assert_eq!(e, HandshakeError::WrongLength(80));
        let mut bad = m1;
        bad[0] = 0x02;
        assert_eq!(respond(rk, &psk, &bad, &mut rng).unwrap_err(), HandshakeError::BadPoint);
        let mut bad = m1;
        bad[1] ^= 1; // almost surely off the curve
        assert_eq!(respond(rk, &psk, &bad, &mut rng).unwrap_err(), HandshakeError::BadPoint);
        let mut bad = m1;
        bad[80] ^= 1;
        assert_eq!(respond(rk, &psk, &bad, &mut rng).unwrap_err(), HandshakeError::TagMismatch);
        let wrong = Psk::new([8; 32]);
        let e = respond(rk, &wrong, &m1, &mut rng).unwrap_err();
        assert_eq!((e.stage(), e.fault()), (Stage::Handshake, Fault::Peer));
    }

    #[test]
    fn identity_pair_caches_the_public_half_and_hides_the_secret() {
        let secret = SecretKey::from_slice(&[7; 32]).unwrap();
        let pair = IdentityKeyPair::new(secret.clone());
        assert_eq!(pair.public_key(), secret.public_key());
        assert_eq!(pair.secret().to_bytes(), secret.to_bytes());
        let shown = format!("{pair:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(!shown.contains(&hex::encode(secret.to_bytes())), "{shown}");
    }

    /// One KN or NK handshake with the given backends from a seeded RNG: (msg1, msg2, desktop,
    /// phone).
    #[cfg(feature = "aws-lc")]
    fn transcript<D: P256Backend, P: P256Backend>(
        kn: bool,
        seed: u64,
    ) -> ([u8; HANDSHAKE_MESSAGE_LEN], [u8; HANDSHAKE_MESSAGE_LEN], Established, Established) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let psk = Psk::new([9; 32]);
        let desktop = IdentityKeyPair::new(SecretKey::random(&mut rng));
        let phone = SecretKey::random(&mut rng);
        let (dpub, ppub) = (desktop.public_key(), phone.public_key());
        let (ik, rk) = if kn {
            (
                InitiatorKeys::Qr { desktop_identity: &desktop },
                ResponderKeys::Qr { desktop_identity: &dpub },
            )
        } else {
            (
                InitiatorKeys::Linked { phone_identity: &ppub },
                ResponderKeys::Linked { phone_identity: &phone },
            )
        };
        let (init, m1) = InitiatorState::<D>::start(ik, &psk, &SecretKey::random(&mut rng));
        let (p, m2) = respond_with::<P>(rk, &psk, &m1, &SecretKey::random(&mut rng)).unwrap();
        (m1, m2, init.read_response(&m2).unwrap(), p)
    }

    /// The aws-lc backend produces the p256 backend's transcripts byte for byte from the same
    /// seeded RNG (both patterns, several seeds), and each interoperates with the other.
    #[cfg(feature = "aws-lc")]
    #[test]
    fn aws_lc_and_p256_backends_give_identical_transcripts() {
        use crate::hybrid::ecdh::{AwsLc, RustCrypto};
        for kn in [true, false] {
            for seed in 0..4 {
                let (m1, m2, mut d, mut p) = transcript::<RustCrypto, RustCrypto>(kn, seed);
                let (a1, a2, mut ad, mut ap) = transcript::<AwsLc, AwsLc>(kn, seed);
                assert_eq!((m1, m2), (a1, a2), "kn={kn} seed={seed}: messages");
                assert_eq!(d.handshake_hash, ad.handshake_hash, "kn={kn} seed={seed}: hash");
                let (mut x, mut y) = (Vec::new(), Vec::new());
                d.crypter.seal_frame(FrameType::Ctap, b"same keys", &mut x).unwrap();
                ad.crypter.seal_frame(FrameType::Ctap, b"same keys", &mut y).unwrap();
                assert_eq!(x, y, "kn={kn} seed={seed}: desktop write key");
                p.crypter.seal_frame(FrameType::Ctap, b"same keys", &mut x).unwrap();
                ap.crypter.seal_frame(FrameType::Ctap, b"same keys", &mut y).unwrap();
                assert_eq!(x, y, "kn={kn} seed={seed}: phone write key");
                let (_, _, mixed_d, mixed_p) = transcript::<AwsLc, RustCrypto>(kn, seed);
                assert_eq!(mixed_d.handshake_hash, d.handshake_hash);
                assert_eq!(mixed_p.handshake_hash, d.handshake_hash);
            }
        }
    }

    #[test]
    fn non_empty_payload_is_rejected() {
        let mut sym = SymmetricState { ck: [0; 32], h: [0; 32], k: [0; 32] };
        assert_eq!(sym.decrypt_empty(&[0u8; 20]), Err(HandshakeError::NonEmptyPayload(4)));
    }
}
