//! `policy.*` (with `--policy FILE`): settings of the tenant's Entra ID Passkey (FIDO2) policy that
//! stop cross-device passkeys, judged on the profile [`crate::policy`] selects. The facts behind
//! each rule are in ../shared/notes/entra-and-field-facts.md:
//! * `policy.state` — the method disabled for the tenant.
//! * `policy.self_service` — `isSelfServiceRegistrationAllowed` false: users cannot register.
//! * `policy.aaguids` — an enforced allow list without the two Microsoft Authenticator AAGUIDs, or
//!   a block list holding them.
//! * `policy.attestation` — attestation enforced: cross-device registration with Authenticator
//!   fails, and the legacy WebAuthn wizard leaves a passkey on the phone that Entra refused.
//! * `policy.passkey_types` — synced (or device-bound) passkeys excluded.
//! * `policy.registered` (with `--registered FILE`) — registered keys whose AAGUID the profile no
//!   longer admits: they stop signing in.

use super::Check;
use crate::evidence::{Aaguid, AaguidTable};
use crate::policy::{
    AttestationEnforcement, EnforcementType, KeyRestrictions, SelectedPolicy,
    AUTHENTICATOR_ANDROID, AUTHENTICATOR_IOS,
};
use std::path::Path;

const AUTHENTICATOR: [(Aaguid, &str); 2] =
    [(AUTHENTICATOR_ANDROID, "Android"), (AUTHENTICATOR_IOS, "iOS")];

/// Where the admin changes it.
const PORTAL: &str = "Entra admin center → Protection → Authentication methods → Passkey (FIDO2)";

fn admits(kr: &KeyRestrictions, a: &Aaguid) -> bool {
    if !kr.is_enforced {
        return true;
    }
    match kr.enforcement_type {
        EnforcementType::Allow => kr.aaguids.contains(a),
        EnforcementType::Block => !kr.aaguids.contains(a),
        EnforcementType::Unknown(_) => true,
    }
}

/// Counts of every AAGUID mentioned in an inventory export (CSV or JSON, any layout: every
/// 8-4-4-4-12 token is taken). The error names the path.
pub fn read_registered(path: &Path) -> Result<Vec<(Aaguid, usize)>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read AAGUID inventory {}: {e}", path.display()))?;
    let mut counts: Vec<(Aaguid, usize)> = Vec::new();
    for token in text.split(|c: char| !(c.is_ascii_hexdigit() || c == '-')) {
        let dashed = token.len() == 36 && token.matches('-').count() == 4;
        let Ok(a) = token.parse::<Aaguid>() else { continue };
        if !dashed {
            continue;
        }
        match counts.iter_mut().find(|(x, _)| *x == a) {
            Some((_, n)) => *n += 1,
            None => counts.push((a, 1)),
        }
    }
    if counts.is_empty() {
        return Err(format!("no AAGUID found in {}", path.display()));
    }
    Ok(counts)
}

