//! What the relying party asks for (WebAuthn `PublicKeyCredentialCreationOptions` /
//! `...RequestOptions`, reduced to what a CLI exposes), and their mapping onto CTAP2 requests
//! given the authenticator's `getInfo` (CTAP 2.1 §6.1.1 / §6.2.1 platform rules):
//!
//! * `rk` is sent only when a discoverable credential is wanted and the authenticator can store
//!   one (`residentKey: preferred` degrades silently, `required` fails).
//! * `uv` is sent only when the authenticator has built-in user verification (`options.uv` true);
//!   `uv: required` without it fails unless the authenticator has a PIN, in which case the
//!   transport must add a `pinUvAuthParam` (USB does; hybrid never sends PINs, phones have UV).
//! * `up` is never sent: its default (true) is what a ceremony wants, and makeCredential must
//!   not carry it.

use cablebridge_protocol::cbor::Value as Cbor;
use cablebridge_protocol::ctap2::{
    CommandOptions, CoseAlgorithm, CredentialDescriptor, CredentialParameters, GetAssertionRequest,
    GetInfo, MakeCredentialRequest, RelyingParty, User,
};
use rand::RngCore;

use super::{
    CeremonyError, CeremonyErrorKind, CeremonyStage, ClientData, ClientDataType, ExtensionInputs,
};

/// Algorithms offered, in preference order: ES256 first (every authenticator has it), then RS256
/// (Windows Hello) and EdDSA.
pub const DEFAULT_ALGORITHMS: [CoseAlgorithm; 3] =
    [CoseAlgorithm::Es256, CoseAlgorithm::Rs256, CoseAlgorithm::EdDsa];

/// WebAuthn's three-valued requirement (`residentKey`, `userVerification`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Requirement {
    /// Fail if the authenticator cannot.
    Required,
    /// Use it when the authenticator can.
    #[default]
    Preferred,
    /// Do not ask for it.
    Discouraged,
}

impl Requirement {
    /// `"required"`, `"preferred"`, `"discouraged"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Requirement::Required => "required",
            Requirement::Preferred => "preferred",
            Requirement::Discouraged => "discouraged",
        }
    }
}

/// The user account a credential is created for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// The user handle (1–64 bytes; random unless given).
    pub id: Vec<u8>,
    /// Account name (e.g. an e-mail address).
    pub name: String,
    /// Display name.
    pub display_name: String,
}

/// Options of a registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterOptions {
    /// Relying party id (a domain).
    pub rp_id: String,
    /// Explicit origin; `None` ⇒ `https://<rp_id>`.
    pub origin: Option<String>,
    /// Challenge bytes.
    pub challenge: Vec<u8>,
    /// The user.
    pub user: UserInfo,
    /// Discoverable credential wanted?
    pub resident_key: Requirement,
    /// User verification wanted?
    pub uv: Requirement,
    /// Algorithms in preference order.
    pub algorithms: Vec<CoseAlgorithm>,
    /// Credentials that must not be created again (`excludeCredentials`).
    pub exclude_credentials: Vec<Vec<u8>>,
    /// Ask for the key's minimum PIN length (CTAP 2.1 `minPinLength` extension); the key
    /// answers only RP ids on its `minPinLengthRPIDs` list.
    pub min_pin_length: bool,
    /// makeCredential `enterpriseAttestation`: 1 vendor-facilitated, 2 platform-managed.
    pub enterprise_attestation: Option<u64>,
    /// Client extensions (`prf`, `credProtect`, `credBlob`, `largeBlob`); boxed to keep
    /// requests small when none are asked for.
    pub extensions: Box<ExtensionInputs>,
}

/// Options of an authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticateOptions {
    /// Relying party id.
    pub rp_id: String,
    /// Explicit origin; `None` ⇒ `https://<rp_id>`.
    pub origin: Option<String>,
    /// Challenge bytes.
    pub challenge: Vec<u8>,
    /// Acceptable credential ids; empty ⇒ discoverable credentials.
    pub allow_credentials: Vec<Vec<u8>>,
    /// User verification wanted?
    pub uv: Requirement,
    /// Which of several discoverable credentials to use, 1-based in the key's order
    /// (getAssertion, then getNextAssertion; most recent first on most keys); `None` ⇒ the
    /// first, as a platform without an account picker does. Every one is listed in the
    /// result's `credentials` either way.
    pub pick: Option<usize>,
    /// Client extensions (`prf`, `getCredBlob`, `largeBlob`); boxed like
    /// [`RegisterOptions::extensions`].
    pub extensions: Box<ExtensionInputs>,
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b
}

