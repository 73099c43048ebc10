//! Persistent authenticator state and the [`CredentialStore`] trait.
//!
//! The whole persistent state (master key, PIN hash and retries, global sign counter, resident
//! credentials) is one value, [`PersistentState`]. Every command that changes it builds the *next*
//! state as a copy and hands it to [`CredentialStore::commit`] in one call: a store either adopts
//! it whole or refuses it and keeps the old one, so a failed operation never leaves the store
//! half-written. A file-backed store (the daemon's) implements `commit` as write-temp + fsync +
//! rename of [`PersistentState::export`] bytes.
//!
//! Not volatile state: PIN tokens, key-agreement keys and enumeration cursors live in the
//! authenticator and vanish on power cycle.

use super::auth_config::Settings;
use super::error::StoreError;
use super::keys::{CredentialKey, MasterKey};
use crate::cbor::Value;
use crate::ctap2::extensions::CredProtect;
use crate::ctap2::User;
use crate::secret::SecretBytes;
use crate::secret_type;
use rand_core::CryptoRngCore;

secret_type!(
    /// `LEFT(SHA-256(PIN), 16)`, as CTAP2 §6.5.5 stores it.
    PinHash,
    16
);
secret_type!(
    /// hmac-secret `CredRandom` of one credential: `CredRandomWithUV ‖ CredRandomWithoutUV`
    /// (CTAP 2.1 §12.5), 32 bytes each.
    CredRandom,
    64
);
secret_type!(
    /// A credential's `largeBlobKey` (CTAP 2.1 §12.3).
    LargeBlobKey,
    32
);

impl CredRandom {
    /// The half used for an assertion with (`true`) or without user verification.
    pub fn for_uv(&self, uv: bool) -> [u8; 32] {
        let (with, without) = self.expose().split_at(32);
        let half = if uv { with } else { without };
        half.try_into().unwrap_or([0; 32])
    }
}

/// Per-credential extension state, persisted with a resident credential (CTAP 2.1 §12).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CredentialExtensions {
    /// hmac-secret secrets (made for every credential).
    pub cred_random: Option<CredRandom>,
    /// credProtect level.
    pub cred_protect: CredProtect,
    /// credBlob contents.
    pub cred_blob: Option<Vec<u8>>,
    /// largeBlobKey, when the credential was made with the largeBlobKey extension.
    pub large_blob_key: Option<LargeBlobKey>,
}

/// Initial (and maximum) PIN retries (CTAP 2.1 §6.5.2.2: 8).
pub const MAX_PIN_RETRIES: u8 = 8;
const EXPORT_VERSION: u64 = 1;
/// Export key of [`PersistentState::settings`] (well apart from the other members' keys).
const SETTINGS_KEY: i64 = 0x20;

/// A discoverable credential kept on the authenticator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResidentCredential {
    /// Credential ID (32 bytes, see `keys`).
    pub id: Vec<u8>,
    /// RP ID this credential is scoped to.
    pub rp_id: String,
    /// RP display name, if the RP sent one.
    pub rp_name: Option<String>,
    /// `user.id`.
    pub user_id: Vec<u8>,
    /// `user.name`.
    pub user_name: Option<String>,
    /// `user.displayName`.
    pub user_display_name: Option<String>,
    /// The private key.
    pub key: CredentialKey,
    /// Per-credential signature counter.
    pub sign_count: u32,
    /// hmac-secret, credProtect, credBlob and largeBlobKey state.
    pub extensions: CredentialExtensions,
}

/// Everything the authenticator must remember across power cycles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersistentState {
    /// Wraps non-resident credential keys.
    pub master_key: MasterKey,
    /// The PIN hash, if a PIN is set.
    pub pin_hash: Option<PinHash>,
    /// Remaining PIN attempts before the PIN is blocked.
    pub pin_retries: u8,
    /// Signature counter shared by all non-resident credentials.
    pub global_sign_count: u32,
    /// Resident credentials, oldest first.
    pub credentials: Vec<ResidentCredential>,
    /// authenticatorConfig / pcmr / bio enrollment settings (exported under key 0x20 when not
    /// default; absent = default, so older files import unchanged).
    pub settings: Settings,
    /// The serialized large-blob array (authenticatorLargeBlobs), trailer included.
    pub large_blob_array: Vec<u8>,
}

impl ResidentCredential {
    /// The user entity as getAssertion and credentialManagement return it.
    pub fn user(&self) -> User {
        User {
            id: self.user_id.clone(),
            name: self.user_name.clone(),
            display_name: self.user_display_name.clone(),
        }
    }
}

