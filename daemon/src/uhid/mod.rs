//! The phone as a local security key: a virtual FIDO HID device whose CTAP requests are
//! answered by a phone over hybrid.
//!
//! * [`codec`] — `struct uhid_event` (linux/uhid.h) byte-exact: CREATE2, DESTROY, START/STOP,
//!   OPEN/CLOSE, OUTPUT, INPUT2.
//! * [`device`] — the front: reports in, reports out, over `/dev/uhid` ([`device::UhidPort`],
//!   generic over any `AsyncRead + AsyncWrite`, so tests play the kernel on a socketpair) or over
//!   UDP-HID ([`device::UdpPort`], for python-fido2 in CI). Behind both runs the same CTAPHID
//!   device state machine the virtual key uses (`cablebridge_protocol::ctaphid::DeviceState`),
//!   with keepalives (UPNEEDED every 100 ms) while a request is pending and CTAPHID_CANCEL wired
//!   to the backend's cancel token.
//! * [`backend`] — [`backend::PhoneBridge`], the `CtapBackend` that answers getInfo locally
//!   (static, [`backend::bridge_get_info`]) and runs makeCredential/getAssertion as a hybrid
//!   desktop session through the engine ([`crate::ceremony::run_raw`]): a linked phone when one
//!   is configured, a QR otherwise. Silent probes are answered locally (see ARCHITECTURE.md,
//!   "uhid probes").
//! * [`creds`] — the credential ids each phone returned (state dir, 0600, atomic replace), so
//!   excludeList probes can be answered.
//!
//! What it is not: a software authenticator (it signs nothing itself), or a U2F device.

pub mod backend;
pub mod codec;
pub mod creds;
pub mod device;

/// The vendor id the device presents: pid.codes (0x1209), the open-source USB id registry.
pub const VENDOR_ID: u32 = 0x1209;
/// The product id the device presents (documented in README "Phone as a local security key";
/// stable so udev rules and labs can match it).
pub const PRODUCT_ID: u32 = 0xCB1D;
/// The device name clients show.
pub const DEVICE_NAME: &str = "cablebridge phone";
