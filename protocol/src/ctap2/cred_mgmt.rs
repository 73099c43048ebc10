//! `authenticatorCredentialManagement` (CTAP 2.1 §6.8; same body under the 0x41 preview command).
//!
//! Besides the wire shapes, [`CredentialManagementRequest::auth_message`] gives the exact bytes
//! `pinUvAuthParam` is computed over: `subCommand (one byte) ‖ CBOR(subCommandParams)` for the
//! subcommands that take parameters, the subcommand byte alone for getCredsMetadata and
//! enumerateRPsBegin (§6.8.2, §6.8.3, §6.8.4, §6.8.5, §6.8.6). The "get next" subcommands carry
//! no pinUvAuthParam at all. CTAP2 requires canonical CBOR, so re-encoding decoded parameters
//! reproduces the bytes the platform authenticated; unknown parameter keys are kept so that
//! stays true for them too.

use super::cose::CoseKey;
use super::entities::{CredentialDescriptor, RelyingParty, User};
use super::error::Ctap2Error;
use super::fields::{self, opt, Fields, MapBuilder};
use crate::cbor::Value;

/// A credentialManagement subcommand.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredMgmtSubcommand {
    /// 0x01.
    GetCredsMetadata,
    /// 0x02.
    EnumerateRpsBegin,
    /// 0x03.
    EnumerateRpsGetNextRp,
    /// 0x04.
    EnumerateCredentialsBegin,
    /// 0x05.
    EnumerateCredentialsGetNextCredential,
    /// 0x06.
    DeleteCredential,
    /// 0x07.
    UpdateUserInformation,
    /// Anything else.
    Other(u8),
}

impl CredMgmtSubcommand {
    /// From the wire number.
    pub fn from_u8(n: u8) -> Self {
        use CredMgmtSubcommand::*;
        match n {
            1 => GetCredsMetadata,
            2 => EnumerateRpsBegin,
            3 => EnumerateRpsGetNextRp,
            4 => EnumerateCredentialsBegin,
            5 => EnumerateCredentialsGetNextCredential,
            6 => DeleteCredential,
            7 => UpdateUserInformation,
            n => Other(n),
        }
    }
    /// The wire number.
    pub fn to_u8(self) -> u8 {
        use CredMgmtSubcommand::*;
        match self {
            GetCredsMetadata => 1,
            EnumerateRpsBegin => 2,
            EnumerateRpsGetNextRp => 3,
            EnumerateCredentialsBegin => 4,
            EnumerateCredentialsGetNextCredential => 5,
            DeleteCredential => 6,
            UpdateUserInformation => 7,
            Other(n) => n,
        }
    }
    /// Whether the spec requires a pinUvAuthParam for this subcommand.
    pub fn needs_auth(self) -> bool {
        !matches!(
            self,
            CredMgmtSubcommand::EnumerateRpsGetNextRp
                | CredMgmtSubcommand::EnumerateCredentialsGetNextCredential
        )
    }
}

/// `subCommandParams`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CredMgmtParams {
    /// 0x01: SHA-256 of the RP ID (enumerateCredentialsBegin).
    pub rp_id_hash: Option<[u8; 32]>,
    /// 0x02: the credential (deleteCredential, updateUserInformation).
    pub credential_id: Option<CredentialDescriptor>,
    /// 0x03: the new user entity (updateUserInformation).
    pub user: Option<User>,
    /// Other keys, kept so the authenticated bytes survive a decode/encode.
    pub unknown: Vec<(Value, Value)>,
}

impl CredMgmtParams {
    /// Encodes the params map.
    pub fn to_cbor(&self) -> Value {
        MapBuilder::new()
            .put_opt(0x01, self.rp_id_hash.map(|h| h.to_vec()))
            .put_opt(0x02, self.credential_id.as_ref().map(CredentialDescriptor::to_cbor))
            .put_opt(0x03, self.user.as_ref().map(User::to_cbor))
            .extend(&self.unknown)
            .build()
    }
    /// Decodes the params map.
    pub fn from_cbor(v: &Value) -> Result<Self, Ctap2Error> {
        let f = Fields::new(v, "subCommandParams")?;
        Ok(CredMgmtParams {
            rp_id_hash: opt(f.get(0x01), "subCommandParams.rpIDHash", fields::fixed)?,
            credential_id: opt(f.get(0x02), "subCommandParams.credentialID", |v, _| {
                CredentialDescriptor::from_cbor(v)
            })?,
            user: opt(f.get(0x03), "subCommandParams.user", |v, _| User::from_cbor(v))?,
            unknown: f.unknown_int(&[0x01, 0x02, 0x03]),
        })
    }
}

