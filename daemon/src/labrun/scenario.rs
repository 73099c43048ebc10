//! Scenario files: what a lab run does, as TOML. Every table is `deny_unknown_fields`, so a typo
//! is an error naming its line instead of a silently ignored setting (README "Lab runs" lists
//! every key).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::LabRunError;

/// A whole scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// A name for reports and the store [default: the file name].
    pub name: Option<String>,
    /// Iterations when `--repeat` is not given [default 1].
    pub repeat: Option<u32>,
    /// Values every step inherits unless it sets its own.
    #[serde(default)]
    pub defaults: StepDefaults,
    /// The in-process virtual phone used by steps with `phone = "virtual"`.
    #[serde(default)]
    pub virtual_phone: VirtualPhoneSettings,
    /// The steps, run in order in every iteration.
    #[serde(rename = "step", default)]
    pub steps: Vec<Step>,
    /// Directory relative paths (policy, mds) are resolved against.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// Keys a step may inherit from `[defaults]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepDefaults {
    /// Relying party id.
    pub rp_id: Option<String>,
    /// User name for registrations.
    pub user_name: Option<String>,
    /// Transport.
    pub transport: Option<TransportName>,
    /// USB key address.
    pub device: Option<String>,
    /// Hybrid advert source.
    pub advert_source: Option<String>,
    /// Tunnel server base URL.
    pub tunnel_url: Option<String>,
    /// `"virtual"` for the in-process virtual phone.
    pub phone: Option<PhoneKind>,
    /// Policy file.
    pub policy: Option<PathBuf>,
    /// Policy profile.
    pub profile: Option<String>,
    /// MDS3 blob.
    pub mds: Option<PathBuf>,
    /// Ceremony timeout.
    pub timeout: Option<String>,
}

/// register or authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// makeCredential.
    Register,
    /// getAssertion.
    Authenticate,
}

impl Action {
    /// `"register"` / `"authenticate"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Register => "register",
            Action::Authenticate => "authenticate",
        }
    }
}

/// How the step reaches the authenticator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportName {
    /// A security key (hidraw or `udp:` virtual key).
    Usb,
    /// A phone scanning the QR code.
    Hybrid,
    /// A linked phone.
    Linked,
}

impl TransportName {
    /// `"usb"` / `"hybrid"` / `"linked"`.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportName::Usb => "usb",
            TransportName::Hybrid => "hybrid",
            TransportName::Linked => "linked",
        }
    }
}

/// Which phone answers a hybrid step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhoneKind {
    /// The in-process virtual phone behind an in-process tunnel server.
    Virtual,
    /// A real phone scanning the QR code (printed on stderr).
    Real,
}

/// What a step expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    /// The ceremony succeeds (the default).
    Success,
    /// The ceremony fails (at `expect_stage`, when given).
    Error,
    /// The ceremony succeeds and the policy verdict is accept.
    Accept,
    /// The ceremony succeeds and the policy verdict is reject.
    Reject,
}

impl Expect {
    /// The TOML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Expect::Success => "success",
            Expect::Error => "error",
            Expect::Accept => "accept",
            Expect::Reject => "reject",
        }
    }
}

/// One `[[step]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Name in reports; authenticate steps refer to registrations by it [default: `step-N`].
    pub name: Option<String>,
    /// register or authenticate.
    pub action: Action,
    /// usb, hybrid or linked.
    pub transport: Option<TransportName>,
    /// Relying party id.
    pub rp_id: Option<String>,
    /// User name (registrations).
    pub user_name: Option<String>,
    /// USB: the key's address (`udp:HOST:PORT` or a hidraw path) [default: attached keys].
    pub device: Option<String>,
    /// Hybrid/linked: where adverts come from [default: bluez].
    pub advert_source: Option<String>,
    /// Hybrid/linked: tunnel server base URL instead of the host the advert names.
    pub tunnel_url: Option<String>,
    /// Hybrid: `virtual` (in-process phone and tunnel server) or `real` [default: real].
    pub phone: Option<PhoneKind>,
    /// Linked: the linked phone's name or id.
    pub link: Option<String>,
    /// Authenticate: the register step (name) whose credential to use in this iteration
    /// [default: the latest successful registration of the iteration; none → discoverable].
    pub credential_from: Option<String>,
    /// Entra policy file (Graph JSON).
    pub policy: Option<PathBuf>,
    /// Passkey profile id or name.
    pub profile: Option<String>,
    /// FIDO MDS3 blob.
    pub mds: Option<PathBuf>,
    /// Ceremony timeout, e.g. `"30s"`, `"500ms"`, `"2m"` [default 60s].
    pub timeout: Option<String>,
    /// What must happen [default: success].
    pub expect: Option<Expect>,
    /// The stage the ceremony must fail in (implies `expect = "error"`).
    pub expect_stage: Option<String>,
}

