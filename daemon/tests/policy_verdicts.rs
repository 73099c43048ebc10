//! Policy table tests from shared/notes/entra-and-field-facts.md: the fixture files under
//! `tests/fixtures/policy/` are Graph `fido2AuthenticationMethodConfiguration` exports (legacy and
//! passkey-profile shapes); each row is a ceremony's facts and the verdict Entra would give.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cablebridged::evidence::{Aaguid, AaguidTable, ChainStatus};
use cablebridged::policy::{
    evaluate, AttestationFacts, CeremonyFacts, CeremonyKind, CheckStatus, Fido2Policy, PolicyError,
    SelectedPolicy, SignatureStatus, AUTHENTICATOR_ANDROID, AUTHENTICATOR_IOS, DEFAULT_PROFILE_ID,
};
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/policy").join(name)
}

fn load(name: &str, profile: Option<&str>) -> SelectedPolicy {
    SelectedPolicy::load(&fixture(name), profile).unwrap()
}

const LAB_KEY: &str = "e0e1bb60-ee6d-4c0d-82a5-bf6653a6c08f";
const YUBIKEY: &str = "cb69481e-8ff7-4039-93ec-0a2729a154a8";
const ADMINS: &str = "a1c0ffee-0000-4000-8000-00000000beef";
const DEVICE_BOUND: &str = "Device-bound Authenticator and lab keys";

fn aaguid(s: &str) -> Aaguid {
    s.parse().unwrap()
}

fn packed(chain: ChainStatus) -> AttestationFacts {
    AttestationFacts { format: "packed".into(), signature: SignatureStatus::Verified, chain }
}

fn none_attestation() -> AttestationFacts {
    AttestationFacts {
        format: "none".into(),
        signature: SignatureStatus::Unsigned,
        chain: ChainStatus::NoCertificates,
    }
}

/// A registration over USB with a device-bound, attested key of model `a`.
fn reg(a: Aaguid) -> CeremonyFacts {
    CeremonyFacts {
        kind: CeremonyKind::Registration,
        cross_device: false,
        aaguid: Some(a),
        backup_eligible: false,
        backed_up: false,
        attestation: Some(packed(ChainStatus::NoRoots)),
    }
}

fn hybrid(mut f: CeremonyFacts) -> CeremonyFacts {
    f.cross_device = true;
    f
}

fn synced(mut f: CeremonyFacts) -> CeremonyFacts {
    f.backup_eligible = true;
    f.backed_up = true;
    f
}

fn with_attestation(mut f: CeremonyFacts, a: AttestationFacts) -> CeremonyFacts {
    f.attestation = Some(a);
    f
}

fn auth(a: Option<Aaguid>) -> CeremonyFacts {
    CeremonyFacts {
        kind: CeremonyKind::Authentication,
        cross_device: true,
        aaguid: a,
        backup_eligible: false,
        backed_up: false,
        attestation: None,
    }
}

/// (fixture, --profile, facts, accepted?, the rules that fail)
type Row = (&'static str, Option<&'static str>, CeremonyFacts, bool, &'static [&'static str]);

