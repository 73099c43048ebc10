//! The WebAuthn dictionaries that CTAP2 messages carry (WebAuthn §5.4 and CTAP 2.1 §6.1/§6.2):
//! relying party, user, credential parameters and credential descriptors.
//!
//! These are text-keyed maps on the wire. Encoding always goes through the canonical encoder,
//! which is why `{"alg": -7, "type": "public-key"}` comes out with `alg` first whatever the
//! construction order — a classic interop bug with strict authenticators.

use super::cose::CoseAlgorithm;
use super::error::Ctap2Error;
use super::fields::{self, Fields, MapBuilder};
use crate::cbor::Value;

/// The only credential type WebAuthn defines.
pub const PUBLIC_KEY: &str = "public-key";

/// `PublicKeyCredentialRpEntity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelyingParty {
    /// The RP ID (a domain).
    pub id: String,
    /// Human-readable name.
    pub name: Option<String>,
}

impl RelyingParty {
    /// Encodes as `{"id", "name"?}`.
    pub fn to_cbor(&self) -> Value {
        MapBuilder::new()
            .put_text("id", self.id.clone())
            .put_text_opt("name", self.name.clone())
            .build()
    }
    /// Decodes; `id` is required.
    pub fn from_cbor(v: &Value) -> Result<Self, Ctap2Error> {
        let f = Fields::new(v, "rp")?;
        Ok(RelyingParty {
            id: fields::text(fields::req(f.get_text("id"), "rp.id")?, "rp.id")?,
            name: fields::opt(f.get_text("name"), "rp.name", fields::text)?,
        })
    }
}

/// `PublicKeyCredentialUserEntity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user handle (at most 64 bytes per WebAuthn, not enforced on decode).
    pub id: Vec<u8>,
    /// Account name.
    pub name: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
}

impl User {
    /// A user with only an id (what getAssertion returns for non-discoverable use).
    pub fn with_id(id: impl Into<Vec<u8>>) -> Self {
        User { id: id.into(), name: None, display_name: None }
    }
    /// Encodes as `{"id", "name"?, "displayName"?}`.
    pub fn to_cbor(&self) -> Value {
        MapBuilder::new()
            .put_text("id", self.id.clone())
            .put_text_opt("name", self.name.clone())
            .put_text_opt("displayName", self.display_name.clone())
            .build()
    }
    /// Decodes; `id` is required.
    pub fn from_cbor(v: &Value) -> Result<Self, Ctap2Error> {
        let f = Fields::new(v, "user")?;
        Ok(User {
            id: fields::bytes(fields::req(f.get_text("id"), "user.id")?, "user.id")?,
            name: fields::opt(f.get_text("name"), "user.name", fields::text)?,
            display_name: fields::opt(f.get_text("displayName"), "user.displayName", fields::text)?,
        })
    }
}

/// `PublicKeyCredentialParameters`: one acceptable credential algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialParameters {
    /// Normally `"public-key"`; other types must be ignored by authenticators, so they are kept.
    pub cred_type: String,
    /// The COSE algorithm.
    pub alg: CoseAlgorithm,
}

impl CredentialParameters {
    /// `{"type": "public-key", "alg": alg}`.
    pub fn public_key(alg: CoseAlgorithm) -> Self {
        CredentialParameters { cred_type: PUBLIC_KEY.to_owned(), alg }
    }
    /// Encodes (canonically `alg` before `type`).
    pub fn to_cbor(&self) -> Value {
        MapBuilder::new()
            .put_text("type", self.cred_type.clone())
            .put_text("alg", Value::int(self.alg.to_i64()))
            .build()
    }
    /// Decodes; both members are required.
    pub fn from_cbor(v: &Value) -> Result<Self, Ctap2Error> {
        let f = Fields::new(v, "pubKeyCredParams[]")?;
        let t = fields::req(f.get_text("type"), "pubKeyCredParams[].type")?;
        let a = fields::req(f.get_text("alg"), "pubKeyCredParams[].alg")?;
        Ok(CredentialParameters {
            cred_type: fields::text(t, "pubKeyCredParams[].type")?,
            alg: CoseAlgorithm::from_i64(fields::int(a, "pubKeyCredParams[].alg")?),
        })
    }
}

