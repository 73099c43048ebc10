//! The verdict: would Entra ID accept this ceremony under the selected passkey profile?
//!
//! [`evaluate`] is a pure function over a small view of a result ([`CeremonyFacts`]) so that the
//! CLI, the daemon and lab runs call the same thing. Every rule (shared/notes/
//! entra-and-field-facts.md unless noted) becomes one [`Check`]; any `fail` rejects:
//!
//! | rule | when | source |
//! |---|---|---|
//! | `method_state` | the method's `state` is `disabled` → fail | Graph `authenticationMethodConfiguration.state` |
//! | `self_service` | registration with `isSelfServiceRegistrationAllowed: false` → warn | notes (policy fields) |
//! | `key_restrictions` | enforced `allow`: AAGUID not listed → fail; `block`: listed → fail; registration and sign-in alike | notes: "Key restrictions enforced with allow…", "Removing an AAGUID later also stops sign-in" |
//! | `attestation` | `registrationOnly`, registration: `none`, self attestation, bad signature, or a chain that does not reach the metadata roots → fail; no roots to check against → warn | notes: "Attestation enforced: Entra verifies the passkey's attestation. Registrations that carry none attestation fail." |
//! | `authenticator_hybrid` | attestation enforced, cross-device, Microsoft Authenticator AAGUID → fail (registration and sign-in) | notes: "Cross-device (hybrid) registration and authentication with Authenticator do not work when attestation is enforced" |
//! | `passkey_type` | BE set → synced, clear → deviceBound; not in `passkeyTypes` → fail | notes: passkey profiles, BE bit 3 |
//!
//! A rule that cannot be decided (an assertion carries no AAGUID, an enum value this version
//! does not know) is `skip`, never a guess.

use serde_json::{json, Value};

use super::model::{AttestationEnforcement, EnforcementType, SelectedPolicy};
use crate::evidence::{Aaguid, AaguidTable, ChainStatus};

/// Microsoft Authenticator on Android.
pub const AUTHENTICATOR_ANDROID: Aaguid = Aaguid([
    0xde, 0x1e, 0x55, 0x2d, 0xdb, 0x1d, 0x44, 0x23, 0xa6, 0x19, 0x56, 0x6b, 0x62, 0x5c, 0xdc, 0x84,
]);
/// Microsoft Authenticator on iOS.
pub const AUTHENTICATOR_IOS: Aaguid = Aaguid([
    0x90, 0xa3, 0xcc, 0xdf, 0x63, 0x5c, 0x47, 0x29, 0xa2, 0x48, 0x9b, 0x70, 0x91, 0x35, 0x07, 0x8f,
]);

/// Registration or sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyKind {
    /// makeCredential.
    Registration,
    /// getAssertion.
    Authentication,
}

/// What the attestation statement's signature check established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureStatus {
    /// `fmt: none`: nothing signed.
    Unsigned,
    /// Signed by the credential key itself (packed, no x5c).
    SelfAttestation,
    /// Signed by the x5c leaf.
    Verified,
    /// The signature or statement is bad (why).
    Invalid(String),
}

/// The attestation of a registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationFacts {
    /// `fmt`.
    pub format: String,
    /// Signature check.
    pub signature: SignatureStatus,
    /// Chain check against metadata roots.
    pub chain: ChainStatus,
}

/// The small view of a ceremony result a verdict needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CeremonyFacts {
    /// Registration or sign-in.
    pub kind: CeremonyKind,
    /// Over hybrid (cross-device) rather than USB.
    pub cross_device: bool,
    /// The authenticator model; assertions carry none, so sign-in needs it from registration.
    pub aaguid: Option<Aaguid>,
    /// Authenticator data flag BE (bit 3): backup eligible, i.e. a synced passkey.
    pub backup_eligible: bool,
    /// Authenticator data flag BS (bit 4): currently backed up.
    pub backed_up: bool,
    /// The attestation (registrations only).
    pub attestation: Option<AttestationFacts>,
}

/// A rule's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckStatus {
    /// The rule holds.
    Pass,
    /// The rule is broken: the verdict is reject.
    Fail,
    /// Worth knowing, does not reject.
    Warn,
    /// Not applicable or not decidable.
    Skip,
}

impl CheckStatus {
    /// `pass` / `fail` / `warn` / `skip`.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Pass => "pass",
            CheckStatus::Fail => "fail",
            CheckStatus::Warn => "warn",
            CheckStatus::Skip => "skip",
        }
    }
}