fn default_origin(rp_id: &str, origin: Option<&String>) -> String {
    origin.cloned().unwrap_or_else(|| format!("https://{rp_id}"))
}

fn check_common(rp_id: &str, challenge: &[u8]) -> Result<(), CeremonyError> {
    let usage = |m: String| Err(CeremonyError::usage(CeremonyStage::Setup, m));
    if rp_id.is_empty() || rp_id.contains(['/', ':', ' ']) {
        return usage(format!("--rp-id {rp_id:?} is not a domain name"));
    }
    if challenge.len() < 16 {
        return usage(format!(
            "the challenge is {} bytes; WebAuthn requires at least 16",
            challenge.len()
        ));
    }
    Ok(())
}

/// `uv` option for a request, or an error when UV is required and impossible.
fn uv_option(uv: Requirement, info: &GetInfo) -> Result<Option<bool>, CeremonyError> {
    let built_in = info.option("uv") == Some(true);
    match uv {
        Requirement::Discouraged => Ok(None),
        _ if built_in => Ok(Some(true)),
        Requirement::Required if info.option("clientPin") == Some(true) => Ok(None),
        Requirement::Required => Err(CeremonyError::new(
            CeremonyStage::PostHandshake,
            CeremonyErrorKind::Authenticator,
            "user verification is required but the authenticator has neither built-in UV nor a PIN",
        )),
        Requirement::Preferred => Ok(None),
    }
}

impl RegisterOptions {
    /// Options with a random 32-byte challenge and a random 16-byte user id; resident key and
    /// UV preferred; the default algorithms.
    pub fn new(rp_id: impl Into<String>, user_name: impl Into<String>) -> Self {
        let name = user_name.into();
        RegisterOptions {
            rp_id: rp_id.into(),
            origin: None,
            challenge: random_bytes(32),
            user: UserInfo { id: random_bytes(16), display_name: name.clone(), name },
            resident_key: Requirement::Preferred,
            uv: Requirement::Preferred,
            algorithms: DEFAULT_ALGORITHMS.to_vec(),
            exclude_credentials: Vec::new(),
            min_pin_length: false,
            enterprise_attestation: None,
            extensions: Box::default(),
        }
    }

    /// The origin used in client data.
    pub fn origin(&self) -> String {
        default_origin(&self.rp_id, self.origin.as_ref())
    }

    /// Checks the options (exit 2 on failure).
    pub fn validate(&self) -> Result<(), CeremonyError> {
        check_common(&self.rp_id, &self.challenge)?;
        if !matches!(self.enterprise_attestation, None | Some(1 | 2)) {
            return Err(CeremonyError::usage(
                CeremonyStage::Setup,
                "enterprise attestation is 1 (vendor-facilitated) or 2 (platform-managed)",
            ));
        }
        if self.user.id.is_empty() || self.user.id.len() > 64 {
            return Err(CeremonyError::usage(
                CeremonyStage::Setup,
                format!("the user id is {} bytes; WebAuthn allows 1 to 64", self.user.id.len()),
            ));
        }
        if self.user.name.is_empty() {
            return Err(CeremonyError::usage(CeremonyStage::Setup, "the user name is empty"));
        }
        if self.algorithms.is_empty() {
            return Err(CeremonyError::usage(CeremonyStage::Setup, "no algorithms offered"));
        }
        Ok(())
    }

    /// The client data of this registration.
    pub fn client_data(&self) -> ClientData {
        ClientData::new(ClientDataType::Create, &self.challenge, &self.origin())
    }

