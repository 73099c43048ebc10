//! `authenticatorClientPIN` request and response bodies (CTAP 2.1 §6.5.5) and the permission
//! bits of PIN/UV auth tokens (§6.5.5.7).
//!
//! Only the wire shapes live here. The cryptography (key agreement, encrypting the PIN,
//! authenticating) is in [`super::pin`], which also has platform-side builders that fill these
//! structs in for each subcommand.

use super::cose::CoseKey;
use super::error::Ctap2Error;
use super::fields::{self, opt, Fields, MapBuilder};
use crate::cbor::Value;
use core::ops::BitOr;

/// A clientPIN subcommand (CTAP 2.1 §6.5.5).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientPinSubcommand {
    /// 0x01.
    GetPinRetries,
    /// 0x02.
    GetKeyAgreement,
    /// 0x03.
    SetPin,
    /// 0x04.
    ChangePin,
    /// 0x05 (`getPinToken`, CTAP 2.0 style, no permissions).
    GetPinToken,
    /// 0x06.
    GetPinUvAuthTokenUsingUvWithPermissions,
    /// 0x07.
    GetUvRetries,
    /// 0x09.
    GetPinUvAuthTokenUsingPinWithPermissions,
    /// Anything else (an authenticator answers INVALID_SUBCOMMAND).
    Other(u64),
}

impl ClientPinSubcommand {
    /// From the wire number.
    pub fn from_u64(n: u64) -> Self {
        use ClientPinSubcommand::*;
        match n {
            1 => GetPinRetries,
            2 => GetKeyAgreement,
            3 => SetPin,
            4 => ChangePin,
            5 => GetPinToken,
            6 => GetPinUvAuthTokenUsingUvWithPermissions,
            7 => GetUvRetries,
            9 => GetPinUvAuthTokenUsingPinWithPermissions,
            n => Other(n),
        }
    }
    /// The wire number.
    pub fn to_u64(self) -> u64 {
        use ClientPinSubcommand::*;
        match self {
            GetPinRetries => 1,
            GetKeyAgreement => 2,
            SetPin => 3,
            ChangePin => 4,
            GetPinToken => 5,
            GetPinUvAuthTokenUsingUvWithPermissions => 6,
            GetUvRetries => 7,
            GetPinUvAuthTokenUsingPinWithPermissions => 9,
            Other(n) => n,
        }
    }
}

/// PIN/UV auth token permissions (CTAP 2.1 §6.5.5.7), a bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Permissions(pub u32);

impl Permissions {
    /// makeCredential (0x01).
    pub const MAKE_CREDENTIAL: Permissions = Permissions(0x01);
    /// getAssertion (0x02).
    pub const GET_ASSERTION: Permissions = Permissions(0x02);
    /// credentialManagement (0x04).
    pub const CREDENTIAL_MANAGEMENT: Permissions = Permissions(0x04);
    /// bioEnrollment (0x08).
    pub const BIO_ENROLLMENT: Permissions = Permissions(0x08);
    /// largeBlobWrite (0x10).
    pub const LARGE_BLOB_WRITE: Permissions = Permissions(0x10);
    /// authenticatorConfiguration (0x20).
    pub const AUTHENTICATOR_CONFIG: Permissions = Permissions(0x20);
    /// persistentCredentialManagementReadOnly, `pcmr` (0x40, CTAP 2.2): a persistent token
    /// that may only enumerate credentials (getCredsMetadata, enumerateRPs…, enumerateCredentials…).
    pub const PERSISTENT_CREDENTIAL_MANAGEMENT_READ_ONLY: Permissions = Permissions(0x40);

