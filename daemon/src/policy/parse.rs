//! Parsing the Graph JSON into [`Fido2Policy`]: a small walker over `serde_json::Value` that
//! names the JSON location (a JSON pointer) of every problem, ignores unknown fields, and treats
//! `null` like an absent field (Graph emits both).

use std::path::Path;

use serde_json::Value;

use super::model::{
    AttestationEnforcement, EnforcementType, Fido2Policy, IncludeTarget, KeyRestrictions,
    PasskeyProfile, PasskeyTypes, PolicyError,
};
use crate::evidence::Aaguid;

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
}
