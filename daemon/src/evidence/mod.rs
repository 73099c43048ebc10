//! Evidence attached to every ceremony: who the authenticator was (AAGUID and a friendly name),
//! what its attestation statement proves ([`attestation`], every WebAuthn format) and whether
//! its attestation chain leads to a root of the metadata the user supplied.
//!
//! Stage timings and failure stages live with the session code that measures them; this module
//! holds what is shared by every transport.

pub mod aaguid;
pub mod attestation;
pub mod chain;
mod info;

pub use aaguid::{Aaguid, AaguidTable, MdsError};
pub use attestation::{AttestationError, AttestationReport, Check, Format};
pub use chain::{verify_attestation_chain, verify_x5c, ChainStatus};
pub use info::get_info_fields;
