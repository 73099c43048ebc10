//! The store of linked phones (§9.2): what a phone's linking info lets this desktop do later
//! without a QR code.
//!
//! One JSON file (`links.json`, mode 0600, written through [`super::write_atomic`]) under the
//! state directory: `--state-dir`, else `$XDG_STATE_HOME/cablebridge`, else
//! `~/.local/state/cablebridge`. Entries are keyed by the phone's identity public key (as
//! libwebauthn does) and replaced on update; a link is only ever added from linking info whose
//! signature verified, so an invalid update never evicts anything. A corrupt file is reported
//! and left alone — never silently overwritten.
//!
//! Each link has a short `id` (first 8 hex digits of SHA-256 of the phone key) and the phone's
//! `name`; `links forget` and `--linked` accept either ([`LinkStore::find`]). **Ids win**: a
//! query that is some link's id (or a longer prefix of its full 64-digit id) means that link,
//! whatever other phones chose as their name, so a phone cannot shadow another link by naming
//! itself after its id. Names are tried only when no id matches: first exactly, then
//! case-insensitively. More than one match at any step is [`LinkLookup::Ambiguous`] (a usage
//! error listing longer ids to pick from), never a silent first pick.
//!
//! The name is chosen by the phone: [`display_name`] escapes control and invisible formatting
//! characters and caps its length for terminals; [`StoredLink::summary`] caps it for JSON (where
//! escaping is JSON's). [`StoredLink`]'s `Debug` and [`StoredLink::summary`] never show the link
//! secret.
//!
//! Updates ([`LinkStore::upsert`], [`LinkStore::forget`], [`LinkStore::forget_key`]) are
//! read-modify-write of the whole file, serialised by a process-wide lock: the daemon runs
//! several sessions and connections at once, and two unserialised updates would each write back
//! the list they read, so one of them (a new link, or a forget) would silently be lost. Other
//! *processes* updating the same file (the CLI with the daemon's `--state-dir`) are serialised
//! too, by an `flock` on `.links.json.lock` beside it ([`super::atomic::lock_for_update`],
//! waiting up to 5 s, then a typed "being updated by another process" error with nothing
//! changed). Reads take no lock: the file is always whole (see [`super::atomic`]).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use cablebridge_protocol::hybrid::keys::LinkSecret;
use cablebridge_protocol::hybrid::messages::LinkingInfo;
use p256::PublicKey;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use super::atomic::{lock_for_update, read_optional, write_atomic, StoreError, SECRET_FILE_MODE};

/// Longest link name shown, in characters (after escaping); longer ones end in `…`.
pub const MAX_NAME_SHOWN: usize = 64;

/// Shortest id prefix accepted (the short id's length).
const SHORT_ID_LEN: usize = 8;

/// Characters that change how a terminal shows the text around them without being "control"
/// characters: bidi embeddings/overrides/isolates, zero-width joiners and marks, BOM.
fn invisible(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// A phone-chosen name made safe to print: control and invisible formatting characters (and
/// `\`) are escaped as Rust escapes (`\n`, `\u{1b}`, `\u{202e}`), and the result is capped at
/// [`MAX_NAME_SHOWN`] characters (ending in `…` when cut).
pub fn display_name(name: &str) -> String {
    let mut out = String::new();
    let mut shown = 0usize;
    for c in name.chars() {
        let piece: String = if c == '\\' {
            "\\\\".to_owned()
        } else if c.is_control() || invisible(c) {
            c.escape_default().collect()
        } else {
            c.to_string()
        };
        let len = piece.chars().count();
        if shown + len > MAX_NAME_SHOWN - 1 {
            out.push('…');
            return out;
        }
        shown += len;
        out.push_str(&piece);
    }
    out
}

/// `name` cut to [`MAX_NAME_SHOWN`] characters (ending in `…` when cut), not escaped.
fn capped_name(name: &str) -> String {
    if name.chars().count() <= MAX_NAME_SHOWN {
        return name.to_owned();
    }
    let mut out: String = name.chars().take(MAX_NAME_SHOWN - 1).collect();
    out.push('…');
    out
}

/// The outcome of looking a link up by id or name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkLookup {
    /// Exactly one link.
    Found(StoredLink),
    /// No link has that id or name.
    NotFound,
    /// Several links match; the 16-digit ids that tell them apart.
    Ambiguous(Vec<String>),
}

