//! Bio enrollment over a [`Ctap2Client`] (CTAP 2.1 §6.7): sensor info, enumerate, enroll (begin
//! + capture until no samples remain), rename, remove, cancel.
//!
//! The command byte is picked from getInfo: `authenticatorBioEnrollment` (0x09) when the
//! `bioEnroll` option is present, the pre-2.1 preview (0x40) when only
//! `userVerificationMgmtPreview` is; the bodies are the same. A key with neither has no
//! fingerprint sensor: [`CtapError::Unsupported`] saying so. Authenticated subcommands carry
//! `authenticate(token, modality ‖ subCommand ‖ CBOR(params))` with a token holding the `be`
//! permission (see [`super::pin`]).

use cablebridge_protocol::ctap2::bio::{
    BioEnrollmentRequest, BioEnrollmentResponse, BioParams, BioSubcommand, TemplateInfo,
};
use cablebridge_protocol::ctap2::pin::PinUvAuthToken;
use cablebridge_protocol::ctap2::{self, StatusCode};

use super::client::Ctap2Client;
use super::error::{CtapError, Result};
use super::hid_channel::Call;
use crate::hid::HidTransport;

/// getModality + getFingerprintSensorInfo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SensorInfo {
    /// modality (1: fingerprint).
    pub modality: Option<u64>,
    /// fingerprintKind (1: touch, 2: swipe).
    pub fingerprint_kind: Option<u64>,
    /// maxCaptureSamplesRequiredForEnroll.
    pub max_capture_samples: Option<u64>,
    /// maxTemplateFriendlyName (bytes).
    pub max_friendly_name: Option<u64>,
}

/// One captured sample of an enrollment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// lastEnrollSampleStatus (0: good).
    pub status: u64,
    /// remainingSamples.
    pub remaining: u64,
}

/// A real sensor never asks for more than a few dozen samples; a hostile key must not keep us
/// capturing forever.
const MAX_SAMPLES: usize = 64;

impl<T: HidTransport> Ctap2Client<T> {
    /// The bio-enrollment command this key speaks, or `Unsupported`.
    pub fn bio_command(&self) -> Result<ctap2::Command> {
        if self.info().option("bioEnroll").is_some() {
            Ok(ctap2::Command::BioEnrollment)
        } else if self.info().option("userVerificationMgmtPreview").is_some() {
            Ok(ctap2::Command::BioEnrollmentPreview)
        } else {
            Err(CtapError::Unsupported {
                device: self.path().to_owned(),
                what: "this key has no fingerprint sensor (getInfo has no bioEnroll option)"
                    .to_owned(),
            })
        }
    }

    async fn bio(
        &mut self,
        token: Option<&PinUvAuthToken>,
        mut request: BioEnrollmentRequest,
        call: &mut Call<'_>,
    ) -> Result<BioEnrollmentResponse> {
        let command = self.bio_command()?;
        if let Some(token) = token {
            request.pin_uv_auth_protocol = Some(token.protocol().to_u64());
            request.pin_uv_auth_param = Some(token.authenticate(&request.auth_message()));
        }
        match self.command(command, Some(&request.to_cbor()), call).await? {
            None => Ok(BioEnrollmentResponse::default()),
            Some(v) => {
                BioEnrollmentResponse::from_cbor(&v).map_err(|e| self.decode_err(command, e))
            }
        }
    }

    /// getModality and getFingerprintSensorInfo (no token needed).
    pub async fn bio_sensor_info(&mut self, call: &mut Call<'_>) -> Result<SensorInfo> {
        let modality = self.bio(None, BioEnrollmentRequest::get_modality(), call).await?.modality;
        let request =
            BioEnrollmentRequest::fingerprint(BioSubcommand::GetFingerprintSensorInfo, None);
        let r = self.bio(None, request, call).await?;
        Ok(SensorInfo {
            modality: modality.or(r.modality),
            fingerprint_kind: r.fingerprint_kind,
            max_capture_samples: r.max_capture_samples,
            max_friendly_name: r.max_friendly_name,
        })
    }

