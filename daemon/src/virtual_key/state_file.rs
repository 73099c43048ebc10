//! The virtual key's persistent state on disk (`--state FILE`) and its initial PIN.
//!
//! The file holds [`PersistentState::export`] bytes (canonical CBOR with the master key and the
//! resident credentials' private keys), mode 0600, replaced atomically through
//! [`crate::store::atomic::write_atomic`] (temp + fsync + rename) after every command that changed the state and *before* the response leaves, so a
//! relying party never holds a credential the key could forget. A file that does not import is
//! reported with its path and never overwritten: it may be the only copy of someone's test
//! credentials.
//!
//! Not here: when to persist (the run loop compares states after each command).

use std::path::{Path, PathBuf};

use cablebridge_protocol::authenticator::{PersistentState, PinHash};
use cablebridge_protocol::secret::SecretBytes;
use rand_core::CryptoRngCore;
use sha2::{Digest, Sha256};

use super::error::VirtualKeyError;
use crate::store::atomic;

/// A PIN to set when the key's state has none (CTAP 2.1 §6.5.5.5 rules). Redacted, zeroized.
#[derive(Clone)]
pub struct InitialPin(SecretBytes);

impl InitialPin {
    /// Validates a PIN: 4..=63 bytes of UTF-8 with at least 4 code points.
    pub fn new(pin: &str) -> Result<Self, VirtualKeyError> {
        if pin.chars().count() < 4 {
            return Err(VirtualKeyError::BadPin("a PIN needs at least 4 characters"));
        }
        if pin.len() > 63 {
            return Err(VirtualKeyError::BadPin("a PIN is at most 63 bytes of UTF-8"));
        }
        Ok(InitialPin(SecretBytes::new(pin.as_bytes().to_vec())))
    }

    /// Length in code points (what minPINLength counts), when it fits the state's byte.
    fn code_points(&self) -> Option<u8> {
        let text = std::str::from_utf8(self.0.expose()).ok()?;
        u8::try_from(text.chars().count()).ok()
    }

    /// `LEFT(SHA-256(pin), 16)`, what the authenticator stores.
    fn hash(&self) -> PinHash {
        let digest = Sha256::digest(self.0.expose());
        let mut left = [0u8; 16];
        left.copy_from_slice(&digest[..16]);
        PinHash::new(left)
    }
}

impl std::fmt::Debug for InitialPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InitialPin(<redacted>)")
    }
}

/// Applies the initial PIN to a state that has none. Returns whether the state changed.
pub(crate) fn apply_initial_pin(state: &mut PersistentState, pin: Option<&InitialPin>) -> bool {
    match pin {
        Some(pin) if state.pin_hash.is_none() => {
            state.pin_hash = Some(pin.hash());
            state.settings.pin_code_points = pin.code_points();
            true
        }
        _ => false,
    }
}

/// Loads the state from `path`; a missing file gives a fresh state (`true`: not yet on disk).
pub(crate) async fn load(
    path: &Path,
    rng: &mut impl CryptoRngCore,
) -> Result<(PersistentState, bool), VirtualKeyError> {
    let target = path.to_owned();
    let read = tokio::task::spawn_blocking(move || atomic::read_optional(&target))
        .await
        .map_err(|e| VirtualKeyError::Task(e.to_string()))??;
    match read {
        Some(bytes) => {
            let bytes = SecretBytes::new(bytes);
            let state = PersistentState::import(bytes.expose()).map_err(|e| {
                VirtualKeyError::CorruptState { path: path.to_owned(), reason: e.to_string() }
            })?;
            Ok((state, false))
        }
        None => Ok((PersistentState::new(rng), true)),
    }
}

/// Writes `state` to `path` atomically with mode 0600, off the async runtime's threads.
pub(crate) async fn save(path: &Path, state: &PersistentState) -> Result<(), VirtualKeyError> {
    let bytes = state.export();
    let target: PathBuf = path.to_owned();
    tokio::task::spawn_blocking(move || {
        atomic::write_atomic(&target, bytes.expose(), atomic::SECRET_FILE_MODE)
    })
    .await
    .map_err(|e| VirtualKeyError::Task(e.to_string()))??;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn pin_rules_and_redaction() {
        assert!(InitialPin::new("123").is_err());
        assert!(InitialPin::new(&"x".repeat(64)).is_err());
        let pin = InitialPin::new("1234").unwrap();
        assert_eq!(format!("{pin:?}"), "InitialPin(<redacted>)");
        // CTAP 2.1 §6.5.5.5: LEFT(SHA-256("1234"), 16).
        let want = hex::decode("03ac674216f3e15c761ee1a5e255f067").unwrap();
        assert_eq!(pin.hash().expose().as_slice(), want.as_slice());
    }

    #[tokio::test]
    async fn save_then_load_round_trips_with_mode_0600_and_corrupt_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.cbor");
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let (mut state, fresh) = load(&path, &mut rng).await.unwrap();
        assert!(fresh);
        assert!(apply_initial_pin(&mut state, Some(&InitialPin::new("4321").unwrap())));
        assert!(!apply_initial_pin(&mut state, Some(&InitialPin::new("9999").unwrap())));
        save(&path, &state).await.unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (again, fresh) = load(&path, &mut rng).await.unwrap();
        assert!(!fresh);
        assert_eq!(again, state);
        std::fs::write(&path, b"garbage").unwrap();
        let err = load(&path, &mut rng).await.unwrap_err();
        assert!(matches!(err, VirtualKeyError::CorruptState { .. }), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"garbage");
    }
}