impl LinkLookup {
    /// The found link, if exactly one matched.
    pub fn found(self) -> Option<StoredLink> {
        match self {
            LinkLookup::Found(l) => Some(l),
            _ => None,
        }
    }
}

/// File name inside the state directory.
pub const LINKS_FILE: &str = "links.json";
const VERSION: u64 = 1;

/// One linked phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLink {
    /// The phone's self-reported name.
    pub name: String,
    /// The phone's long-term identity key (Noise NKpsk0 responder static).
    pub phone_public_key: PublicKey,
    /// Opaque id the tunnel service reaches the phone by.
    pub contact_id: Vec<u8>,
    /// Link ("pairing") id.
    pub link_id: [u8; 8],
    /// Link secret (EID key and PSK derivation).
    pub link_secret: LinkSecret,
    /// Encoded tunnel domain id from the QR session's advert.
    pub tunnel_domain: u16,
    /// Unix seconds when first linked.
    pub created: u64,
    /// Unix seconds of the last update.
    pub updated: u64,
}

impl StoredLink {
    /// A link from verified linking info, received in a session whose advert named
    /// `tunnel_domain`, at `now` (Unix seconds).
    pub fn from_linking(info: &LinkingInfo, tunnel_domain: u16, now: u64) -> Self {
        StoredLink {
            name: info.name.clone(),
            phone_public_key: info.phone_public_key,
            contact_id: info.contact_id.clone(),
            link_id: info.link_id,
            link_secret: info.link_secret.clone(),
            tunnel_domain,
            created: now,
            updated: now,
        }
    }

    /// Uncompressed SEC1 phone key.
    pub fn phone_key_bytes(&self) -> Vec<u8> {
        self.phone_public_key.to_sec1_bytes().to_vec()
    }

    /// Short id: first 8 hex digits of SHA-256 of the phone key.
    pub fn id(&self) -> String {
        hex::encode(&Sha256::digest(self.phone_key_bytes())[..4])
    }

    /// Full id: all 64 hex digits of SHA-256 of the phone key (any prefix of at least 8 digits
    /// selects the link).
    pub fn full_id(&self) -> String {
        hex::encode(Sha256::digest(self.phone_key_bytes()))
    }

    /// The phone's name, escaped and capped for printing ([`display_name`]).
    pub fn display_name(&self) -> String {
        display_name(&self.name)
    }

    /// Non-secret description (for `links list`).
    pub fn summary(&self) -> Value {
        let host = cablebridge_protocol::hybrid::domain::tunnel_domain(self.tunnel_domain)
            .map(|h| h.into_owned())
            .ok();
        json!({
            "id": self.id(),
            "name": capped_name(&self.name),
            "tunnel_domain_id": self.tunnel_domain,
            "tunnel_host": host,
            "link_id": hex::encode(self.link_id),
            "created": self.created,
            "updated": self.updated,
        })
    }

    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "phone_public_key": hex::encode(self.phone_key_bytes()),
            "contact_id": hex::encode(&self.contact_id),
            "link_id": hex::encode(self.link_id),
            // secret-export: the link store file is where link secrets live (mode 0600).
            "link_secret": hex::encode(self.link_secret.expose()),
            "tunnel_domain": self.tunnel_domain,
            "created": self.created,
            "updated": self.updated,
        })
    }

    fn from_json(v: &Value) -> Result<Self, String> {
        let text = |k: &str| v.get(k).and_then(Value::as_str).ok_or(format!("{k} missing"));
        let bytes = |k: &str| hex::decode(text(k)?).map_err(|_| format!("{k} is not hex"));
        let num = |k: &str| v.get(k).and_then(Value::as_u64).ok_or(format!("{k} missing"));
        let phone_public_key = PublicKey::from_sec1_bytes(&bytes("phone_public_key")?)
            .map_err(|_| "phone_public_key is not a P-256 point".to_owned())?;
        let link_id = bytes("link_id")?.try_into().map_err(|_| "link_id is not 8 bytes")?;
        let mut secret = bytes("link_secret")?;
        let link_secret = LinkSecret::from_slice(&secret).ok_or("link_secret is not 32 bytes");
        secret.zeroize();
        Ok(StoredLink {
            name: text("name")?.to_owned(),
            phone_public_key,
            contact_id: bytes("contact_id")?,
            link_id,
            link_secret: link_secret?,
            tunnel_domain: u16::try_from(num("tunnel_domain")?)
                .map_err(|_| "tunnel_domain out of range")?,
            created: num("created")?,
            updated: num("updated")?,
        })
    }
}