    /// The makeCredential request for an authenticator described by `info`.
    pub fn to_request(
        &self,
        info: &GetInfo,
        client_data: &ClientData,
    ) -> Result<MakeCredentialRequest, CeremonyError> {
        let can_rk = info.option("rk") == Some(true);
        let rk =
            match self.resident_key {
                Requirement::Required if !can_rk => return Err(CeremonyError::new(
                    CeremonyStage::PostHandshake,
                    CeremonyErrorKind::Authenticator,
                    "a discoverable credential is required but the authenticator cannot store one \
                     (getInfo option rk is not true)",
                )),
                Requirement::Required => Some(true),
                Requirement::Preferred if can_rk => Some(true),
                _ => None,
            };
        let mut request = MakeCredentialRequest {
            client_data_hash: *client_data.hash(),
            rp: RelyingParty { id: self.rp_id.clone(), name: Some(self.rp_id.clone()) },
            user: User {
                id: self.user.id.clone(),
                name: Some(self.user.name.clone()),
                display_name: Some(self.user.display_name.clone()),
            },
            pub_key_cred_params: self
                .algorithms
                .iter()
                .map(|a| CredentialParameters::public_key(*a))
                .collect(),
            exclude_list: self
                .exclude_credentials
                .iter()
                .map(|id| CredentialDescriptor::public_key(id.clone()))
                .collect(),
            extensions: self.extensions.make_credential_map(info),
            options: CommandOptions { rk, up: None, uv: uv_option(self.uv, info)? },
            pin_uv_auth_param: None,
            pin_uv_auth_protocol: None,
            enterprise_attestation: None,
        };
        self.apply_config_requests(info, &mut request)?;
        Ok(request)
    }

    /// `minPinLength` and `enterpriseAttestation` (authenticatorConfig's makeCredential side):
    /// refused up front when the key does not advertise them.
    fn apply_config_requests(
        &self,
        info: &GetInfo,
        request: &mut MakeCredentialRequest,
    ) -> Result<(), CeremonyError> {
        let refuse = |what: &str| {
            CeremonyError::new(
                CeremonyStage::PostHandshake,
                CeremonyErrorKind::Authenticator,
                format!("{what} was requested but the authenticator does not support it"),
            )
        };
        if self.min_pin_length {
            if !info.extensions.iter().any(|e| e == "minPinLength") {
                return Err(refuse("the minPinLength extension"));
            }
            let entry = (Cbor::text("minPinLength"), Cbor::Bool(true));
            match &mut request.extensions {
                Some(Cbor::Map(m)) => m.push(entry),
                other => *other = Some(Cbor::Map(vec![entry])),
            }
        }
        if let Some(kind) = self.enterprise_attestation {
            if info.option("ep") != Some(true) {
                return Err(refuse(
                    "enterprise attestation (getInfo `ep` is not true; `cablebridge config \
                     enable-ep` turns it on)",
                ));
            }
            request.enterprise_attestation = Some(kind);
        }
        Ok(())
    }
}

impl AuthenticateOptions {
    /// Options with a random 32-byte challenge, discoverable credentials, UV preferred.
    pub fn new(rp_id: impl Into<String>) -> Self {
        AuthenticateOptions {
            rp_id: rp_id.into(),
            origin: None,
            challenge: random_bytes(32),
            allow_credentials: Vec::new(),
            uv: Requirement::Preferred,
            pick: None,
            extensions: Box::default(),
        }
    }

    /// The origin used in client data.
    pub fn origin(&self) -> String {
        default_origin(&self.rp_id, self.origin.as_ref())
    }

    /// Checks the options (exit 2 on failure).
    pub fn validate(&self) -> Result<(), CeremonyError> {
        check_common(&self.rp_id, &self.challenge)?;
        if self.allow_credentials.iter().any(Vec::is_empty) {
            return Err(CeremonyError::usage(
                CeremonyStage::Setup,
                "an allowed credential id is empty",
            ));
        }
        if self.pick == Some(0) {
            return Err(CeremonyError::usage(
                CeremonyStage::Setup,
                "--pick counts from 1 (the first credential the key lists)",
            ));
        }
        Ok(())
    }

    /// The client data of this authentication.
    pub fn client_data(&self) -> ClientData {
        ClientData::new(ClientDataType::Get, &self.challenge, &self.origin())
    }

