//! authenticatorConfig (0x0D, CTAP 2.1 §6.11) policy, and the persisted [`Settings`] it (and
//! bio enrollment) changes.
//!
//! Not [`super::Config`] (the static configuration an embedder picks): these are the settings an
//! administrator changes on the authenticator at run time, kept in [`super::PersistentState`]
//! so they survive power cycles and restarts of a `--state` file:
//!
//! * toggleAlwaysUv: with `alwaysUv` on, makeCredential and getAssertion need user verification
//!   (a pinUvAuthParam or built-in UV), `makeCredUvNotRqd` is never reported, and the config
//!   commands themselves need a token even without a PIN (§6.11.1);
//! * setMinPINLength: the minimum only grows (PIN_POLICY_VIOLATION otherwise); setPIN /
//!   changePIN enforce it; a current PIN shorter than the new minimum, or `forceChangePin`, sets
//!   `forcePINChange`, which getInfo reports and which makes every PIN-token request answer
//!   PIN_POLICY_VIOLATION until changePIN succeeds; `minPinLengthRPIDs` replaces the list of RPs
//!   the `minPinLength` extension reports to (at most [`MAX_MIN_PIN_LENGTH_RPIDS`]);
//! * enableEnterpriseAttestation: only on configs with [`super::Config::enterprise_attestation`]
//!   (getInfo then has `ep`); makeCredential's enterpriseAttestation is refused until it is on.
//!
//! Every subcommand needs `authenticate(token, 32×0xff ‖ 0x0d ‖ subCommand ‖ params)` with a
//! token holding `acfg`, except on an authenticator with no PIN, no built-in UV and `alwaysUv`
//! off, where there is nothing to authenticate with (§6.11.1 step 3).

use super::{decoded, Authenticator, CmdResult, CredentialStore, Ctx, Flow};
use crate::cbor::Value;
use crate::ctap2::config::{ConfigRequest, ConfigSubcommand as Sub, SetMinPinLengthParams};
use crate::ctap2::pin::pin_code::DEFAULT_MIN_PIN_LENGTH;
use crate::ctap2::{Permissions, StatusCode};
use crate::secret_type;

/// The most RP ids setMinPINLength accepts (getInfo `maxRPIDsForSetMinPINLength`).
pub const MAX_MIN_PIN_LENGTH_RPIDS: usize = 8;
/// The largest minimum PIN length we accept (a PIN is at most 63 bytes).
const MAX_MIN_PIN_LENGTH: u64 = 63;

secret_type!(
    /// The persistent, read-only credential management token (`pcmr`, CTAP 2.2 §6.5.5.7).
    PersistentToken,
    32
);

/// One enrolled (simulated) fingerprint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enrollment {
    /// templateId.
    pub template_id: Vec<u8>,
    /// templateFriendlyName.
    pub friendly_name: Option<String>,
}

/// Settings changed at run time through authenticatorConfig, clientPIN (pcmr) and bio
/// enrollment; persisted with the rest of the state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// `alwaysUv`.
    pub always_uv: bool,
    /// Current minimum PIN length in code points (`minPINLength`).
    pub min_pin_length: u8,
    /// RP ids the `minPinLength` extension answers.
    pub min_pin_length_rp_ids: Vec<String>,
    /// `forcePINChange`.
    pub force_pin_change: bool,
    /// `ep` (enterprise attestation enabled).
    pub enterprise_attestation: bool,
    /// Length of the current PIN in code points (to force a change when the minimum grows past
    /// it); `None` when unknown or no PIN is set.
    pub pin_code_points: Option<u8>,
    /// The current persistent `pcmr` token (either PIN/UV protocol may use it).
    pub persistent_token: Option<PersistentToken>,
    /// Enrolled fingerprints (bio enrollment).
    pub enrollments: Vec<Enrollment>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            always_uv: false,
            min_pin_length: DEFAULT_MIN_PIN_LENGTH as u8,
            min_pin_length_rp_ids: Vec::new(),
            force_pin_change: false,
            enterprise_attestation: false,
            pin_code_points: None,
            persistent_token: None,
            enrollments: Vec::new(),
        }
    }
}

impl Settings {
    /// Whether everything is at its factory default (then it is not even exported).
    pub fn is_default(&self) -> bool {
        *self == Settings::default()
    }

