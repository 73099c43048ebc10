//! `cablebridge links list|forget` through the real binary with hostile phone-chosen names: the
//! names are printed escaped and capped (JSON capped, JSON-escaped), a name can never shadow
//! another link's id, and a name several phones share is a usage error (exit 2), not a guess.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cablebridge_protocol::hybrid::keys::LinkSecret;
use cablebridged::store::{LinkStore, StoredLink, MAX_NAME_SHOWN};
use rand::SeedableRng;
use std::path::Path;
use std::process::{Command, Output};

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
