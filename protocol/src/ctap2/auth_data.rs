//! Authenticator data (WebAuthn §6.1) and attested credential data (§6.5.2): parsing for the
//! platform, building for the authenticator.
//!
//! ```text
//! rpIdHash 32 | flags 1 | signCount 4 (BE) | [AT] aaguid 16 | credIdLen 2 (BE) | credId |
//!                                                  credentialPublicKey (one CBOR item)
//!                                          | [ED] extensions (one CBOR map)
//! ```
//!
//! The COSE key has no length prefix, so it is read as exactly one CBOR item with
//! `decode_prefix`; whatever follows is either the extensions map (ED set) or an error. Every
//! truncation and every length inconsistency is an [`Ctap2Error::AuthData`] naming the part.
//! Signatures cover the *original* bytes; keep them rather than re-encoding a parsed value.

use super::cose::CoseKey;
use super::error::Ctap2Error;
use crate::cbor::Value;
use sha2::{Digest, Sha256};

/// The flags byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AuthDataFlags(pub u8);

impl AuthDataFlags {
    /// User present.
    pub const UP: AuthDataFlags = AuthDataFlags(0x01);
    /// User verified.
    pub const UV: AuthDataFlags = AuthDataFlags(0x04);
    /// Backup eligible.
    pub const BE: AuthDataFlags = AuthDataFlags(0x08);
    /// Backed up.
    pub const BS: AuthDataFlags = AuthDataFlags(0x10);
    /// Attested credential data included.
    pub const AT: AuthDataFlags = AuthDataFlags(0x40);
    /// Extension data included.
    pub const ED: AuthDataFlags = AuthDataFlags(0x80);

    /// Whether every bit of `other` is set.
    pub fn contains(self, other: AuthDataFlags) -> bool {
        self.0 & other.0 == other.0
    }
    /// With the bits of `other` set or cleared.
    pub fn with(self, other: AuthDataFlags, on: bool) -> Self {
        if on {
            AuthDataFlags(self.0 | other.0)
        } else {
            AuthDataFlags(self.0 & !other.0)
        }
    }
}

impl core::ops::BitOr for AuthDataFlags {
    type Output = AuthDataFlags;
    fn bitor(self, rhs: AuthDataFlags) -> AuthDataFlags {
        AuthDataFlags(self.0 | rhs.0)
    }
}

/// Attested credential data (present when AT is set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestedCredentialData {
    /// The authenticator model.
    pub aaguid: [u8; 16],
    /// The credential ID (at most 1023 bytes per WebAuthn; the u16 length allows more).
    pub credential_id: Vec<u8>,
    /// The credential public key.
    pub public_key: CoseKey,
}

/// Parsed authenticator data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatorData {
    /// SHA-256 of the RP ID.
    pub rp_id_hash: [u8; 32],
    /// Flags. On build, AT and ED are set from the presence of the optional parts.
    pub flags: AuthDataFlags,
    /// Signature counter.
    pub sign_count: u32,
    /// Present iff AT.
    pub attested_credential: Option<AttestedCredentialData>,
    /// Present iff ED: the extension outputs map.
    pub extensions: Option<Value>,
}

/// Fixed header length: rpIdHash, flags, signCount.
pub const HEADER_LEN: usize = 37;

fn err(what: &'static str, problem: &'static str) -> Ctap2Error {
    Ctap2Error::AuthData { what, problem }
}

/// Reads `n` bytes at `*pos`, naming `what` on truncation.
fn take<'a>(
    b: &'a [u8],
    pos: &mut usize,
    n: usize,
    what: &'static str,
) -> Result<&'a [u8], Ctap2Error> {
    let end = pos.checked_add(n).ok_or(err(what, "length overflows"))?;
    let s = b.get(*pos..end).ok_or(err(what, "truncated"))?;
    *pos = end;
    Ok(s)
}

impl AuthenticatorData {
    /// Starts authenticator data for `rp_id` (hashing it) with the given flags and counter.
    pub fn new(rp_id: &str, flags: AuthDataFlags, sign_count: u32) -> Self {
        AuthenticatorData {
            rp_id_hash: Sha256::digest(rp_id.as_bytes()).into(),
            flags,
            sign_count,
            attested_credential: None,
            extensions: None,
        }
    }

    /// Parses authenticator data bytes.
    pub fn parse(b: &[u8]) -> Result<Self, Ctap2Error> {
        let mut pos = 0;
        let mut rp_id_hash = [0u8; 32];
        rp_id_hash.copy_from_slice(take(b, &mut pos, 32, "rpIdHash")?);
        let flags = AuthDataFlags(take(b, &mut pos, 1, "flags")?[0]);
        let c = take(b, &mut pos, 4, "signCount")?;
        let sign_count = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);