    /// Canonical CBOR map (part of [`super::PersistentState::export`]).
    pub(super) fn to_cbor(&self) -> Value {
        let texts = |v: &[String]| Value::Array(v.iter().cloned().map(Value::text).collect());
        let enrollments = self
            .enrollments
            .iter()
            .map(|e| {
                Value::int_map([
                    (1, Value::bytes(e.template_id.clone())),
                    (2, e.friendly_name.as_ref().map_or(Value::Null, Value::text)),
                ])
            })
            .collect();
        Value::int_map([
            (1, Value::Bool(self.always_uv)),
            (2, Value::Unsigned(self.min_pin_length.into())),
            (3, texts(&self.min_pin_length_rp_ids)),
            (4, Value::Bool(self.force_pin_change)),
            (5, Value::Bool(self.enterprise_attestation)),
            (6, self.pin_code_points.map_or(Value::Null, |n| Value::Unsigned(n.into()))),
            (
                7,
                self.persistent_token
                    .as_ref()
                    .map_or(Value::Null, |t| Value::bytes(t.expose().to_vec())),
            ),
            (8, Value::Array(enrollments)),
        ])
    }

    /// Parses [`Settings::to_cbor`]; `None` on any inconsistency.
    pub(super) fn from_cbor(v: &Value) -> Option<Settings> {
        let flag = |k| v.get(k).and_then(Value::as_bool);
        let small = |n: &Value| n.as_u64().and_then(|n| u8::try_from(n).ok());
        let texts = v
            .get(3)?
            .as_array()?
            .iter()
            .map(|t| t.as_text().map(str::to_owned))
            .collect::<Option<Vec<_>>>()?;
        let pin_code_points = match v.get(6)? {
            Value::Null => None,
            n => Some(small(n)?),
        };
        let persistent_token = match v.get(7)? {
            Value::Null => None,
            b => Some(PersistentToken::from_slice(b.as_bytes()?)?),
        };
        let enrollments = v
            .get(8)?
            .as_array()?
            .iter()
            .map(|e| {
                let friendly_name = match e.get(2)? {
                    Value::Null => None,
                    t => Some(t.as_text()?.to_owned()),
                };
                Some(Enrollment { template_id: e.get(1)?.as_bytes()?.to_vec(), friendly_name })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Settings {
            always_uv: flag(1)?,
            min_pin_length: small(v.get(2)?).filter(|n| u64::from(*n) <= MAX_MIN_PIN_LENGTH)?,
            min_pin_length_rp_ids: texts,
            force_pin_change: flag(4)?,
            enterprise_attestation: flag(5)?,
            pin_code_points,
            persistent_token,
            enrollments,
        })
    }
}

/// The authData extensions map carrying `{"minPinLength": n}`, if there is an output.
pub(super) fn min_pin_length_extension(output: Option<u64>) -> Option<Value> {
    output.map(|n| Value::Map(vec![(Value::text("minPinLength"), Value::Unsigned(n))]))
}

impl<S: CredentialStore> Authenticator<S> {
    /// makeCredential's `enterpriseAttestation` (CTAP 2.1 §6.1.2 step 9, §7.1): refused with
    /// INVALID_PARAMETER unless `ep` is enabled, INVALID_OPTION for values other than 1 and 2.
    /// 1 (vendor-facilitated) gives an enterprise attestation only to RP ids on
    /// [`super::Config::enterprise_rp_ids`] (others get the ordinary one); 2 (platform-managed)
    /// to any RP. Returns whether this credential gets one.
    pub(super) fn enterprise_attestation_for(
        &self,
        requested: Option<u64>,
        rp_id: &str,
    ) -> Result<bool, StatusCode> {
        let Some(kind) = requested else { return Ok(false) };
        if !self.config.enterprise_attestation
            || !self.store.state().settings.enterprise_attestation
        {
            return Err(StatusCode::InvalidParameter);
        }
        match kind {
            1 => Ok(self.config.enterprise_rp_ids.iter().any(|id| id == rp_id)),
            2 => Ok(true),
            _ => Err(StatusCode::InvalidOption),
        }
    }

