//! The P-256 work of the Noise handshake (key pairs from given scalars, point parsing, ECDH)
//! behind one small trait with two implementations:
//!
//! - [`RustCrypto`] (`p256`, pure Rust): always built, the default.
//! - `AwsLc` (`aws-lc-rs`): with the crate feature `aws-lc`; about 5× faster key generation and
//!   ECDH on x86_64 (docs/performance.md), at the cost of building AWS-LC's C code.
//!
//! [`Selected`] is the one `noise` uses: `AwsLc` when the feature is on, [`RustCrypto`]
//! otherwise. Both compute the same bytes (the transcript vectors pass with either), and neither
//! draws randomness: scalars still come from the caller's RNG as `p256::SecretKey`s and are
//! imported into the backend, so `protocol/` reads no global RNG with either.
//!
//! Secrets: `p256::SecretKey` zeroizes on drop; AWS-LC frees key objects with `OPENSSL_free`,
//! which cleanses the allocation; shared secrets are handed out as [`SharedSecret`]
//! (`Zeroizing`), and aws-lc-rs' own copy of one is `Zeroizing` too.
//!
//! Hidden from the docs: public only so `cablebridge bench handshake` can time the primitives
//! with the backend the handshake used.

use crate::hybrid::noise::IdentityKeyPair;
use core::fmt;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};
use zeroize::Zeroizing;

/// Length of an uncompressed SEC1 P-256 point (`0x04 ‖ x ‖ y`).
pub const POINT_LEN: usize = 65;

/// An ECDH output (the x coordinate), wiped on drop.
pub type SharedSecret = Zeroizing<[u8; 32]>;

/// What a backend operation can fail with.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcdhError {
    /// The peer's bytes are not an uncompressed point on P-256 (peer fault).
    BadPoint,
    /// The backend library failed on valid input (allocation or internal error; never seen in
    /// practice). Names the operation.
    Backend(&'static str),
}

impl fmt::Display for EcdhError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EcdhError::BadPoint => f.write_str("not an uncompressed P-256 point"),
            EcdhError::Backend(op) => write!(f, "P-256 backend failed to {op}"),
        }
    }
}

impl std::error::Error for EcdhError {}

/// The P-256 operations the handshake needs. Implementations hold no state.
pub trait P256Backend {
    /// For people (bench output): `p256` or `aws-lc-rs`.
    const NAME: &'static str;
    /// A private key ready for ECDH.
    type Private: Clone;
    /// A validated peer public key.
    type Peer;

    /// `secret` ready for ECDH, with its uncompressed public key (one base-point multiplication).
    fn key_pair(secret: &SecretKey) -> Result<(Self::Private, [u8; POINT_LEN]), EcdhError>;
    /// The desktop's QR identity key ready for ECDH (cached in the pair where the backend needs
    /// work to import it).
    fn identity(pair: &IdentityKeyPair) -> Result<Self::Private, EcdhError>;
    /// Parses and validates 65 uncompressed wire bytes; anything else is [`EcdhError::BadPoint`].
    fn parse(point: &[u8]) -> Result<Self::Peer, EcdhError>;
    /// An already validated public key.
    fn peer(public: &PublicKey) -> Result<Self::Peer, EcdhError>;
    /// ECDH: the x coordinate of `private · peer`.
    fn agree(private: &Self::Private, peer: &Self::Peer) -> Result<SharedSecret, EcdhError>;
}

/// The backend the handshake uses in this build.
#[cfg(not(feature = "aws-lc"))]
pub type Selected = RustCrypto;
/// The backend the handshake uses in this build.
#[cfg(feature = "aws-lc")]
pub type Selected = AwsLc;

/// `p256` (RustCrypto, pure Rust).
#[derive(Debug, Clone, Copy)]
pub struct RustCrypto;