#[test]
fn verdict_table() {
    let rows: Vec<Row> = vec![
        // Key restrictions, allow list holding both Authenticator AAGUIDs (legacy model).
        ("legacy-allow-authenticator.json", None, hybrid(reg(AUTHENTICATOR_ANDROID)), true, &[]),
        ("legacy-allow-authenticator.json", None, hybrid(reg(AUTHENTICATOR_IOS)), true, &[]),
        (
            "legacy-allow-authenticator.json",
            None,
            reg(aaguid(YUBIKEY)),
            false,
            &["key_restrictions"],
        ),
        // All-zero AAGUID (phones over hybrid) is on no allow list.
        (
            "legacy-allow-authenticator.json",
            None,
            hybrid(reg(Aaguid::ZERO)),
            false,
            &["key_restrictions"],
        ),
        // Sign-in: the AAGUID from registration is checked too; without it the rule is skipped.
        (
            "legacy-allow-authenticator.json",
            None,
            auth(Some(aaguid(YUBIKEY))),
            false,
            &["key_restrictions"],
        ),
        ("legacy-allow-authenticator.json", None, auth(Some(AUTHENTICATOR_IOS)), true, &[]),
        ("legacy-allow-authenticator.json", None, auth(None), true, &[]),
        // Block list holding the Authenticator AAGUIDs.
        (
            "legacy-block-authenticator.json",
            None,
            hybrid(reg(AUTHENTICATOR_ANDROID)),
            false,
            &["key_restrictions"],
        ),
        (
            "legacy-block-authenticator.json",
            None,
            hybrid(reg(AUTHENTICATOR_IOS)),
            false,
            &["key_restrictions"],
        ),
        ("legacy-block-authenticator.json", None, reg(aaguid(YUBIKEY)), true, &[]),
        // Legacy model: synced passkeys are not admitted.
        (
            "legacy-block-authenticator.json",
            None,
            synced(reg(aaguid(YUBIKEY))),
            false,
            &["passkey_type"],
        ),
        // Attestation enforced (legacy isAttestationEnforced): none fails, packed verified passes.
        (
            "legacy-attestation-enforced.json",
            None,
            with_attestation(reg(aaguid(YUBIKEY)), none_attestation()),
            false,
            &["attestation"],
        ),
        (
            "legacy-attestation-enforced.json",
            None,
            with_attestation(
                reg(aaguid(YUBIKEY)),
                packed(ChainStatus::Verified { root: "CN=Root".into() }),
            ),
            true,
            &[],
        ),
        (
            "legacy-attestation-enforced.json",
            None,
            with_attestation(
                reg(aaguid(YUBIKEY)),
                packed(ChainStatus::NotVerified("other root".into())),
            ),
            false,
            &["attestation"],
        ),
        (
            "legacy-attestation-enforced.json",
            None,
            with_attestation(
                reg(aaguid(YUBIKEY)),
                AttestationFacts {
                    format: "packed".into(),
                    signature: SignatureStatus::SelfAttestation,
                    chain: ChainStatus::NoCertificates,
                },
            ),
            false,
            &["attestation"],
        ),
        (
            "legacy-attestation-enforced.json",
            None,
            with_attestation(
                reg(aaguid(YUBIKEY)),
                AttestationFacts {
                    format: "packed".into(),
                    signature: SignatureStatus::Invalid("ES256 signature mismatch".into()),
                    chain: ChainStatus::NoRoots,
                },
            ),
            false,
            &["attestation"],
        ),
        // No roots to check the chain: accepted with a warning.
        ("legacy-attestation-enforced.json", None, reg(aaguid(YUBIKEY)), true, &[]),
        // Attestation is registration-only: sign-in is not affected...
        (
            "legacy-attestation-enforced.json",
            None,
            CeremonyFacts { cross_device: false, ..auth(Some(aaguid(YUBIKEY))) },
            true,
            &[],
        ),
        // ...except Authenticator over hybrid, which does not work at all while it is enforced.
        (
            "legacy-attestation-enforced.json",
            None,
            auth(Some(AUTHENTICATOR_ANDROID)),
            false,
            &["authenticator_hybrid"],
        ),
        (
            "legacy-attestation-enforced.json",
            None,
            hybrid(with_attestation(reg(AUTHENTICATOR_IOS), none_attestation())),
            false,
            &["attestation", "authenticator_hybrid"],
        ),
        // Passkey profiles: the all_users default admits synced and device-bound, any AAGUID.
        (
            "profiles.json",
            None,
            synced(hybrid(with_attestation(reg(Aaguid::ZERO), none_attestation()))),
            true,
            &[],
        ),
        ("profiles.json", None, hybrid(reg(AUTHENTICATOR_ANDROID)), true, &[]),
        // Device-bound-only profile, selected by name: synced refused, listed AAGUIDs admitted.
        (
            "profiles.json",
            Some(DEVICE_BOUND),
            synced(hybrid(reg(aaguid(LAB_KEY)))),
            false,
            &["passkey_type"],
        ),
        ("profiles.json", Some(DEVICE_BOUND), hybrid(reg(aaguid(LAB_KEY))), true, &[]),
        ("profiles.json", Some(DEVICE_BOUND), reg(aaguid(YUBIKEY)), false, &["key_restrictions"]),
        (
            "profiles.json",
            Some(DEVICE_BOUND),
            synced(auth(Some(AUTHENTICATOR_IOS))),
            false,
            &["passkey_type"],
        ),
        // Attested profile, selected by id (case-insensitive).
        (
            "profiles.json",
            Some("A1C0FFEE-0000-4000-8000-00000000BEEF"),
            with_attestation(reg(aaguid(YUBIKEY)), none_attestation()),
            false,
            &["attestation"],
        ),
        (
            "profiles.json",
            Some(ADMINS),
            synced(with_attestation(reg(aaguid(YUBIKEY)), none_attestation())),
            false,
            &["attestation", "passkey_type"],
        ),
    ];
    let names = AaguidTable::built_in();
    for (i, (file, profile, facts, accepted, failing)) in rows.into_iter().enumerate() {
        let policy = load(file, profile);
        let verdict = evaluate(&policy, &facts, &names);
        let failed: Vec<&str> = verdict
            .checks
            .iter()
            .filter(|c| c.status == CheckStatus::Fail)
            .map(|c| c.rule)
            .collect();
        assert_eq!(verdict.accepted(), accepted, "row {i} ({file}): {verdict:#?}");
        assert_eq!(failed, failing, "row {i} ({file})");
        let json = verdict.to_json();
        assert_eq!(json["verdict"], if accepted { "accept" } else { "reject" }, "row {i}");
        assert_eq!(json["profile"]["id"], policy.profile.id.as_str());
        assert!(!json["reasons"].as_array().unwrap().is_empty(), "row {i}: reasons");
    }
}

