//! BLE advert encryption (§5): the phone seals a 16-byte EID plaintext into 20 bytes of service
//! data; the desktop trial-opens every advert it hears against each key it is waiting on.
//!
//! Layout (§5.1): `00 ‖ nonce(10) ‖ routing id(3) ‖ domain id (LE16)`, sealed as
//! `AES-256(K[..32], plaintext) ‖ HMAC-SHA256(K[32..], ciphertext)[..4]` (§5.2).
//!
//! Trial-open is the desktop's hot path: every foreign advert in radio range is tried against
//! every pending key. [`EidKey`] therefore keeps the **expanded AES key schedule** and the
//! **HMAC state already keyed** (inner/outer pads absorbed), and [`EidKey::trial_open`] decrypts
//! first: a foreign advert decrypts to a random block whose reserved byte is non-zero with
//! probability 255/256, so most are rejected after one AES block (~10–20 ns) without touching
//! HMAC (notes/performance-anchors.md). Nothing is ever accepted without the tag verifying in
//! constant time.
//!
//! What it is not: radio access or UUID filtering (the daemon's BLE driver), PSK use (Noise).

use crate::error::{Classify, Fault, Stage};
use crate::hybrid::domain::{self, DomainError};
use crate::hybrid::keys::{
    self, EidKeyBytes, KeyPurpose, LinkSecret, PairingSecret, Psk, QrSecret,
};
use crate::hybrid::tunnel::{RoutingId, TunnelId, TunnelPath};
use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use core::fmt;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::borrow::Cow;
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

/// Length of the sealed advert (ciphertext ‖ tag).
pub const ADVERT_LEN: usize = 20;
/// Length of the truncated HMAC tag.
const TAG_LEN: usize = 4;

/// The 16-byte EID plaintext (one AES block). Also the PSK salt (pitfall §11.2 item 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EidPlaintext(pub [u8; 16]);

impl EidPlaintext {
    /// A QR-initiated EID: reserved byte 0, then nonce, routing id and LE domain id.
    pub fn new(nonce: [u8; 10], routing: RoutingId, domain: u16) -> EidPlaintext {
        let mut b = [0u8; 16];
        b[1..11].copy_from_slice(&nonce);
        b[11..14].copy_from_slice(&routing.0);
        b[14..16].copy_from_slice(&domain.to_le_bytes());
        EidPlaintext(b)
    }
    /// The raw block.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
    /// Byte 0: must be zero unless negotiated through the QR (§5.1).
    pub fn reserved(&self) -> u8 {
        self.0[0]
    }
    /// The 10-byte per-transaction nonce.
    pub fn nonce(&self) -> [u8; 10] {
        let mut n = [0u8; 10];
        n.copy_from_slice(&self.0[1..11]);
        n
    }
    /// The routing id the phone's tunnel server assigned.
    pub fn routing_id(&self) -> RoutingId {
        RoutingId([self.0[11], self.0[12], self.0[13]])
    }
    /// The tunnel-server domain id (§4), little-endian on the wire.
    pub fn domain_id(&self) -> u16 {
        u16::from_le_bytes([self.0[14], self.0[15]])
    }
    /// Host name of [`Self::domain_id`].
    pub fn tunnel_host(&self) -> Result<Cow<'static, str>, DomainError> {
        domain::tunnel_domain(self.domain_id())
    }
    /// `/cable/connect/<routing>/<tunnel>` for this advert (QR-initiated).
    pub fn connect_path(&self, tunnel_id: TunnelId) -> TunnelPath {
        TunnelPath::Connect { routing_id: self.routing_id(), tunnel_id }
    }
}

/// Which checks apply after the tag verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EidMode {
    /// QR-initiated: the domain id must not be in 2..=255.
    Qr,
    /// State-assisted: bytes 1–15 may be random (Chrome's phone), so no domain check
    /// (pitfall §11.2 item 16).
    Linked,
}

/// An advert that carried our tag but breaks a plaintext rule.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EidError {
    /// Byte 0 of the plaintext is not zero.
    ReservedByte(u8),
    /// The domain id is in the reserved range 2..=255 (QR mode only).
    ReservedDomain(u16),
}

impl fmt::Display for EidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EidError::ReservedByte(b) => {
                write!(f, "advert is ours but its reserved byte is {b:#04x}, not 0")
            }
            EidError::ReservedDomain(d) => {
                write!(
                    f,
                    "advert is ours but names reserved tunnel domain id {d} (2-255 are invalid)"
                )
            }
        }
    }
}

