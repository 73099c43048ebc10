//! CTAPHID — the USB HID transport of CTAP 2.1 (§11.2 "USB HID"), sans-IO, for both roles.
//!
//! * [`codes`]: channel IDs, commands, error codes, keepalive statuses, capability flags — every
//!   wire number is mapped to a type in that one place.
//! * [`packet`]: borrowing views over a report ([`InitPacket`], [`ContPacket`]), the report-length
//!   parameter [`ReportLen`] (64 in practice, 8..=64 supported) and the owned output [`Report`].
//! * [`fragment`](mod@fragment): [`fragment()`] and [`Reassembler`].
//! * [`host`]: [`HostChannel`], the client side (what the daemon runs against a real key).
//! * [`device`]: [`DeviceState`], the authenticator side (what the virtual USB key wraps).
//! * [`info`]: [`DeviceInfo`], the INIT response payload.
//!
//! This module is not a HID driver: it never sees the hidraw report-ID byte, a file descriptor, a
//! UDP socket or a clock. It does not interpret CBOR or U2F payloads either; that is [`crate::ctap2`].
//!
//! ## Run loop
//!
//! Both state machines follow the crate-wide pattern (quinn-proto style): feed **one** input, then
//! drain **all** outputs, then sleep until the next report or [`poll_timeout`](HostChannel::poll_timeout).
//!
//! ```text
//! loop {
//!     // outputs first: they may exist right after construction or an app call
//!     while let Some(report) = chan.poll_transmit() { hid.write(&report).await?; }
//!     while let Some(event) = chan.poll_event() { handle(event); }
//!     let timer = chan.poll_timeout();
//!     select! {
//!         report = hid.read() => chan.handle_report(&report, Instant::now()),
//!         _ = sleep_until(timer) => chan.handle_timeout(Instant::now()),
//!         req = app.recv() => chan.start_transaction(cmd, &payload, deadline)?,
//!         _ = ctrl_c() => chan.cancel(Instant::now()),
//!     }
//! }
//! ```
//!
//! The device side is the same loop with `handle_report(report, now, rng)` as the input from the
//! host, and [`DeviceState::respond`]/[`DeviceState::keepalive`] as the application's inputs
//! (a virtual key calls `keepalive` every ~100 ms while it waits for a touch).
//!
//! Deadlines are absolute `Instant`s. `handle_report` also checks them, so a device that floods
//! keepalives cannot starve the timer and keep a transaction alive past its deadline.
//!
//! Reports for channels other than ours are counted and ignored, never fatal: a hidraw node is
//! shared by every process that opened it, and they all see each other's responses.

pub mod codes;
pub mod device;
pub mod error;
pub mod fragment;
pub mod host;
pub mod info;
pub mod packet;

pub use codes::{Capabilities, Cid, Command, ErrorCode, KeepAliveStatus};
pub use device::{DeviceConfig, DeviceEvent, DeviceState};
pub use error::{DeviceError, FrameError, HostError, Waiting};
pub use fragment::{fragment, Fragmenter, Message, Reassembler};
pub use host::{HostChannel, HostConfig, HostEvent, HostStats};
pub use info::DeviceInfo;
pub use packet::{ContPacket, InitPacket, Packet, Report, ReportLen, MAX_REPORT_LEN};

/// Length of the INIT nonce (§11.2.9.1.3).
pub const INIT_NONCE_LEN: usize = 8;
/// Length of the INIT response payload.
pub const INIT_RESPONSE_LEN: usize = 17;
/// CTAPHID protocol version reported in INIT responses.
pub const PROTOCOL_VERSION: u8 = 2;
/// `CTAP2_ERR_KEEPALIVE_CANCEL`: the CTAP2 status a device returns for a cancelled CBOR request.
pub const CTAP2_ERR_KEEPALIVE_CANCEL: u8 = 0x2d;
