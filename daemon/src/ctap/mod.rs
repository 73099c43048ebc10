//! The CTAP2 client for USB security keys (and UDP-HID simulators): the CTAPHID driver loop,
//! CTAP2 commands, PIN/UV flows, credential management and touch-to-select.
//!
//! Layering, bottom up:
//! * [`hid_channel`]: [`CtapHidDevice`], the async run loop around the sans-IO
//!   `ctaphid::HostChannel` (keepalives, CANCEL on deadline or cancel, busy back-off);
//! * [`client`]: [`Ctap2Client`], one method per CTAP2 command (CTAP 2.1 §6);
//! * [`pin`] (clientPIN, §6.5) and [`cred_mgmt`] (§6.8) extend the client;
//! * [`config`] (authenticatorConfig, §6.11) and [`bio`] (bio enrollment, §6.7) extend it too;
//! * [`select`]: open by address, list keys, touch-to-select (§6.9);
//! * [`arrival`]: with no key attached, wait for one to be plugged in (hot-plug, no polling);
//! * [`extensions`]: hmac-secret / hmac-secret-mc under WebAuthn `prf` (key agreement, salts);
//! * [`uv`]: user-verification policy for makeCredential / getAssertion (PIN/UV token, presence);
//! * [`u2f`]: the CTAP1/U2F fallback for keys without CTAP2 (APDUs over CTAPHID_MSG, as
//!   libfido2 does), chosen by [`Ctap2Client::connect`];
//! * [`ceremony`]: a whole WebAuthn ceremony on a key, run by `crate::ceremony::run`.
//!
//! Not here: WebAuthn client data and result JSON (`crate::ceremony`), the CLI. Errors are one
//! type, [`CtapError`].

pub mod arrival;
pub mod bio;
pub mod ceremony;
pub mod client;
pub mod config;
pub mod cred_mgmt;
pub mod error;
pub mod extensions;
pub mod hid_channel;
pub mod listing;
pub mod pin;
pub mod select;
pub mod u2f;
pub mod uv;

pub use arrival::{select_attached, wait_for_key, KeyArrivals};
pub use client::Ctap2Client;
pub use config::ConfigChange;
pub use cred_mgmt::{CredsMetadata, RpCredentials, StoredCredential};
pub use error::CtapError;
pub use hid_channel::{BusyPolicy, Call, CtapHidDevice, DeviceProgress, DriverConfig};
pub use listing::{list_devices, ListedDevice};
pub use pin::{PinRetries, Token, TokenSource};
pub use select::{attached_keys, open_client, select_device, touch_to_select, OpenOptions};