    /// enumerateEnrollments; a key with none answers INVALID_OPTION, an empty list here.
    pub async fn bio_enrollments(
        &mut self,
        token: &PinUvAuthToken,
        call: &mut Call<'_>,
    ) -> Result<Vec<TemplateInfo>> {
        let request = BioEnrollmentRequest::fingerprint(BioSubcommand::EnumerateEnrollments, None);
        match self.bio(Some(token), request, call).await {
            Err(CtapError::Status { status: StatusCode::InvalidOption, .. }) => Ok(Vec::new()),
            other => Ok(other?.template_infos.unwrap_or_default()),
        }
    }

    /// enrollBegin, then enrollCaptureNextSample until no samples remain (`on_sample` sees each
    /// one, e.g. to print "touch the sensor again"). Returns the template id and the samples.
    /// On any error the enrollment is cancelled on the key (best effort).
    pub async fn bio_enroll(
        &mut self,
        token: &PinUvAuthToken,
        timeout_ms: Option<u64>,
        on_sample: &mut (dyn FnMut(Sample) + Send),
        call: &mut Call<'_>,
    ) -> Result<(Vec<u8>, Vec<Sample>)> {
        let params = BioParams { timeout_ms, ..Default::default() };
        let begin = BioEnrollmentRequest::fingerprint(BioSubcommand::EnrollBegin, Some(params));
        let first = self.bio(Some(token), begin, call).await?;
        let command = self.bio_command()?;
        let Some(template_id) = first.template_id.clone() else {
            return Err(self.decode_err(command, ctap2::Ctap2Error::MissingField("templateId")));
        };
        let mut samples = Vec::new();
        let mut last = sample(&first);
        loop {
            on_sample(last);
            samples.push(last);
            if last.remaining == 0 {
                return Ok((template_id, samples));
            }
            if samples.len() >= MAX_SAMPLES {
                self.bio_cancel(call).await.ok();
                return Err(self.decode_err(
                    command,
                    ctap2::Ctap2Error::InvalidField {
                        field: "remainingSamples",
                        problem: "never reaches zero",
                    },
                ));
            }
            let params = BioParams {
                template_id: Some(template_id.clone()),
                timeout_ms,
                ..Default::default()
            };
            let next = BioEnrollmentRequest::fingerprint(
                BioSubcommand::EnrollCaptureNextSample,
                Some(params),
            );
            match self.bio(Some(token), next, call).await {
                Ok(r) => last = sample(&r),
                Err(e) => {
                    self.bio_cancel(call).await.ok();
                    return Err(e);
                }
            }
        }
    }

    /// cancelCurrentEnrollment.
    pub async fn bio_cancel(&mut self, call: &mut Call<'_>) -> Result<()> {
        let request =
            BioEnrollmentRequest::fingerprint(BioSubcommand::CancelCurrentEnrollment, None);
        self.bio(None, request, call).await.map(|_| ())
    }

    /// setFriendlyName.
    pub async fn bio_rename(
        &mut self,
        token: &PinUvAuthToken,
        template_id: &[u8],
        name: &str,
        call: &mut Call<'_>,
    ) -> Result<()> {
        let params = BioParams {
            template_id: Some(template_id.to_vec()),
            friendly_name: Some(name.to_owned()),
            ..Default::default()
        };
        let request =
            BioEnrollmentRequest::fingerprint(BioSubcommand::SetFriendlyName, Some(params));
        self.bio(Some(token), request, call).await.map(|_| ())
    }

    /// removeEnrollment.
    pub async fn bio_remove(
        &mut self,
        token: &PinUvAuthToken,
        template_id: &[u8],
        call: &mut Call<'_>,
    ) -> Result<()> {
        let params = BioParams { template_id: Some(template_id.to_vec()), ..Default::default() };
        let request =
            BioEnrollmentRequest::fingerprint(BioSubcommand::RemoveEnrollment, Some(params));
        self.bio(Some(token), request, call).await.map(|_| ())
    }
}

fn sample(r: &BioEnrollmentResponse) -> Sample {
    Sample {
        status: r.last_sample_status.unwrap_or(0),
        remaining: r.remaining_samples.unwrap_or(0),
    }
}