    /// The getAssertion request for an authenticator described by `info`.
    pub fn to_request(
        &self,
        info: &GetInfo,
        client_data: &ClientData,
    ) -> Result<GetAssertionRequest, CeremonyError> {
        Ok(GetAssertionRequest {
            rp_id: self.rp_id.clone(),
            client_data_hash: *client_data.hash(),
            allow_list: self
                .allow_credentials
                .iter()
                .map(|id| CredentialDescriptor::public_key(id.clone()))
                .collect(),
            extensions: self.extensions.get_assertion_map(info),
            options: CommandOptions { rk: None, up: None, uv: uv_option(self.uv, info)? },
            pin_uv_auth_param: None,
            pin_uv_auth_protocol: None,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn info(opts: &[(&str, bool)]) -> GetInfo {
        GetInfo {
            versions: vec!["FIDO_2_1".into()],
            options: opts.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            ..GetInfo::default()
        }
    }

    #[test]
    fn register_defaults_and_mapping() {
        let o = RegisterOptions::new("example.com", "alice");
        o.validate().unwrap();
        assert_eq!(o.challenge.len(), 32);
        assert_eq!(o.user.id.len(), 16);
        assert_eq!(o.origin(), "https://example.com");
        let cd = o.client_data();
        let phone = info(&[("rk", true), ("uv", true)]);
        let r = o.to_request(&phone, &cd).unwrap();
        assert_eq!(r.client_data_hash, *cd.hash());
        assert_eq!(r.options, CommandOptions { rk: Some(true), up: None, uv: Some(true) });
        let algs: Vec<i64> = r.pub_key_cred_params.iter().map(|p| p.alg.to_i64()).collect();
        assert_eq!(algs, vec![-7, -257, -8]);
        assert_eq!(r.user.name.as_deref(), Some("alice"));
        assert!(r.pin_uv_auth_param.is_none());
    }

    #[test]
    fn requirements_degrade_or_fail() {
        let mut o = RegisterOptions::new("example.com", "alice");
        let cd = o.client_data();
        let plain = info(&[]);
        // preferred on an authenticator without rk/uv: neither is sent.
        let r = o.to_request(&plain, &cd).unwrap();
        assert_eq!(r.options, CommandOptions::default());
        o.resident_key = Requirement::Required;
        assert_eq!(o.to_request(&plain, &cd).unwrap_err().kind, CeremonyErrorKind::Authenticator);
        o.resident_key = Requirement::Discouraged;
        o.uv = Requirement::Required;
        assert!(o.to_request(&plain, &cd).is_err());
        // A PIN-capable key: uv left for the transport's pinUvAuthParam.
        let pin = info(&[("clientPin", true), ("rk", true)]);
        assert_eq!(o.to_request(&pin, &cd).unwrap().options.uv, None);
        o.uv = Requirement::Discouraged;
        assert_eq!(o.to_request(&info(&[("uv", true)]), &cd).unwrap().options.uv, None);
    }

    #[test]
    fn authenticate_allow_list_and_discoverable() {
        let mut o = AuthenticateOptions::new("example.com");
        o.validate().unwrap();
        let cd = o.client_data();
        let phone = info(&[("uv", true)]);
        let r = o.to_request(&phone, &cd).unwrap();
        assert!(r.allow_list.is_empty());
        assert_eq!(r.options.uv, Some(true));
        assert_eq!(r.options.rk, None);
        o.allow_credentials = vec![vec![1, 2, 3], vec![4]];
        let r = o.to_request(&phone, &cd).unwrap();
        let ids: Vec<_> = r.allow_list.iter().map(|d| d.id.clone()).collect();
        assert_eq!(ids, vec![vec![1, 2, 3], vec![4]]);
        assert_eq!(r.rp_id, "example.com");
    }

    #[test]
    fn invalid_options_are_usage_errors() {
        use cablebridge_protocol::error::Fault;
        let mut o = AuthenticateOptions::new("example.com");
        o.challenge = vec![0; 8];
        assert_eq!(o.validate().unwrap_err().fault, Fault::Caller);
        let mut r = RegisterOptions::new("https://example.com", "a");
        assert_eq!(r.validate().unwrap_err().fault, Fault::Caller);
        r.rp_id = "example.com".into();
        r.user.id = vec![0; 65];
        assert_eq!(r.validate().unwrap_err().stage, CeremonyStage::Setup);
    }
}
