//! The Entra ID passkey (FIDO2) method policy as Microsoft Graph returns it
//! (`fido2AuthenticationMethodConfiguration`), reduced to what a verdict needs, and the choice of
//! the passkey profile that applies.
//!
//! Two shapes exist and both are read (shared/notes/entra-and-field-facts.md):
//! - **Legacy** (before passkey profiles): top-level `isAttestationEnforced` and
//!   `keyRestrictions {isEnforced, enforcementType: allow|block, aaGuids}`. Synced passkeys are
//!   not admitted by this model: Entra supports them only once a tenant uses passkey profiles
//!   (Microsoft "How to enable synced passkeys", MC1221452), so the legacy policy becomes one
//!   implicit profile with `passkeyTypes = deviceBound`.
//! - **Passkey profiles** (Graph v1.0 and beta): `passkeyProfiles[] {id, name, passkeyTypes,
//!   attestationEnforcement, keyRestrictions}` and `includeTargets[] {id: "all_users" | group,
//!   allowedPasskeyProfiles}`. When `passkeyProfiles` is present the deprecated top-level fields
//!   are ignored.
//!
//! Unknown fields are ignored (Graph adds fields, `@odata.*` annotations abound). Unknown enum
//! values (Graph's `unknownFutureValue`) are kept and reported as "not evaluated" rather than
//! guessed. A malformed document is a [`PolicyError`] naming the file and the JSON location
//! (a JSON pointer such as `/passkeyProfiles/0/keyRestrictions/aaGuids/2`).

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::evidence::Aaguid;

/// Graph's fixed id of the built-in "Default passkey profile".
pub const DEFAULT_PROFILE_ID: &str = "00000000-0000-0000-0000-000000000001";

/// Why a policy file could not be used.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyError {
    /// The file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        problem: String,
        /// Whether it is missing (a usage error) rather than unreadable (environment).
        not_found: bool,
    },
    /// The document is not the shape Graph returns.
    Malformed {
        /// The file (or `<inline>`).
        path: PathBuf,
        /// A JSON pointer, or `line L column C` for syntax errors.
        location: String,
        /// What is wrong there.
        problem: String,
    },
    /// `--profile` names no profile of the policy.
    UnknownProfile {
        /// What was asked for.
        wanted: String,
        /// `id (name)` of every profile.
        available: Vec<String>,
    },
    /// No `--profile` and the policy does not say which one applies to all users.
    AmbiguousProfile {
        /// Why it is ambiguous.
        why: String,
        /// `id (name)` of the candidate profiles.
        available: Vec<String>,
    },
}

impl PolicyError {
    /// True when the environment is at fault (a file that exists but cannot be read); every
    /// other case is the caller's input.
    pub fn is_environment(&self) -> bool {
        matches!(self, PolicyError::Read { not_found: false, .. })
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::Read { path, problem, .. } => {
                write!(f, "policy: cannot read {}: {problem}", path.display())
            }
            PolicyError::Malformed { path, location, problem } => write!(
                f,
                "policy: {} is not a Graph fido2AuthenticationMethodConfiguration: at {location}: \
                 {problem}",
                path.display()
            ),
            PolicyError::UnknownProfile { wanted, available } => write!(
                f,
                "policy: no passkey profile with id or name {wanted:?}; the policy has: {}",
                available.join(", ")
            ),
            PolicyError::AmbiguousProfile { why, available } => write!(
                f,
                "policy: {why}; choose one with --profile ID|NAME: {}",
                available.join(", ")
            ),
        }
    }
}

impl std::error::Error for PolicyError {}

/// `passkeyTypes`: which kinds of passkeys a profile admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PasskeyTypes {
    /// `deviceBound`: BE flag clear.
    pub device_bound: bool,
    /// `synced`: BE flag set.
    pub synced: bool,
}

impl PasskeyTypes {
    /// Graph's comma-separated form, e.g. `deviceBound,synced`.
    pub fn as_graph(self) -> String {
        let mut v = Vec::new();
        if self.device_bound {
            v.push("deviceBound");
        }
        if self.synced {
            v.push("synced");
        }
        v.join(",")
    }
}

/// `attestationEnforcement`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttestationEnforcement {
    /// `disabled`.
    Disabled,
    /// `registrationOnly`: registrations must carry a verifiable attestation.
    RegistrationOnly,
    /// A value this version does not know (`unknownFutureValue`, …): not evaluated.
    Unknown(String),
}

/// `enforcementType` of key restrictions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnforcementType {
    /// Only the listed AAGUIDs are admitted.
    Allow,
    /// The listed AAGUIDs are refused.
    Block,
    /// A value this version does not know: not evaluated.
    Unknown(String),
}