/// The link file.
#[derive(Debug, Clone)]
pub struct LinkStore {
    path: PathBuf,
}

/// Default state directory: `$XDG_STATE_HOME/cablebridge` or `~/.local/state/cablebridge`.
pub fn default_state_dir() -> Option<PathBuf> {
    let non_empty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    non_empty("XDG_STATE_HOME")
        .map(|d| d.join("cablebridge"))
        .or_else(|| non_empty("HOME").map(|h| h.join(".local/state/cablebridge")))
}

impl LinkStore {
    /// The store in `state_dir` (created on first write).
    pub fn in_dir(state_dir: &Path) -> Self {
        LinkStore { path: state_dir.join(LINKS_FILE) }
    }

    /// The file path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every link; empty when the file does not exist.
    pub fn load(&self) -> Result<Vec<StoredLink>, StoreError> {
        let Some(mut raw) = read_optional(&self.path)? else { return Ok(Vec::new()) };
        let parsed = self.parse(&raw);
        raw.zeroize();
        parsed
    }

    fn corrupt(&self, reason: impl Into<String>) -> StoreError {
        StoreError::Corrupt { path: self.path.clone(), reason: reason.into() }
    }

    fn parse(&self, raw: &[u8]) -> Result<Vec<StoredLink>, StoreError> {
        let v: Value = serde_json::from_slice(raw).map_err(|e| self.corrupt(e.to_string()))?;
        match v.get("version").and_then(Value::as_u64) {
            Some(VERSION) => {}
            other => return Err(self.corrupt(format!("unsupported version {other:?}"))),
        }
        let links = v.get("links").and_then(Value::as_array).ok_or(self.corrupt("no links"))?;
        links
            .iter()
            .enumerate()
            .map(|(i, l)| {
                StoredLink::from_json(l).map_err(|e| self.corrupt(format!("link {i}: {e}")))
            })
            .collect()
    }

    fn save(&self, links: &[StoredLink]) -> Result<(), StoreError> {
        let doc = json!({
            "version": VERSION,
            "links": links.iter().map(StoredLink::to_json).collect::<Vec<_>>(),
        });
        let mut bytes = serde_json::to_vec_pretty(&doc).unwrap_or_default();
        let result = write_atomic(&self.path, &bytes, SECRET_FILE_MODE);
        bytes.zeroize();
        result
    }

    /// Adds a link, or replaces the one with the same phone key (keeping its `created`).
    pub fn upsert(&self, mut link: StoredLink) -> Result<(), StoreError> {
        let _serialised = update_lock();
        let _other_processes = lock_for_update(&self.path, LOCK_WAIT)?;
        let mut links = self.load()?;
        if let Some(old) = links.iter().position(|l| l.phone_public_key == link.phone_public_key) {
            link.created = links[old].created;
            links[old] = link;
        } else {
            links.push(link);
        }
        self.save(&links)
    }

    /// Finds a link by id (or id prefix), else exact name, else case-insensitive name; ids win
    /// (see the module docs).
    pub fn find(&self, name_or_id: &str) -> Result<LinkLookup, StoreError> {
        Ok(pick(&self.load()?, name_or_id))
    }

    /// Removes the link [`Self::find`] picks for `name_or_id` (nothing on no or several
    /// matches) and returns the lookup.
    pub fn forget(&self, name_or_id: &str) -> Result<LinkLookup, StoreError> {
        let _serialised = update_lock();
        let _other_processes = lock_for_update(&self.path, LOCK_WAIT)?;
        let links = self.load()?;
        let found = pick(&links, name_or_id);
        if let LinkLookup::Found(l) = &found {
            self.remove_key(links, &l.phone_public_key)?;
        }
        Ok(found)
    }

    /// Removes the link of this phone key; returns whether there was one.
    pub fn forget_key(&self, phone: &PublicKey) -> Result<bool, StoreError> {
        let _serialised = update_lock();
        let _other_processes = lock_for_update(&self.path, LOCK_WAIT)?;
        self.remove_key(self.load()?, phone)
    }

    /// Writes `links` minus `phone`'s link back (the caller holds the update lock).
    fn remove_key(
        &self,
        mut links: Vec<StoredLink>,
        phone: &PublicKey,
    ) -> Result<bool, StoreError> {
        let before = links.len();
        links.retain(|l| l.phone_public_key != *phone);
        if links.len() == before {
            return Ok(false);
        }
        self.save(&links)?;
        Ok(true)
    }
}