/// The `policy.*` checks for the selected profile (and the registered inventory, when given).
pub fn checks(sel: &SelectedPolicy, registered: Option<&[(Aaguid, usize)]>) -> Vec<Check> {
    let table = AaguidTable::built_in();
    let p = &sel.profile;
    let label = p.label();
    let kr = &p.key_restrictions;
    let mut out = Vec::new();

    out.push(match sel.policy.state.as_deref() {
        Some("disabled") => Check::fail(
            "policy.state",
            "the Passkey (FIDO2) method is disabled for the tenant: no passkey can register or sign in",
            format!("{PORTAL}: Enable, and target the users"),
        ),
        other => Check::pass("policy.state", format!("method state: {}", other.unwrap_or("enabled (absent)"))),
    });

    out.push(if sel.policy.self_service_registration {
        Check::pass("policy.self_service", "users may register passkeys themselves")
    } else {
        Check::warn(
            "policy.self_service",
            "isSelfServiceRegistrationAllowed is false: users cannot register passkeys themselves (only through Graph provisioning)",
            format!("{PORTAL} → Configure: Allow self-service set up = Yes"),
        )
    });

    let names = |list: &[(Aaguid, &str)]| {
        list.iter()
            .map(|(a, os)| format!("Microsoft Authenticator {os} ({a})"))
            .collect::<Vec<_>>()
            .join(" and ")
    };
    out.push(match (&kr.is_enforced, &kr.enforcement_type) {
        (false, _) => Check::pass(
            "policy.aaguids",
            format!(
                "profile {label}: key restrictions not enforced, any authenticator may register \
                 (the \"Passkey in Microsoft Authenticator\" registration flow only appears when they are)"
            ),
        ),
        (true, EnforcementType::Allow) => {
            let missing: Vec<(Aaguid, &str)> =
                AUTHENTICATOR.iter().copied().filter(|(a, _)| !kr.aaguids.contains(a)).collect();
            if missing.is_empty() {
                Check::pass("policy.aaguids", format!("profile {label}: the allow list holds both Microsoft Authenticator AAGUIDs"))
            } else {
                Check::fail(
                    "policy.aaguids",
                    format!(
                        "profile {label} enforces an allow list without {}: Entra refuses passkeys in Authenticator there",
                        names(&missing)
                    ),
                    format!(
                        "add {} to the key restrictions of profile {label} ({PORTAL})",
                        missing.iter().map(|(a, _)| a.to_string()).collect::<Vec<_>>().join(" and ")
                    ),
                )
            }
        }
        (true, EnforcementType::Block) => {
            let blocked: Vec<(Aaguid, &str)> =
                AUTHENTICATOR.iter().copied().filter(|(a, _)| kr.aaguids.contains(a)).collect();
            if blocked.is_empty() {
                Check::pass("policy.aaguids", format!("profile {label}: the block list does not hold Microsoft Authenticator"))
            } else {
                Check::fail(
                    "policy.aaguids",
                    format!("profile {label} blocks {}", names(&blocked)),
                    format!(
                        "remove {} from the block list of profile {label} ({PORTAL})",
                        blocked.iter().map(|(a, _)| a.to_string()).collect::<Vec<_>>().join(" and ")
                    ),
                )
            }
        }
        (true, EnforcementType::Unknown(t)) => Check::warn(
            "policy.aaguids",
            format!("profile {label}: enforcementType {t:?} is neither allow nor block"),
            "export the policy again from Graph",
        ),
    });

    out.push(match &p.attestation {
        AttestationEnforcement::Disabled => Check::pass("policy.attestation", format!("profile {label}: attestation not enforced")),
        AttestationEnforcement::RegistrationOnly => Check::fail(
            "policy.attestation",
            format!(
                "profile {label} enforces attestation: cross-device (hybrid) registration with \
                 Microsoft Authenticator fails, and the legacy WebAuthn wizard creates a passkey on \
                 the phone that Entra then refuses (it has no attestation)"
            ),
            format!(
                "set attestationEnforcement to disabled in profile {label} (legacy policy: \
                 isAttestationEnforced false), or register attesting device-bound keys (FIDO2 security keys)"
            ),
        ),
        AttestationEnforcement::Unknown(v) => Check::warn(
            "policy.attestation",
            format!("profile {label}: attestationEnforcement {v:?} is not understood"),
            "export the policy again from Graph",
        ),
    });

    let t = p.passkey_types;
    out.push(match (t.device_bound, t.synced) {
        (true, true) => Check::pass("policy.passkey_types", format!("profile {label} admits device-bound and synced passkeys")),
        (true, false) => Check::warn(
            "policy.passkey_types",
            format!(
                "profile {label} excludes synced passkeys: phones that only offer synced ones \
                 (Google Password Manager, iCloud Keychain: BE flag set) cannot register over \
                 hybrid; Microsoft Authenticator's device-bound passkeys can"
            ),
            format!("add synced to passkeyTypes of profile {label}, or have users register in Microsoft Authenticator"),
        ),
        (false, true) => Check::warn(
            "policy.passkey_types",
            format!("profile {label} excludes device-bound passkeys: security keys and Microsoft Authenticator are refused"),
            format!("add deviceBound to passkeyTypes of profile {label}"),
        ),
        (false, false) => Check::fail(
            "policy.passkey_types",
            format!("profile {label} admits no passkey type"),
            format!("set passkeyTypes of profile {label} to deviceBound,synced"),
        ),
    });

    if let Some(reg) = registered {
        let total: usize = reg.iter().map(|(_, n)| n).sum();
        let refused: Vec<String> = reg
            .iter()
            .filter(|(a, _)| !admits(kr, a))
            .map(|(a, n)| format!("{n} × {} ({a})", table.describe(a)))
            .collect();
        out.push(if refused.is_empty() {
            Check::pass("policy.registered", format!("all {total} registered passkeys ({} models) are admitted by profile {label}", reg.len()))
        } else {
            Check::fail(
                "policy.registered",
                format!("profile {label} no longer admits registered passkeys, which then stop signing in: {}", refused.join(", ")),
                format!("keep these AAGUIDs admitted in profile {label}, or have their users register another passkey first"),
            )
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::Status;
    use super::*;

    fn fixture(name: &str) -> SelectedPolicy {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/policy").join(name);
        SelectedPolicy::load(&path, None).unwrap()
    }

    fn status(checks: &[Check], id: &str) -> Status {
        checks.iter().find(|c| c.id == id).unwrap().status
    }

    #[test]
    fn legacy_fixtures_land_on_their_checks() {
        let ok = checks(&fixture("legacy-allow-authenticator.json"), None);
        for c in &ok {
            // A legacy policy admits device-bound passkeys only.
            let want = if c.id == "policy.passkey_types" { Status::Warn } else { Status::Pass };
            assert_eq!(c.status, want, "{c:?}");
        }

        let blocked = checks(&fixture("legacy-block-authenticator.json"), None);
        let c = blocked.iter().find(|c| c.id == "policy.aaguids").unwrap();
        assert_eq!(c.status, Status::Fail, "{c:?}");
        assert!(c.remedy.as_deref().unwrap().contains("remove"), "{c:?}");

        let att = checks(&fixture("legacy-attestation-enforced.json"), None);
        assert_eq!(status(&att, "policy.attestation"), Status::Fail);
        assert_eq!(status(&att, "policy.self_service"), Status::Warn);
    }

    #[test]
    fn allow_list_without_authenticator_and_registered_inventory() {
        let mut sel = fixture("legacy-allow-authenticator.json");
        sel.profile.key_restrictions.aaguids.retain(|a| *a != AUTHENTICATOR_IOS);
        let yubikey: Aaguid = "cb69481e-8ff7-4039-93ec-0a2729a154a8".parse().unwrap();
        let reg = [(AUTHENTICATOR_ANDROID, 3), (yubikey, 2)];
        let out = checks(&sel, Some(&reg));
        let c = out.iter().find(|c| c.id == "policy.aaguids").unwrap();
        assert_eq!(c.status, Status::Fail);
        assert!(c.detail.contains("iOS (90a3ccdf-635c-4729-a248-9b709135078f)"), "{c:?}");
        assert!(!c.detail.contains("Android"), "{c:?}");
        let r = out.iter().find(|c| c.id == "policy.registered").unwrap();
        assert_eq!(r.status, Status::Fail, "{r:?}");
        assert!(r.detail.contains("2 × ") && r.detail.contains("cb69481e"), "{r:?}");
    }

    #[test]
    fn inventory_exports_are_scanned_for_aaguids() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("inv.csv");
        std::fs::write(
            &p,
            "user,aaGuid\nalice,DE1E552D-DB1D-4423-A619-566B625CDC84\nbob,de1e552d-db1d-4423-a619-566b625cdc84\ncarol,not-a-guid\n",
        )
        .unwrap();
        let counts = read_registered(&p).unwrap();
        assert_eq!(counts, vec![(AUTHENTICATOR_ANDROID, 2)]);
        std::fs::write(&p, "nothing here").unwrap();
        assert!(read_registered(&p).unwrap_err().contains("no AAGUID"));
    }
}
