//! Runs the real `cablebridge` binary against the repository's hybrid vectors and checks output,
//! JSON fields and exit codes.

// Test helpers outside `#[test]` fns: failures should be loud.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use std::process::{Command, Output};

fn vectors() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../protocol/tests/vectors/hybrid.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("vector file")).expect("JSON")
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cablebridge")).args(args).output().expect("spawn cablebridge")
}

/// Runs with `--json`, checks the exit code, and parses stdout.
fn run_json(args: &[&str], code: i32) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = run(&all);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(code), "{args:?}: stdout {stdout} stderr {:?}", out.stderr);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {stdout}"))
}

fn stderr_of(args: &[&str], code: i32) -> String {
    let out = run(args);
    assert_eq!(out.status.code(), Some(code), "{args:?}");
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn decodes_chrome_and_safari_urls() {
    let v = vectors();
    for c in v["upstream"]["qr_urls"].as_array().unwrap() {
        let url = c["url"].as_str().unwrap();
        let cbor = hex::decode(c["cbor"].as_str().unwrap()).unwrap();
        let j = run_json(&["qr", "decode", url], 0);
        // Key 0 and key 1 sit at fixed offsets of the canonical map: a6 00 58 21 <33> 01 50 <16>.
        assert_eq!(j["public_key"], hex::encode(&cbor[4..37]));
        assert_eq!(j["secret"], hex::encode(&cbor[39..55]));
        assert_eq!(j["known_domains"], 2);
        assert_eq!(j["hint"], "mc");
        assert!(j["timestamp"].as_u64().unwrap() > 1_600_000_000);
        assert!(j["linking"].is_boolean());
        assert!(j.get("unknown_keys").is_none());
    }
    // Human mode names the fields too.
    let out = run(&["qr", "decode", v["upstream"]["qr_urls"][0]["url"].as_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("public_key") && text.contains("871bcec9c1227f91ccb86c9ffacd9eac"));
}

#[test]
fn advert_decrypt_with_qr_or_secret() {
    let v = vectors();
    let a = &v["upstream"]["adverts"][0];
    let secret = a["qr_secret"].as_str().unwrap();
    let advert = a["advert"].as_str().unwrap();
    let j = run_json(&["advert", "decrypt", "--secret", secret, advert, "--show-secrets"], 0);
    assert_eq!(j["eid_plaintext"], a["eid_plaintext"]);
    assert_eq!(j["nonce"], a["nonce"]);
    assert_eq!(j["routing_id"].as_str().unwrap().to_lowercase(), a["routing_id"]);
    assert_eq!(j["domain_id"], a["domain_id"]);
    assert_eq!(j["tunnel_host"], "cable.ua5v.com");
    assert_eq!(j["connect_url"], a["connect_url"]);
    assert_eq!(j["psk"], a["psk"]);

    // Without --show-secrets there is no PSK.
    let j = run_json(&["advert", "decrypt", "--secret", secret, advert], 0);
    assert!(j.get("psk").is_none());

    // --qr path: the transcript's URL and advert.
    let t = &v["transcripts"]["qr"];
    let args = [
        "advert",
        "decrypt",
        "--qr",
        t["qr_url"].as_str().unwrap(),
        t["advert_service_data"].as_str().unwrap(),
        "--show-secrets",
    ];
    let j = run_json(&args, 0);
    assert_eq!(j["tunnel_id"], t["tunnel_id"]);
    assert_eq!(j["routing_id"], t["routing_id"]);
    assert_eq!(j["connect_url"], t["connect_url"]);
    assert_eq!(j["psk"], t["psk"]);
}

#[test]
fn foreign_advert_exits_1() {
    let v = vectors();
    let t = &v["transcripts"]["qr"];
    // The upstream advert was sealed under a different QR secret.
    let foreign = v["upstream"]["adverts"][0]["advert"].as_str().unwrap();
    let err = stderr_of(&["advert", "decrypt", "--qr", t["qr_url"].as_str().unwrap(), foreign], 1);
    assert_eq!(err.trim(), "cablebridge: advert not from this QR session");
    let j = run_json(&["advert", "decrypt", "--qr", t["qr_url"].as_str().unwrap(), foreign], 1);
    assert_eq!(j["stage"], "advert");
}

#[test]
fn bad_input_exits_2_with_one_line() {
    let err = stderr_of(&["qr", "decode", "FIDO:/1234"], 2);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("final group of 4 digits"), "{err}");
    let err = stderr_of(&["qr", "decode", "FIDO:/12a"], 2);
    assert!(err.contains("non-digit"), "{err}");
    let err = stderr_of(&["qr", "decode", "https://example.com"], 2);
    assert!(err.contains("FIDO:/"), "{err}");
    // Digits that decode but are not a QR map.
    let err = stderr_of(&["qr", "decode", "FIDO:/000"], 2);
    assert_eq!(err.lines().count(), 1, "{err}");
    // Clap usage errors are exit 2 too.
    stderr_of(&["advert", "decrypt", "00"], 2);
    stderr_of(&["no-such-command"], 2);
    let err = stderr_of(&["advert", "decrypt", "--secret", "0011", &"00".repeat(20)], 2);
    assert!(err.contains("16 bytes"), "{err}");
}

#[test]
fn tunnel_domain_ids() {
    let j = run_json(&["tunnel-domain", "266"], 0);
    assert_eq!(j["host"], "cable.wufkweyy3uaxb.com");
    assert_eq!(j["kind"], "hashed");
    assert_eq!(run_json(&["tunnel-domain", "0"], 0)["host"], "cable.ua5v.com");
    let err = stderr_of(&["tunnel-domain", "2"], 2);
    assert!(err.contains("reserved"), "{err}");
    stderr_of(&["tunnel-domain", "65536"], 2);
}

#[test]
fn qr_new_round_trips_and_writes_png_and_svg() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let png = dir.join(format!("cli-qr-{}.png", std::process::id()));
    let svg = dir.join(format!("cli-qr-{}.svg", std::process::id()));
    let args = [
        "qr",
        "new",
        "--hint",
        "mc",
        "--png",
        png.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
    ];
    let made = run_json(&args, 0);
    assert!(made.get("secret").is_none(), "secret must not be shown by default");
    let url = made["url"].as_str().unwrap();
    assert!(url.starts_with("FIDO:/"));
    let decoded = run_json(&["qr", "decode", url], 0);
    for k in ["public_key", "known_domains", "timestamp", "linking", "hint", "tunnel_id"] {
        assert_eq!(decoded[k], made[k], "{k}");
    }
    assert_eq!(decoded["hint"], "mc");
    assert_eq!(decoded["linking"], false);
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
    let _ = std::fs::remove_file(png);
    let _ = std::fs::remove_file(svg);

    // With --show-secrets the secret appears, and human mode draws the code with half blocks.
    let j = run_json(&["qr", "new", "--show-secrets"], 0);
    assert_eq!(j["secret"].as_str().unwrap().len(), 32);
    let out = run(&["qr", "new"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains('▀') || text.contains('▄'));
    assert!(text.contains("FIDO:/"));
}

#[test]
fn unwritable_png_is_an_environment_error() {
    let err = stderr_of(&["qr", "new", "--png", "/nonexistent-dir/x.png"], 3);
    assert!(err.contains("cannot write"), "{err}");
}

#[test]
fn help_documents_exit_codes() {
    let out = run(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("Exit codes:") && text.contains("3  environment"));
}

#[test]
fn unknown_keys_are_listed_in_diagnostic_notation() {
    use cablebridge_protocol::cbor::Value as Cbor;
    let v = vectors();
    let base = hex::decode(v["transcripts"]["qr"]["qr_cbor"].as_str().unwrap()).unwrap();
    let Cbor::Map(mut entries) = Cbor::decode(&base).unwrap() else { panic!("not a map") };
    entries.push((Cbor::int(65535), Cbor::text("grease")));
    entries.push((Cbor::int(6), Cbor::Array(vec![Cbor::int(0)])));
    let cbor = Cbor::Map(entries).to_vec();
    let url = format!("FIDO:/{}", cablebridge_protocol::hybrid::digits::encode(&cbor));
    let j = run_json(&["qr", "decode", &url], 0);
    let unknown: Vec<&str> =
        j["unknown_keys"].as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect();
    assert_eq!(unknown, ["6: [0]", "65535: \"grease\""]);
}