/// The credentialManagement request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialManagementRequest {
    /// What to do.
    pub sub_command: CredMgmtSubcommand,
    /// Parameters, for subcommands 4, 6, 7.
    pub params: Option<CredMgmtParams>,
    /// 1 or 2.
    pub pin_uv_auth_protocol: Option<u64>,
    /// `authenticate(token, auth_message())`.
    pub pin_uv_auth_param: Option<Vec<u8>>,
}

impl CredentialManagementRequest {
    /// A request without authentication (fill `pin_uv_auth_*` in with
    /// [`super::pin::PinUvAuthToken::authenticate`] over [`Self::auth_message`]).
    pub fn new(sub_command: CredMgmtSubcommand, params: Option<CredMgmtParams>) -> Self {
        CredentialManagementRequest {
            sub_command,
            params,
            pin_uv_auth_protocol: None,
            pin_uv_auth_param: None,
        }
    }

    /// The bytes `pinUvAuthParam` is computed over: `subCommand ‖ CBOR(subCommandParams)?`.
    pub fn auth_message(&self) -> Vec<u8> {
        let mut m = vec![self.sub_command.to_u8()];
        if let Some(p) = &self.params {
            p.to_cbor().encode_into(&mut m);
        }
        m
    }

    /// Encodes the request body.
    pub fn to_cbor(&self) -> Value {
        MapBuilder::new()
            .put(0x01, u64::from(self.sub_command.to_u8()))
            .put_opt(0x02, self.params.as_ref().map(CredMgmtParams::to_cbor))
            .put_opt(0x03, self.pin_uv_auth_protocol)
            .put_opt(0x04, self.pin_uv_auth_param.clone())
            .build()
    }

    /// Decodes the request body.
    pub fn from_cbor(v: &Value) -> Result<Self, Ctap2Error> {
        let f = Fields::new(v, "credentialManagement request")?;
        let sub = fields::uint(fields::req(f.get(0x01), "subCommand")?, "subCommand")?;
        let sub = u8::try_from(sub).map_err(|_| Ctap2Error::field("subCommand", "out of range"))?;
        Ok(CredentialManagementRequest {
            sub_command: CredMgmtSubcommand::from_u8(sub),
            params: opt(f.get(0x02), "subCommandParams", |v, _| CredMgmtParams::from_cbor(v))?,
            pin_uv_auth_protocol: opt(f.get(0x03), "pinUvAuthProtocol", fields::uint)?,
            pin_uv_auth_param: opt(f.get(0x04), "pinUvAuthParam", fields::bytes)?,
        })
    }
}

/// The credentialManagement response body (members depend on the subcommand).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CredentialManagementResponse {
    /// 0x01 existingResidentCredentialsCount.
    pub existing_resident_credentials_count: Option<u64>,
    /// 0x02 maxPossibleRemainingResidentCredentialsCount.
    pub max_possible_remaining_resident_credentials_count: Option<u64>,
    /// 0x03 rp.
    pub rp: Option<RelyingParty>,
    /// 0x04 rpIDHash.
    pub rp_id_hash: Option<[u8; 32]>,
    /// 0x05 totalRPs.
    pub total_rps: Option<u64>,
    /// 0x06 user.
    pub user: Option<User>,
    /// 0x07 credentialID.
    pub credential_id: Option<CredentialDescriptor>,
    /// 0x08 publicKey.
    pub public_key: Option<CoseKey>,
    /// 0x09 totalCredentials.
    pub total_credentials: Option<u64>,
    /// 0x0A credProtect.
    pub cred_protect: Option<u64>,
    /// 0x0B largeBlobKey.
    pub large_blob_key: Option<Vec<u8>>,
}

impl CredentialManagementResponse {
    /// Encodes the response body.
    pub fn to_cbor(&self) -> Value {
        MapBuilder::new()
            .put_opt(0x01, self.existing_resident_credentials_count)
            .put_opt(0x02, self.max_possible_remaining_resident_credentials_count)
            .put_opt(0x03, self.rp.as_ref().map(RelyingParty::to_cbor))
            .put_opt(0x04, self.rp_id_hash.map(|h| h.to_vec()))
            .put_opt(0x05, self.total_rps)
            .put_opt(0x06, self.user.as_ref().map(User::to_cbor))
            .put_opt(0x07, self.credential_id.as_ref().map(CredentialDescriptor::to_cbor))
            .put_opt(0x08, self.public_key.as_ref().map(CoseKey::to_cbor))
            .put_opt(0x09, self.total_credentials)
            .put_opt(0x0A, self.cred_protect)
            .put_opt(0x0B, self.large_blob_key.clone())
            .build()
    }