    /// The `minPinLength` extension (CTAP 2.1 §12.4): with `"minPinLength": true` in the
    /// request, the current minimum for RP ids on `minPinLengthRPIDs`, nothing for others.
    pub(super) fn min_pin_length_output(
        &self,
        extensions: Option<&Value>,
        rp_id: &str,
    ) -> Option<u64> {
        let asked = extensions?
            .as_map()?
            .iter()
            .any(|(k, v)| k.as_text() == Some("minPinLength") && v.as_bool() == Some(true));
        let s = &self.store.state().settings;
        (asked && self.config.pin_capable && s.min_pin_length_rp_ids.iter().any(|id| id == rp_id))
            .then_some(s.min_pin_length.into())
    }

    /// Whether the authenticator is "protected by some form of user verification" (§6.11.1).
    pub(super) fn uv_protected(&self) -> bool {
        self.store.state().pin_hash.is_some() || self.config.builtin_uv
    }

    pub(super) fn authenticator_config(&mut self, p: &Value, ctx: &mut Ctx<'_>) -> CmdResult {
        let req =
            decoded(ConfigRequest::from_cbor(p), "subCommand", StatusCode::InvalidSubcommand)?;
        if matches!(req.sub_command, Sub::Other(_)) {
            return Err(StatusCode::InvalidSubcommand);
        }
        let settings = &self.store.state().settings;
        match req.pin_uv_auth_param.as_deref() {
            Some(param) => {
                // The params as received (canonical re-encoding of the raw map).
                let mut raw = ConfigRequest::new(req.sub_command, p.get(2).cloned());
                raw.pin_uv_auth_protocol = req.pin_uv_auth_protocol;
                let message = raw.auth_message();
                let acfg = Permissions::AUTHENTICATOR_CONFIG;
                let proto = req.pin_uv_auth_protocol;
                self.verify_pin_uv_auth(param, proto, &message, acfg, None, ctx.now)?;
            }
            None if self.uv_protected() || settings.always_uv => {
                return Err(StatusCode::PuatRequired)
            }
            None => {}
        }
        let mut next = self.store.state().clone();
        match req.sub_command {
            Sub::EnableEnterpriseAttestation => {
                if !self.config.enterprise_attestation {
                    return Err(StatusCode::InvalidCommand);
                }
                next.settings.enterprise_attestation = true;
            }
            Sub::ToggleAlwaysUv => next.settings.always_uv = !next.settings.always_uv,
            Sub::SetMinPinLength => {
                let params = match req.params.as_ref() {
                    Some(v) => SetMinPinLengthParams::from_cbor(v).map_err(|e| e.to_status())?,
                    None => SetMinPinLengthParams::default(),
                };
                self.set_min_pin_length(&mut next.settings, &params)?;
            }
            Sub::Other(_) => return Err(StatusCode::InvalidSubcommand),
        }
        self.commit(next)?;
        Ok(Flow::Reply(None))
    }

    /// setMinPINLength (§6.11.4) applied to `s`.
    fn set_min_pin_length(
        &self,
        s: &mut Settings,
        params: &SetMinPinLengthParams,
    ) -> Result<(), StatusCode> {
        let new_min = params.new_min_pin_length.unwrap_or(s.min_pin_length.into());
        if new_min < u64::from(s.min_pin_length) || new_min > MAX_MIN_PIN_LENGTH {
            return Err(StatusCode::PinPolicyViolation);
        }
        if let Some(ids) = &params.min_pin_length_rp_ids {
            if ids.len() > MAX_MIN_PIN_LENGTH_RPIDS {
                return Err(StatusCode::PinPolicyViolation);
            }
        }
        let pin_set = self.store.state().pin_hash.is_some();
        if params.force_change_pin == Some(true) && !pin_set {
            return Err(StatusCode::PinNotSet);
        }
        // Checked above: new_min ≤ 63.
        s.min_pin_length = u8::try_from(new_min).map_err(|_| StatusCode::PinPolicyViolation)?;
        if let Some(ids) = &params.min_pin_length_rp_ids {
            s.min_pin_length_rp_ids = ids.clone();
        }
        // A PIN of unknown length (set before lengths were recorded) counts as the default.
        let current = s.pin_code_points.map_or(DEFAULT_MIN_PIN_LENGTH as u64, u64::from);
        let too_short = current < new_min;
        if pin_set && (params.force_change_pin == Some(true) || too_short) {
            s.force_pin_change = true;
        }
        Ok(())
    }
}