/// `PublicKeyCredentialDescriptor`: names one credential (allowList, excludeList, responses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialDescriptor {
    /// Normally `"public-key"`.
    pub cred_type: String,
    /// The credential ID.
    pub id: Vec<u8>,
    /// Transport hints, passed through.
    pub transports: Option<Vec<String>>,
}

impl CredentialDescriptor {
    /// A public-key descriptor without transports.
    pub fn public_key(id: impl Into<Vec<u8>>) -> Self {
        CredentialDescriptor { cred_type: PUBLIC_KEY.to_owned(), id: id.into(), transports: None }
    }
    /// Encodes as `{"id", "type", "transports"?}`.
    pub fn to_cbor(&self) -> Value {
        MapBuilder::new()
            .put_text("type", self.cred_type.clone())
            .put_text("id", self.id.clone())
            .put_text_opt("transports", self.transports.as_deref().map(fields::texts))
            .build()
    }
    /// Decodes; `type` and `id` are required.
    pub fn from_cbor(v: &Value) -> Result<Self, Ctap2Error> {
        let f = Fields::new(v, "credential descriptor")?;
        Ok(CredentialDescriptor {
            cred_type: fields::text(
                fields::req(f.get_text("type"), "credential.type")?,
                "credential.type",
            )?,
            id: fields::bytes(fields::req(f.get_text("id"), "credential.id")?, "credential.id")?,
            transports: fields::opt(
                f.get_text("transports"),
                "credential.transports",
                fields::text_list,
            )?,
        })
    }
}

/// Decodes an array of descriptors (allowList / excludeList).
pub(crate) fn descriptor_list(
    v: &Value,
    name: &'static str,
) -> Result<Vec<CredentialDescriptor>, Ctap2Error> {
    fields::array(v, name)?.iter().map(CredentialDescriptor::from_cbor).collect()
}

/// Encodes a descriptor list, or nothing when it is empty (an absent list means "no list").
pub(crate) fn descriptor_list_cbor(list: &[CredentialDescriptor]) -> Option<Value> {
    (!list.is_empty()).then(|| Value::Array(list.iter().map(|d| d.to_cbor()).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_round_trip() {
        let rp = RelyingParty { id: "example.com".into(), name: Some("Example".into()) };
        assert_eq!(RelyingParty::from_cbor(&rp.to_cbor()).unwrap(), rp);
        let u =
            User { id: vec![1, 2, 3], name: Some("a@b".into()), display_name: Some("A".into()) };
        assert_eq!(User::from_cbor(&u.to_cbor()).unwrap(), u);
        let d = CredentialDescriptor {
            transports: Some(vec!["usb".into(), "hybrid".into()]),
            ..CredentialDescriptor::public_key(vec![9; 16])
        };
        assert_eq!(CredentialDescriptor::from_cbor(&d.to_cbor()).unwrap(), d);
        let p = CredentialParameters::public_key(CoseAlgorithm::Rs256);
        assert_eq!(CredentialParameters::from_cbor(&p.to_cbor()).unwrap(), p);
    }

    #[test]
    fn cred_params_encode_alg_before_type() {
        let p = CredentialParameters::public_key(CoseAlgorithm::Es256);
        // {"alg": -7, "type": "public-key"}
        assert_eq!(
            hex::encode(p.to_cbor().to_vec()),
            "a263616c672664747970656a7075626c69632d6b6579"
        );
    }

    #[test]
    fn errors_name_the_field() {
        let bad = Value::text_map([("id", Value::text("not bytes"))]);
        assert_eq!(User::from_cbor(&bad), Err(Ctap2Error::field("user.id", "not a byte string")));
        let no_id = Value::text_map([("name", Value::text("x"))]);
        assert_eq!(RelyingParty::from_cbor(&no_id), Err(Ctap2Error::MissingField("rp.id")));
        let unknown = Value::text_map([("id", Value::text("x")), ("icon", Value::text("y"))]);
        assert!(RelyingParty::from_cbor(&unknown).is_ok());
    }
}
