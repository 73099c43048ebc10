//! The virtual phone's persistent state (`--state FILE`): the software authenticator's
//! credentials, the phone's root secret (from which its identity key and every link secret are
//! derived, PROTOCOL-hybrid.md §3 purposes 4–6 and §9.1) and one contact per linked desktop:
//! the [`ListenSecret`] that holds it on our tunnel server (the contact id handed to the desktop
//! is its one-way derivation, [`crate::tunnel::listen::contact_id`]) and the link id issued.
//!
//! The file is JSON with hex fields, written atomically with mode 0600 (it holds secrets): a
//! crash leaves the old or the new file, never half of one. Version 1 files (whose contact id
//! was itself the listen credential) load with their credentials and root secret but without
//! their contacts: those ids were never safe to listen on, so the desktops must link again.
//!
//! What it is not: the desktop's link store (that keeps what *phones* sent; see `store`).

use crate::store::atomic::{read_optional, write_atomic, StoreError, SECRET_FILE_MODE};
use crate::tunnel::listen::{contact_id, ListenSecret};
use cablebridge_protocol::authenticator::PersistentState;
use cablebridge_protocol::hybrid::keys::{
    derive_p256_from_seed, identity_key_seed, paired_secret, per_contact_secret, LinkSecret,
    PhoneRootSecret,
};
use serde_json::{json, Value};
use std::path::Path;
use zeroize::Zeroizing;

/// Format version written into the file.
const VERSION: u64 = 2;
/// The version whose contacts are dropped on load (see the module docs).
const VERSION_UNSAFE_CONTACTS: u64 = 1;
/// Contacts kept (one per linking session, newest kept): the oldest one's desktop then gets
/// "not reachable" (404) until it links again. Also bounds the listener connections.
pub const MAX_CONTACTS: usize = 32;

/// One linked desktop's contact on the tunnel server, and the link id issued under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// The phone's credential for `/cable/listen` (never leaves the phone).
    pub listen_secret: ListenSecret,
    /// Opaque id the desktop connects to (`/cable/contact/<id>`): derived from the secret.
    pub contact_id: Vec<u8>,
    /// Link ("pairing") ids given to the desktop; a client payload naming another is refused.
    pub link_ids: Vec<[u8; 8]>,
}

impl Contact {
    /// A fresh contact for one desktop.
    fn new(rng: &mut impl rand_core::CryptoRngCore) -> Contact {
        let listen_secret = ListenSecret::random(rng);
        let contact_id = contact_id(&listen_secret).to_vec();
        Contact { listen_secret, contact_id, link_ids: Vec::new() }
    }
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
                    "listen_secret": hex::encode(c.listen_secret.expose()),
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
        let version = doc.get("version").and_then(Value::as_u64);
        if version != Some(VERSION) && version != Some(VERSION_UNSAFE_CONTACTS) {
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
        let stored = match version {
            Some(VERSION) => doc.get("contacts").and_then(Value::as_array),
            _ => None,
        };
        for c in stored.into_iter().flatten() {
            let listen_secret = c
                .get("listen_secret")
                .and_then(Value::as_str)
                .and_then(|s| hex::decode(s).ok().map(Zeroizing::new))
                .and_then(|b| ListenSecret::from_slice(&b))
                .ok_or("a contact has no 32-byte hex listen_secret")?;
            let mut link_ids = Vec::new();
            for l in c.get("link_ids").and_then(Value::as_array).into_iter().flatten() {
                let id = l
                    .as_str()
                    .and_then(|s| hex::decode(s).ok())
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .ok_or("a link id is not 8 hex bytes")?;
                link_ids.push(id);
            }
            let contact_id = contact_id(&listen_secret).to_vec();
            contacts.push(Contact { listen_secret, contact_id, link_ids });
        }
        Ok(PhoneState { authenticator, root, contacts })
    }

