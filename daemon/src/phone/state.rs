//! The virtual phone's persistent state (`--state FILE`): the software authenticator's
//! credentials, the phone's root secret (from which its identity key and every link secret are
//! derived, PROTOCOL-hybrid.md §3 purposes 4–6 and §9.1) and the contact ids it has handed out.
//!
//! The file is JSON with hex fields, written atomically with mode 0600 (it holds secrets): a
//! crash leaves the old or the new file, never half of one.
//!
//! What it is not: the desktop's link store (that keeps what *phones* sent; see `store`).

use crate::store::atomic::{read_optional, write_atomic, StoreError, SECRET_FILE_MODE};
use cablebridge_protocol::authenticator::PersistentState;
use cablebridge_protocol::hybrid::keys::{
    derive_p256_from_seed, identity_key_seed, paired_secret, per_contact_secret, LinkSecret,
    PhoneRootSecret,
};
use serde_json::{json, Value};
use std::path::Path;
use zeroize::Zeroizing;

/// Format version written into the file.
const VERSION: u64 = 1;
/// Contact ids are the listener's only credential on our tunnel server: long and random.
const CONTACT_ID_LEN: usize = 16;

/// One contact id registered on the tunnel server, and the link ids issued under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// Opaque id the desktop connects to (`/cable/contact/<id>`).
    pub contact_id: Vec<u8>,
    /// Link ("pairing") ids given to desktops; a client payload naming another is refused.
    pub link_ids: Vec<[u8; 8]>,
}

/// Everything `--state FILE` keeps.
#[derive(Debug)]
pub struct PhoneState {
    /// The software authenticator's state (credentials, counters).
    pub authenticator: PersistentState,
    /// Root of the identity key and link secrets.
    pub root: PhoneRootSecret,
    /// Contact ids handed out in linking info.
    pub contacts: Vec<Contact>,
}

impl PhoneState {
    /// A factory-fresh phone.
    pub fn new(rng: &mut impl rand_core::CryptoRngCore) -> Self {
        PhoneState {
            authenticator: PersistentState::new(rng),
            root: PhoneRootSecret::random(rng),
            contacts: Vec::new(),
        }
    }

    /// Loads `path`, or returns a fresh state if it does not exist yet.
    pub fn load_or_new(
        path: &Path,
        rng: &mut impl rand_core::CryptoRngCore,
    ) -> Result<Self, StoreError> {
        match read_optional(path)? {
            Some(bytes) => Self::decode(&Zeroizing::new(bytes))
                .map_err(|reason| StoreError::Corrupt { path: path.to_owned(), reason }),
            None => Ok(Self::new(rng)),
        }
    }

    /// Writes the state atomically with mode 0600.
    pub fn save(&self, path: &Path) -> Result<(), StoreError> {
        let bytes = self.encode();
        write_atomic(path, &bytes, SECRET_FILE_MODE)
    }

    fn encode(&self) -> Zeroizing<Vec<u8>> {
        let contacts: Vec<Value> = self
            .contacts
            .iter()
            .map(|c| {
                json!({
                    "contact_id": hex::encode(&c.contact_id),
                    "link_ids": c.link_ids.iter().map(hex::encode).collect::<Vec<_>>(),
                })
            })
            .collect();
        // The JSON tree's hex strings are not wiped (serde_json::Value cannot be zeroized); the
        // encoded bytes handed to the file are.
        let doc = json!({
            "version": VERSION,
            "authenticator": hex::encode(self.authenticator.export().expose()),
            "root_secret": hex::encode(self.root.expose()),
            "contacts": contacts,
        });
        Zeroizing::new(doc.to_string().into_bytes())
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        let doc: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
        if doc.get("version").and_then(Value::as_u64) != Some(VERSION) {
            return Err(format!("version is not {VERSION}"));
        }
        let hex_field = |name: &str| -> Result<Zeroizing<Vec<u8>>, String> {
            let s = doc.get(name).and_then(Value::as_str).ok_or(format!("{name} missing"))?;
            hex::decode(s).map(Zeroizing::new).map_err(|_| format!("{name} is not hex"))
        };
        let authenticator = PersistentState::import(&hex_field("authenticator")?)
            .map_err(|e| format!("authenticator state: {e}"))?;
        let root = PhoneRootSecret::from_slice(&hex_field("root_secret")?)
            .ok_or("root_secret is not 32 bytes")?;
        let mut contacts = Vec::new();
        for c in doc.get("contacts").and_then(Value::as_array).into_iter().flatten() {
            let contact_id = c
                .get("contact_id")
                .and_then(Value::as_str)
                .and_then(|s| hex::decode(s).ok())
                .filter(|id| !id.is_empty())
                .ok_or("a contact has no hex contact_id")?;
            let mut link_ids = Vec::new();
            for l in c.get("link_ids").and_then(Value::as_array).into_iter().flatten() {
                let id = l
                    .as_str()
                    .and_then(|s| hex::decode(s).ok())
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .ok_or("a link id is not 8 hex bytes")?;
                link_ids.push(id);
            }
            contacts.push(Contact { contact_id, link_ids });
        }
        Ok(PhoneState { authenticator, root, contacts })
    }

