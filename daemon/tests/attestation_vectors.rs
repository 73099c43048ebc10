//! Published attestation objects of every WebAuthn format (daemon/tests/fixtures/attestation,
//! each naming its source) through `evidence::attestation::verify`, and the negative cases:
//! a tampered signature, a wrong clientDataHash and a swapped credential key each fail with the
//! named check.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cablebridge_protocol::cbor::Value;
use cablebridge_protocol::ctap2::{AttestationObject, AuthenticatorData, CoseKey};
use cablebridged::ceremony::from_b64url;
use cablebridged::evidence::attestation::{verify, AttestationReport, AttestationType, Check};
use cablebridged::evidence::ChainStatus;
use sha2::{Digest, Sha256};

struct Fixture {
    name: String,
    format: String,
    object: Vec<u8>,
    client_data_hash: [u8; 32],
}

fn dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/attestation")
}

fn load(name: &str) -> Fixture {
    let path = dir().join(format!("{name}.json"));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let source = json["source"].as_str().unwrap_or_default();
    assert!(!source.is_empty(), "{name}: every fixture names its source");
    let cdj = from_b64url(json["client_data_json"].as_str().unwrap()).unwrap();
    let hash: [u8; 32] = Sha256::digest(&cdj).into();
    assert_eq!(json["client_data_hash"].as_str().unwrap(), hex::encode(hash), "{name}");
    Fixture {
        name: name.to_owned(),
        format: json["format"].as_str().unwrap().to_owned(),
        object: from_b64url(json["attestation_object"].as_str().unwrap()).unwrap(),
        client_data_hash: hash,
    }
}

fn all() -> Vec<Fixture> {
    let mut names: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|n| n.strip_suffix(".json").map(str::to_owned))
        .collect();
    names.sort();
    names.iter().map(|n| load(n)).collect()
}

fn report(f: &Fixture) -> AttestationReport {
    verify(&f.object, &f.client_data_hash).unwrap()
}

fn failed_check(r: &AttestationReport) -> Check {
    match &r.outcome {
        Err(e) => e.check,
        Ok(v) => panic!("{} verified ({v:?}) but should not", r.format),
    }
}

#[test]
fn every_published_vector_verifies() {
    let fixtures = all();
    let formats: std::collections::BTreeSet<_> =
        fixtures.iter().map(|f| f.format.clone()).collect();
    for want in ["none", "packed", "fido-u2f", "tpm", "android-key", "apple", "android-safetynet"] {
        assert!(formats.contains(want), "a fixture for {want}");
    }
    for f in &fixtures {
        let r = report(f);
        assert_eq!(r.format.as_str(), f.format, "{}", f.name);
        let verified = r.outcome.as_ref().unwrap_or_else(|e| panic!("{}: {e}", f.name));
        let expected = match f.format.as_str() {
            "none" => AttestationType::None,
            "packed" if f.name.contains("self") => AttestationType::SelfAttestation,
            "tpm" => AttestationType::AttCa,
            "apple" => AttestationType::AnonCa,
            _ => AttestationType::Basic,
        };
        assert_eq!(verified.kind, expected, "{}", f.name);
        // Formats with certificates report the chain, fingerprints included.
        let with_chain =
            !matches!(verified.kind, AttestationType::None | AttestationType::SelfAttestation);
        assert_eq!(!r.chain.is_empty(), with_chain, "{}", f.name);
        for c in &r.chain {
            assert_eq!(c.sha256.len(), 64, "{}", f.name);
            assert!(!c.issuer.is_empty(), "{}", f.name);
        }
        let json = r.to_json();
        assert_eq!(json["verified"], true, "{}: {json}", f.name);
        assert_eq!(json["format"], f.format.as_str());
        assert!(json["backup_eligible"].is_boolean() && json["passkey_type"].is_string());
    }
}

#[test]
fn facts_name_what_each_format_says() {
    let tpm = report(&load("tpm-rsa-surface-pro-4"));
    assert_eq!(tpm.facts["tpm"]["manufacturer"], "id:494E5443", "{:?}", tpm.facts); // INTC
    assert_eq!(tpm.to_json()["alg"], "RS1");
    let sn = report(&load("android-safetynet-gms"));
    assert_eq!(sn.facts["safetynet"]["cts_profile_match"], true);
    assert!(sn.facts["safetynet"]["timestamp_ms"].is_u64(), "{:?}", sn.facts);
    assert!(sn.chain[0].subject.contains("attest.android.com"), "{:?}", sn.chain);
    let ak = report(&load("android-key-hardware-authority"));
    assert!(ak.facts["android_key"]["attestation_security_level"].is_string());
    let apple = report(&load("apple-passkey"));
    assert!(apple.chain[1].subject.contains("Apple WebAuthn CA 1"), "{:?}", apple.chain);
    // Synced vs device-bound from the flags: the YubiKey is device-bound.
    let yk = report(&load("packed-x5c-yubikey5"));
    assert!(!yk.backup_eligible && !yk.backup_state);
    assert_eq!(yk.to_json()["passkey_type"], "device_bound");
}