        let attested_credential = if flags.contains(AuthDataFlags::AT) {
            let mut aaguid = [0u8; 16];
            aaguid.copy_from_slice(take(b, &mut pos, 16, "aaguid")?);
            let l = take(b, &mut pos, 2, "credentialIdLength")?;
            let len = usize::from(u16::from_be_bytes([l[0], l[1]]));
            let credential_id = take(b, &mut pos, len, "credentialId")?.to_vec();
            let rest = b.get(pos..).unwrap_or_default();
            if rest.is_empty() {
                return Err(err("credentialPublicKey", "truncated"));
            }
            let (key, used) = Value::decode_prefix(rest)
                .map_err(|_| err("credentialPublicKey", "not one valid CBOR item"))?;
            pos += used;
            let public_key = CoseKey::from_cbor(&key)?;
            Some(AttestedCredentialData { aaguid, credential_id, public_key })
        } else {
            None
        };

        let rest = b.get(pos..).unwrap_or_default();
        let extensions = if flags.contains(AuthDataFlags::ED) {
            if rest.is_empty() {
                return Err(err("extensions", "ED flag set but no extensions follow"));
            }
            let v = Value::decode(rest).map_err(|e| match e {
                crate::cbor::CborError::TrailingBytes(_) => {
                    err("extensions", "trailing bytes after the extensions map")
                }
                _ => err("extensions", "not valid CBOR"),
            })?;
            if v.as_map().is_none() {
                return Err(err("extensions", "not a map"));
            }
            Some(v)
        } else {
            if !rest.is_empty() {
                return Err(err("authData", "trailing bytes (ED flag not set)"));
            }
            None
        };
        Ok(AuthenticatorData { rp_id_hash, flags, sign_count, attested_credential, extensions })
    }

    /// Serialises (authenticator side). AT and ED in the output follow the optional parts, so
    /// the result always parses back. A credential ID longer than 65535 bytes is a caller error.
    pub fn to_bytes(&self) -> Result<Vec<u8>, Ctap2Error> {
        let flags = self
            .flags
            .with(AuthDataFlags::AT, self.attested_credential.is_some())
            .with(AuthDataFlags::ED, self.extensions.is_some());
        let mut out = Vec::with_capacity(HEADER_LEN + 160);
        out.extend_from_slice(&self.rp_id_hash);
        out.push(flags.0);
        out.extend_from_slice(&self.sign_count.to_be_bytes());
        if let Some(a) = &self.attested_credential {
            let len = u16::try_from(a.credential_id.len()).map_err(|_| {
                Ctap2Error::InvalidArgument("credential ID longer than 65535 bytes")
            })?;
            out.extend_from_slice(&a.aaguid);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&a.credential_id);
            a.public_key.to_cbor().encode_into(&mut out);
        }
        if let Some(e) = &self.extensions {
            e.encode_into(&mut out);
        }
        Ok(out)
    }

    /// Whether `rp_id_hash` is SHA-256(`rp_id`).
    pub fn is_for_rp(&self, rp_id: &str) -> bool {
        let h: [u8; 32] = Sha256::digest(rp_id.as_bytes()).into();
        h == self.rp_id_hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn sample() -> AuthenticatorData {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let key = p256::SecretKey::random(&mut rng).public_key();
        AuthenticatorData {
            attested_credential: Some(AttestedCredentialData {
                aaguid: [0xAA; 16],
                credential_id: vec![0xC0; 20],
                public_key: CoseKey::es256(key),
            }),
            extensions: Some(Value::text_map([("credProtect", Value::int(2))])),
            ..AuthenticatorData::new("example.com", AuthDataFlags::UP | AuthDataFlags::UV, 7)
        }
    }

    #[test]
    fn build_parse_round_trip_sets_at_and_ed() {
        let a = sample();
        let bytes = a.to_bytes().unwrap();
        let back = AuthenticatorData::parse(&bytes).unwrap();
        assert_eq!(back.flags.0, 0x01 | 0x04 | 0x40 | 0x80);
        assert_eq!(back.attested_credential, a.attested_credential);
        assert_eq!(back.extensions, a.extensions);
        assert_eq!(back.sign_count, 7);
        assert!(back.is_for_rp("example.com") && !back.is_for_rp("example.org"));
        assert_eq!(back.to_bytes().unwrap(), bytes);
        let bare = AuthenticatorData::new("x", AuthDataFlags::UP, 0).to_bytes().unwrap();
        assert_eq!(bare.len(), HEADER_LEN);
    }

    #[test]
    fn every_truncation_is_a_typed_error() {
        let bytes = sample().to_bytes().unwrap();
        for n in 0..bytes.len() {
            match AuthenticatorData::parse(&bytes[..n]) {
                Err(Ctap2Error::AuthData { .. }) | Err(Ctap2Error::MissingField(_)) => {}
                other => panic!("prefix {n}: {other:?}"),
            }
        }
    }
}
