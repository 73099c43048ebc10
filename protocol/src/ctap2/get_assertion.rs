//! `authenticatorGetAssertion` (CTAP 2.1 §6.2) and `authenticatorGetNextAssertion` (§6.3).
//!
//! getNextAssertion has no request body and answers with the same response shape, minus
//! `numberOfCredentials`. Signature checking over the response lives in [`super::verify`].

use super::entities::{descriptor_list, descriptor_list_cbor, CredentialDescriptor, User};
use super::error::Ctap2Error;
use super::fields::{self, opt, Fields, MapBuilder};
use super::make_credential::CommandOptions;
use crate::cbor::Value;

/// The getAssertion request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetAssertionRequest {
    /// The RP ID.
    pub rp_id: String,
    /// SHA-256 of the client data JSON.
    pub client_data_hash: [u8; 32],
    /// Acceptable credentials (empty: omitted, discoverable credentials are used).
    pub allow_list: Vec<CredentialDescriptor>,
    /// Extension inputs, verbatim.
    pub extensions: Option<Value>,
    /// up / uv (rk is invalid here; it is decoded so an authenticator can reject it).
    pub options: CommandOptions,
    /// `authenticate(pinUvAuthToken, clientDataHash)`.
    pub pin_uv_auth_param: Option<Vec<u8>>,
    /// The PIN/UV protocol the param was made with.
    pub pin_uv_auth_protocol: Option<u64>,
}

impl GetAssertionRequest {
    /// Encodes the request body.
    pub fn to_cbor(&self) -> Value {
        MapBuilder::new()
            .put(0x01, self.rp_id.clone())
            .put(0x02, self.client_data_hash.to_vec())
            .put_opt(0x03, descriptor_list_cbor(&self.allow_list))
            .put_opt(0x04, self.extensions.clone())
            .put_opt(0x05, self.options.to_cbor())
            .put_opt(0x06, self.pin_uv_auth_param.clone())
            .put_opt(0x07, self.pin_uv_auth_protocol)
            .build()
    }

    /// Decodes the request body.
    pub fn from_cbor(v: &Value) -> Result<Self, Ctap2Error> {
        let f = Fields::new(v, "getAssertion request")?;
        Ok(GetAssertionRequest {
            rp_id: fields::text(fields::req(f.get(0x01), "rpId")?, "rpId")?,
            client_data_hash: fields::fixed(
                fields::req(f.get(0x02), "clientDataHash")?,
                "clientDataHash",
            )?,
            allow_list: opt(f.get(0x03), "allowList", descriptor_list)?.unwrap_or_default(),
            extensions: opt(f.get(0x04), "extensions", fields::map)?,
            options: opt(f.get(0x05), "options", |v, _| CommandOptions::from_cbor(v))?
                .unwrap_or_default(),
            pin_uv_auth_param: opt(f.get(0x06), "pinUvAuthParam", fields::bytes)?,
            pin_uv_auth_protocol: opt(f.get(0x07), "pinUvAuthProtocol", fields::uint)?,
        })
    }
}

/// The getAssertion / getNextAssertion response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetAssertionResponse {
    /// The credential used. Optional on the wire when the allowList had exactly one entry; a
    /// decoder cannot know that, so it is optional here too.
    pub credential: Option<CredentialDescriptor>,
    /// Authenticator data bytes.
    pub auth_data: Vec<u8>,
    /// DER ECDSA (ES256) or other signature over `authData ‖ clientDataHash`.
    pub signature: Vec<u8>,
    /// The user (discoverable credentials).
    pub user: Option<User>,
    /// Total matching credentials (first response only).
    pub number_of_credentials: Option<u64>,
    /// Whether the user picked the credential on the authenticator.
    pub user_selected: Option<bool>,
    /// The largeBlobKey extension output.
    pub large_blob_key: Option<Vec<u8>>,
    /// Unsigned extension outputs (CTAP 2.2 key 8), e.g. a hybrid phone's `prf` results.
    pub unsigned_extension_outputs: Option<Value>,
}

impl GetAssertionResponse {
    /// Encodes the response body.
    pub fn to_cbor(&self) -> Value {
        MapBuilder::new()
            .put_opt(0x01, self.credential.as_ref().map(CredentialDescriptor::to_cbor))
            .put(0x02, self.auth_data.clone())
            .put(0x03, self.signature.clone())
            .put_opt(0x04, self.user.as_ref().map(User::to_cbor))
            .put_opt(0x05, self.number_of_credentials)
            .put_opt(0x06, self.user_selected)
            .put_opt(0x07, self.large_blob_key.clone())
            .put_opt(0x08, self.unsigned_extension_outputs.clone())
            .build()
    }

    /// Decodes the response body.
    pub fn from_cbor(v: &Value) -> Result<Self, Ctap2Error> {
        let f = Fields::new(v, "getAssertion response")?;
        Ok(GetAssertionResponse {
            credential: opt(f.get(0x01), "credential", |v, _| CredentialDescriptor::from_cbor(v))?,
            auth_data: fields::bytes(fields::req(f.get(0x02), "authData")?, "authData")?,
            signature: fields::bytes(fields::req(f.get(0x03), "signature")?, "signature")?,
            user: opt(f.get(0x04), "user", |v, _| User::from_cbor(v))?,
            number_of_credentials: opt(f.get(0x05), "numberOfCredentials", fields::uint)?,
            user_selected: opt(f.get(0x06), "userSelected", fields::boolean)?,
            large_blob_key: opt(f.get(0x07), "largeBlobKey", fields::bytes)?,
            unsigned_extension_outputs: opt(f.get(0x08), "unsignedExtensionOutputs", fields::map)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_and_response_round_trip() {
        let r = GetAssertionRequest {
            rp_id: "example.com".into(),
            client_data_hash: [3; 32],
            allow_list: vec![CredentialDescriptor::public_key(vec![1; 16])],
            extensions: None,
            options: CommandOptions { rk: None, up: Some(false), uv: None },
            pin_uv_auth_param: Some(vec![5; 16]),
            pin_uv_auth_protocol: Some(1),
        };
        assert_eq!(GetAssertionRequest::from_cbor(&r.to_cbor()).unwrap(), r);
        let resp = GetAssertionResponse {
            credential: Some(CredentialDescriptor::public_key(vec![1; 16])),
            auth_data: vec![0; 37],
            signature: vec![0x30, 0x06, 2, 1, 1, 2, 1, 1],
            user: Some(User::with_id(vec![4])),
            number_of_credentials: Some(2),
            user_selected: None,
            large_blob_key: Some(vec![9; 32]),
            unsigned_extension_outputs: None,
        };
        assert_eq!(GetAssertionResponse::from_cbor(&resp.to_cbor()).unwrap(), resp);
    }

    #[test]
    fn errors_name_the_field() {
        let v = Value::int_map([(1, Value::text("x")), (2, Value::text("not bytes"))]);
        assert_eq!(
            GetAssertionRequest::from_cbor(&v),
            Err(Ctap2Error::field("clientDataHash", "not a byte string"))
        );
        let v = Value::int_map([
            (1, Value::text("x")),
            (2, Value::bytes(vec![0; 32])),
            (3, Value::Array(vec![Value::int(1)])),
        ]);
        assert_eq!(
            GetAssertionRequest::from_cbor(&v),
            Err(Ctap2Error::field("credential descriptor", "not a map"))
        );
        let resp = Value::int_map([(2, Value::bytes(vec![0; 37]))]);
        assert_eq!(
            GetAssertionResponse::from_cbor(&resp),
            Err(Ctap2Error::MissingField("signature"))
        );
    }
}