/// The attestation object with `attStmt[key]` replaced.
fn with_stmt(object: &[u8], key: &str, value: Value) -> Vec<u8> {
    let mut o = AttestationObject::from_bytes(object).unwrap();
    let Value::Map(entries) = &mut o.att_stmt else { panic!() };
    for (k, v) in entries.iter_mut() {
        if k.as_text() == Some(key) {
            *v = value.clone();
        }
    }
    o.to_bytes()
}

fn flip_last(b: &[u8]) -> Vec<u8> {
    let mut b = b.to_vec();
    let last = b.len() - 1;
    b[last] ^= 0x01;
    b
}

#[test]
fn a_tampered_signature_fails_the_signature_check() {
    for name in [
        "packed-x5c-yubikey5",
        "packed-self-fido2-lib",
        "fido-u2f-yubikey-firefox",
        "tpm-rsa-dell-xps-13",
        "tpm-ecc-pubarea",
        "android-key-hardware-authority",
    ] {
        let f = load(name);
        let o = AttestationObject::from_bytes(&f.object).unwrap();
        let sig = o.att_stmt.get_text("sig").unwrap().as_bytes().unwrap();
        let tampered = with_stmt(&f.object, "sig", Value::bytes(flip_last(sig)));
        let r = verify(&tampered, &f.client_data_hash).unwrap();
        assert_eq!(failed_check(&r), Check::Signature, "{name}: {:?}", r.outcome);
        let e = r.outcome.unwrap_err().to_string();
        assert!(e.starts_with(&format!("{} attestation: sig:", f.format)), "{e}");
    }
    // SafetyNet: the JWS signature.
    let f = load("android-safetynet-gms");
    let o = AttestationObject::from_bytes(&f.object).unwrap();
    let jws = o.att_stmt.get_text("response").unwrap().as_bytes().unwrap().to_vec();
    let text = String::from_utf8(jws).unwrap();
    let (head, sig) = text.rsplit_once('.').unwrap();
    let first = if sig.starts_with('A') { 'B' } else { 'A' };
    let tampered_sig = format!("{first}{}", &sig[1..]);
    let tampered = with_stmt(
        &f.object,
        "response",
        Value::bytes(format!("{head}.{tampered_sig}").into_bytes()),
    );
    assert_eq!(failed_check(&verify(&tampered, &f.client_data_hash).unwrap()), Check::Jws);
}

#[test]
fn a_wrong_client_data_hash_fails_the_named_check() {
    let cases = [
        ("packed-x5c-yubikey5", Check::Signature),
        ("packed-self-fido2-lib", Check::Signature),
        ("fido-u2f-fido-conformance", Check::Signature),
        ("tpm-rsa-lenovo-carbon-x1", Check::ExtraData),
        ("android-key-root-5", Check::Signature),
        ("apple-passkey", Check::Nonce),
        ("android-safetynet-gms", Check::Nonce),
    ];
    for (name, check) in cases {
        let f = load(name);
        let mut wrong = f.client_data_hash;
        wrong[0] ^= 0x80;
        let r = verify(&f.object, &wrong).unwrap();
        assert_eq!(failed_check(&r), check, "{name}: {:?}", r.outcome);
    }
}

/// The attestation object with the credential key in authData replaced by an unrelated P-256
/// key (everything else, signatures included, unchanged).
fn with_other_key(object: &[u8]) -> Vec<u8> {
    let mut o = AttestationObject::from_bytes(object).unwrap();
    let mut ad = AuthenticatorData::parse(&o.auth_data).unwrap();
    let other = p256::SecretKey::from_slice(&[0x11; 32]).unwrap().public_key();
    ad.attested_credential.as_mut().unwrap().public_key = CoseKey::es256(other);
    o.auth_data = ad.to_bytes().unwrap();
    o.to_bytes()
}