    /// The phone's long-term identity key (purpose 5 seed → P-256, §3).
    pub fn identity_key(&self) -> Result<p256::SecretKey, String> {
        derive_p256_from_seed(identity_key_seed(&self.root).expose())
            .map_err(|e| format!("identity key: {e}"))
    }

    /// Issues a new link under the phone's contact id (created on first use): returns the
    /// contact id, the new link id and its link secret
    /// `Derive(Derive(root, contact_id, 6), link_id, 4)` (§9.1).
    pub fn issue_link(
        &mut self,
        rng: &mut impl rand_core::CryptoRngCore,
    ) -> (Vec<u8>, [u8; 8], LinkSecret) {
        if self.contacts.is_empty() {
            let mut contact_id = vec![0u8; CONTACT_ID_LEN];
            rng.fill_bytes(&mut contact_id);
            self.contacts.push(Contact { contact_id, link_ids: Vec::new() });
        }
        let mut link_id = [0u8; 8];
        rng.fill_bytes(&mut link_id);
        let contact = &mut self.contacts[0];
        contact.link_ids.push(link_id);
        let secret = paired_secret(&per_contact_secret(&self.root, &contact.contact_id), &link_id);
        (contact.contact_id.clone(), link_id, secret)
    }

    /// The link secret for a desktop's client payload, if `link_id` was issued under
    /// `contact_id`.
    pub fn link_secret(&self, contact_id: &[u8], link_id: &[u8; 8]) -> Option<LinkSecret> {
        self.contacts
            .iter()
            .find(|c| c.contact_id == contact_id && c.link_ids.contains(link_id))
            .map(|_| paired_secret(&per_contact_secret(&self.root, contact_id), link_id))
    }

    /// Forgets every contact: the tunnel server then answers 410 and desktops drop the link.
    pub fn forget_contacts(&mut self) {
        self.contacts.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn round_trip_keeps_links_and_identity() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut s = PhoneState::new(&mut rng);
        let (contact, link, secret) = s.issue_link(&mut rng);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("phone.json");
        s.save(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let back = PhoneState::load_or_new(&path, &mut rng).unwrap();
        assert_eq!(back.contacts, s.contacts);
        assert_eq!(back.link_secret(&contact, &link), Some(secret));
        assert_eq!(back.link_secret(&contact, &[0; 8]), None);
        assert_eq!(back.identity_key().unwrap(), s.identity_key().unwrap());
        assert_eq!(back.authenticator.export().expose(), s.authenticator.export().expose());
    }

    #[test]
    fn corrupt_and_missing_files() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("phone.json");
        let fresh = PhoneState::load_or_new(&path, &mut rng).unwrap();
        assert!(fresh.contacts.is_empty());
        std::fs::write(&path, b"{\"version\":1}").unwrap();
        let err = PhoneState::load_or_new(&path, &mut rng).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("authenticator missing"));
    }
}
