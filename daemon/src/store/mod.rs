//! Persistent state on disk: the atomic-file helper every state file goes through, and the store of
//! linked phones.
//!
//! What it is: small files (a few KiB) written whole, crash-safely. What it is not: a database —
//! files are replaced whole, and read-modify-write updates take an `flock` ([`lock_for_update`])
//! so two processes sharing a state directory do not lose each other's changes.

pub mod atomic;
pub mod links;

pub use links::{
    default_state_dir, display_name, LinkLookup, LinkStore, StoredLink, MAX_NAME_SHOWN,
};

pub use atomic::{lock_for_update, read_optional, write_atomic, StoreError, UpdateLock};
