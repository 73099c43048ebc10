//! The tunnel client's error type: which step failed, and whether the machine/network
//! ([`Fault::Environment`]), the tunnel server or phone ([`Fault::Peer`]) or the caller is to blame.

use cablebridge_protocol::error::{Classify, Fault, Stage};
use std::fmt;
use std::time::Duration;

/// Everything that can go wrong opening or using a tunnel connection.
#[non_exhaustive]
#[derive(Debug)]
pub enum TunnelClientError {
    /// The URL is not a usable `ws://`/`wss://` URL.
    InvalidUrl { url: String, why: String },
    /// Plain `ws://` to a host that is not loopback, without `allow_insecure`.
    InsecureNotAllowed { host: String },
    /// Name resolution failed or returned no address.
    Dns { host: String, source: std::io::Error },
    /// No address of the host accepted a TCP connection.
    TcpConnect { host: String, source: std::io::Error },
    /// The system root store could not be loaded (or is empty).
    NativeRoots(String),
    /// The TLS handshake failed (untrusted certificate, wrong name, protocol mismatch).
    Tls { host: String, source: std::io::Error },
    /// The server answered the upgrade with a non-101 status.
    HttpStatus { url: String, status: u16 },
    /// A 3xx without a usable `Location`.
    BadRedirect { url: String, why: String },
    /// A redirect led back to a URL already visited.
    RedirectLoop { url: String },
    /// More redirects than `max_redirects`.
    TooManyRedirects { limit: u8 },
    /// The 101 did not select `fido.cable` (Chrome aborts in that case, §6.1).
    MissingSubprotocol,
    /// `/cable/new` answered without a valid `X-caBLE-Routing-ID` (Chrome's phone fails, §6.2).
    MissingRoutingId,
    /// Connecting took longer than the configured timeout.
    Timeout { after: Duration },
    /// The peer sent a message larger than the cap (Chrome's is 1 MiB, §6.1).
    MessageTooLarge { max: usize },
    /// The caller tried to send a message larger than the cap.
    SendTooLarge { len: usize, max: usize },
    /// The peer sent a text message; hybrid uses binary messages only.
    NonBinaryMessage,
    /// The first message after an echoed `X-caBLE-Signal-Connection` was not the single byte 0x00.
    BadConnectSignal { len: usize },
    /// Our server's `/cable/listen` notice was malformed.
    BadListenNotice(String),
    /// The connection is closed (by the peer, or earlier by us).
    Closed,
    /// A WebSocket protocol violation or an unexpected upgrade failure.
    WebSocket(String),
    /// A read or write on the established connection failed.
    Io(std::io::Error),
}

impl TunnelClientError {
    /// `true` for HTTP 410 Gone: on `/cable/contact` the contact id is dead and the desktop
    /// must forget the link (§6.3, pitfall 20).
    pub fn is_gone(&self) -> bool {
        matches!(self, TunnelClientError::HttpStatus { status: 410, .. })
    }
}

fn status_text(status: u16) -> &'static str {
    match status {
        400 => " Bad Request (did the request offer the fido.cable subprotocol?)",
        404 => " Not Found (unknown or expired tunnel, or wrong routing id)",
        409 => " Conflict (tunnel already in use)",
        410 => " Gone (the linked phone's contact id is no longer valid; forget the link)",
        503 => " Service Unavailable",
        _ => "",
    }
}

impl fmt::Display for TunnelClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use TunnelClientError as E;
        match self {
            E::InvalidUrl { url, why } => write!(f, "invalid tunnel URL {url:?}: {why}"),
            E::InsecureNotAllowed { host } => write!(
                f,
                "refusing unencrypted ws:// to non-loopback host {host} (use wss:// or allow insecure)"
            ),
            E::Dns { host, source } => write!(f, "cannot resolve tunnel host {host}: {source}"),
            E::TcpConnect { host, source } => {
                write!(f, "cannot connect to tunnel host {host}: {source}")
            }
            E::NativeRoots(why) => write!(f, "cannot load the system's TLS root certificates: {why}"),
            E::Tls { host, source } => write!(f, "TLS handshake with {host} failed: {source}"),
            E::HttpStatus { url, status } => write!(
                f,
                "tunnel server answered HTTP {status}{} for {url}",
                status_text(*status)
            ),
            E::BadRedirect { url, why } => write!(f, "bad redirect from {url}: {why}"),
            E::RedirectLoop { url } => write!(f, "redirect loop at {url}"),
            E::TooManyRedirects { limit } => write!(f, "more than {limit} redirects"),
            E::MissingSubprotocol => {
                write!(f, "tunnel server did not select the fido.cable WebSocket subprotocol")
            }
            E::MissingRoutingId => {
                write!(f, "tunnel server sent no valid X-caBLE-Routing-ID header for /cable/new")
            }
            E::Timeout { after } => write!(f, "tunnel connection not open after {after:?}"),
            E::MessageTooLarge { max } => write!(f, "tunnel peer sent a message over {max} bytes"),
            E::SendTooLarge { len, max } => {
                write!(f, "cannot send a {len}-byte tunnel message (limit {max})")
            }
            E::NonBinaryMessage => write!(f, "tunnel peer sent a non-binary (text) message"),
            E::BadConnectSignal { len } => write!(
                f,
                "expected the 1-byte 0x00 connect signal first, got a {len}-byte message"
            ),
            E::BadListenNotice(why) => write!(f, "malformed contact notice on listen: {why}"),
            E::Closed => write!(f, "tunnel connection is closed"),
            E::WebSocket(why) => write!(f, "tunnel WebSocket error: {why}"),
            E::Io(e) => write!(f, "tunnel connection failed: {e}"),
        }
    }
}

impl std::error::Error for TunnelClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        use TunnelClientError as E;
        match self {
            E::Dns { source, .. } | E::TcpConnect { source, .. } | E::Tls { source, .. } => {
                Some(source)
            }
            E::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl Classify for TunnelClientError {
    fn fault(&self) -> Fault {
        use TunnelClientError as E;
        match self {
            E::InvalidUrl { .. } | E::InsecureNotAllowed { .. } | E::SendTooLarge { .. } => {
                Fault::Caller
            }
            // The network path, the resolver, the trust store or the clock of this machine.
            E::Dns { .. }
            | E::TcpConnect { .. }
            | E::NativeRoots(_)
            | E::Tls { .. }
            | E::Timeout { .. }
            | E::Io(_) => Fault::Environment,
            E::HttpStatus { .. }
            | E::BadRedirect { .. }
            | E::RedirectLoop { .. }
            | E::TooManyRedirects { .. }
            | E::MissingSubprotocol
            | E::MissingRoutingId
            | E::MessageTooLarge { .. }
            | E::NonBinaryMessage
            | E::BadConnectSignal { .. }
            | E::BadListenNotice(_)
            | E::Closed
            | E::WebSocket(_) => Fault::Peer,
        }
    }
    fn stage(&self) -> Stage {
        Stage::Tunnel
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gone_is_peer_fault_and_says_so() {
        let e =
            TunnelClientError::HttpStatus { url: "wss://x/cable/contact/AA".into(), status: 410 };
        assert!(e.is_gone());
        assert_eq!(e.fault(), Fault::Peer);
        assert!(e.to_string().contains("410 Gone"), "{e}");
        let dns = TunnelClientError::Dns {
            host: "x".into(),
            source: std::io::Error::other("no such host"),
        };
        assert_eq!(dns.fault(), Fault::Environment);
        assert!(!dns.is_gone());
    }
}