/// One rule's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Rule id (see the module table).
    pub rule: &'static str,
    /// Outcome.
    pub status: CheckStatus,
    /// Why, for humans.
    pub detail: String,
}

/// The verdict on one ceremony.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Profile id.
    pub profile_id: String,
    /// Profile name.
    pub profile_name: String,
    /// Every rule, in table order.
    pub checks: Vec<Check>,
}

impl Verdict {
    /// True when no rule failed.
    pub fn accepted(&self) -> bool {
        !self.checks.iter().any(|c| c.status == CheckStatus::Fail)
    }

    /// Why: the failed rules' details on reject; otherwise the passed and warned ones.
    pub fn reasons(&self) -> Vec<&str> {
        let wanted: &[CheckStatus] = if self.accepted() {
            &[CheckStatus::Pass, CheckStatus::Warn]
        } else {
            &[CheckStatus::Fail]
        };
        self.checks
            .iter()
            .filter(|c| wanted.contains(&c.status))
            .map(|c| c.detail.as_str())
            .collect()
    }

    /// `{"verdict":"accept|reject","profile":{"id","name"},"reasons":[..],"checks":[..]}`, the
    /// value of a result's `policy` field.
    pub fn to_json(&self) -> Value {
        json!({
            "verdict": if self.accepted() { "accept" } else { "reject" },
            "profile": {"id": self.profile_id, "name": self.profile_name},
            "reasons": self.reasons(),
            "checks": self.checks.iter().map(|c| json!({
                "rule": c.rule, "status": c.status.as_str(), "detail": c.detail,
            })).collect::<Vec<_>>(),
        })
    }
}

fn check(rule: &'static str, status: CheckStatus, detail: impl Into<String>) -> Check {
    Check { rule, status, detail: detail.into() }
}

/// Evaluates `facts` against the selected profile. `names` only words the details.
pub fn evaluate(policy: &SelectedPolicy, facts: &CeremonyFacts, names: &AaguidTable) -> Verdict {
    let profile = &policy.profile;
    let registration = facts.kind == CeremonyKind::Registration;
    let who = |a: &Aaguid| format!("AAGUID {a} ({})", names.describe(a));
    let mut checks = Vec::new();

    checks.push(match policy.policy.state.as_deref() {
        Some("disabled") => check(
            "method_state",
            CheckStatus::Fail,
            "the Passkey (FIDO2) method is disabled in this policy (state: disabled)",
        ),
        _ => check("method_state", CheckStatus::Pass, "the Passkey (FIDO2) method is not disabled"),
    });

    checks.push(if !registration {
        check("self_service", CheckStatus::Skip, "self-service applies to registration only")
    } else if policy.policy.self_service_registration {
        check("self_service", CheckStatus::Pass, "self-service registration is allowed")
    } else {
        check(
            "self_service",
            CheckStatus::Warn,
            "self-service registration is off (isSelfServiceRegistrationAllowed: false): users \
             cannot register passkeys themselves, only an administrator through Graph",
        )
    });

    let kr = &profile.key_restrictions;
    checks.push(match (kr.is_enforced, &kr.enforcement_type, facts.aaguid) {
        (false, _, _) => {
            check("key_restrictions", CheckStatus::Pass, "key restrictions are not enforced")
        }
        (true, EnforcementType::Unknown(t), _) => check(
            "key_restrictions",
            CheckStatus::Skip,
            format!("enforcementType {t:?} is not known to this version"),
        ),
        (true, _, None) => check(
            "key_restrictions",
            CheckStatus::Skip,
            "an assertion carries no AAGUID: give the credential's AAGUID from its registration \
             (--credential-aaguid)",
        ),
        (true, EnforcementType::Allow, Some(a)) if kr.aaguids.contains(&a) => check(
            "key_restrictions",
            CheckStatus::Pass,
            format!("{} is on the allow list", who(&a)),
        ),
        (true, EnforcementType::Allow, Some(a)) => {
            let mut d = format!("{} is not on the allow list", who(&a));
            if a.is_zero() {
                d.push_str("; phones over hybrid often send no AAGUID, which no allow list admits");
            }
            if !registration {
                d.push_str("; removing an AAGUID also stops sign-in with keys already registered");
            }
            check("key_restrictions", CheckStatus::Fail, d)
        }
        (true, EnforcementType::Block, Some(a)) if kr.aaguids.contains(&a) => check(
            "key_restrictions",
            CheckStatus::Fail,
            format!("{} is on the block list", who(&a)),
        ),
        (true, EnforcementType::Block, Some(a)) => check(
            "key_restrictions",
            CheckStatus::Pass,
            format!("{} is not on the block list", who(&a)),
        ),
    });

    checks.push(attestation_check(&profile.attestation, facts));

    let authenticator =
        facts.aaguid.filter(|a| *a == AUTHENTICATOR_ANDROID || *a == AUTHENTICATOR_IOS);
    checks.push(match (&profile.attestation, facts.cross_device, authenticator) {
        (AttestationEnforcement::RegistrationOnly, true, Some(a)) => check(
            "authenticator_hybrid",
            CheckStatus::Fail,
            format!(
                "{}: cross-device (hybrid) registration and sign-in with Microsoft Authenticator \
                 do not work while attestation is enforced",
                who(&a)
            ),
        ),
        _ => check(
            "authenticator_hybrid",
            CheckStatus::Pass,
            "not Microsoft Authenticator over hybrid with attestation enforced",
        ),
    });

    let types = profile.passkey_types;
    let kind = if facts.backup_eligible { "synced" } else { "deviceBound" };
    let flags = format!("BE={} BS={}", u8::from(facts.backup_eligible), u8::from(facts.backed_up));
    let admitted = if facts.backup_eligible { types.synced } else { types.device_bound };
    checks.push(if !types.synced && !types.device_bound {
        check("passkey_type", CheckStatus::Skip, "passkeyTypes names no type this version knows")
    } else if admitted {
        check(
            "passkey_type",
            CheckStatus::Pass,
            format!("a {kind} passkey ({flags}); the profile admits {}", types.as_graph()),
        )
    } else {
        let mut d =
            format!("a {kind} passkey ({flags}) but the profile admits only {}", types.as_graph());
        if !policy.policy.uses_profiles {
            d.push_str(
                " (the legacy policy predates synced passkeys: they need a passkey profile)",
            );
        }
        check("passkey_type", CheckStatus::Fail, d)
    });

    Verdict { profile_id: profile.id.clone(), profile_name: profile.name.clone(), checks }
}

