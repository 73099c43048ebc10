//! CTAP2 (CTAP 2.1 §6, §8): command bytes, status codes, COSE keys, request/response types,
//! PIN/UV auth protocols 1 and 2, authenticator data and attestation objects.
//!
//! Both sides use these types: a platform (client) encodes requests and decodes responses, the
//! software authenticator decodes requests and encodes responses. Every encode is CTAP2
//! canonical CBOR (through [`crate::cbor`]); every decode tolerates unknown keys, is strict about
//! the types of the keys it knows, and names the offending field in its [`Ctap2Error`].
//!
//! Not here: CTAPHID framing ([`crate::ctaphid`]), transports, or authenticator policy (which
//! lives in [`crate::authenticator`]).

pub mod attestation;
pub mod auth_data;
pub mod bio;
pub mod client_pin;
pub mod command;
pub mod config;
pub mod cose;
pub mod cred_mgmt;
pub mod entities;
pub mod error;
pub mod extensions;
mod fields;
pub mod framing;
pub mod get_assertion;
pub mod get_info;
pub mod make_credential;
pub mod pin;
pub mod status;
pub mod verify;

pub use attestation::{AttestationObject, AttestationStatement, AttestationType};
pub use auth_data::{AttestedCredentialData, AuthDataFlags, AuthenticatorData};
pub use client_pin::{ClientPinRequest, ClientPinResponse, ClientPinSubcommand, Permissions};
pub use command::Command;
pub use config::{ConfigRequest, ConfigSubcommand, SetMinPinLengthParams};
pub use cose::{CoseAlgorithm, CoseKey};
pub use cred_mgmt::{
    CredMgmtParams, CredMgmtSubcommand, CredentialManagementRequest, CredentialManagementResponse,
};
pub use entities::{CredentialDescriptor, CredentialParameters, RelyingParty, User};
pub use error::Ctap2Error;
pub use framing::{decode_request, decode_response, encode_request, encode_response};
pub use get_assertion::{GetAssertionRequest, GetAssertionResponse};
pub use get_info::GetInfo;
pub use make_credential::{CommandOptions, MakeCredentialRequest, MakeCredentialResponse};
pub use status::StatusCode;
