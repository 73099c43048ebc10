//! `cablebridge links list|forget` through the real binary with hostile phone-chosen names: the
//! names are printed escaped and capped (JSON capped, JSON-escaped), a name can never shadow
//! another link's id, and a name several phones share is a usage error (exit 2), not a guess.
//! And CLI processes forgetting links while another process adds some lose nothing (the
//! store's update `flock`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cablebridge_protocol::hybrid::keys::LinkSecret;
use cablebridged::store::{LinkStore, StoredLink, MAX_NAME_SHOWN};
use rand::SeedableRng;
use std::path::Path;
use std::process::{Command, Output, Stdio};

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

fn links(state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cablebridge"))
        .arg("links")
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .output()
        .expect("spawn cablebridge")
}

#[test]
fn hostile_names_are_escaped_capped_and_never_shadow_an_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = LinkStore::in_dir(dir.path());
    let victim = link(1, "Pixel 8");
    // Linked earlier, named after the victim's id: must not be picked by that id.
    store.upsert(link(2, &victim.id())).unwrap();
    // Terminal escapes, a bidi override and a very long name.
    store.upsert(link(3, "\u{1b}]0;pwned\u{7}\u{1b}[2Jevil\u{202e}gnp.exe")).unwrap();
    store.upsert(link(4, &"A".repeat(5000))).unwrap();
    store.upsert(victim.clone()).unwrap();
    store.upsert(link(5, "twin")).unwrap();
    store.upsert(link(6, "twin")).unwrap();

    let out = links(dir.path(), &["list"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains('\u{1b}') && !text.contains('\u{7}') && !text.contains('\u{202e}'));
    assert!(text.contains("\\u{1b}]0;pwned\\u{7}"), "{text}");
    assert!(text.contains("\\u{202e}"), "{text}");
    assert!(text.lines().all(|l| l.chars().count() < MAX_NAME_SHOWN + 80), "{text}");
    assert!(text.contains(&format!("{}…", "A".repeat(MAX_NAME_SHOWN - 1))));

    let out = links(dir.path(), &["list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> =
        v["links"].as_array().unwrap().iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert!(names.iter().all(|n| n.chars().count() <= MAX_NAME_SHOWN), "{names:?}");
    assert!(
        names.contains(&"\u{1b}]0;pwned\u{7}\u{1b}[2Jevil\u{202e}gnp.exe"),
        "JSON keeps the text"
    );

    // The id wins over the look-alike name that was stored first.
    let out = links(dir.path(), &["forget", &victim.id(), "--json"]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["forgotten"]["name"], "Pixel 8");
    let left = store.load().unwrap();
    assert_eq!(left.len(), 5);
    assert!(left.iter().any(|l| l.name == victim.id()), "the look-alike is still there");

    // Two phones named "twin": a usage error naming ids to choose from; nothing is forgotten.
    let out = links(dir.path(), &["forget", "twin"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("several linked phones"), "{err}");
    assert_eq!(store.load().unwrap().len(), 5);
    // A hostile query is echoed escaped.
    let out = links(dir.path(), &["forget", "nobody\u{1b}[2J"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(!err.contains('\u{1b}') && err.contains("\\u{1b}[2J"), "{err}");
}

/// Several processes updating one link store at once: the daemon (here: this test process)
/// adding links while CLI processes (`cablebridge links forget`, same `--state-dir`) remove
/// others. Every update must survive; before the store took an `flock` for read-modify-write,
/// processes each wrote back the list they had read and some changes were silently lost.
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
