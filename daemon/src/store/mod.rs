//! Persistent state on disk: the atomic-file helper every state file goes through, and the store of
//! linked phones.
//!
//! What it is: small files (a few KiB) written whole, crash-safely. What it is not: a database —
//! there is no locking between concurrent writers beyond "last rename wins".

pub mod atomic;
pub mod links;

pub use links::{
    default_state_dir, display_name, LinkLookup, LinkStore, StoredLink, MAX_NAME_SHOWN,
};

pub use atomic::{read_optional, write_atomic, StoreError};