    /// The phone's long-term identity key (purpose 5 seed → P-256, §3).
    pub fn identity_key(&self) -> Result<p256::SecretKey, String> {
        derive_p256_from_seed(identity_key_seed(&self.root).expose())
            .map_err(|e| format!("identity key: {e}"))
    }

    /// Issues a new link to one desktop under a contact of its own (so one desktop's contact id
    /// says nothing about another's, and each can be revoked alone): returns the contact id, the
    /// new link id and its link secret `Derive(Derive(root, contact_id, 6), link_id, 4)` (§9.1).
    pub fn issue_link(
        &mut self,
        rng: &mut impl rand_core::CryptoRngCore,
    ) -> (Vec<u8>, [u8; 8], LinkSecret) {
        let mut contact = Contact::new(rng);
        let mut link_id = [0u8; 8];
        rng.fill_bytes(&mut link_id);
        contact.link_ids.push(link_id);
        let secret = paired_secret(&per_contact_secret(&self.root, &contact.contact_id), &link_id);
        let id = contact.contact_id.clone();
        self.contacts.push(contact);
        if self.contacts.len() > MAX_CONTACTS {
            // The phone cannot tell a desktop that links again from a new one: keep the newest.
            self.contacts.remove(0);
        }
        (id, link_id, secret)
    }

    /// The link secret for a desktop's client payload, if `link_id` was issued under
    /// `contact_id`.
    pub fn link_secret(&self, contact_id: &[u8], link_id: &[u8; 8]) -> Option<LinkSecret> {
        self.contacts
            .iter()
            .find(|c| c.contact_id == contact_id && c.link_ids.contains(link_id))
            .map(|_| paired_secret(&per_contact_secret(&self.root, contact_id), link_id))
    }

    /// Forgets every contact (revoke them on the tunnel server first: see
    /// `Phone::forget_links`).
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
        let (contact2, _, _) = s.issue_link(&mut rng);
        assert_ne!(contact, contact2, "each desktop gets its own contact id");
        assert_eq!(contact, crate::tunnel::listen::contact_id(&s.contacts[0].listen_secret));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("phone.json");
        s.save(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let back = PhoneState::load_or_new(&path, &mut rng).unwrap();
        assert_eq!(back.contacts, s.contacts);
        assert_eq!(back.link_secret(&contact, &link), Some(secret));
        assert_eq!(back.link_secret(&contact, &[0; 8]), None);
        assert_eq!(back.link_secret(&contact2, &link), None, "a link id is bound to its contact");
        let text = String::from_utf8(std::fs::read(&path).unwrap()).unwrap();
        assert!(!text.contains(&hex::encode(&contact)), "contact ids are derived, not stored");
        assert_eq!(back.identity_key().unwrap(), s.identity_key().unwrap());
        assert_eq!(back.authenticator.export().expose(), s.authenticator.export().expose());
    }

    #[test]
    fn contacts_are_bounded_keeping_the_newest() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let mut s = PhoneState::new(&mut rng);
        let (first, link, _) = s.issue_link(&mut rng);
        let mut last = Vec::new();
        for _ in 0..MAX_CONTACTS {
            last = s.issue_link(&mut rng).0;
        }
        assert_eq!(s.contacts.len(), MAX_CONTACTS);
        assert!(s.link_secret(&first, &link).is_none(), "the oldest contact was dropped");
        assert_eq!(s.contacts.last().map(|c| c.contact_id.clone()), Some(last));
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

#[cfg(test)]
mod v1_tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn version_1_keeps_credentials_but_drops_unsafe_contacts() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let s = PhoneState::new(&mut rng);
        let doc = json!({
            "version": 1,
            "authenticator": hex::encode(s.authenticator.export().expose()),
            "root_secret": hex::encode(s.root.expose()),
            "contacts": [{ "contact_id": "00112233", "link_ids": ["0001020304050607"] }],
        });
        let back = PhoneState::decode(doc.to_string().as_bytes()).unwrap();
        assert!(back.contacts.is_empty());
        assert_eq!(back.identity_key().unwrap(), s.identity_key().unwrap());
    }
}