    /// Whether every bit of `other` is set here.
    pub fn contains(self, other: Permissions) -> bool {
        self.0 & other.0 == other.0
    }
    /// No bits set (an authenticator rejects a zero permission request).
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl BitOr for Permissions {
    type Output = Permissions;
    fn bitor(self, rhs: Permissions) -> Permissions {
        Permissions(self.0 | rhs.0)
    }
}

/// The clientPIN request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientPinRequest {
    /// 1 or 2; optional for getPINRetries / getUVRetries.
    pub pin_uv_auth_protocol: Option<u64>,
    /// What to do.
    pub sub_command: ClientPinSubcommand,
    /// The platform's key agreement public key.
    pub key_agreement: Option<CoseKey>,
    /// HMAC over the subcommand's inputs (setPIN / changePIN).
    pub pin_uv_auth_param: Option<Vec<u8>>,
    /// The encrypted, padded new PIN.
    pub new_pin_enc: Option<Vec<u8>>,
    /// The encrypted LEFT(SHA-256(PIN), 16).
    pub pin_hash_enc: Option<Vec<u8>>,
    /// Requested token permissions (subcommands 6 and 9).
    pub permissions: Option<Permissions>,
    /// RP ID the token is bound to (subcommands 6 and 9; key 0x0A).
    pub rp_id: Option<String>,
}

impl ClientPinRequest {
    /// A request with only the subcommand (and protocol) set.
    pub fn new(sub_command: ClientPinSubcommand, pin_uv_auth_protocol: Option<u64>) -> Self {
        ClientPinRequest {
            pin_uv_auth_protocol,
            sub_command,
            key_agreement: None,
            pin_uv_auth_param: None,
            new_pin_enc: None,
            pin_hash_enc: None,
            permissions: None,
            rp_id: None,
        }
    }

    /// Encodes the request body.
    pub fn to_cbor(&self) -> Value {
        MapBuilder::new()
            .put_opt(0x01, self.pin_uv_auth_protocol)
            .put(0x02, self.sub_command.to_u64())
            .put_opt(0x03, self.key_agreement.as_ref().map(CoseKey::to_cbor))
            .put_opt(0x04, self.pin_uv_auth_param.clone())
            .put_opt(0x05, self.new_pin_enc.clone())
            .put_opt(0x06, self.pin_hash_enc.clone())
            .put_opt(0x09, self.permissions.map(|p| u64::from(p.0)))
            .put_opt(0x0A, self.rp_id.clone())
            .build()
    }

    /// Decodes the request body.
    pub fn from_cbor(v: &Value) -> Result<Self, Ctap2Error> {
        let f = Fields::new(v, "clientPIN request")?;
        let permissions = opt(f.get(0x09), "permissions", fields::uint)?
            .map(|p| u32::try_from(p).map(Permissions))
            .transpose()
            .map_err(|_| Ctap2Error::field("permissions", "out of range"))?;
        Ok(ClientPinRequest {
            pin_uv_auth_protocol: opt(f.get(0x01), "pinUvAuthProtocol", fields::uint)?,
            sub_command: ClientPinSubcommand::from_u64(fields::uint(
                fields::req(f.get(0x02), "subCommand")?,
                "subCommand",
            )?),
            key_agreement: opt(f.get(0x03), "keyAgreement", |v, _| CoseKey::from_cbor(v))?,
            pin_uv_auth_param: opt(f.get(0x04), "pinUvAuthParam", fields::bytes)?,
            new_pin_enc: opt(f.get(0x05), "newPinEnc", fields::bytes)?,
            pin_hash_enc: opt(f.get(0x06), "pinHashEnc", fields::bytes)?,
            permissions,
            rp_id: opt(f.get(0x0A), "rpId", fields::text)?,
        })
    }
}

/// The clientPIN response body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientPinResponse {
    /// The authenticator's key agreement key (getKeyAgreement).
    pub key_agreement: Option<CoseKey>,
    /// The encrypted PIN/UV auth token (decrypt with the shared secret).
    pub pin_uv_auth_token: Option<Vec<u8>>,
    /// PIN attempts left.
    pub pin_retries: Option<u64>,
    /// Whether a power cycle is needed before the next PIN attempt.
    pub power_cycle_state: Option<bool>,
    /// UV attempts left.
    pub uv_retries: Option<u64>,
}

