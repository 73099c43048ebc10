//! `authenticatorGetInfo` response (CTAP 2.1 §6.4). The request has no parameters.
//!
//! Every member the 2.1 spec defines up to `remainingDiscoverableCredentials` (0x14) is typed;
//! any other key (newer spec revisions, vendor keys) is kept in [`GetInfo::unknown`] so that a
//! decode → encode round trip loses nothing.

use super::entities::CredentialParameters;
use super::error::Ctap2Error;
use super::fields::{self, Fields, MapBuilder};
use crate::cbor::Value;

mod key {
    pub const VERSIONS: i64 = 0x01;
    pub const EXTENSIONS: i64 = 0x02;
    pub const AAGUID: i64 = 0x03;
    pub const OPTIONS: i64 = 0x04;
    pub const MAX_MSG_SIZE: i64 = 0x05;
    pub const PIN_UV_AUTH_PROTOCOLS: i64 = 0x06;
    pub const MAX_CRED_COUNT_IN_LIST: i64 = 0x07;
    pub const MAX_CRED_ID_LENGTH: i64 = 0x08;
    pub const TRANSPORTS: i64 = 0x09;
    pub const ALGORITHMS: i64 = 0x0A;
    pub const MAX_SERIALIZED_LARGE_BLOB_ARRAY: i64 = 0x0B;
    pub const FORCE_PIN_CHANGE: i64 = 0x0C;
    pub const MIN_PIN_LENGTH: i64 = 0x0D;
    pub const FIRMWARE_VERSION: i64 = 0x0E;
    pub const MAX_CRED_BLOB_LENGTH: i64 = 0x0F;
    pub const MAX_RPIDS_FOR_SET_MIN_PIN_LENGTH: i64 = 0x10;
    pub const PREFERRED_PLATFORM_UV_ATTEMPTS: i64 = 0x11;
    pub const UV_MODALITY: i64 = 0x12;
    pub const CERTIFICATIONS: i64 = 0x13;
    pub const REMAINING_DISCOVERABLE_CREDENTIALS: i64 = 0x14;
    pub const ALL: [i64; 20] = [
        VERSIONS,
        EXTENSIONS,
        AAGUID,
        OPTIONS,
        MAX_MSG_SIZE,
        PIN_UV_AUTH_PROTOCOLS,
        MAX_CRED_COUNT_IN_LIST,
        MAX_CRED_ID_LENGTH,
        TRANSPORTS,
        ALGORITHMS,
        MAX_SERIALIZED_LARGE_BLOB_ARRAY,
        FORCE_PIN_CHANGE,
        MIN_PIN_LENGTH,
        FIRMWARE_VERSION,
        MAX_CRED_BLOB_LENGTH,
        MAX_RPIDS_FOR_SET_MIN_PIN_LENGTH,
        PREFERRED_PLATFORM_UV_ATTEMPTS,
        UV_MODALITY,
        CERTIFICATIONS,
        REMAINING_DISCOVERABLE_CREDENTIALS,
    ];
}

/// The authenticator's self-description.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GetInfo {
    /// `"FIDO_2_0"`, `"FIDO_2_1"`, `"U2F_V2"`, ... (required).
    pub versions: Vec<String>,
    /// Supported extension identifiers.
    pub extensions: Vec<String>,
    /// The authenticator model's AAGUID (required).
    pub aaguid: [u8; 16],
    /// Options such as `rk`, `up`, `uv`, `clientPin`, `pinUvAuthToken`, in wire order.
    pub options: Vec<(String, bool)>,
    /// Maximum message size.
    pub max_msg_size: Option<u64>,
    /// Supported PIN/UV auth protocols, most preferred first.
    pub pin_uv_auth_protocols: Vec<u64>,
    /// Maximum number of credentials in an allow/exclude list.
    pub max_credential_count_in_list: Option<u64>,
    /// Maximum credential ID length.
    pub max_credential_id_length: Option<u64>,
    /// Transports (`"usb"`, `"nfc"`, `"hybrid"`, ...).
    pub transports: Vec<String>,
    /// Supported algorithms, in preference order.
    pub algorithms: Vec<CredentialParameters>,
    /// Maximum serialized large-blob array size.
    pub max_serialized_large_blob_array: Option<u64>,
    /// Whether a PIN change is required before use.
    pub force_pin_change: Option<bool>,
    /// Current minimum PIN length in code points.
    pub min_pin_length: Option<u64>,
    /// Firmware version.
    pub firmware_version: Option<u64>,
    /// Maximum credBlob length.
    pub max_cred_blob_length: Option<u64>,
    /// Maximum number of RP IDs for setMinPINLength.
    pub max_rpids_for_set_min_pin_length: Option<u64>,
    /// Preferred number of platform UV attempts.
    pub preferred_platform_uv_attempts: Option<u64>,
    /// UV modality bit field (FIDO registry).
    pub uv_modality: Option<u64>,
    /// Certifications map, passed through.
    pub certifications: Option<Value>,
    /// Estimated number of additional discoverable credentials.
    pub remaining_discoverable_credentials: Option<u64>,
    /// Keys this type does not know, preserved verbatim.
    pub unknown: Vec<(Value, Value)>,
}

