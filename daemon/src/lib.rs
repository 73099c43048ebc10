//! # cablebridged
//!
//! The IO side of cablebridge: the only crate that touches sockets, devices, D-Bus and the clock.
//! Every protocol decision is delegated to `cablebridge-protocol` state machines; this crate owns
//! the run loops that feed them bytes and timers (see ARCHITECTURE.md).

pub mod advert;
pub mod bench;
pub mod ble;
pub mod bridge;
pub mod ceremony;
pub mod ctap;
pub mod desktop;
pub mod doctor;
pub mod evidence;
pub mod hid;
pub mod labrun;
pub mod phone;
pub mod policy;
pub mod store;
pub mod testkit;
pub mod tunnel;
pub mod uhid;
pub mod virtual_key;