fn attestation_check(enforcement: &AttestationEnforcement, facts: &CeremonyFacts) -> Check {
    const RULE: &str = "attestation";
    match enforcement {
        AttestationEnforcement::Disabled => {
            return check(RULE, CheckStatus::Pass, "attestation is not enforced")
        }
        AttestationEnforcement::Unknown(v) => {
            return check(
                RULE,
                CheckStatus::Skip,
                format!("attestationEnforcement {v:?} is not known to this version"),
            )
        }
        AttestationEnforcement::RegistrationOnly => {}
    }
    if facts.kind == CeremonyKind::Authentication {
        return check(RULE, CheckStatus::Skip, "attestation is enforced at registration only");
    }
    let Some(att) = &facts.attestation else {
        return check(RULE, CheckStatus::Fail, "attestation is enforced but none was returned");
    };
    let fail = |d: String| check(RULE, CheckStatus::Fail, d);
    match (&att.signature, &att.chain) {
        (SignatureStatus::Unsigned, _) => fail(format!(
            "attestation is enforced and the authenticator returned fmt {:?}: Entra refuses \
             registrations without attestation (synced providers and phones usually send none)",
            att.format
        )),
        (SignatureStatus::Invalid(why), _) => fail(format!(
            "attestation is enforced and the {} statement does not verify: {why}",
            att.format
        )),
        (SignatureStatus::SelfAttestation, _) => fail(
            "attestation is enforced but the statement is self attestation (no x5c), which no \
             vendor root vouches for"
                .to_owned(),
        ),
        (SignatureStatus::Verified, ChainStatus::Verified { root }) => check(
            RULE,
            CheckStatus::Pass,
            format!("{} attestation verified up to the metadata root {root}", att.format),
        ),
        (SignatureStatus::Verified, ChainStatus::NotVerified(why)) => fail(format!(
            "attestation is enforced and its chain does not reach the metadata roots: {why}"
        )),
        (SignatureStatus::Verified, status) => check(
            RULE,
            CheckStatus::Warn,
            format!("{} attestation signature verified; {}", att.format, status.detail()),
        ),
    }
}