/// `fido2KeyRestrictions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRestrictions {
    /// `isEnforced`.
    pub is_enforced: bool,
    /// `enforcementType`.
    pub enforcement_type: EnforcementType,
    /// `aaGuids`.
    pub aaguids: Vec<Aaguid>,
}

impl Default for KeyRestrictions {
    /// Graph's default: not enforced.
    fn default() -> Self {
        KeyRestrictions {
            is_enforced: false,
            enforcement_type: EnforcementType::Allow,
            aaguids: Vec::new(),
        }
    }
}

/// One passkey profile (or the implicit profile of a legacy policy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyProfile {
    /// `id` (`legacy` for the implicit profile of a legacy policy).
    pub id: String,
    /// `name`.
    pub name: String,
    /// `passkeyTypes`.
    pub passkey_types: PasskeyTypes,
    /// `attestationEnforcement`.
    pub attestation: AttestationEnforcement,
    /// `keyRestrictions`.
    pub key_restrictions: KeyRestrictions,
}

impl PasskeyProfile {
    /// `id (name)`, as listed in errors.
    pub fn label(&self) -> String {
        format!("{} ({})", self.id, self.name)
    }
}

/// One `includeTargets[]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncludeTarget {
    /// `all_users` or a group id.
    pub id: String,
    /// `allowedPasskeyProfiles`.
    pub allowed_profiles: Vec<String>,
}

/// A parsed policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fido2Policy {
    /// `state`: `enabled`, `disabled`, or absent.
    pub state: Option<String>,
    /// `isSelfServiceRegistrationAllowed` (absent = Graph's default, true).
    pub self_service_registration: bool,
    /// Whether the document uses passkey profiles (else: legacy).
    pub uses_profiles: bool,
    /// The profiles (one implicit `legacy` profile for a legacy policy).
    pub profiles: Vec<PasskeyProfile>,
    /// `includeTargets`.
    pub include_targets: Vec<IncludeTarget>,
    /// `defaultPasskeyProfile`.
    pub default_profile: Option<String>,
}

/// The profile a verdict is taken against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectedPolicy {
    /// The whole policy (state, self-service).
    pub policy: Fido2Policy,
    /// The chosen profile.
    pub profile: PasskeyProfile,
}

struct Walker<'a> {
    path: &'a Path,
}

