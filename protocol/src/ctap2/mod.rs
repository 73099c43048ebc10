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

pub mod command;
pub mod cose;
pub mod error;
pub mod status;

pub use command::Command;
pub use cose::{CoseAlgorithm, CoseKey};
pub use error::Ctap2Error;
pub use status::StatusCode;