impl PersistentState {
    /// A factory-fresh state with a new master key.
    pub fn new(rng: &mut impl CryptoRngCore) -> Self {
        PersistentState {
            master_key: MasterKey::random(rng),
            pin_hash: None,
            pin_retries: MAX_PIN_RETRIES,
            global_sign_count: 0,
            credentials: Vec::new(),
            settings: Settings::default(),
            large_blob_array: crate::ctap2::extensions::large_blob::EMPTY_ARRAY.to_vec(),
        }
    }

    /// Serialises the state as canonical CBOR. The bytes contain the master key and private keys,
    /// hence [`SecretBytes`]: write them only to protected storage.
    pub fn export(&self) -> SecretBytes {
        let creds = self
            .credentials
            .iter()
            .map(|c| {
                let opt = |s: &Option<String>| s.as_ref().map_or(Value::Null, Value::text);
                let mut m = vec![
                    (1, Value::bytes(c.id.clone())),
                    (2, Value::text(c.rp_id.clone())),
                    (3, opt(&c.rp_name)),
                    (4, Value::bytes(c.user_id.clone())),
                    (5, opt(&c.user_name)),
                    (6, opt(&c.user_display_name)),
                    (7, Value::bytes(c.key.expose().to_vec())),
                    (8, Value::Unsigned(c.sign_count.into())),
                ];
                // Extension state (keys 9..12); absent in files from before extensions.
                let e = &c.extensions;
                if let Some(r) = &e.cred_random {
                    m.push((9, Value::bytes(r.expose().to_vec())));
                }
                m.push((10, Value::Unsigned(e.cred_protect.to_u64())));
                if let Some(b) = &e.cred_blob {
                    m.push((11, Value::bytes(b.clone())));
                }
                if let Some(k) = &e.large_blob_key {
                    m.push((12, Value::bytes(k.expose().to_vec())));
                }
                Value::int_map(m)
            })
            .collect();
        let mut v = Value::int_map([
            (1, Value::Unsigned(EXPORT_VERSION)),
            (2, Value::bytes(self.master_key.expose().to_vec())),
            (3, self.pin_hash.as_ref().map_or(Value::Null, |h| Value::bytes(h.expose().to_vec()))),
            (4, Value::Unsigned(self.pin_retries.into())),
            (5, Value::Unsigned(self.global_sign_count.into())),
            (6, Value::Array(creds)),
            (20, Value::bytes(self.large_blob_array.clone())),
        ]);
        if let (false, Value::Map(m)) = (self.settings.is_default(), &mut v) {
            m.push((Value::int(SETTINGS_KEY), self.settings.to_cbor()));
        }
        SecretBytes::new(v.to_vec())
    }

    /// Parses bytes written by [`PersistentState::export`].
    pub fn import(bytes: &[u8]) -> Result<Self, StoreError> {
        let v = Value::decode(bytes).map_err(|_| StoreError::Corrupt("not CBOR"))?;
        if v.get(1).and_then(Value::as_u64) != Some(EXPORT_VERSION) {
            return Err(StoreError::Corrupt("version"));
        }
        let master_key = v
            .get(2)
            .and_then(Value::as_bytes)
            .and_then(MasterKey::from_slice)
            .ok_or(StoreError::Corrupt("master key"))?;
        let pin_hash = match v.get(3) {
            Some(Value::Null) => None,
            Some(Value::Bytes(b)) => {
                Some(PinHash::from_slice(b).ok_or(StoreError::Corrupt("pin hash"))?)
            }
            _ => return Err(StoreError::Corrupt("pin hash")),
        };
        let pin_retries = v
            .get(4)
            .and_then(Value::as_u64)
            .and_then(|n| u8::try_from(n).ok())
            .filter(|n| *n <= MAX_PIN_RETRIES)
            .ok_or(StoreError::Corrupt("pin retries"))?;
        let global_sign_count = u32_field(&v, 5).ok_or(StoreError::Corrupt("sign count"))?;
        let items = v.get(6).and_then(Value::as_array).ok_or(StoreError::Corrupt("credentials"))?;
        let credentials = items.iter().map(credential_from).collect::<Result<Vec<_>, _>>()?;
        let settings = match v.get(SETTINGS_KEY) {
            None => Settings::default(),
            Some(s) => Settings::from_cbor(s).ok_or(StoreError::Corrupt("settings"))?,
        };
        let large_blob_array = match v.get(20) {
            None => crate::ctap2::extensions::large_blob::EMPTY_ARRAY.to_vec(),
            Some(b) => b.as_bytes().ok_or(StoreError::Corrupt("large blob array"))?.to_vec(),
        };
        Ok(PersistentState {
            master_key,
            pin_hash,
            pin_retries,
            global_sign_count,
            credentials,
            settings,
            large_blob_array,
        })
    }
}