/// `[virtual_phone]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VirtualPhoneSettings {
    /// The phone's AAGUID [default: cablebridge's].
    pub aaguid: Option<String>,
    /// `none` or `packed` [default packed].
    pub attestation: Option<String>,
    /// Answer as a synced passkey provider (BE/BS set).
    #[serde(default)]
    pub backup_eligible: bool,
    /// Milliseconds the simulated user takes [default 50].
    pub presence_delay_ms: Option<u64>,
}

/// A step with `[defaults]` applied and checked: what the runner executes.
#[derive(Debug, Clone)]
pub struct ResolvedStep {
    /// Name.
    pub name: String,
    /// register/authenticate.
    pub action: Action,
    /// Transport.
    pub transport: TransportName,
    /// Relying party id.
    pub rp_id: String,
    /// User name.
    pub user_name: String,
    /// USB key address.
    pub device: Option<String>,
    /// Advert source spec.
    pub advert_source: String,
    /// Tunnel URL.
    pub tunnel_url: Option<String>,
    /// Which phone.
    pub phone: PhoneKind,
    /// Linked phone.
    pub link: Option<String>,
    /// Registration to use.
    pub credential_from: Option<String>,
    /// Policy file (absolute or relative to the scenario).
    pub policy: Option<PathBuf>,
    /// Profile.
    pub profile: Option<String>,
    /// MDS blob.
    pub mds: Option<PathBuf>,
    /// Ceremony timeout.
    pub timeout: Duration,
    /// Expectation.
    pub expect: Expect,
    /// Expected failure stage.
    pub expect_stage: Option<String>,
}

