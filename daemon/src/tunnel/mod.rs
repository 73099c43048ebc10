//! The caBLE tunnel service over WebSocket (PROTOCOL-hybrid.md §6): our own relay
//! ([`server`]) and the client both the desktop and the virtual phone use ([`client`]).
//!
//! What it is: sockets, TLS, HTTP upgrade, WebSocket framing and the pairing of two connections.
//! What it is not: anything cryptographic about the hybrid session. The relay never sees keys;
//! the client hands out whole binary messages and leaves Noise/Crypter to
//! `cablebridge_protocol::hybrid`. URL and path formats come from
//! [`cablebridge_protocol::hybrid::tunnel`], the one place they are defined.

pub mod client;
pub mod listen;
pub mod server;

use cablebridge_protocol::hybrid::tunnel::MAX_MESSAGE_LEN;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Private phone-side path of our server for state-assisted transactions (see [`server`] docs):
/// `/cable/listen/<base64url contact id>`, proven with the phone's [`listen::ListenSecret`].
/// Not part of any specification.
pub const LISTEN_PATH_PREFIX: &str = "/cable/listen/";

/// URL of our private listen path for `contact_id` (`base` as for
/// `cablebridge_protocol::hybrid::tunnel::url`).
pub fn listen_url(base: &str, contact_id: &[u8]) -> String {
    use base64::Engine as _;
    let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(contact_id);
    format!("{}{LISTEN_PATH_PREFIX}{id}", base.trim_end_matches('/'))
}

/// Any byte stream a tunnel runs over (plain TCP or TLS, either role), boxed so both kinds share
/// one code path. One allocation per connection; the virtual call is noise next to a syscall.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// WebSocket settings tuned for tunnels: many mostly idle connections carrying small messages.
///
/// tungstenite's defaults (128 KiB read and write buffers, 64 MiB messages) would cost ~256 KiB per
/// connection and let a peer make us buffer 64 MiB; hybrid messages are at most
/// [`MAX_MESSAGE_LEN`] (Chrome's limit, §6.1) and most are under 1 KiB.
pub(crate) fn ws_config(max_message: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        // Write each message straight through: the relay awaits every send, so nothing queues.
        .write_buffer_size(0)
        // Bound what can pile up if the socket stalls: one message plus control frames.
        .max_write_buffer_size(max_message.saturating_add(64 * 1024))
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message))
}

/// The default message cap of both sides.
pub const DEFAULT_MAX_MESSAGE: usize = MAX_MESSAGE_LEN;