impl ClientPinResponse {
    /// Encodes the response body.
    pub fn to_cbor(&self) -> Value {
        MapBuilder::new()
            .put_opt(0x01, self.key_agreement.as_ref().map(CoseKey::to_cbor))
            .put_opt(0x02, self.pin_uv_auth_token.clone())
            .put_opt(0x03, self.pin_retries)
            .put_opt(0x04, self.power_cycle_state)
            .put_opt(0x05, self.uv_retries)
            .build()
    }

    /// Decodes the response body. setPIN/changePIN answer with no body at all; pass an empty
    /// map in that case (or do not call this).
    pub fn from_cbor(v: &Value) -> Result<Self, Ctap2Error> {
        let f = Fields::new(v, "clientPIN response")?;
        Ok(ClientPinResponse {
            key_agreement: opt(f.get(0x01), "keyAgreement", |v, _| CoseKey::from_cbor(v))?,
            pin_uv_auth_token: opt(f.get(0x02), "pinUvAuthToken", fields::bytes)?,
            pin_retries: opt(f.get(0x03), "pinRetries", fields::uint)?,
            power_cycle_state: opt(f.get(0x04), "powerCycleState", fields::boolean)?,
            uv_retries: opt(f.get(0x05), "uvRetries", fields::uint)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn subcommands_and_permissions_have_spec_values() {
        for n in 0..12 {
            assert_eq!(ClientPinSubcommand::from_u64(n).to_u64(), n);
        }
        assert_eq!(
            ClientPinSubcommand::from_u64(9),
            ClientPinSubcommand::GetPinUvAuthTokenUsingPinWithPermissions
        );
        let p = Permissions::MAKE_CREDENTIAL | Permissions::GET_ASSERTION;
        assert_eq!(p.0, 0x03);
        assert!(
            p.contains(Permissions::GET_ASSERTION)
                && !p.contains(Permissions::CREDENTIAL_MANAGEMENT)
        );
        assert_eq!(
            [
                Permissions::CREDENTIAL_MANAGEMENT,
                Permissions::BIO_ENROLLMENT,
                Permissions::LARGE_BLOB_WRITE,
                Permissions::AUTHENTICATOR_CONFIG
            ]
            .map(|p| p.0),
            [0x04, 0x08, 0x10, 0x20]
        );
    }

    #[test]
    fn round_trips() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let pk = p256::SecretKey::random(&mut rng).public_key();
        let req = ClientPinRequest {
            key_agreement: Some(CoseKey::key_agreement(pk)),
            pin_hash_enc: Some(vec![1; 32]),
            permissions: Some(Permissions::GET_ASSERTION),
            rp_id: Some("example.com".into()),
            ..ClientPinRequest::new(
                ClientPinSubcommand::GetPinUvAuthTokenUsingPinWithPermissions,
                Some(2),
            )
        };
        assert_eq!(ClientPinRequest::from_cbor(&req.to_cbor()).unwrap(), req);
        let resp = ClientPinResponse {
            key_agreement: Some(CoseKey::key_agreement(pk)),
            pin_retries: Some(8),
            power_cycle_state: Some(false),
            ..Default::default()
        };
        assert_eq!(ClientPinResponse::from_cbor(&resp.to_cbor()).unwrap(), resp);
    }

    #[test]
    fn get_retries_request_is_byte_exact() {
        // {1: 1, 2: 1}
        let r = ClientPinRequest::new(ClientPinSubcommand::GetPinRetries, Some(1));
        assert_eq!(r.to_cbor().to_vec(), [0xa2, 0x01, 0x01, 0x02, 0x01]);
        let bad = Value::int_map([(2, Value::int(1)), (9, Value::Unsigned(1 << 40))]);
        assert_eq!(
            ClientPinRequest::from_cbor(&bad),
            Err(Ctap2Error::field("permissions", "out of range"))
        );
        assert_eq!(
            ClientPinRequest::from_cbor(&Value::int_map([(1, Value::int(1))])),
            Err(Ctap2Error::MissingField("subCommand"))
        );
    }
}
