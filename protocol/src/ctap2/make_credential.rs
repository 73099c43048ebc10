//! `authenticatorMakeCredential` request and response (CTAP 2.1 §6.1).
//!
//! The request is what a platform sends to register a credential; the response carries the
//! attestation object's three members under integer keys (`fmt` 1, `authData` 2, `attStmt` 3).
//! `pubKeyCredParams` keeps its order (it is the RP's preference order). Parsing the authData
//! bytes is [`super::auth_data`]'s job; this module only moves them.

use super::entities::{
    descriptor_list, descriptor_list_cbor, CredentialDescriptor, CredentialParameters,
    RelyingParty, User,
};
use super::error::Ctap2Error;
use super::fields::{self, opt, Fields, MapBuilder};
use crate::cbor::Value;

/// The `options` map of makeCredential / getAssertion. `None` means "not sent" (the
/// authenticator applies the §6.1/§6.2 default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommandOptions {
    /// Discoverable (resident) credential. Invalid in getAssertion.
    pub rk: Option<bool>,
    /// User presence.
    pub up: Option<bool>,
    /// User verification (built-in UV; not PIN).
    pub uv: Option<bool>,
}

impl CommandOptions {
    /// True when no option is set (the map is then omitted).
    pub fn is_empty(&self) -> bool {
        self.rk.is_none() && self.up.is_none() && self.uv.is_none()
    }
    pub(crate) fn to_cbor(self) -> Option<Value> {
        (!self.is_empty()).then(|| {
            MapBuilder::new()
                .put_text_opt("rk", self.rk)
                .put_text_opt("up", self.up)
                .put_text_opt("uv", self.uv)
                .build()
        })
    }
    pub(crate) fn from_cbor(v: &Value) -> Result<Self, Ctap2Error> {
        let f = Fields::new(v, "options")?;
        Ok(CommandOptions {
            rk: opt(f.get_text("rk"), "options.rk", fields::boolean)?,
            up: opt(f.get_text("up"), "options.up", fields::boolean)?,
            uv: opt(f.get_text("uv"), "options.uv", fields::boolean)?,
        })
    }
}

/// The makeCredential request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MakeCredentialRequest {
    /// SHA-256 of the client data JSON.
    pub client_data_hash: [u8; 32],
    /// The relying party.
    pub rp: RelyingParty,
    /// The user account.
    pub user: User,
    /// Acceptable algorithms in the RP's order of preference.
    pub pub_key_cred_params: Vec<CredentialParameters>,
    /// Credentials that must not already exist on the authenticator (empty: omitted).
    pub exclude_list: Vec<CredentialDescriptor>,
    /// Extension inputs, a map passed through verbatim.
    pub extensions: Option<Value>,
    /// rk / up / uv.
    pub options: CommandOptions,
    /// `authenticate(pinUvAuthToken, clientDataHash)`.
    pub pin_uv_auth_param: Option<Vec<u8>>,
    /// The PIN/UV protocol the param was made with.
    pub pin_uv_auth_protocol: Option<u64>,
    /// Enterprise attestation request (1 or 2).
    pub enterprise_attestation: Option<u64>,
}

impl MakeCredentialRequest {
    /// Encodes the request body.
    pub fn to_cbor(&self) -> Value {
        MapBuilder::new()
            .put(0x01, self.client_data_hash.to_vec())
            .put(0x02, self.rp.to_cbor())
            .put(0x03, self.user.to_cbor())
            .put(0x04, Value::Array(self.pub_key_cred_params.iter().map(|p| p.to_cbor()).collect()))
            .put_opt(0x05, descriptor_list_cbor(&self.exclude_list))
            .put_opt(0x06, self.extensions.clone())
            .put_opt(0x07, self.options.to_cbor())
            .put_opt(0x08, self.pin_uv_auth_param.clone())
            .put_opt(0x09, self.pin_uv_auth_protocol)
            .put_opt(0x0A, self.enterprise_attestation)
            .build()
    }

    /// Decodes the request body.
    pub fn from_cbor(v: &Value) -> Result<Self, Ctap2Error> {
        let f = Fields::new(v, "makeCredential request")?;
        let params =
            fields::array(fields::req(f.get(0x04), "pubKeyCredParams")?, "pubKeyCredParams")?
                .iter()
                .map(CredentialParameters::from_cbor)
                .collect::<Result<_, _>>()?;
        Ok(MakeCredentialRequest {
            client_data_hash: fields::fixed(
                fields::req(f.get(0x01), "clientDataHash")?,
                "clientDataHash",
            )?,
            rp: RelyingParty::from_cbor(fields::req(f.get(0x02), "rp")?)?,
            user: User::from_cbor(fields::req(f.get(0x03), "user")?)?,
            pub_key_cred_params: params,
            exclude_list: opt(f.get(0x05), "excludeList", descriptor_list)?.unwrap_or_default(),
            extensions: opt(f.get(0x06), "extensions", fields::map)?,
            options: opt(f.get(0x07), "options", |v, _| CommandOptions::from_cbor(v))?
                .unwrap_or_default(),
            pin_uv_auth_param: opt(f.get(0x08), "pinUvAuthParam", fields::bytes)?,
            pin_uv_auth_protocol: opt(f.get(0x09), "pinUvAuthProtocol", fields::uint)?,
            enterprise_attestation: opt(f.get(0x0A), "enterpriseAttestation", fields::uint)?,
        })
    }
}

