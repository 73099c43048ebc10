//! The multi-session advert matcher lives with the pairing stage in the protocol crate
//! (`cablebridge_protocol::hybrid::session::matcher`); this re-export keeps the daemon's paths.

pub use cablebridge_protocol::hybrid::session::matcher::{AdvertMatcher, MatchOutcome, SessionTag};