/// The 65-byte uncompressed encoding of `public` (serialisation only: the point is affine).
pub(crate) fn encode(public: &PublicKey) -> [u8; POINT_LEN] {
    let mut out = [0u8; POINT_LEN];
    let point = public.to_encoded_point(false);
    // An uncompressed encoding of a valid (non-identity) point is always 65 bytes.
    if let Some(dst) = out.get_mut(..point.len()) {
        dst.copy_from_slice(point.as_bytes());
    }
    out
}

impl P256Backend for RustCrypto {
    const NAME: &'static str = "p256";
    type Private = SecretKey;
    type Peer = PublicKey;

    fn key_pair(secret: &SecretKey) -> Result<(SecretKey, [u8; POINT_LEN]), EcdhError> {
        Ok((secret.clone(), encode(&secret.public_key())))
    }

    fn identity(pair: &IdentityKeyPair) -> Result<SecretKey, EcdhError> {
        Ok(pair.secret().clone())
    }

    fn parse(point: &[u8]) -> Result<PublicKey, EcdhError> {
        // Only the uncompressed form is valid on the wire; from_sec1_bytes rejects the identity
        // and points off the curve.
        if point.len() != POINT_LEN || point.first() != Some(&0x04) {
            return Err(EcdhError::BadPoint);
        }
        PublicKey::from_sec1_bytes(point).map_err(|_| EcdhError::BadPoint)
    }

    fn peer(public: &PublicKey) -> Result<PublicKey, EcdhError> {
        Ok(*public)
    }

    fn agree(private: &SecretKey, peer: &PublicKey) -> Result<SharedSecret, EcdhError> {
        let shared = p256::ecdh::diffie_hellman(private.to_nonzero_scalar(), peer.as_affine());
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(shared.raw_secret_bytes());
        Ok(out)
    }
}

#[cfg(feature = "aws-lc")]
pub use aws::{AwsLc, AwsLcKey};

#[cfg(feature = "aws-lc")]
mod aws {
    use super::{encode, EcdhError, P256Backend, SharedSecret, POINT_LEN};
    use crate::hybrid::noise::IdentityKeyPair;
    use aws_lc_rs::agreement::{self, ParsedPublicKey, PrivateKey, UnparsedPublicKey, ECDH_P256};
    use core::fmt;
    use p256::{PublicKey, SecretKey};
    use std::sync::Arc;
    use zeroize::Zeroizing;

    /// `aws-lc-rs` (AWS-LC, C and assembly).
    #[derive(Debug, Clone, Copy)]
    pub struct AwsLc;

    /// An imported AWS-LC private key (shared, so an [`IdentityKeyPair`] stays `Clone`; AWS-LC
    /// cleanses it when the last holder drops it).
    #[derive(Clone)]
    pub struct AwsLcKey(Arc<PrivateKey>);

