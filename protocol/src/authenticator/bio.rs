//! authenticatorBioEnrollment (0x09, and the 0x40 preview command; CTAP 2.1 §6.7) on a
//! simulated fingerprint sensor ([`super::Config::bio`]).
//!
//! The sensor "captures" every sample at once and always well
//! (`lastEnrollSampleStatus` = CTAP2_ENROLL_FEEDBACK_FP_GOOD): enrollBegin captures the first
//! of [`SAMPLES_PER_ENROLLMENT`] samples, each enrollCaptureNextSample one more, and the last
//! one stores the template in [`super::Settings::enrollments`] (persisted). Once a finger is
//! enrolled the authenticator has built-in UV: getInfo reports `uv: true`, ceremonies without a
//! pinUvAuthParam are user-verified, and getPinUvAuthTokenUsingUvWithPermissions issues tokens
//! (built-in UV is the presence hook, as on the virtual phone).
//!
//! Authenticated subcommands need `authenticate(token, modality ‖ subCommand ‖ params)` with a
//! token holding `be`; cancelCurrentEnrollment, getFingerprintSensorInfo and getModality need
//! none. The enrollment in progress is volatile (a power cycle drops it).

use super::auth_config::Enrollment;
use super::{decoded, Authenticator, CmdResult, CredentialStore, Ctx, Flow};
use crate::cbor::Value;
use crate::ctap2::bio::{
    BioEnrollmentRequest, BioEnrollmentResponse as Resp, BioSubcommand as Sub, TemplateInfo,
    MODALITY_FINGERPRINT, SAMPLE_GOOD,
};
use crate::ctap2::{Permissions, StatusCode};

/// Samples one enrollment takes (getFingerprintSensorInfo maxCaptureSamplesRequiredForEnroll).
pub const SAMPLES_PER_ENROLLMENT: u64 = 4;
/// The most fingers the simulated sensor stores (FP_DATABASE_FULL beyond).
pub const MAX_ENROLLMENTS: usize = 5;
/// maxTemplateFriendlyName, in bytes.
pub const MAX_FRIENDLY_NAME: usize = 64;
/// fingerprintKind: touch sensor.
const TOUCH_SENSOR: u64 = 1;

/// An enrollment in progress.
pub(super) struct Enrolling {
    template_id: Vec<u8>,
    remaining: u64,
}

impl<S: CredentialStore> Authenticator<S> {
    /// A finger is enrolled on the simulated sensor.
    pub(super) fn bio_enrolled(&self) -> bool {
        self.config.bio && !self.store.state().settings.enrollments.is_empty()
    }

