//! The credential ids phones returned through the uhid front, remembered per relying party and
//! phone (`uhid-credentials.json` in the state directory, mode 0600, replaced atomically), so a
//! client's silent excludeList/allowList probe can be answered for ids this host has seen.
//!
//! Only public data is kept: RP id, credential id, which phone (a linked phone's name, or
//! `qr` for a phone that scanned a QR code) and when. The list is capped ([`MAX_ENTRIES`],
//! oldest dropped) so a client registering in a loop cannot grow the file without bound.
//!
//! What it is not: a credential store (no keys; the phone holds those).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ceremony::{b64url, from_b64url};
use crate::store::{read_optional, write_atomic, StoreError};

/// Entries kept; the oldest are dropped beyond this.
pub const MAX_ENTRIES: usize = 1000;
/// The file name inside the state directory.
pub const FILE_NAME: &str = "uhid-credentials.json";

/// One remembered credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownCredential {
    /// Relying party id.
    pub rp_id: String,
    /// Credential id, base64url.
    pub credential_id: String,
    /// The linked phone's name, or `qr`.
    pub phone: String,
    /// Unix seconds.
    pub created: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct FileFormat {
    version: u32,
    credentials: Vec<KnownCredential>,
}

/// The file.
#[derive(Debug, Clone)]
pub struct CredentialMemory {
    path: PathBuf,
}

impl CredentialMemory {
    /// `uhid-credentials.json` in `state_dir`.
    pub fn in_dir(state_dir: &Path) -> Self {
        CredentialMemory { path: state_dir.join(FILE_NAME) }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every remembered credential (none when the file does not exist yet).
    pub fn load(&self) -> Result<Vec<KnownCredential>, StoreError> {
        match read_optional(&self.path)? {
            None => Ok(Vec::new()),
            Some(bytes) => {
                serde_json::from_slice::<FileFormat>(&bytes).map(|f| f.credentials).map_err(|e| {
                    StoreError::Corrupt { path: self.path.clone(), reason: e.to_string() }
                })
            }
        }
    }

    /// Remembers `credential_id` for `rp_id` from `phone` (a repeat moves it to the end).
    pub fn remember(
        &self,
        rp_id: &str,
        credential_id: &[u8],
        phone: &str,
        now: u64,
    ) -> Result<(), StoreError> {
        self.remember_capped(rp_id, credential_id, phone, now, MAX_ENTRIES)
    }

    fn remember_capped(
        &self,
        rp_id: &str,
        credential_id: &[u8],
        phone: &str,
        now: u64,
        cap: usize,
    ) -> Result<(), StoreError> {
        let mut list = self.load()?;
        let id = b64url(credential_id);
        list.retain(|c| !(c.rp_id == rp_id && c.credential_id == id));
        list.push(KnownCredential {
            rp_id: rp_id.to_owned(),
            credential_id: id,
            phone: phone.to_owned(),
            created: now,
        });
        if list.len() > cap {
            let extra = list.len() - cap;
            list.drain(..extra);
        }
        let bytes = serde_json::to_vec_pretty(&FileFormat { version: 1, credentials: list })
            .map_err(|e| StoreError::Corrupt { path: self.path.clone(), reason: e.to_string() })?;
        write_atomic(&self.path, &bytes, crate::store::atomic::SECRET_FILE_MODE)
    }

    /// The first of `ids` remembered for `rp_id`.
    pub fn first_known<'a>(
        &self,
        rp_id: &str,
        ids: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let list = self.load()?;
        Ok(ids
            .into_iter()
            .find(|id| {
                let id = b64url(id);
                list.iter().any(|c| c.rp_id == rp_id && c.credential_id == id)
            })
            .map(<[u8]>::to_vec))
    }
}

/// Decodes a stored id (tests and tools).
pub fn decode_id(c: &KnownCredential) -> Option<Vec<u8>> {
    from_b64url(&c.credential_id)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn remembers_with_0600_dedupes_and_caps() {
        let dir = std::env::temp_dir().join(format!("cb-uhid-creds-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let m = CredentialMemory::in_dir(&dir);
        assert!(m.load().unwrap().is_empty());
        m.remember("example.com", b"id-1", "Pixel", 1).unwrap();
        m.remember("example.com", b"id-1", "Pixel", 2).unwrap();
        assert_eq!(m.load().unwrap().len(), 1);
        let mode = std::fs::metadata(m.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let ids: [&[u8]; 2] = [b"other", b"id-1"];
        assert_eq!(m.first_known("example.com", ids).unwrap(), Some(b"id-1".to_vec()));
        assert_eq!(m.first_known("elsewhere.com", ids).unwrap(), None);
        for i in 0..5 {
            m.remember_capped("cap.example", format!("c{i}").as_bytes(), "qr", 3, 3).unwrap();
        }
        let all = m.load().unwrap();
        assert_eq!(all.len(), 3);
        assert!(all.iter().all(|c| c.credential_id != b64url(b"id-1")));
        std::fs::write(m.path(), b"{not json").unwrap();
        assert!(matches!(m.load(), Err(StoreError::Corrupt { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
