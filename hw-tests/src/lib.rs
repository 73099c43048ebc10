//! Shared helpers for the hardware-facing test tiers (see hw-tests/README.md).
//!
//! * [`bus`] — a private `dbus-daemon` per test process.
//! * [`mock_bluez`] — a mock `org.bluez` (adapters, devices, advertising manager) on that bus, so
//!   the real btleplug scanner and our zbus advertiser run unchanged in CI.

pub mod bus;
pub mod mock_bluez;
