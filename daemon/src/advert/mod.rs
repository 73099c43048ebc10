//! Where BLE adverts come from and which pending session they belong to.
//!
//! * [`source`]: advert sources behind one shape — a task feeding an `mpsc` channel of
//!   [`AdvertItem`]s. Today: injection from stdin, a FIFO or a Unix socket (sniffer relays,
//!   replayed captures, the virtual phone) and BLE scanning through BlueZ ([`bluez`]).
//! * [`matcher`]: trial-opens every advert against every pending session's EID key before
//!   anything else looks at it (§5), drops repeats, and reports adverts that are ours but invalid.
//!
//! Not here: the session that follows a match (see `crate::desktop`).

mod bluez;
pub mod matcher;
pub mod source;

pub use matcher::{AdvertMatcher, MatchOutcome, SessionTag};
pub use source::{parse_advert_line, AdvertFeed, AdvertItem, AdvertSource, AdvertSourceError};
