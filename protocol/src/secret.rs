//! Secret byte strings as types (STYLE.md principle 7).
//!
//! Every secret — QR secret, EID key, PSK, link secret, traffic keys, PINs — is a distinct type
//! whose `Debug` prints only its name and length, which is zeroized on drop, and which compares in
//! constant time. None of them implements `Display` or `serde::Serialize`: printing one takes an
//! explicit [`Secret::expose`] call, so a log line cannot leak one by accident.

use core::fmt;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A fixed-size secret of `N` bytes.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Secret<const N: usize>([u8; N]);

impl<const N: usize> Secret<N> {
    /// Wraps bytes as a secret. The caller should zeroize its own copy if it keeps one.
    pub fn new(bytes: [u8; N]) -> Self {
        Self(bytes)
    }

    /// Copies a slice of exactly `N` bytes; `None` for any other length.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let arr: [u8; N] = bytes.try_into().ok()?;
        Some(Self(arr))
    }

    /// Draws a fresh secret from the given RNG.
    pub fn random(rng: &mut impl rand_core::CryptoRngCore) -> Self {
        let mut b = [0u8; N];
        rng.fill_bytes(&mut b);
        Self(b)
    }

    /// The secret bytes. Named so that every use is visible in review.
    pub fn expose(&self) -> &[u8; N] {
        &self.0
    }
}

impl<const N: usize> fmt::Debug for Secret<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret<{N}>(<redacted>)")
    }
}

impl<const N: usize> PartialEq for Secret<N> {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}
impl<const N: usize> Eq for Secret<N> {}

/// A variable-length secret (PINs, link secrets read from storage before validation).
#[derive(Clone, Default, Zeroize, ZeroizeOnDrop)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Takes ownership of the bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
    /// The secret bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
    /// Length in bytes (not secret).
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes(<{} bytes redacted>)", self.0.len())
    }
}

impl PartialEq for SecretBytes {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}
impl Eq for SecretBytes {}

/// Declares a named secret newtype over [`Secret<N>`] with redacted `Debug`.
#[macro_export]
macro_rules! secret_type {
    ($(#[$m:meta])* $name:ident, $n:expr) => {
        $(#[$m])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(pub $crate::secret::Secret<$n>);

        impl $name {
            /// Length in bytes.
            pub const LEN: usize = $n;
            /// Wraps bytes.
            pub fn new(bytes: [u8; $n]) -> Self {
                Self($crate::secret::Secret::new(bytes))
            }
            /// Copies a slice of exactly the right length.
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                $crate::secret::Secret::from_slice(bytes).map(Self)
            }
            /// Draws a fresh value from `rng`.
            pub fn random(rng: &mut impl rand_core::CryptoRngCore) -> Self {
                Self($crate::secret::Secret::random(rng))
            }
            /// The secret bytes.
            pub fn expose(&self) -> &[u8; $n] {
                self.0.expose()
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, concat!(stringify!($name), "(<redacted>)"))
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    secret_type!(TestKey, 4);

    #[test]
    fn debug_is_redacted() {
        let s = Secret::new([0xAB; 16]);
        let d = format!("{s:?}");
        assert!(!d.contains("ab") && !d.contains("AB") && !d.contains("171"), "{d}");
        let k = TestKey::new([1, 2, 3, 4]);
        assert_eq!(format!("{k:?}"), "TestKey(<redacted>)");
        assert_eq!(TestKey::LEN, 4);
        assert_eq!(TestKey::from_slice(&[1, 2, 3, 4]).map(|k| *k.expose()), Some([1, 2, 3, 4]));
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        assert_ne!(TestKey::random(&mut rng).expose(), TestKey::random(&mut rng).expose());
        let v = SecretBytes::new(b"1234".to_vec());
        assert!(!format!("{v:?}").contains("1234"));
    }

    #[test]
    fn equality_is_by_value() {
        assert_eq!(Secret::new([1u8; 8]), Secret::new([1u8; 8]));
        assert_ne!(Secret::new([1u8; 8]), Secret::new([2u8; 8]));
        assert!(Secret::<4>::from_slice(&[1, 2, 3]).is_none());
    }
}