impl std::error::Error for EidError {}

impl Classify for EidError {
    fn fault(&self) -> Fault {
        Fault::Peer
    }
    fn stage(&self) -> Stage {
        Stage::Advert
    }
}

/// A successfully opened advert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedAdvert {
    /// The decrypted block.
    pub plaintext: EidPlaintext,
    /// Bytes beyond the first 20 (CTAP 2.3 advert suffix, not covered by the tag, §12).
    pub suffix: Vec<u8>,
}

impl OpenedAdvert {
    /// Noise psk0: `Derive(secret, whole 16-byte plaintext, PSK, 32)`; `secret` is the QR secret
    /// or the link secret.
    pub fn psk(&self, secret: &impl PairingSecret) -> Psk {
        Psk::new(keys::derive_array(secret.ikm(), &self.plaintext.0, KeyPurpose::Psk))
    }
}

/// Result of trying one advert against one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrialOpen {
    /// Not sealed under this key (the normal case for foreign adverts); ignore silently.
    NotOurs,
    /// Ours and valid.
    Match(OpenedAdvert),
    /// Ours (tag verified) but invalid; drop it, but it is worth a diagnostic.
    Invalid(EidError),
}

/// An EID key ready for sealing and trial-opening: expanded AES-256 schedule plus a keyed
/// HMAC-SHA256 state that is cloned per tag instead of re-keyed.
#[derive(Clone)]
pub struct EidKey {
    aes: aes::Aes256,
    mac: Hmac<Sha256>,
}

impl fmt::Debug for EidKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EidKey(<redacted>)")
    }
}

impl EidKey {
    /// From the 64 derived bytes: AES key ‖ HMAC key.
    pub fn from_bytes(key: &EidKeyBytes) -> EidKey {
        let k = key.expose();
        let mut aes_key = [0u8; 32];
        aes_key.copy_from_slice(&k[..32]);
        // HMAC zero-pads keys shorter than its 64-byte block, so the 32-byte key in a zeroed
        // 64-byte array *is* the same key — and `Mac::new` on a full block cannot fail.
        let mut mac_key = [0u8; 64];
        mac_key[..32].copy_from_slice(&k[32..]);
        let key = EidKey {
            aes: aes::Aes256::new(&aes_key.into()),
            mac: <Hmac<Sha256> as Mac>::new(&mac_key.into()),
        };
        aes_key.zeroize();
        mac_key.zeroize();
        key
    }

    /// QR-initiated key: `Derive(qr_secret, ∅, EIDKey, 64)`.
    pub fn from_qr_secret(secret: &QrSecret) -> EidKey {
        EidKey::from_bytes(&derive_bytes(secret.expose(), &[]))
    }

    /// State-assisted key: `Derive(link_secret, client_nonce, EIDKey, 64)`.
    pub fn from_link(secret: &LinkSecret, client_nonce: &[u8; 16]) -> EidKey {
        EidKey::from_bytes(&derive_bytes(secret.expose(), client_nonce))
    }

    fn tag(&self, ciphertext: &[u8]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(ciphertext);
        mac.finalize().into_bytes().into()
    }

    /// Phone side: seal a plaintext into 20 bytes of service data.
    pub fn seal(&self, plaintext: &EidPlaintext) -> [u8; ADVERT_LEN] {
        let mut block = aes::Block::from(plaintext.0);
        self.aes.encrypt_block(&mut block);
        let mut out = [0u8; ADVERT_LEN];
        out[..16].copy_from_slice(&block);
        out[16..].copy_from_slice(&self.tag(&block)[..TAG_LEN]);
        out
    }

    /// Desktop hot path. A decrypted reserved byte ≠ 0 returns [`TrialOpen::NotOurs`] without
    /// computing the HMAC: such an advert must be dropped either way, and telling "ours but
    /// malformed" from "foreign" would cost the HMAC on every foreign advert. Use
    /// [`Self::trial_open_diagnostic`] when that distinction matters more than speed.
    pub fn trial_open(&self, service_data: &[u8], mode: EidMode) -> TrialOpen {
        self.open_inner(service_data, mode, false)
    }

    /// Like [`Self::trial_open`] but always verifies the tag, so an advert sealed under this key
    /// with a non-zero reserved byte is reported as [`EidError::ReservedByte`] (for tools).
    pub fn trial_open_diagnostic(&self, service_data: &[u8], mode: EidMode) -> TrialOpen {
        self.open_inner(service_data, mode, true)
    }