impl Walker<'_> {
    fn err(&self, location: &str, problem: impl Into<String>) -> PolicyError {
        PolicyError::Malformed {
            path: self.path.to_owned(),
            location: if location.is_empty() { "/".to_owned() } else { location.to_owned() },
            problem: problem.into(),
        }
    }

    fn object<'v>(
        &self,
        v: &'v Value,
        at: &str,
    ) -> Result<&'v serde_json::Map<String, Value>, PolicyError> {
        v.as_object().ok_or_else(|| self.err(at, format!("expected an object, found {}", kind(v))))
    }

    /// An optional field: absent and `null` are both "not given".
    fn field<'v>(obj: &'v serde_json::Map<String, Value>, key: &str) -> Option<&'v Value> {
        obj.get(key).filter(|v| !v.is_null())
    }

    fn bool_field(
        &self,
        obj: &serde_json::Map<String, Value>,
        at: &str,
        key: &str,
        default: bool,
    ) -> Result<bool, PolicyError> {
        match Self::field(obj, key) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(self.err(
                &format!("{at}/{key}"),
                format!("expected true/false, found {}", kind(other)),
            )),
        }
    }

    fn str_field<'v>(
        &self,
        obj: &'v serde_json::Map<String, Value>,
        at: &str,
        key: &str,
    ) -> Result<Option<&'v str>, PolicyError> {
        match Self::field(obj, key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self
                .err(&format!("{at}/{key}"), format!("expected a string, found {}", kind(other)))),
        }
    }

    fn array_field<'v>(
        &self,
        obj: &'v serde_json::Map<String, Value>,
        at: &str,
        key: &str,
    ) -> Result<&'v [Value], PolicyError> {
        match Self::field(obj, key) {
            None => Ok(&[]),
            Some(Value::Array(a)) => Ok(a),
            Some(other) => Err(self
                .err(&format!("{at}/{key}"), format!("expected an array, found {}", kind(other)))),
        }
    }

    fn key_restrictions(
        &self,
        v: Option<&Value>,
        at: &str,
    ) -> Result<KeyRestrictions, PolicyError> {
        let Some(v) = v.filter(|v| !v.is_null()) else {
            return Ok(KeyRestrictions::default());
        };
        let obj = self.object(v, at)?;
        let is_enforced = self.bool_field(obj, at, "isEnforced", false)?;
        let enforcement_type = match self.str_field(obj, at, "enforcementType")? {
            None | Some("allow") => EnforcementType::Allow,
            Some("block") => EnforcementType::Block,
            Some(other) => EnforcementType::Unknown(other.to_owned()),
        };
        let mut aaguids = Vec::new();
        for (i, a) in self.array_field(obj, at, "aaGuids")?.iter().enumerate() {
            let here = format!("{at}/aaGuids/{i}");
            let s = a.as_str().ok_or_else(|| {
                self.err(&here, format!("expected an AAGUID string, found {}", kind(a)))
            })?;
            let aaguid: Aaguid =
                s.parse().map_err(|_| self.err(&here, format!("{s:?} is not an AAGUID")))?;
            aaguids.push(aaguid);
        }
        Ok(KeyRestrictions { is_enforced, enforcement_type, aaguids })
    }

    fn passkey_types(&self, v: Option<&Value>, at: &str) -> Result<PasskeyTypes, PolicyError> {
        // Graph serialises flag enums as one comma-separated string; an array is accepted too.
        let tokens: Vec<String> = match v.filter(|v| !v.is_null()) {
            None => return Err(self.err(at, "passkeyTypes is required in a passkey profile")),
            Some(Value::String(s)) => s.split(',').map(|t| t.trim().to_owned()).collect(),
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    t.as_str().map(str::to_owned).ok_or_else(|| {
                        self.err(
                            &format!("{at}/{i}"),
                            format!("expected a string, found {}", kind(t)),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(self.err(
                    at,
                    format!(
                        "expected a string such as \"deviceBound,synced\", found {}",
                        kind(other)
                    ),
                ))
            }
        };
        let mut types = PasskeyTypes::default();
        for t in tokens {
            match t.as_str() {
                "deviceBound" => types.device_bound = true,
                "synced" => types.synced = true,
                // `unknownFutureValue` and later additions admit nothing we can evaluate.
                _ => {}
            }
        }
        Ok(types)
    }

    fn profile(&self, v: &Value, at: &str) -> Result<PasskeyProfile, PolicyError> {
        let obj = self.object(v, at)?;
        let id = self
            .str_field(obj, at, "id")?
            .ok_or_else(|| self.err(at, "a passkey profile needs an \"id\""))?
            .to_owned();
        let name = self.str_field(obj, at, "name")?.unwrap_or("").to_owned();
        let passkey_types =
            self.passkey_types(obj.get("passkeyTypes"), &format!("{at}/passkeyTypes"))?;
        let attestation = match self.str_field(obj, at, "attestationEnforcement")? {
            None | Some("disabled") => AttestationEnforcement::Disabled,
            Some("registrationOnly") => AttestationEnforcement::RegistrationOnly,
            Some(other) => AttestationEnforcement::Unknown(other.to_owned()),
        };
        let key_restrictions =
            self.key_restrictions(obj.get("keyRestrictions"), &format!("{at}/keyRestrictions"))?;
        Ok(PasskeyProfile { id, name, passkey_types, attestation, key_restrictions })
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Fido2Policy {
    /// Reads and parses a policy file.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read(path).map_err(|e| PolicyError::Read {
            path: path.to_owned(),
            problem: e.to_string(),
            not_found: e.kind() == std::io::ErrorKind::NotFound,
        })?;
        Self::parse(&text, path)
    }

    /// Parses a policy document; `path` only names it in errors.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self, PolicyError> {
        let w = Walker { path };
        let doc: Value = serde_json::from_slice(bytes).map_err(|e| {
            w.err(&format!("line {} column {}", e.line(), e.column()), e.to_string())
        })?;
        let root = w.object(&doc, "")?;
        let state = w.str_field(root, "", "state")?.map(str::to_owned);
        let self_service_registration =
            w.bool_field(root, "", "isSelfServiceRegistrationAllowed", true)?;
        let default_profile = w.str_field(root, "", "defaultPasskeyProfile")?.map(str::to_owned);

        let mut include_targets = Vec::new();
        for (i, t) in w.array_field(root, "", "includeTargets")?.iter().enumerate() {
            let at = format!("/includeTargets/{i}");
            let obj = w.object(t, &at)?;
            let id = w.str_field(obj, &at, "id")?.unwrap_or("").to_owned();
            let mut allowed_profiles = Vec::new();
            for (j, p) in w.array_field(obj, &at, "allowedPasskeyProfiles")?.iter().enumerate() {
                let s = p.as_str().ok_or_else(|| {
                    w.err(
                        &format!("{at}/allowedPasskeyProfiles/{j}"),
                        format!("expected a profile id, found {}", kind(p)),
                    )
                })?;
                allowed_profiles.push(s.to_owned());
            }
            include_targets.push(IncludeTarget { id, allowed_profiles });
        }

        let uses_profiles = Walker::field(root, "passkeyProfiles").is_some();
        let profiles = if uses_profiles {
            let list = w.array_field(root, "", "passkeyProfiles")?;
            if list.is_empty() {
                return Err(w.err("/passkeyProfiles", "the profile list is empty"));
            }
            list.iter()
                .enumerate()
                .map(|(i, p)| w.profile(p, &format!("/passkeyProfiles/{i}")))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            let attestation = if w.bool_field(root, "", "isAttestationEnforced", false)? {
                AttestationEnforcement::RegistrationOnly
            } else {
                AttestationEnforcement::Disabled
            };
            vec![PasskeyProfile {
                id: "legacy".to_owned(),
                name: "legacy tenant-wide policy (no passkey profiles)".to_owned(),
                passkey_types: PasskeyTypes { device_bound: true, synced: false },
                attestation,
                key_restrictions: w
                    .key_restrictions(root.get("keyRestrictions"), "/keyRestrictions")?,
            }]
        };
        // Every profile a target allows must exist: a dangling id is a broken export.
        for (i, t) in include_targets.iter().enumerate() {
            if !uses_profiles {
                break;
            }
            for (j, p) in t.allowed_profiles.iter().enumerate() {
                if !profiles.iter().any(|q| &q.id == p) {
                    return Err(w.err(
                        &format!("/includeTargets/{i}/allowedPasskeyProfiles/{j}"),
                        format!("no passkey profile has id {p:?}"),
                    ));
                }
            }
        }
        Ok(Fido2Policy {
            state,
            self_service_registration,
            uses_profiles,
            profiles,
            include_targets,
            default_profile,
        })
    }

    fn labels<'a>(profiles: impl Iterator<Item = &'a PasskeyProfile>) -> Vec<String> {
        profiles.map(PasskeyProfile::label).collect()
    }

    /// Chooses the profile: `wanted` matches an id (case-insensitive, as ids are GUIDs) or a
    /// name (exact). Without `wanted`: the single profile the `all_users` target allows, or the
    /// only profile there is; anything else is [`PolicyError::AmbiguousProfile`].
    pub fn select(self, wanted: Option<&str>) -> Result<SelectedPolicy, PolicyError> {
        let chosen = match wanted {
            Some(w) => {
                let by_id = self.profiles.iter().find(|p| p.id.eq_ignore_ascii_case(w));
                let by_name: Vec<&PasskeyProfile> =
                    self.profiles.iter().filter(|p| p.name == w).collect();
                match (by_id, by_name.as_slice()) {
                    (Some(p), _) => p.clone(),
                    (None, [p]) => (*p).clone(),
                    (None, []) => {
                        return Err(PolicyError::UnknownProfile {
                            wanted: w.to_owned(),
                            available: Self::labels(self.profiles.iter()),
                        })
                    }
                    (None, several) => {
                        return Err(PolicyError::AmbiguousProfile {
                            why: format!("several profiles are named {w:?}"),
                            available: Self::labels(several.iter().copied()),
                        })
                    }
                }
            }
            None => self.default_choice()?,
        };
        Ok(SelectedPolicy { policy: self, profile: chosen })
    }

    fn default_choice(&self) -> Result<PasskeyProfile, PolicyError> {
        if let [only] = self.profiles.as_slice() {
            return Ok(only.clone());
        }
        let all_users: Vec<&String> = self
            .include_targets
            .iter()
            .filter(|t| t.id == "all_users")
            .flat_map(|t| &t.allowed_profiles)
            .collect();
        let allowed: Vec<&PasskeyProfile> =
            self.profiles.iter().filter(|p| all_users.contains(&&p.id)).collect();
        match allowed.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(PolicyError::AmbiguousProfile {
                why: "no all_users target names a passkey profile".to_owned(),
                available: Self::labels(self.profiles.iter()),
            }),
            several => Err(PolicyError::AmbiguousProfile {
                why: "the all_users target allows several passkey profiles".to_owned(),
                available: Self::labels(several.iter().copied()),
            }),
        }
    }
}

impl SelectedPolicy {
    /// Loads `path` and selects `profile` (see [`Fido2Policy::select`]).
    pub fn load(path: &Path, profile: Option<&str>) -> Result<Self, PolicyError> {
        Fido2Policy::load(path)?.select(profile)
    }
}