#[test]
fn reasons_name_the_authenticator_and_the_rule() {
    let policy = load("legacy-block-authenticator.json", None);
    let v = evaluate(&policy, &hybrid(reg(AUTHENTICATOR_ANDROID)), &AaguidTable::built_in());
    let reasons = v.reasons();
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(reasons[0].contains("Microsoft Authenticator (Android)"), "{reasons:?}");
    assert!(reasons[0].contains("block list"), "{reasons:?}");

    let policy = load("legacy-attestation-enforced.json", None);
    let v = evaluate(&policy, &reg(aaguid(YUBIKEY)), &AaguidTable::built_in());
    let att = v.checks.iter().find(|c| c.rule == "attestation").unwrap();
    assert_eq!(att.status, CheckStatus::Warn);
    assert!(att.detail.contains("--mds"), "{}", att.detail);
    let ss = v.checks.iter().find(|c| c.rule == "self_service").unwrap();
    assert_eq!(ss.status, CheckStatus::Warn, "self-service off is reported");

    let v = evaluate(&policy, &auth(None), &AaguidTable::built_in());
    let kr = v.checks.iter().find(|c| c.rule == "key_restrictions").unwrap();
    assert_eq!(kr.status, CheckStatus::Pass, "not enforced in this file");
    let policy = load("legacy-allow-authenticator.json", None);
    let v = evaluate(&policy, &auth(None), &AaguidTable::built_in());
    let kr = v.checks.iter().find(|c| c.rule == "key_restrictions").unwrap();
    assert_eq!(kr.status, CheckStatus::Skip);
    assert!(kr.detail.contains("--credential-aaguid"));
}

#[test]
fn profile_selection() {
    // Default: the one profile all_users allows (legacy: the implicit one).
    assert_eq!(load("profiles.json", None).profile.id, DEFAULT_PROFILE_ID);
    assert_eq!(load("legacy-allow-authenticator.json", None).profile.id, "legacy");
    assert_eq!(load("profiles.json", Some(DEVICE_BOUND)).profile.name, DEVICE_BOUND);
    // Unknown → an error listing every profile.
    let e = SelectedPolicy::load(&fixture("profiles.json"), Some("nope")).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, PolicyError::UnknownProfile { .. }));
    for id in [DEFAULT_PROFILE_ID, ADMINS, "7d2b4e10-5c3a-4f8e-9b61-2a0c9e4d7f35"] {
        assert!(text.contains(id), "{text}");
    }
    // all_users allows two → ambiguous, both listed; an explicit choice resolves it.
    let e = SelectedPolicy::load(&fixture("profiles-ambiguous.json"), None).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, PolicyError::AmbiguousProfile { .. }), "{e:?}");
    assert!(text.contains("Synced only") && text.contains("Default passkey profile"), "{text}");
    assert!(text.contains("--profile"), "{text}");
    let p = load("profiles-ambiguous.json", Some("Synced only"));
    assert!(p.profile.passkey_types.synced && !p.profile.passkey_types.device_bound);
}

