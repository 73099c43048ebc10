//! `authenticatorBioEnrollment` (0x09, CTAP 2.1 §6.7; the same body under the 0x40 preview
//! command of `FIDO_2_1_PRE` keys, getInfo option `userVerificationMgmtPreview`).
//!
//! Wire shapes only. [`BioEnrollmentRequest::auth_message`] gives the bytes `pinUvAuthParam` is
//! computed over: `modality ‖ subCommand ‖ CBOR(subCommandParams)?`, with a token holding the
//! `be` permission ([`super::Permissions::BIO_ENROLLMENT`]); cancelCurrentEnrollment,
//! getFingerprintSensorInfo and getModality carry none.

use super::error::Ctap2Error;
use super::fields::{self, opt, Fields, MapBuilder};
use crate::cbor::Value;

/// The only modality CTAP 2.1 defines: fingerprint (0x01).
pub const MODALITY_FINGERPRINT: u64 = 0x01;
/// `lastEnrollSampleStatus` CTAP2_ENROLL_FEEDBACK_FP_GOOD.
pub const SAMPLE_GOOD: u64 = 0x00;

/// A bioEnrollment subcommand (§6.7).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BioSubcommand {
    /// 0x01 enrollBegin.
    EnrollBegin,
    /// 0x02 enrollCaptureNextSample.
    EnrollCaptureNextSample,
    /// 0x03 cancelCurrentEnrollment.
    CancelCurrentEnrollment,
    /// 0x04 enumerateEnrollments.
    EnumerateEnrollments,
    /// 0x05 setFriendlyName.
    SetFriendlyName,
    /// 0x06 removeEnrollment.
    RemoveEnrollment,
    /// 0x07 getFingerprintSensorInfo.
    GetFingerprintSensorInfo,
    /// Anything else.
    Other(u8),
}

impl BioSubcommand {
    /// From the wire number.
    pub fn from_u8(n: u8) -> Self {
        use BioSubcommand::*;
        match n {
            1 => EnrollBegin,
            2 => EnrollCaptureNextSample,
            3 => CancelCurrentEnrollment,
            4 => EnumerateEnrollments,
            5 => SetFriendlyName,
            6 => RemoveEnrollment,
            7 => GetFingerprintSensorInfo,
            n => Other(n),
        }
    }
    /// The wire number.
    pub fn to_u8(self) -> u8 {
        use BioSubcommand::*;
        match self {
            EnrollBegin => 1,
            EnrollCaptureNextSample => 2,
            CancelCurrentEnrollment => 3,
            EnumerateEnrollments => 4,
            SetFriendlyName => 5,
            RemoveEnrollment => 6,
            GetFingerprintSensorInfo => 7,
            Other(n) => n,
        }
    }
    /// Whether the spec requires a pinUvAuthParam for this subcommand.
    pub fn needs_auth(self) -> bool {
        !matches!(
            self,
            BioSubcommand::CancelCurrentEnrollment | BioSubcommand::GetFingerprintSensorInfo
        )
    }
}

/// `subCommandParams`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BioParams {
    /// 0x01 templateId.
    pub template_id: Option<Vec<u8>>,
    /// 0x02 templateFriendlyName.
    pub friendly_name: Option<String>,
    /// 0x03 timeoutMilliseconds.
    pub timeout_ms: Option<u64>,
    /// Other keys, kept so the authenticated bytes survive a decode/encode.
    pub unknown: Vec<(Value, Value)>,
}

impl BioParams {
    /// Encodes the params map.
    pub fn to_cbor(&self) -> Value {
        MapBuilder::new()
            .put_opt(0x01, self.template_id.clone())
            .put_opt(0x02, self.friendly_name.clone())
            .put_opt(0x03, self.timeout_ms)
            .extend(&self.unknown)
            .build()
    }
    /// Decodes the params map.
    pub fn from_cbor(v: &Value) -> Result<Self, Ctap2Error> {
        let f = Fields::new(v, "subCommandParams")?;
        Ok(BioParams {
            template_id: opt(f.get(0x01), "templateId", fields::bytes)?,
            friendly_name: opt(f.get(0x02), "templateFriendlyName", fields::text)?,
            timeout_ms: opt(f.get(0x03), "timeoutMilliseconds", fields::uint)?,
            unknown: f.unknown_int(&[0x01, 0x02, 0x03]),
        })
    }
}

