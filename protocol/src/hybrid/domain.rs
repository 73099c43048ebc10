//! Tunnel-server domain ids (§4): the 16-bit id carried little-endian in the EID and stored with
//! links, and the host name it stands for.
//!
//! * 0 and 1 are assigned (Google `cable.ua5v.com`, Apple `cable.auth.com`);
//! * 2–255 are reserved: Chrome rejects adverts carrying them;
//! * 256–65535 are hashed into a host name anyone can own.
//!
//! Only the current Chromium hash is implemented; the incompatible 2021 variant (§11.3) is not.
//! What it is not: DNS or URL building — see [`super::tunnel`].

use crate::error::{Classify, Fault, Stage};
use core::fmt;
use sha2::{Digest, Sha256};
use std::borrow::Cow;

/// Assigned hosts, indexed by id.
const ASSIGNED: [&str; 2] = ["cable.ua5v.com", "cable.auth.com"];
/// Prefix hashed before the id (28 ASCII bytes).
const HASH_PREFIX: &[u8; 28] = b"caBLEv2 tunnel server domain";
const TLDS: [&str; 4] = ["com", "org", "net", "info"];
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// A 16-bit encoded tunnel-server domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DomainId(pub u16);

impl DomainId {
    /// Google's tunnel, `cable.ua5v.com`.
    pub const GOOGLE: DomainId = DomainId(0);
    /// Apple's tunnel, `cable.auth.com`.
    pub const APPLE: DomainId = DomainId(1);
    /// Number of assigned domains we know, written as QR key 2.
    pub const KNOWN_ASSIGNED: u64 = ASSIGNED.len() as u64;

    /// Whether the id is in the reserved range 2–255 that receivers must reject.
    pub fn is_reserved(self) -> bool {
        (ASSIGNED.len() as u16..256).contains(&self.0)
    }

    /// The host name; an error for reserved ids.
    pub fn host(self) -> Result<Cow<'static, str>, DomainError> {
        tunnel_domain(self.0)
    }
}

/// The id falls in the reserved range 2–255.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainError {
    /// Ids 2–255 are reserved (unassigned); Chrome drops adverts that carry them (§4).
    Reserved(u16),
}

impl fmt::Display for DomainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainError::Reserved(id) => write!(
                f,
                "tunnel domain id {id} is reserved: 0 and 1 are assigned, 2-255 are invalid, \
                 256-65535 are hashed"
            ),
        }
    }
}

impl std::error::Error for DomainError {}

impl Classify for DomainError {
    fn fault(&self) -> Fault {
        Fault::Peer
    }
    fn stage(&self) -> Stage {
        Stage::Tunnel
    }
}

/// The host name for a domain id (§4). Assigned names are borrowed, hashed ones computed.
pub fn tunnel_domain(id: u16) -> Result<Cow<'static, str>, DomainError> {
    if let Some(host) = ASSIGNED.get(usize::from(id)) {
        return Ok(Cow::Borrowed(host));
    }
    if id < 256 {
        return Err(DomainError::Reserved(id));
    }
    Ok(Cow::Owned(hashed_domain(id)))
}

fn hashed_domain(id: u16) -> String {
    // Input: prefix ‖ id (LE16) ‖ 0x00 — the NUL *after* the id (the 2021 variant put it before).
    let mut h = Sha256::new();
    h.update(HASH_PREFIX);
    h.update(id.to_le_bytes());
    h.update([0u8]);
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let mut v = u64::from_le_bytes(first);
    let tld = TLDS[(v & 3) as usize];
    v >>= 2;
    let mut host = String::from("cable.");
    while v != 0 {
        host.push(char::from(BASE32[(v & 31) as usize]));
        v >>= 5;
    }
    host.push('.');
    host.push_str(tld);
    host
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors() {
        assert_eq!(tunnel_domain(0).unwrap(), "cable.ua5v.com");
        assert_eq!(tunnel_domain(1).unwrap(), "cable.auth.com");
        assert_eq!(tunnel_domain(256).unwrap(), "cable.qz2ekwmnd332c.info");
        assert_eq!(tunnel_domain(266).unwrap(), "cable.wufkweyy3uaxb.com");
        assert_eq!(tunnel_domain(0xF980).unwrap(), "cable.my4kstlhndi4c.net");
        assert_eq!(tunnel_domain(65535).unwrap(), "cable.lw6vahpb5pldb.net");
    }

    #[test]
    fn reserved_range() {
        for id in [2u16, 100, 255] {
            assert_eq!(tunnel_domain(id), Err(DomainError::Reserved(id)));
            assert!(DomainId(id).is_reserved());
        }
        assert!(!DomainId(1).is_reserved() && !DomainId(256).is_reserved());
        assert!(DomainError::Reserved(2).to_string().contains("reserved"));
    }
}