    impl fmt::Debug for AwsLcKey {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("AwsLcKey(<redacted>)")
        }
    }

    impl AwsLcKey {
        /// Imports `secret` (AWS-LC computes its public half while importing).
        pub fn import(secret: &SecretKey) -> Result<AwsLcKey, EcdhError> {
            let bytes = Zeroizing::new(secret.to_bytes());
            PrivateKey::from_private_key(&ECDH_P256, &bytes[..])
                .map(|k| AwsLcKey(Arc::new(k)))
                .map_err(|_| EcdhError::Backend("import a private key"))
        }

        /// The uncompressed public half.
        pub fn public_bytes(&self) -> Result<[u8; POINT_LEN], EcdhError> {
            let public = self
                .0
                .compute_public_key()
                .map_err(|_| EcdhError::Backend("encode a public key"))?;
            public.as_ref().try_into().map_err(|_| EcdhError::Backend("encode a public key"))
        }
    }

    impl P256Backend for AwsLc {
        const NAME: &'static str = "aws-lc-rs";
        type Private = AwsLcKey;
        type Peer = ParsedPublicKey;

        fn key_pair(secret: &SecretKey) -> Result<(AwsLcKey, [u8; POINT_LEN]), EcdhError> {
            let key = AwsLcKey::import(secret)?;
            let public = key.public_bytes()?;
            Ok((key, public))
        }

        fn identity(pair: &IdentityKeyPair) -> Result<AwsLcKey, EcdhError> {
            match pair.aws_lc_key() {
                Some(key) => Ok(key.clone()),
                None => AwsLcKey::import(pair.secret()),
            }
        }

        fn parse(point: &[u8]) -> Result<ParsedPublicKey, EcdhError> {
            // Same rule as the p256 backend: uncompressed only (AWS-LC would also take the
            // compressed and hybrid forms); AWS-LC rejects the identity and points off the curve.
            if point.len() != POINT_LEN || point.first() != Some(&0x04) {
                return Err(EcdhError::BadPoint);
            }
            ParsedPublicKey::try_from(UnparsedPublicKey::new(&ECDH_P256, point))
                .map_err(|_| EcdhError::BadPoint)
        }

        fn peer(public: &PublicKey) -> Result<ParsedPublicKey, EcdhError> {
            Self::parse(&encode(public))
        }

        fn agree(private: &AwsLcKey, peer: &ParsedPublicKey) -> Result<SharedSecret, EcdhError> {
            const OP: EcdhError = EcdhError::Backend("compute ECDH");
            agreement::agree(&private.0, peer.clone(), OP, |shared| {
                let mut out = Zeroizing::new([0u8; 32]);
                if shared.len() != out.len() {
                    return Err(OP);
                }
                out.copy_from_slice(shared);
                Ok(out)
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rustcrypto_agrees_with_itself_and_rejects_bad_points() {
        let a = SecretKey::from_slice(&[3; 32]).unwrap();
        let b = SecretKey::from_slice(&[5; 32]).unwrap();
        let (ka, pa) = RustCrypto::key_pair(&a).unwrap();
        let (kb, pb) = RustCrypto::key_pair(&b).unwrap();
        let ab = RustCrypto::agree(&ka, &RustCrypto::parse(&pb).unwrap()).unwrap();
        let ba = RustCrypto::agree(&kb, &RustCrypto::parse(&pa).unwrap()).unwrap();
        assert_eq!(*ab, *ba);
        let mut compressed = pa;
        compressed[0] = 0x02;
        assert_eq!(RustCrypto::parse(&compressed).unwrap_err(), EcdhError::BadPoint);
        assert_eq!(RustCrypto::parse(&pa[..64]).unwrap_err(), EcdhError::BadPoint);
    }

    /// The same scalars give the same public keys and shared secrets with both backends, and
    /// both reject the same malformed points.
    #[cfg(feature = "aws-lc")]
    #[test]
    fn aws_lc_matches_rustcrypto() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(13);
        for _ in 0..8 {
            let a = SecretKey::random(&mut rng);
            let b = SecretKey::random(&mut rng);
            let (rka, rpa) = RustCrypto::key_pair(&a).unwrap();
            let (aka, apa) = AwsLc::key_pair(&a).unwrap();
            assert_eq!(rpa, apa, "public keys");
            let (_, pb) = RustCrypto::key_pair(&b).unwrap();
            let r = RustCrypto::agree(&rka, &RustCrypto::parse(&pb).unwrap()).unwrap();
            let w = AwsLc::agree(&aka, &AwsLc::parse(&pb).unwrap()).unwrap();
            assert_eq!(*r, *w, "shared secrets");
            let peer = AwsLc::peer(&b.public_key()).unwrap();
            assert_eq!(*AwsLc::agree(&aka, &peer).unwrap(), *r);
            let mut off = pb;
            off[1] ^= 1; // almost surely off the curve
            assert_eq!(RustCrypto::parse(&off).is_err(), AwsLc::parse(&off).is_err());
            let mut compressed = pb;
            compressed[0] = 0x03;
            assert_eq!(AwsLc::parse(&compressed).unwrap_err(), EcdhError::BadPoint);
        }
    }
}