impl GetInfo {
    /// Looks up an option; `None` when the authenticator does not mention it (which has a
    /// per-option default in §6.4, e.g. `up` defaults to true).
    pub fn option(&self, name: &str) -> Option<bool> {
        self.options.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }

    /// Whether `versions` lists `v`.
    pub fn supports_version(&self, v: &str) -> bool {
        self.versions.iter().any(|x| x == v)
    }

    /// Encodes the response body.
    pub fn to_cbor(&self) -> Value {
        let list = |v: &[String]| (!v.is_empty()).then(|| fields::texts(v));
        let options = (!self.options.is_empty()).then(|| {
            Value::Map(
                self.options
                    .iter()
                    .map(|(k, v)| (Value::text(k.clone()), Value::Bool(*v)))
                    .collect(),
            )
        });
        let protocols = (!self.pin_uv_auth_protocols.is_empty()).then(|| {
            Value::Array(self.pin_uv_auth_protocols.iter().map(|p| Value::Unsigned(*p)).collect())
        });
        let algorithms = (!self.algorithms.is_empty())
            .then(|| Value::Array(self.algorithms.iter().map(|a| a.to_cbor()).collect()));
        MapBuilder::new()
            .put(key::VERSIONS, fields::texts(&self.versions))
            .put_opt(key::EXTENSIONS, list(&self.extensions))
            .put(key::AAGUID, self.aaguid.to_vec())
            .put_opt(key::OPTIONS, options)
            .put_opt(key::MAX_MSG_SIZE, self.max_msg_size)
            .put_opt(key::PIN_UV_AUTH_PROTOCOLS, protocols)
            .put_opt(key::MAX_CRED_COUNT_IN_LIST, self.max_credential_count_in_list)
            .put_opt(key::MAX_CRED_ID_LENGTH, self.max_credential_id_length)
            .put_opt(key::TRANSPORTS, list(&self.transports))
            .put_opt(key::ALGORITHMS, algorithms)
            .put_opt(key::MAX_SERIALIZED_LARGE_BLOB_ARRAY, self.max_serialized_large_blob_array)
            .put_opt(key::FORCE_PIN_CHANGE, self.force_pin_change)
            .put_opt(key::MIN_PIN_LENGTH, self.min_pin_length)
            .put_opt(key::FIRMWARE_VERSION, self.firmware_version)
            .put_opt(key::MAX_CRED_BLOB_LENGTH, self.max_cred_blob_length)
            .put_opt(key::MAX_RPIDS_FOR_SET_MIN_PIN_LENGTH, self.max_rpids_for_set_min_pin_length)
            .put_opt(key::PREFERRED_PLATFORM_UV_ATTEMPTS, self.preferred_platform_uv_attempts)
            .put_opt(key::UV_MODALITY, self.uv_modality)
            .put_opt(key::CERTIFICATIONS, self.certifications.clone())
            .put_opt(
                key::REMAINING_DISCOVERABLE_CREDENTIALS,
                self.remaining_discoverable_credentials,
            )
            .extend(&self.unknown)
            .build()
    }

