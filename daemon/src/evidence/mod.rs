//! Evidence attached to every ceremony: who the authenticator was (AAGUID and a friendly name).
//!
//! Stage timings and failure stages live with the session code that measures them; this module
//! holds what is shared by every transport.

pub mod aaguid;

pub use aaguid::{Aaguid, AaguidTable, MdsError};