    fn open_inner(&self, service_data: &[u8], mode: EidMode, diagnose: bool) -> TrialOpen {
        let Some((ct, rest)) = service_data.split_first_chunk::<16>() else {
            return TrialOpen::NotOurs;
        };
        let Some((tag, suffix)) = rest.split_first_chunk::<TAG_LEN>() else {
            return TrialOpen::NotOurs;
        };
        let mut block = aes::Block::from(*ct);
        self.aes.decrypt_block(&mut block);
        let reserved = block[0];
        if reserved != 0 && !diagnose {
            return TrialOpen::NotOurs;
        }
        let expected = self.tag(ct);
        if !bool::from(expected[..TAG_LEN].ct_eq(&tag[..])) {
            return TrialOpen::NotOurs;
        }
        let plaintext = EidPlaintext(block.into());
        if reserved != 0 {
            return TrialOpen::Invalid(EidError::ReservedByte(reserved));
        }
        let domain = plaintext.domain_id();
        if mode == EidMode::Qr && (2..=255).contains(&domain) {
            return TrialOpen::Invalid(EidError::ReservedDomain(domain));
        }
        TrialOpen::Match(OpenedAdvert { plaintext, suffix: suffix.to_vec() })
    }
}

fn derive_bytes(secret: &[u8], salt: &[u8]) -> EidKeyBytes {
    let mut b: [u8; 64] = keys::derive_array(secret, salt, KeyPurpose::EidKey);
    let key = EidKeyBytes::new(b);
    b.zeroize();
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> EidKey {
        EidKey::from_qr_secret(&QrSecret::new(
            hex::decode("01fea6f7c4807493dc256f9eacf756c9").unwrap().try_into().unwrap(),
        ))
    }

    #[test]
    fn webauthn_rs_decrypt_known() {
        let advert = hex::decode("027d84ed6076b55e247c830f82955e4d126e7f43").unwrap();
        let TrialOpen::Match(opened) = key().trial_open(&advert, EidMode::Qr) else {
            panic!("vector advert did not match")
        };
        assert_eq!(hex::encode(opened.plaintext.0), "008bb5c5c9a44d913a5eb20265550000");
        assert_eq!(opened.plaintext.routing_id().to_hex(), "026555");
        assert_eq!(opened.plaintext.domain_id(), 0);
        assert!(opened.suffix.is_empty());
        assert_eq!(key().seal(&opened.plaintext).to_vec(), advert);
    }

    #[test]
    fn length_rules_and_suffix() {
        let k = key();
        let pt = EidPlaintext::new([7; 10], RoutingId([1, 2, 3]), 256);
        let sealed = k.seal(&pt);
        assert_eq!(k.trial_open(&sealed[..19], EidMode::Qr), TrialOpen::NotOurs);
        let mut long = sealed.to_vec();
        long.extend_from_slice(&[0xa1, 0x01, 0x19, 0x10, 0x01]);
        let TrialOpen::Match(o) = k.trial_open(&long, EidMode::Qr) else { panic!() };
        assert_eq!(o.suffix, vec![0xa1, 0x01, 0x19, 0x10, 0x01]);
        assert_eq!(o.plaintext, pt);
    }

    #[test]
    fn invalid_plaintexts() {
        let k = key();
        let bad_domain = k.seal(&EidPlaintext::new([1; 10], RoutingId([0; 3]), 2));
        assert_eq!(
            k.trial_open(&bad_domain, EidMode::Qr),
            TrialOpen::Invalid(EidError::ReservedDomain(2))
        );
        // Linked adverts are not domain-checked (pitfall 16).
        assert!(matches!(k.trial_open(&bad_domain, EidMode::Linked), TrialOpen::Match(_)));
        let mut raw = [0u8; 16];
        raw[0] = 0x80;
        let bad_reserved = k.seal(&EidPlaintext(raw));
        assert_eq!(k.trial_open(&bad_reserved, EidMode::Qr), TrialOpen::NotOurs);
        assert_eq!(
            k.trial_open_diagnostic(&bad_reserved, EidMode::Qr),
            TrialOpen::Invalid(EidError::ReservedByte(0x80))
        );
        let other = EidKey::from_qr_secret(&QrSecret::new([0; 16]));
        assert_eq!(other.trial_open_diagnostic(&bad_reserved, EidMode::Qr), TrialOpen::NotOurs);
        assert_eq!(format!("{k:?}"), "EidKey(<redacted>)");
    }
}