#[test]
fn a_mismatched_credential_key_fails_the_key_check() {
    for name in [
        "tpm-rsa-surface-pro-4",
        "tpm-ecc-pubarea",
        "android-key-hardware-authority",
        "apple-passkey",
    ] {
        let f = load(name);
        let r = verify(&with_other_key(&f.object), &f.client_data_hash).unwrap();
        assert_eq!(failed_check(&r), Check::CredentialKey, "{name}: {:?}", r.outcome);
        assert!(r.outcome.unwrap_err().to_string().contains("credentialPublicKey"));
    }
    // Self attestation: the swapped key no longer verifies its own signature.
    let f = load("packed-self-fido2-lib");
    let r = verify(&with_other_key(&f.object), &f.client_data_hash).unwrap();
    assert_eq!(failed_check(&r), Check::Signature);
}

#[test]
fn tpm_structure_checks_are_named() {
    let f = load("tpm-rsa-surface-pro-4");
    let o = AttestationObject::from_bytes(&f.object).unwrap();
    let cert_info = o.att_stmt.get_text("certInfo").unwrap().as_bytes().unwrap().to_vec();
    let mut bad_magic = cert_info.clone();
    bad_magic[0] ^= 0xff;
    let r = verify(&with_stmt(&f.object, "certInfo", Value::bytes(bad_magic)), &f.client_data_hash);
    assert_eq!(failed_check(&r.unwrap()), Check::CertInfoMagic);
    let mut bad_type = cert_info.clone();
    bad_type[5] ^= 0x01;
    let r = verify(&with_stmt(&f.object, "certInfo", Value::bytes(bad_type)), &f.client_data_hash);
    assert_eq!(failed_check(&r.unwrap()), Check::CertInfoType);
    let r = verify(&with_stmt(&f.object, "ver", Value::text("1.2")), &f.client_data_hash);
    assert_eq!(failed_check(&r.unwrap()), Check::TpmVersion);
    let r = verify(&with_stmt(&f.object, "pubArea", Value::bytes(vec![0, 1])), &f.client_data_hash);
    assert_eq!(failed_check(&r.unwrap()), Check::PubArea);
    // Truncated input anywhere is an error, never a panic.
    for cut in [0, 10, 100, f.object.len() / 2, f.object.len() - 1] {
        let _ = verify(&f.object[..cut], &f.client_data_hash);
    }
}

#[test]
fn chains_are_checked_against_metadata_roots() {
    // The TPM vendor's intermediate as the "root" a blob would list: RSA PKCS#1 chain signatures.
    let f = load("tpm-rsa-dell-xps-13");
    let r = report(&f);
    assert_eq!(r.x5c.len(), 2);
    let root = r.x5c[1].clone();
    let trusted = r.clone().with_roots(&[root]);
    assert!(matches!(trusted.trust, ChainStatus::Verified { .. }), "{:?}", trusted.trust);
    assert_eq!(trusted.to_json()["trust"]["status"], "verified");
    // Some other root: not verified, and no roots: no_roots.
    let other = load("tpm-rsa-surface-pro-4");
    let wrong_root = report(&other).x5c[1].clone();
    assert!(matches!(r.clone().with_roots(&[wrong_root]).trust, ChainStatus::NotVerified(_)));
    assert_eq!(r.clone().with_roots(&[]).trust, ChainStatus::NoRoots);
    // Self attestation has no chain to check.
    let s = report(&load("packed-self-fido2-lib")).with_roots(&[vec![1, 2, 3]]);
    assert_eq!(s.trust, ChainStatus::NoCertificates);
}

#[test]
fn any_change_to_the_signed_authenticator_data_is_caught() {
    for f in all().iter().filter(|f| f.format != "none") {
        let o = AttestationObject::from_bytes(&f.object).unwrap();
        // rpIdHash, flags and signCount: covered by every format's signature or nonce, except
        // that fido-u2f signs only the rpIdHash of them (the U2F registration message).
        let covered: &[usize] =
            if f.format == "fido-u2f" { &[0, 13, 31] } else { &[0, 13, 31, 32, 33, 36] };
        for &at in covered {
            let mut changed = o.clone();
            changed.auth_data[at] ^= 0x01;
            let r = verify(&changed.to_bytes(), &f.client_data_hash).unwrap();
            assert!(r.outcome.is_err(), "{} byte {at} changed but still verified", f.name);
        }
        // Arbitrary single-byte corruption of the whole object never panics.
        for at in (0..f.object.len()).step_by(f.object.len() / 97 + 1) {
            let mut bytes = f.object.clone();
            bytes[at] ^= 0x5a;
            let _ = verify(&bytes, &f.client_data_hash);
        }
    }
}