#[test]
fn legacy_and_profile_models() {
    let legacy = Fido2Policy::load(&fixture("legacy-attestation-enforced.json")).unwrap();
    assert!(!legacy.uses_profiles);
    assert!(!legacy.self_service_registration);
    assert_eq!(legacy.profiles.len(), 1);
    assert!(legacy.profiles[0].passkey_types.device_bound);
    assert!(!legacy.profiles[0].passkey_types.synced);
    let profiles = Fido2Policy::load(&fixture("profiles.json")).unwrap();
    assert!(profiles.uses_profiles);
    assert_eq!(profiles.profiles.len(), 3);
    // The deprecated top-level fields are ignored once profiles exist.
    assert_eq!(profiles.default_profile.as_deref(), Some(DEFAULT_PROFILE_ID));
    assert_eq!(profiles.include_targets[1].allowed_profiles.len(), 2);
}

#[test]
fn malformed_files_name_the_path_and_the_location() {
    let path = fixture("malformed-aaguid.json");
    let e = Fido2Policy::load(&path).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("malformed-aaguid.json"), "{text}");
    assert!(text.contains("/passkeyProfiles/0/keyRestrictions/aaGuids/1"), "{text}");
    assert!(text.contains("not-a-guid"), "{text}");
    assert!(!e.is_environment());

    let e = Fido2Policy::load(&fixture("malformed-syntax.json")).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("malformed-syntax.json") && text.contains("line 1 column"), "{text}");

    let missing = fixture("does-not-exist.json");
    let e = Fido2Policy::load(&missing).unwrap_err();
    assert!(e.to_string().contains("does-not-exist.json"));
    assert!(!e.is_environment(), "a missing file is the caller's input");

    for (doc, location) in [
        (r#"[]"#, "at /:"),
        (r#"{"isAttestationEnforced": "yes"}"#, "/isAttestationEnforced"),
        (r#"{"passkeyProfiles": [{"id": "x", "name": "n"}]}"#, "/passkeyProfiles/0/passkeyTypes"),
        (r#"{"passkeyProfiles": []}"#, "/passkeyProfiles"),
        (
            r#"{"includeTargets": [{"id": "all_users", "allowedPasskeyProfiles": ["gone"]}],
                "passkeyProfiles": [{"id": "x", "passkeyTypes": "synced"}]}"#,
            "/includeTargets/0/allowedPasskeyProfiles/0",
        ),
        (r#"{"keyRestrictions": {"aaGuids": "de1e552d"}}"#, "/keyRestrictions/aaGuids"),
    ] {
        let e =
            Fido2Policy::parse(doc.as_bytes(), std::path::Path::new("inline.json")).unwrap_err();
        let text = e.to_string();
        assert!(text.contains(location) && text.contains("inline.json"), "{doc}: {text}");
    }
    // Unknown fields and future enum values are not errors.
    let p = Fido2Policy::parse(
        br#"{"novel": 1, "passkeyProfiles": [{"id": "x", "passkeyTypes": "deviceBound,unknownFutureValue",
            "attestationEnforcement": "unknownFutureValue", "keyRestrictions": null}]}"#,
        std::path::Path::new("inline.json"),
    )
    .unwrap()
    .select(None)
    .unwrap();
    let v = evaluate(&p, &reg(aaguid(YUBIKEY)), &AaguidTable::built_in());
    assert!(v.accepted());
    let att = v.checks.iter().find(|c| c.rule == "attestation").unwrap();
    assert_eq!(att.status, CheckStatus::Skip);
}