    pub(super) fn bio_enrollment(&mut self, p: &Value, ctx: &mut Ctx<'_>) -> CmdResult {
        let req = BioEnrollmentRequest::from_cbor(p);
        let req = decoded(req, "subCommand", StatusCode::InvalidSubcommand)?;
        if req.get_modality == Some(true) {
            let r = Resp { modality: Some(MODALITY_FINGERPRINT), ..Resp::default() };
            return Ok(Flow::Reply(Some(r.to_cbor())));
        }
        let sub = req.sub_command.ok_or(StatusCode::MissingParameter)?;
        if req.modality != Some(MODALITY_FINGERPRINT) {
            return Err(StatusCode::InvalidParameter);
        }
        if sub.needs_auth() {
            let param = req.pin_uv_auth_param.as_deref().ok_or(StatusCode::PuatRequired)?;
            // The params as received (canonical re-encoding of the raw map).
            let mut message = vec![MODALITY_FINGERPRINT as u8, sub.to_u8()];
            if let Some(raw) = p.get(3) {
                raw.encode_into(&mut message);
            }
            let proto = req.pin_uv_auth_protocol;
            let be = Permissions::BIO_ENROLLMENT;
            self.verify_pin_uv_auth(param, proto, &message, be, None, ctx.now)?;
        }
        let params = req.params.unwrap_or_default();
        let enrollments = &self.store.state().settings.enrollments;
        let reply = match sub {
            Sub::GetFingerprintSensorInfo => Resp {
                modality: Some(MODALITY_FINGERPRINT),
                fingerprint_kind: Some(TOUCH_SENSOR),
                max_capture_samples: Some(SAMPLES_PER_ENROLLMENT),
                max_friendly_name: Some(MAX_FRIENDLY_NAME as u64),
                ..Resp::default()
            },
            Sub::EnrollBegin => {
                if enrollments.len() >= MAX_ENROLLMENTS {
                    return Err(StatusCode::FpDatabaseFull);
                }
                let template_id = loop {
                    let mut id = vec![0u8; 2];
                    ctx.rng.fill_bytes(&mut id);
                    if !enrollments.iter().any(|e| e.template_id == id) {
                        break id;
                    }
                };
                self.volatile.enrolling = Some(Enrolling {
                    template_id: template_id.clone(),
                    remaining: SAMPLES_PER_ENROLLMENT,
                });
                let remaining = self.capture_sample()?;
                Resp {
                    template_id: Some(template_id),
                    last_sample_status: Some(SAMPLE_GOOD),
                    remaining_samples: Some(remaining),
                    ..Resp::default()
                }
            }
            Sub::EnrollCaptureNextSample => {
                let current = self.volatile.enrolling.as_ref().map(|e| &e.template_id);
                if current.is_none() || params.template_id.as_ref() != current {
                    return Err(StatusCode::InvalidParameter);
                }
                let remaining = self.capture_sample()?;
                Resp {
                    last_sample_status: Some(SAMPLE_GOOD),
                    remaining_samples: Some(remaining),
                    ..Resp::default()
                }
            }
            Sub::CancelCurrentEnrollment => {
                self.volatile.enrolling = None;
                return Ok(Flow::Reply(None));
            }
            Sub::EnumerateEnrollments => {
                if enrollments.is_empty() {
                    return Err(StatusCode::InvalidOption);
                }
                let infos = enrollments
                    .iter()
                    .map(|e| TemplateInfo {
                        template_id: e.template_id.clone(),
                        friendly_name: e.friendly_name.clone(),
                    })
                    .collect();
                Resp { template_infos: Some(infos), ..Resp::default() }
            }
            Sub::SetFriendlyName | Sub::RemoveEnrollment => {
                let id = params.template_id.ok_or(StatusCode::MissingParameter)?;
                let mut next = self.store.state().clone();
                let list = &mut next.settings.enrollments;
                let pos = list
                    .iter()
                    .position(|e| e.template_id == id)
                    .ok_or(StatusCode::InvalidOption)?;
                if sub == Sub::RemoveEnrollment {
                    list.remove(pos);
                } else {
                    let name = params.friendly_name.ok_or(StatusCode::MissingParameter)?;
                    if name.len() > MAX_FRIENDLY_NAME {
                        return Err(StatusCode::InvalidLength);
                    }
                    if let Some(e) = list.get_mut(pos) {
                        e.friendly_name = Some(name);
                    }
                }
                self.commit(next)?;
                return Ok(Flow::Reply(None));
            }
            _ => return Err(StatusCode::InvalidSubcommand),
        };
        Ok(Flow::Reply(Some(reply.to_cbor())))
    }

    /// One (instant, good) sample of the enrollment in progress; the last one stores the
    /// template. Returns the samples still needed.
    fn capture_sample(&mut self) -> Result<u64, StatusCode> {
        let Some(enrolling) = self.volatile.enrolling.as_mut() else {
            return Err(StatusCode::InvalidParameter);
        };
        let remaining = enrolling.remaining.saturating_sub(1);
        enrolling.remaining = remaining;
        if remaining == 0 {
            let template_id = enrolling.template_id.clone();
            self.volatile.enrolling = None;
            let mut next = self.store.state().clone();
            next.settings.enrollments.push(Enrollment { template_id, friendly_name: None });
            self.commit(next)?;
        }
        Ok(remaining)
    }
}