impl Scenario {
    /// Reads and checks a scenario file. Errors name the file and, for syntax and unknown keys,
    /// the line.
    pub fn load(path: &Path) -> Result<Scenario, LabRunError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            let message = format!("cannot read scenario {}: {e}", path.display());
            if e.kind() == std::io::ErrorKind::NotFound {
                LabRunError::Usage(message)
            } else {
                LabRunError::Environment(message)
            }
        })?;
        let mut scenario = Scenario::parse(&text)
            .map_err(|e| LabRunError::Usage(format!("{}: {e}", path.display())))?;
        scenario.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        if scenario.name.is_none() {
            scenario.name = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        }
        Ok(scenario)
    }

    /// Parses scenario text (no file paths resolved). The error says `line N: ...`.
    pub fn parse(text: &str) -> Result<Scenario, String> {
        let scenario: Scenario = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start));
            match line {
                Some(n) => format!("line {n}: {}", e.message()),
                None => e.message().to_owned(),
            }
        })?;
        if scenario.steps.is_empty() {
            return Err("no [[step]] tables".to_owned());
        }
        scenario.resolve_steps()?;
        Ok(scenario)
    }

    /// The steps with defaults applied; checks every cross-key rule.
    pub fn resolve_steps(&self) -> Result<Vec<ResolvedStep>, String> {
        let d = &self.defaults;
        let mut out: Vec<ResolvedStep> = Vec::with_capacity(self.steps.len());
        for (i, s) in self.steps.iter().enumerate() {
            let name = s.name.clone().unwrap_or_else(|| format!("step-{}", i + 1));
            let at = |m: String| format!("step {name:?}: {m}");
            if out.iter().any(|o| o.name == name) {
                return Err(at("duplicate step name".to_owned()));
            }
            let transport = s.transport.or(d.transport).unwrap_or(TransportName::Hybrid);
            let timeout_text = s.timeout.as_deref().or(d.timeout.as_deref()).unwrap_or("60s");
            let timeout = parse_duration(timeout_text).map_err(at)?;
            let expect = match (s.expect, &s.expect_stage) {
                (None, Some(_)) => Expect::Error,
                (Some(e), Some(_)) if e != Expect::Error => {
                    return Err(at("expect_stage needs expect = \"error\"".to_owned()))
                }
                (e, _) => e.unwrap_or(Expect::Success),
            };
            let rp_id = s.rp_id.clone().or_else(|| d.rp_id.clone()).ok_or_else(|| {
                at("rp_id is missing (set it on the step or in [defaults])".to_owned())
            })?;
            let credential_from = s.credential_from.clone();
            if let Some(from) = &credential_from {
                if s.action != Action::Authenticate {
                    return Err(at("credential_from is for authenticate steps".to_owned()));
                }
                match out.iter().find(|o| &o.name == from) {
                    Some(o) if o.action == Action::Register => {}
                    _ => {
                        return Err(at(format!(
                            "credential_from = {from:?} names no earlier register step"
                        )))
                    }
                }
            }
            let link = s.link.clone();
            if transport == TransportName::Linked && link.is_none() {
                return Err(at("transport = \"linked\" needs link = NAME".to_owned()));
            }
            let phone = s.phone.or(d.phone).unwrap_or(PhoneKind::Real);
            let resolve = |p: &PathBuf| {
                if p.is_absolute() {
                    p.clone()
                } else {
                    self.base_dir.join(p)
                }
            };
            out.push(ResolvedStep {
                action: s.action,
                transport,
                rp_id,
                user_name: s
                    .user_name
                    .clone()
                    .or_else(|| d.user_name.clone())
                    .unwrap_or_else(|| "lab-user".to_owned()),
                device: s.device.clone().or_else(|| d.device.clone()),
                advert_source: s
                    .advert_source
                    .clone()
                    .or_else(|| d.advert_source.clone())
                    .unwrap_or_else(|| "bluez".to_owned()),
                tunnel_url: s.tunnel_url.clone().or_else(|| d.tunnel_url.clone()),
                phone,
                link,
                credential_from,
                policy: s.policy.as_ref().or(d.policy.as_ref()).map(resolve),
                profile: s.profile.clone().or_else(|| d.profile.clone()),
                mds: s.mds.as_ref().or(d.mds.as_ref()).map(resolve),
                timeout,
                expect,
                expect_stage: s.expect_stage.clone(),
                name,
            });
        }
        Ok(out)
    }
}

/// 1-based line of byte offset `at`.
fn line_of(text: &str, at: usize) -> usize {
    text.get(..at).map_or(1, |t| t.bytes().filter(|b| *b == b'\n').count() + 1)
}

/// `"500ms"`, `"30s"`, `"2m"`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::ceremony::parse_duration(s).map_err(|e| format!("timeout {e}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn unknown_key_names_its_line() {
        let text = "name = \"x\"\n[[step]]\naction = \"register\"\nrp_id = \"a\"\nrpid = \"b\"\n";
        let e = Scenario::parse(text).unwrap_err();
        assert!(e.starts_with("line 5:"), "{e}");
        assert!(e.contains("rpid"), "{e}");
    }

    #[test]
    fn defaults_apply_and_credential_from_is_checked() {
        let text = r#"
[defaults]
rp_id = "lab.example"
transport = "usb"
[[step]]
name = "reg"
action = "register"
[[step]]
action = "authenticate"
credential_from = "reg"
expect_stage = "user_presence"
"#;
        let s = Scenario::parse(text).unwrap().resolve_steps().unwrap();
        assert_eq!(s[1].rp_id, "lab.example");
        assert_eq!(s[1].transport, TransportName::Usb);
        assert_eq!(s[1].expect, Expect::Error);
        let bad = text.replace("credential_from = \"reg\"", "credential_from = \"nope\"");
        assert!(Scenario::parse(&bad).unwrap_err().contains("nope"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("5h").is_err());
    }
}
