//! Several processes updating one link store at once: the daemon (here: this test process)
//! adding links while CLI processes (`cablebridge links forget`, same `--state-dir`) remove
//! others. Every update must survive; before the store took an `flock` for read-modify-write,
//! processes each wrote back the list they had read and some changes were silently lost.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cablebridge_protocol::hybrid::keys::LinkSecret;
use cablebridged::store::{LinkStore, StoredLink};
use rand::SeedableRng;
use std::process::{Command, Stdio};

fn link(seed: u64, name: &str) -> StoredLink {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    StoredLink {
        name: name.into(),
        phone_public_key: p256::SecretKey::random(&mut rng).public_key(),
        contact_id: vec![seed as u8; 16],
        link_id: [seed as u8; 8],
        link_secret: LinkSecret::random(&mut rng),
        tunnel_domain: 0,
        created: 1,
        updated: 1,
    }
}

#[test]
fn cli_forgets_and_in_process_upserts_at_once_lose_nothing() {
    const N: u64 = 24;
    let dir = tempfile::tempdir().unwrap();
    let store = LinkStore::in_dir(dir.path());
    let old: Vec<StoredLink> = (0..N).map(|i| link(100 + i, &format!("old-{i}"))).collect();
    for l in &old {
        store.upsert(l.clone()).unwrap();
    }
    // All forgets start together, racing each other and the upserts below.
    let forgets: Vec<_> = old
        .iter()
        .map(|l| {
            Command::new(env!("CARGO_BIN_EXE_cablebridge"))
                .args(["links", "forget", &l.id(), "--json", "--state-dir"])
                .arg(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let added: Vec<StoredLink> = (0..N).map(|i| link(200 + i, &format!("new-{i}"))).collect();
    for l in &added {
        store.upsert(l.clone()).unwrap();
    }
    for (child, l) in forgets.into_iter().zip(&old) {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "forget {}: {}{}",
            l.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let left: Vec<String> = store.load().unwrap().into_iter().map(|l| l.name).collect();
    let want: Vec<String> = added.iter().map(|l| l.name.clone()).collect();
    let mut sorted = left.clone();
    sorted.sort();
    let mut want_sorted = want;
    want_sorted.sort();
    assert_eq!(sorted, want_sorted, "every forget and every add must survive: {left:?}");
    // The lock file is private and holds nothing.
    let lock = dir.path().join(".links.json.lock");
    let meta = std::fs::metadata(&lock).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.len(), 0);
}