/// The makeCredential response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MakeCredentialResponse {
    /// Attestation statement format (`"none"`, `"packed"`, ...).
    pub fmt: String,
    /// Authenticator data bytes (parse with [`super::auth_data::AuthenticatorData::parse`]).
    pub auth_data: Vec<u8>,
    /// The attestation statement map, verbatim.
    pub att_stmt: Value,
    /// Whether enterprise attestation was returned.
    pub ep_att: Option<bool>,
    /// The largeBlobKey extension output.
    pub large_blob_key: Option<Vec<u8>>,
    /// Unsigned extension outputs (CTAP 2.2 key 6), e.g. a hybrid phone's `prf` results.
    pub unsigned_extension_outputs: Option<Value>,
}

impl MakeCredentialResponse {
    /// Encodes the response body.
    pub fn to_cbor(&self) -> Value {
        MapBuilder::new()
            .put(0x01, self.fmt.clone())
            .put(0x02, self.auth_data.clone())
            .put(0x03, self.att_stmt.clone())
            .put_opt(0x04, self.ep_att)
            .put_opt(0x05, self.large_blob_key.clone())
            .put_opt(0x06, self.unsigned_extension_outputs.clone())
            .build()
    }

    /// Decodes the response body.
    pub fn from_cbor(v: &Value) -> Result<Self, Ctap2Error> {
        let f = Fields::new(v, "makeCredential response")?;
        Ok(MakeCredentialResponse {
            fmt: fields::text(fields::req(f.get(0x01), "fmt")?, "fmt")?,
            auth_data: fields::bytes(fields::req(f.get(0x02), "authData")?, "authData")?,
            att_stmt: fields::map(fields::req(f.get(0x03), "attStmt")?, "attStmt")?,
            ep_att: opt(f.get(0x04), "epAtt", fields::boolean)?,
            large_blob_key: opt(f.get(0x05), "largeBlobKey", fields::bytes)?,
            unsigned_extension_outputs: opt(f.get(0x06), "unsignedExtensionOutputs", fields::map)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctap2::cose::CoseAlgorithm;

    pub(crate) fn sample() -> MakeCredentialRequest {
        MakeCredentialRequest {
            client_data_hash: [0x11; 32],
            rp: RelyingParty { id: "example.com".into(), name: Some("Example".into()) },
            user: User { id: vec![1], name: Some("u".into()), display_name: None },
            pub_key_cred_params: vec![
                CredentialParameters::public_key(CoseAlgorithm::Es256),
                CredentialParameters::public_key(CoseAlgorithm::Rs256),
            ],
            exclude_list: vec![CredentialDescriptor::public_key(vec![7; 4])],
            extensions: Some(Value::text_map([("credProtect", Value::int(2))])),
            options: CommandOptions { rk: Some(true), up: None, uv: Some(false) },
            pin_uv_auth_param: Some(vec![0xAA; 32]),
            pin_uv_auth_protocol: Some(2),
            enterprise_attestation: None,
        }
    }

    #[test]
    fn request_and_response_round_trip() {
        let r = sample();
        let back = MakeCredentialRequest::from_cbor(&Value::decode(&r.to_cbor().to_vec()).unwrap());
        assert_eq!(back.unwrap(), r);
        let resp = MakeCredentialResponse {
            fmt: "none".into(),
            auth_data: vec![0; 37],
            att_stmt: Value::Map(vec![]),
            ep_att: Some(false),
            large_blob_key: None,
            unsigned_extension_outputs: None,
        };
        assert_eq!(MakeCredentialResponse::from_cbor(&resp.to_cbor()).unwrap(), resp);
    }

    #[test]
    fn param_order_is_preserved() {
        let r = sample();
        let back = MakeCredentialRequest::from_cbor(&r.to_cbor()).unwrap();
        let algs: Vec<_> = back.pub_key_cred_params.iter().map(|p| p.alg).collect();
        assert_eq!(algs, [CoseAlgorithm::Es256, CoseAlgorithm::Rs256]);
    }

    #[test]
    fn errors_name_the_field() {
        let mut v = sample().to_cbor();
        if let Value::Map(m) = &mut v {
            m.retain(|(k, _)| *k != Value::int(1));
            m.push((Value::int(1), Value::bytes(vec![0; 31])));
        }
        assert_eq!(
            MakeCredentialRequest::from_cbor(&v),
            Err(Ctap2Error::field("clientDataHash", "wrong length"))
        );
        let resp = Value::int_map([(1, Value::text("none")), (2, Value::bytes(vec![]))]);
        assert_eq!(
            MakeCredentialResponse::from_cbor(&resp),
            Err(Ctap2Error::MissingField("attStmt"))
        );
    }
}