/// The bioEnrollment request body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BioEnrollmentRequest {
    /// 0x01 modality (fingerprint).
    pub modality: Option<u64>,
    /// 0x02 subCommand (absent with getModality).
    pub sub_command: Option<BioSubcommand>,
    /// 0x03 subCommandParams.
    pub params: Option<BioParams>,
    /// 0x04 pinUvAuthProtocol.
    pub pin_uv_auth_protocol: Option<u64>,
    /// 0x05 pinUvAuthParam.
    pub pin_uv_auth_param: Option<Vec<u8>>,
    /// 0x06 getModality.
    pub get_modality: Option<bool>,
}

impl BioEnrollmentRequest {
    /// A fingerprint subcommand without authentication.
    pub fn fingerprint(sub: BioSubcommand, params: Option<BioParams>) -> Self {
        BioEnrollmentRequest {
            modality: Some(MODALITY_FINGERPRINT),
            sub_command: Some(sub),
            params,
            ..Default::default()
        }
    }

    /// The getModality request (`{6: true}`).
    pub fn get_modality() -> Self {
        BioEnrollmentRequest { get_modality: Some(true), ..Default::default() }
    }

    /// `modality ‖ subCommand ‖ CBOR(subCommandParams)?` (§6.7.4 ff.).
    pub fn auth_message(&self) -> Vec<u8> {
        let modality = self.modality.and_then(|m| u8::try_from(m).ok()).unwrap_or(0);
        let mut m = vec![modality, self.sub_command.map_or(0, BioSubcommand::to_u8)];
        if let Some(p) = &self.params {
            p.to_cbor().encode_into(&mut m);
        }
        m
    }

    /// Encodes the request body.
    pub fn to_cbor(&self) -> Value {
        MapBuilder::new()
            .put_opt(0x01, self.modality)
            .put_opt(0x02, self.sub_command.map(|s| u64::from(s.to_u8())))
            .put_opt(0x03, self.params.as_ref().map(BioParams::to_cbor))
            .put_opt(0x04, self.pin_uv_auth_protocol)
            .put_opt(0x05, self.pin_uv_auth_param.clone())
            .put_opt(0x06, self.get_modality)
            .build()
    }

    /// Decodes the request body.
    pub fn from_cbor(v: &Value) -> Result<Self, Ctap2Error> {
        let f = Fields::new(v, "bioEnrollment request")?;
        let sub = opt(f.get(0x02), "subCommand", fields::uint)?
            .map(|s| u8::try_from(s).map(BioSubcommand::from_u8))
            .transpose()
            .map_err(|_| Ctap2Error::field("subCommand", "out of range"))?;
        Ok(BioEnrollmentRequest {
            modality: opt(f.get(0x01), "modality", fields::uint)?,
            sub_command: sub,
            params: opt(f.get(0x03), "subCommandParams", |v, _| BioParams::from_cbor(v))?,
            pin_uv_auth_protocol: opt(f.get(0x04), "pinUvAuthProtocol", fields::uint)?,
            pin_uv_auth_param: opt(f.get(0x05), "pinUvAuthParam", fields::bytes)?,
            get_modality: opt(f.get(0x06), "getModality", fields::boolean)?,
        })
    }
}

/// One enrolled template (enumerateEnrollments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateInfo {
    /// templateId.
    pub template_id: Vec<u8>,
    /// templateFriendlyName.
    pub friendly_name: Option<String>,
}

/// The bioEnrollment response body (members depend on the subcommand).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BioEnrollmentResponse {
    /// 0x01 modality.
    pub modality: Option<u64>,
    /// 0x02 fingerprintKind (1 touch, 2 swipe).
    pub fingerprint_kind: Option<u64>,
    /// 0x03 maxCaptureSamplesRequiredForEnroll.
    pub max_capture_samples: Option<u64>,
    /// 0x04 templateId.
    pub template_id: Option<Vec<u8>>,
    /// 0x05 lastEnrollSampleStatus.
    pub last_sample_status: Option<u64>,
    /// 0x06 remainingSamples.
    pub remaining_samples: Option<u64>,
    /// 0x07 templateInfos.
    pub template_infos: Option<Vec<TemplateInfo>>,
    /// 0x08 maxTemplateFriendlyName.
    pub max_friendly_name: Option<u64>,
}

