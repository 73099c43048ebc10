//! State files a crash, a disk error or a hostile local user could leave corrupt: the virtual
//! key's credential store (protocol/src/authenticator/store.rs `PersistentState::import`, what
//! `cablebridge virtual-key --state` loads; a store that imports round-trips through export) and
//! the link store (daemon/src/store/links.rs, read from a real file as `links list` does, so
//! the whole load path runs).
#![no_main]

use cablebridge_protocol::authenticator::PersistentState;
use cablebridged::store::links::LinkStore;
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

fn state_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("cablebridge-fuzz-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    if which & 1 == 0 {
        if let Ok(state) = PersistentState::import(rest) {
            let exported = state.export();
            assert_eq!(PersistentState::import(exported.expose()).ok(), Some(state));
        }
    } else {
        let store = LinkStore::in_dir(state_dir());
        if std::fs::write(store.path(), rest).is_err() {
            return;
        }
        let _ = store.load();
    }
});