fn u32_field(v: &Value, k: i64) -> Option<u32> {
    v.get(k).and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok())
}

fn credential_from(c: &Value) -> Result<ResidentCredential, StoreError> {
    let bad = StoreError::Corrupt("credential");
    let text = |k| match c.get(k) {
        Some(Value::Null) => Ok(None),
        Some(Value::Text(t)) => Ok(Some(t.clone())),
        _ => Err(StoreError::Corrupt("credential text field")),
    };
    let key = c
        .get(7)
        .and_then(Value::as_bytes)
        .and_then(CredentialKey::from_slice)
        .filter(|k| k.signing_key().is_some())
        .ok_or(StoreError::Corrupt("credential key"))?;
    Ok(ResidentCredential {
        id: c.get(1).and_then(Value::as_bytes).ok_or(bad.clone())?.to_vec(),
        rp_id: c.get(2).and_then(Value::as_text).ok_or(bad.clone())?.to_owned(),
        rp_name: text(3)?,
        user_id: c.get(4).and_then(Value::as_bytes).ok_or(bad.clone())?.to_vec(),
        user_name: text(5)?,
        user_display_name: text(6)?,
        key,
        sign_count: u32_field(c, 8).ok_or(bad)?,
        extensions: extensions_from(c)?,
    })
}

fn extensions_from(c: &Value) -> Result<CredentialExtensions, StoreError> {
    let bad = |what| StoreError::Corrupt(what);
    let cred_random = match c.get(9) {
        None => None,
        Some(v) => Some(
            v.as_bytes().and_then(CredRandom::from_slice).ok_or(bad("credential CredRandom"))?,
        ),
    };
    let cred_protect = match c.get(10) {
        None => CredProtect::default(),
        Some(v) => {
            v.as_u64().and_then(CredProtect::from_u64).ok_or(bad("credential credProtect"))?
        }
    };
    let cred_blob = match c.get(11) {
        None => None,
        Some(v) => Some(v.as_bytes().ok_or(bad("credential credBlob"))?.to_vec()),
    };
    let large_blob_key = match c.get(12) {
        None => None,
        Some(v) => Some(
            v.as_bytes()
                .and_then(LargeBlobKey::from_slice)
                .ok_or(bad("credential largeBlobKey"))?,
        ),
    };
    Ok(CredentialExtensions { cred_random, cred_protect, cred_blob, large_blob_key })
}

/// Where the persistent state lives. `commit` is all-or-nothing.
pub trait CredentialStore {
    /// The current state.
    fn state(&self) -> &PersistentState;
    /// Replaces the state with `next` atomically. On `Err` the previous state must remain current.
    fn commit(&mut self, next: PersistentState) -> Result<(), StoreError>;
}

/// An in-memory store (tests, the ephemeral virtual phone).
#[derive(Debug, Clone)]
pub struct MemoryStore {
    state: PersistentState,
}

impl MemoryStore {
    /// A store holding a factory-fresh state.
    pub fn new(rng: &mut impl CryptoRngCore) -> Self {
        Self { state: PersistentState::new(rng) }
    }
    /// A store holding `state` (e.g. from [`PersistentState::import`]).
    pub fn from_state(state: PersistentState) -> Self {
        Self { state }
    }
}

impl CredentialStore for MemoryStore {
    fn state(&self) -> &PersistentState {
        &self.state
    }
    fn commit(&mut self, next: PersistentState) -> Result<(), StoreError> {
        self.state = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn export_import_round_trip() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut s = PersistentState::new(&mut rng);
        s.pin_hash = Some(PinHash::new([9; 16]));
        s.pin_retries = 5;
        s.global_sign_count = 77;
        s.credentials.push(ResidentCredential {
            id: vec![2; 32],
            rp_id: "example.com".into(),
            rp_name: None,
            user_id: vec![1, 2, 3],
            user_name: Some("alice".into()),
            user_display_name: Some("Alice".into()),
            key: CredentialKey::generate(&mut rng),
            sign_count: 4,
            extensions: CredentialExtensions {
                cred_random: Some(CredRandom::random(&mut rng)),
                cred_protect: CredProtect::UvRequired,
                cred_blob: Some(vec![1, 2, 3]),
                large_blob_key: Some(LargeBlobKey::random(&mut rng)),
            },
        });
        s.large_blob_array = vec![0x80, 1, 2];
        let bytes = s.export();
        assert_eq!(PersistentState::import(bytes.expose()).unwrap(), s);
        assert!(PersistentState::import(&bytes.expose()[..10]).is_err());
        assert!(!format!("{s:?}").contains(&format!("{:?}", s.master_key.expose())));
    }
}