    /// Decodes the response body.
    pub fn from_cbor(v: &Value) -> Result<Self, Ctap2Error> {
        use fields::{opt, uint};
        let f = Fields::new(v, "getInfo response")?;
        let options = match f.get(key::OPTIONS) {
            None => Vec::new(),
            Some(m) => m
                .as_map()
                .ok_or(Ctap2Error::field("options", "not a map"))?
                .iter()
                .map(|(k, v)| Ok((fields::text(k, "options")?, fields::boolean(v, "options")?)))
                .collect::<Result<_, Ctap2Error>>()?,
        };
        let algorithms = match f.get(key::ALGORITHMS) {
            None => Vec::new(),
            Some(a) => fields::array(a, "algorithms")?
                .iter()
                .map(CredentialParameters::from_cbor)
                .collect::<Result<_, _>>()?,
        };
        Ok(GetInfo {
            versions: fields::text_list(
                fields::req(f.get(key::VERSIONS), "versions")?,
                "versions",
            )?,
            extensions: opt(f.get(key::EXTENSIONS), "extensions", fields::text_list)?
                .unwrap_or_default(),
            aaguid: fields::fixed(fields::req(f.get(key::AAGUID), "aaguid")?, "aaguid")?,
            options,
            max_msg_size: opt(f.get(key::MAX_MSG_SIZE), "maxMsgSize", uint)?,
            pin_uv_auth_protocols: opt(
                f.get(key::PIN_UV_AUTH_PROTOCOLS),
                "pinUvAuthProtocols",
                fields::uint_list,
            )?
            .unwrap_or_default(),
            max_credential_count_in_list: opt(
                f.get(key::MAX_CRED_COUNT_IN_LIST),
                "maxCredentialCountInList",
                uint,
            )?,
            max_credential_id_length: opt(
                f.get(key::MAX_CRED_ID_LENGTH),
                "maxCredentialIdLength",
                uint,
            )?,
            transports: opt(f.get(key::TRANSPORTS), "transports", fields::text_list)?
                .unwrap_or_default(),
            algorithms,
            max_serialized_large_blob_array: opt(
                f.get(key::MAX_SERIALIZED_LARGE_BLOB_ARRAY),
                "maxSerializedLargeBlobArray",
                uint,
            )?,
            force_pin_change: opt(f.get(key::FORCE_PIN_CHANGE), "forcePINChange", fields::boolean)?,
            min_pin_length: opt(f.get(key::MIN_PIN_LENGTH), "minPINLength", uint)?,
            firmware_version: opt(f.get(key::FIRMWARE_VERSION), "firmwareVersion", uint)?,
            max_cred_blob_length: opt(f.get(key::MAX_CRED_BLOB_LENGTH), "maxCredBlobLength", uint)?,
            max_rpids_for_set_min_pin_length: opt(
                f.get(key::MAX_RPIDS_FOR_SET_MIN_PIN_LENGTH),
                "maxRPIDsForSetMinPINLength",
                uint,
            )?,
            preferred_platform_uv_attempts: opt(
                f.get(key::PREFERRED_PLATFORM_UV_ATTEMPTS),
                "preferredPlatformUvAttempts",
                uint,
            )?,
            uv_modality: opt(f.get(key::UV_MODALITY), "uvModality", uint)?,
            certifications: opt(f.get(key::CERTIFICATIONS), "certifications", fields::map)?,
            remaining_discoverable_credentials: opt(
                f.get(key::REMAINING_DISCOVERABLE_CREDENTIALS),
                "remainingDiscoverableCredentials",
                uint,
            )?,
            unknown: f.unknown_int(&key::ALL),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctap2::cose::CoseAlgorithm;

    fn sample() -> GetInfo {
        GetInfo {
            versions: vec!["FIDO_2_0".into(), "FIDO_2_1".into()],
            extensions: vec!["credProtect".into(), "hmac-secret".into()],
            aaguid: [0x2f; 16],
            options: vec![("rk".into(), true), ("up".into(), true), ("clientPin".into(), false)],
            max_msg_size: Some(1200),
            pin_uv_auth_protocols: vec![2, 1],
            max_credential_count_in_list: Some(8),
            max_credential_id_length: Some(128),
            transports: vec!["usb".into()],
            algorithms: vec![CredentialParameters::public_key(CoseAlgorithm::Es256)],
            min_pin_length: Some(4),
            firmware_version: Some(0x050403),
            remaining_discoverable_credentials: Some(25),
            unknown: vec![(Value::int(0x42), Value::text("vendor"))],
            ..GetInfo::default()
        }
    }

    #[test]
    fn round_trips_and_keeps_unknown_keys() {
        let info = sample();
        let back = GetInfo::from_cbor(&Value::decode(&info.to_cbor().to_vec()).unwrap()).unwrap();
        assert_eq!(back, info);
        assert_eq!(back.option("rk"), Some(true));
        assert_eq!(back.option("uv"), None);
        assert!(back.supports_version("FIDO_2_1"));
    }

    #[test]
    fn minimal_yubikey_like_body_decodes() {
        // {1: ["U2F_V2", "FIDO_2_0"], 3: h'00..', 4: {"up": true}}
        let body = concat!(
            "a3",
            "01",
            "82",
            "66",
            "5532465f5632",
            "68",
            "4649444f5f325f30",
            "03",
            "50",
            "10000000000000000000000000000000",
            "04",
            "a1",
            "62",
            "7570",
            "f5"
        );
        let info =
            GetInfo::from_cbor(&Value::decode(&hex::decode(body).unwrap()).unwrap()).unwrap();
        assert_eq!(info.versions, vec!["U2F_V2", "FIDO_2_0"]);
        assert_eq!(info.aaguid[0], 0x10);
        assert_eq!(info.option("up"), Some(true));
        assert!(info.pin_uv_auth_protocols.is_empty());
    }

    #[test]
    fn malformed_members_are_named() {
        let bad = Value::int_map([(1, Value::Array(vec![])), (3, Value::bytes(vec![0; 15]))]);
        assert_eq!(GetInfo::from_cbor(&bad), Err(Ctap2Error::field("aaguid", "wrong length")));
        let no_versions = Value::int_map([(3, Value::bytes(vec![0; 16]))]);
        assert_eq!(GetInfo::from_cbor(&no_versions), Err(Ctap2Error::MissingField("versions")));
        let bad_opt = Value::int_map([
            (1, Value::Array(vec![])),
            (3, Value::bytes(vec![0; 16])),
            (4, Value::text_map([("rk", Value::int(1))])),
        ]);
        assert_eq!(
            GetInfo::from_cbor(&bad_opt),
            Err(Ctap2Error::field("options", "not a boolean"))
        );
        let mut info = sample();
        info.max_msg_size = None;
        let mut v = info.to_cbor();
        if let Value::Map(m) = &mut v {
            m.push((Value::int(5), Value::text("big")));
        }
        assert_eq!(
            GetInfo::from_cbor(&v),
            Err(Ctap2Error::field("maxMsgSize", "not an unsigned integer"))
        );
    }
}