impl BioEnrollmentResponse {
    /// Encodes the response body.
    pub fn to_cbor(&self) -> Value {
        let infos = self.template_infos.as_ref().map(|v| {
            Value::Array(
                v.iter()
                    .map(|t| {
                        MapBuilder::new()
                            .put(0x01, t.template_id.clone())
                            .put_opt(0x02, t.friendly_name.clone())
                            .build()
                    })
                    .collect(),
            )
        });
        MapBuilder::new()
            .put_opt(0x01, self.modality)
            .put_opt(0x02, self.fingerprint_kind)
            .put_opt(0x03, self.max_capture_samples)
            .put_opt(0x04, self.template_id.clone())
            .put_opt(0x05, self.last_sample_status)
            .put_opt(0x06, self.remaining_samples)
            .put_opt(0x07, infos)
            .put_opt(0x08, self.max_friendly_name)
            .build()
    }

    /// Decodes the response body.
    pub fn from_cbor(v: &Value) -> Result<Self, Ctap2Error> {
        use fields::uint;
        let f = Fields::new(v, "bioEnrollment response")?;
        let infos = match f.get(0x07) {
            None => None,
            Some(a) => Some(
                fields::array(a, "templateInfos")?
                    .iter()
                    .map(|t| {
                        let t = Fields::new(t, "templateInfo")?;
                        Ok(TemplateInfo {
                            template_id: fields::bytes(
                                fields::req(t.get(0x01), "templateId")?,
                                "templateId",
                            )?,
                            friendly_name: opt(t.get(0x02), "templateFriendlyName", fields::text)?,
                        })
                    })
                    .collect::<Result<Vec<_>, Ctap2Error>>()?,
            ),
        };
        Ok(BioEnrollmentResponse {
            modality: opt(f.get(0x01), "modality", uint)?,
            fingerprint_kind: opt(f.get(0x02), "fingerprintKind", uint)?,
            max_capture_samples: opt(f.get(0x03), "maxCaptureSamplesRequiredForEnroll", uint)?,
            template_id: opt(f.get(0x04), "templateId", fields::bytes)?,
            last_sample_status: opt(f.get(0x05), "lastEnrollSampleStatus", uint)?,
            remaining_samples: opt(f.get(0x06), "remainingSamples", uint)?,
            template_infos: infos,
            max_friendly_name: opt(f.get(0x08), "maxTemplateFriendlyName", uint)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_message_is_modality_subcommand_params() {
        let list = BioEnrollmentRequest::fingerprint(BioSubcommand::EnumerateEnrollments, None);
        assert_eq!(list.auth_message(), [0x01, 0x04]);
        let rename = BioEnrollmentRequest::fingerprint(
            BioSubcommand::SetFriendlyName,
            Some(BioParams {
                template_id: Some(vec![0xAB]),
                friendly_name: Some("a".into()),
                ..Default::default()
            }),
        );
        // 01 05 ‖ {1: h'AB', 2: "a"}
        assert_eq!(hex::encode(rename.auth_message()), "0105a20141ab026161");
        assert!(!BioSubcommand::GetFingerprintSensorInfo.needs_auth());
        assert!(BioSubcommand::EnrollBegin.needs_auth());
        for n in 0..=u8::MAX {
            assert_eq!(BioSubcommand::from_u8(n).to_u8(), n);
        }
    }

    #[test]
    fn round_trips_and_names_bad_fields() {
        let mut req = BioEnrollmentRequest::fingerprint(
            BioSubcommand::EnrollBegin,
            Some(BioParams { timeout_ms: Some(5000), ..Default::default() }),
        );
        req.pin_uv_auth_protocol = Some(2);
        req.pin_uv_auth_param = Some(vec![7; 32]);
        let wire = req.to_cbor().to_vec();
        assert_eq!(BioEnrollmentRequest::from_cbor(&Value::decode(&wire).unwrap()).unwrap(), req);
        assert_eq!(
            BioEnrollmentRequest::get_modality().to_cbor().to_vec(),
            [0xa1, 0x06, 0xf5],
            "{{6: true}}"
        );
        let resp = BioEnrollmentResponse {
            template_infos: Some(vec![TemplateInfo {
                template_id: vec![1, 2],
                friendly_name: Some("left".into()),
            }]),
            remaining_samples: Some(0),
            ..Default::default()
        };
        assert_eq!(BioEnrollmentResponse::from_cbor(&resp.to_cbor()).unwrap(), resp);
        let bad = Value::int_map([(7, Value::Array(vec![Value::int_map([])]))]);
        assert_eq!(
            BioEnrollmentResponse::from_cbor(&bad),
            Err(Ctap2Error::MissingField("templateId"))
        );
    }
}