    /// Decodes the response body.
    pub fn from_cbor(v: &Value) -> Result<Self, Ctap2Error> {
        use fields::uint;
        let f = Fields::new(v, "credentialManagement response")?;
        Ok(CredentialManagementResponse {
            existing_resident_credentials_count: opt(
                f.get(0x01),
                "existingResidentCredentialsCount",
                uint,
            )?,
            max_possible_remaining_resident_credentials_count: opt(
                f.get(0x02),
                "maxPossibleRemainingResidentCredentialsCount",
                uint,
            )?,
            rp: opt(f.get(0x03), "rp", |v, _| RelyingParty::from_cbor(v))?,
            rp_id_hash: opt(f.get(0x04), "rpIDHash", fields::fixed)?,
            total_rps: opt(f.get(0x05), "totalRPs", uint)?,
            user: opt(f.get(0x06), "user", |v, _| User::from_cbor(v))?,
            credential_id: opt(f.get(0x07), "credentialID", |v, _| {
                CredentialDescriptor::from_cbor(v)
            })?,
            public_key: opt(f.get(0x08), "publicKey", |v, _| CoseKey::from_cbor(v))?,
            total_credentials: opt(f.get(0x09), "totalCredentials", uint)?,
            cred_protect: opt(f.get(0x0A), "credProtect", uint)?,
            large_blob_key: opt(f.get(0x0B), "largeBlobKey", fields::bytes)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_message_is_subcommand_then_params() {
        let meta = CredentialManagementRequest::new(CredMgmtSubcommand::GetCredsMetadata, None);
        assert_eq!(meta.auth_message(), [0x01]);
        let rps = CredentialManagementRequest::new(CredMgmtSubcommand::EnumerateRpsBegin, None);
        assert_eq!(rps.auth_message(), [0x02]);
        let params = CredMgmtParams { rp_id_hash: Some([0xAB; 32]), ..Default::default() };
        let creds = CredentialManagementRequest::new(
            CredMgmtSubcommand::EnumerateCredentialsBegin,
            Some(params),
        );
        // 0x04 ‖ {1: h'AB..'}: a1 01 58 20 ab*32
        let mut want = vec![0x04, 0xa1, 0x01, 0x58, 0x20];
        want.extend([0xAB; 32]);
        assert_eq!(creds.auth_message(), want);
        let del = CredentialManagementRequest::new(
            CredMgmtSubcommand::DeleteCredential,
            Some(CredMgmtParams {
                credential_id: Some(CredentialDescriptor::public_key(vec![1, 2])),
                ..Default::default()
            }),
        );
        // 0x06 ‖ {2: {"id": h'0102', "type": "public-key"}}
        assert_eq!(
            hex::encode(del.auth_message()),
            "06a102a26269644201026474797065".to_owned() + "6a7075626c69632d6b6579"
        );
        assert!(!CredMgmtSubcommand::EnumerateRpsGetNextRp.needs_auth());
        assert!(CredMgmtSubcommand::UpdateUserInformation.needs_auth());
    }

    #[test]
    fn round_trips_and_auth_message_survives_decode() {
        let req = CredentialManagementRequest {
            sub_command: CredMgmtSubcommand::UpdateUserInformation,
            params: Some(CredMgmtParams {
                credential_id: Some(CredentialDescriptor::public_key(vec![5; 16])),
                user: Some(User { id: vec![1], name: Some("n".into()), display_name: None }),
                unknown: vec![(Value::int(9), Value::int(1))],
                ..Default::default()
            }),
            pin_uv_auth_protocol: Some(2),
            pin_uv_auth_param: Some(vec![0; 32]),
        };
        let wire = req.to_cbor().to_vec();
        let back = CredentialManagementRequest::from_cbor(&Value::decode(&wire).unwrap()).unwrap();
        assert_eq!(back, req);
        assert_eq!(back.auth_message(), req.auth_message());
        let resp = CredentialManagementResponse {
            rp: Some(RelyingParty { id: "example.com".into(), name: None }),
            rp_id_hash: Some([1; 32]),
            total_rps: Some(3),
            ..Default::default()
        };
        assert_eq!(CredentialManagementResponse::from_cbor(&resp.to_cbor()).unwrap(), resp);
        let bad = Value::int_map([(4, Value::bytes(vec![0; 31]))]);
        assert_eq!(
            CredentialManagementResponse::from_cbor(&bad),
            Err(Ctap2Error::field("rpIDHash", "wrong length"))
        );
    }
}