/// How long an update waits for another process's update of the same file (they take
/// milliseconds; a writer holding it longer is stopped or hung, and we fail typed instead).
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Serialises this process's read-modify-write updates of link files (one lock for every store:
/// updates are rare and quick, and a daemon has one state directory).
fn update_lock() -> MutexGuard<'static, ()> {
    static UPDATE: Mutex<()> = Mutex::new(());
    // A panic while holding it cannot leave the file half-written (writes are atomic renames).
    UPDATE.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn pick(links: &[StoredLink], query: &str) -> LinkLookup {
    let one = |matches: Vec<&StoredLink>| match matches.as_slice() {
        [] => None,
        [l] => Some(LinkLookup::Found((*l).clone())),
        many => Some(LinkLookup::Ambiguous(
            many.iter().map(|l| l.full_id()[..2 * SHORT_ID_LEN].to_owned()).collect(),
        )),
    };
    let q = query.to_ascii_lowercase();
    let id_like = q.len() >= SHORT_ID_LEN && q.bytes().all(|b| b.is_ascii_hexdigit());
    let steps: [&dyn Fn(&StoredLink) -> bool; 3] =
        [&|l| id_like && l.full_id().starts_with(&q), &|l| l.name == query, &|l| {
            l.name.to_lowercase() == query.to_lowercase()
        }];
    for step in steps {
        if let Some(found) = one(links.iter().filter(|l| step(l)).collect()) {
            return found;
        }
    }
    LinkLookup::NotFound
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand::SeedableRng;
    use std::os::unix::fs::PermissionsExt;

    fn link(seed: u64, name: &str) -> StoredLink {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        StoredLink {
            name: name.into(),
            phone_public_key: p256::SecretKey::random(&mut rng).public_key(),
            contact_id: vec![1, 2, 3],
            link_id: [seed as u8; 8],
            link_secret: LinkSecret::random(&mut rng),
            tunnel_domain: 0,
            created: 10,
            updated: 10,
        }
    }

    #[test]
    fn concurrent_updates_lose_nothing() {
        // Regression: unserialised read-modify-write let two sessions' upserts (or a forget and
        // an upsert) each write back what they read, dropping the other's change.
        let dir = tempfile::tempdir().unwrap();
        let store = LinkStore::in_dir(dir.path());
        for i in 0..8 {
            store.upsert(link(100 + i, &format!("old{i}"))).unwrap();
        }
        std::thread::scope(|s| {
            for t in 0..8u64 {
                let store = &store;
                s.spawn(move || {
                    for i in 0..4 {
                        store.upsert(link(t * 10 + i, &format!("p{t}-{i}"))).unwrap();
                    }
                    assert!(store.forget_key(&link(100 + t, "").phone_public_key).unwrap());
                });
            }
        });
        let mut names: Vec<String> = store.load().unwrap().into_iter().map(|l| l.name).collect();
        names.sort();
        let mut want: Vec<String> =
            (0..8).flat_map(|t| (0..4).map(move |i| format!("p{t}-{i}"))).collect();
        want.sort();
        assert_eq!(names, want);
    }

    #[test]
    fn upsert_replaces_by_phone_key_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = LinkStore::in_dir(&dir.path().join("state"));
        assert!(store.load().unwrap().is_empty());
        store.upsert(link(1, "Pixel")).unwrap();
        store.upsert(link(2, "iPhone")).unwrap();
        let mut newer = link(1, "Pixel 8");
        newer.updated = 20;
        newer.created = 20;
        store.upsert(newer.clone()).unwrap();
        let links = store.load().unwrap();
        assert_eq!(links.len(), 2);
        assert_eq!(links[0].name, "Pixel 8");
        assert_eq!(links[0].created, 10, "created kept on update");
        assert_eq!(links[0].link_secret, newer.link_secret);
        let mode = std::fs::metadata(store.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // Found by id and by case-insensitive name; forgotten by name.
        let id = links[1].id();
        assert_eq!(store.find(&id).unwrap().found().unwrap().name, "iPhone");
        assert_eq!(store.find("pixel 8").unwrap().found().unwrap().id(), links[0].id());
        assert_eq!(store.forget("iPhone").unwrap().found().unwrap().id(), id);
        assert_eq!(store.forget("iPhone").unwrap(), LinkLookup::NotFound);
        assert_eq!(store.load().unwrap().len(), 1);
    }

    #[test]
    fn a_name_never_shadows_another_links_id() {
        let dir = tempfile::tempdir().unwrap();
        let store = LinkStore::in_dir(dir.path());
        let victim = link(1, "Pixel");
        // The attacker's phone links first and names itself after the victim's id (and its
        // uppercase form, and the victim's name).
        store.upsert(link(2, &victim.id())).unwrap();
        store.upsert(link(3, &victim.id().to_uppercase())).unwrap();
        store.upsert(victim.clone()).unwrap();
        let found = store.find(&victim.id()).unwrap().found().unwrap();
        assert_eq!(found.phone_public_key, victim.phone_public_key, "ids win");
        let found = store.find(&victim.id().to_uppercase()).unwrap().found().unwrap();
        assert_eq!(found.phone_public_key, victim.phone_public_key, "ids are case-blind");
        assert_eq!(
            store.forget(&victim.id()).unwrap().found().unwrap().phone_public_key,
            victim.phone_public_key
        );
        assert_eq!(store.load().unwrap().len(), 2, "only the victim was forgotten");
    }

    #[test]
    fn several_matches_are_ambiguous_not_a_silent_first_pick() {
        let dir = tempfile::tempdir().unwrap();
        let store = LinkStore::in_dir(dir.path());
        store.upsert(link(1, "Pixel")).unwrap();
        store.upsert(link(2, "pixel")).unwrap();
        store.upsert(link(3, "Pixel")).unwrap();
        let LinkLookup::Ambiguous(ids) = store.find("Pixel").unwrap() else {
            panic!("two links are named Pixel")
        };
        assert_eq!(ids.len(), 2);
        assert!(ids.iter().all(|i| i.len() == 16));
        // Exactly one link is named "pixel": the exact match is unique.
        assert_eq!(store.find("pixel").unwrap().found().unwrap().name, "pixel");
        assert!(matches!(store.find("PIXEL").unwrap(), LinkLookup::Ambiguous(v) if v.len() == 3));
        assert!(matches!(store.forget("Pixel").unwrap(), LinkLookup::Ambiguous(_)));
        assert_eq!(store.load().unwrap().len(), 3, "nothing forgotten on ambiguity");
        // A longer id prefix picks one.
        let full = link(3, "Pixel").full_id();
        assert_eq!(store.find(&full[..16]).unwrap().found().unwrap().id(), full[..8]);
    }

    #[test]
    fn names_are_escaped_and_capped_for_printing() {
        assert_eq!(display_name("Pixel 8"), "Pixel 8");
        assert_eq!(display_name("a\u{1b}[31mb\nc"), "a\\u{1b}[31mb\\nc");
        assert_eq!(display_name("evil\u{202e}txt"), "evil\\u{202e}txt");
        assert_eq!(display_name("back\\slash"), "back\\\\slash");
        let long = "x".repeat(1000);
        let shown = display_name(&long);
        assert_eq!(shown.chars().count(), MAX_NAME_SHOWN);
        assert!(shown.ends_with('…'));
        let escapes = "\u{7}".repeat(100);
        assert!(display_name(&escapes).chars().count() <= MAX_NAME_SHOWN);
        assert!(!display_name(&escapes).chars().any(|c| c.is_control()));
        let mut l = link(4, &long);
        assert_eq!(l.summary()["name"].as_str().unwrap().chars().count(), MAX_NAME_SHOWN);
        l.name = "ok".into();
        assert_eq!(l.summary()["name"], "ok");
    }

    #[test]
    fn summary_and_debug_never_show_the_secret() {
        let l = link(3, "Pixel");
        // secret-export: the test looks for the secret in outputs that must not contain it.
        let secret_hex = hex::encode(l.link_secret.expose());
        assert!(!l.summary().to_string().contains(&secret_hex));
        assert!(!format!("{l:?}").contains(&secret_hex));
    }

    #[test]
    fn corrupt_file_is_reported_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = LinkStore::in_dir(dir.path());
        std::fs::write(store.path(), b"{\"version\":1,\"links\":[{\"name\":3}]}").unwrap();
        let err = store.load().unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }));
        assert!(err.to_string().contains("links.json"), "{err}");
        assert!(store.upsert(link(1, "x")).is_err());
        assert_eq!(
            std::fs::read(store.path()).unwrap(),
            b"{\"version\":1,\"links\":[{\"name\":3}]}",
            "a corrupt file is never overwritten"
        );
    }
}
