//! Hidden entry for the `tunnel_upgrade` fuzz target (fuzz/fuzz_targets/tunnel_upgrade.rs): the
//! bytes of an upgrade request go through tungstenite's HTTP parser and our handshake callback
//! ([`super::upgrade::decide`]) exactly as a TCP connection's would, over an in-memory stream,
//! against one server state whose registry persists across requests (a `/cable/new` can be
//! claimed by a later `/cable/connect` in the same input). No sockets, no runtime.

use super::limits::{BufferBudget, ConnTable};
use super::registry::{Counters, Registry};
use super::upgrade::{self, Admission};
use super::{Shared, TunnelServerConfig};
use cablebridge_protocol::hybrid::tunnel::RoutingId;
use std::io::{self, Cursor, Read, Write};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use tokio_tungstenite::tungstenite::handshake::HandshakeError;
use tokio_tungstenite::tungstenite::Error as WsError;

/// The routing id the harness's server assigns (the hybrid QR transcript's, `A1B2C3`).
pub const ROUTING_ID: [u8; 3] = [0xa1, 0xb2, 0xc3];

/// One request's input, and whatever the server wrote back.
struct MemoryStream {
    input: Cursor<Vec<u8>>,
    output: Vec<u8>,
}

impl Read for MemoryStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for MemoryStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A tunnel server's shared state without its sockets, and the admissions it granted so far.
#[derive(Debug)]
pub struct UpgradeHarness {
    shared: Arc<Shared>,
    admitted: Vec<Admission>,
}

impl Default for UpgradeHarness {
    fn default() -> Self {
        Self::new()
    }
}

impl UpgradeHarness {
    /// The default server configuration with small caps (so the fuzzer reaches them) and a fixed
    /// routing id, [`ROUTING_ID`] (so a `/cable/connect` can name the tunnel a `/cable/new` of the
    /// same input opened).
    pub fn new() -> Self {
        let config = TunnelServerConfig {
            max_tunnels: 8,
            routing_id: Some(RoutingId(ROUTING_ID)),
            ..TunnelServerConfig::default()
        };
        let shared = Arc::new(Shared {
            registry: Registry::new(config.max_tunnels),
            counters: Counters::default(),
            conns: ConnTable::new(config.max_connections, config.max_connections_per_ip),
            budget: BufferBudget::new(config.max_unpaired_buffer),
            refusing: AtomicU64::new(0),
            ws_config: crate::tunnel::ws_config(config.max_message),
            tls: None,
            config,
        });
        UpgradeHarness { shared, admitted: Vec::new() }
    }

    /// Feeds one connection's bytes. Returns the HTTP status the server answered (101 for an
    /// upgrade), or `None` when the request never completed (the server closes such a
    /// connection at its handshake timeout).
    pub fn request(&mut self, bytes: &[u8]) -> Option<u16> {
        let stream = MemoryStream { input: Cursor::new(bytes.to_vec()), output: Vec::new() };
        let shared = &self.shared;
        let mut admission = None;
        #[allow(clippy::result_large_err)] // the error type is tungstenite's `Callback`'s
        let callback = |req: &_, resp| upgrade::decide(shared, req, resp, &mut admission);
        let result = tokio_tungstenite::tungstenite::accept_hdr_with_config(
            stream,
            callback,
            Some(shared.ws_config),
        );
        let status = match result {
            Ok(_) => Some(101),
            Err(HandshakeError::Failure(WsError::Http(resp))) => Some(resp.status().as_u16()),
            Err(_) => None,
        };
        if let Some(a) = admission {
            self.admitted.push(a);
        }
        status
    }

    /// Drops every admission (the connections closed): their tunnels and listeners go away.
    pub fn close_all(&mut self) {
        self.admitted.clear();
    }

    /// Registry entries held right now (waiting or paired tunnels, listeners, contact tunnels).
    pub fn registry_entries(&self) -> usize {
        self.shared.registry.entries()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(path: &str, extra: &[&str]) -> Vec<u8> {
        let mut lines = vec![
            format!("GET {path} HTTP/1.1"),
            "Host: 127.0.0.1".to_owned(),
            "Upgrade: websocket".to_owned(),
            "Connection: Upgrade".to_owned(),
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==".to_owned(),
            "Sec-WebSocket-Version: 13".to_owned(),
        ];
        lines.extend(extra.iter().map(|s| (*s).to_owned()));
        format!("{}\r\n\r\n", lines.join("\r\n")).into_bytes()
    }

    #[test]
    fn requests_get_the_servers_answers_and_pairing_persists_until_closed() {
        let mut server = UpgradeHarness::new();
        let tunnel = "00112233445566778899AABBCCDDEEFF";
        let proto = "Sec-WebSocket-Protocol: fido.cable";
        assert_eq!(server.request(&request(&format!("/cable/new/{tunnel}"), &[proto])), Some(101));
        assert_eq!(server.registry_entries(), 1);
        // A wrong routing id does not claim it; the server's own does, once.
        let wrong = format!("/cable/connect/000000/{tunnel}");
        assert_eq!(server.request(&request(&wrong, &[proto])), Some(404));
        let connect = format!("/cable/connect/a1b2c3/{tunnel}");
        assert_eq!(server.request(&request(&connect, &[proto])), Some(101));
        assert_ne!(server.request(&request(&connect, &[proto])), Some(101), "claimed twice");
        assert_eq!(server.request(&request(&format!("/cable/new/{tunnel}"), &[])), Some(400));
        assert_eq!(server.request(&request("/elsewhere", &[proto])), Some(404));
        assert_eq!(server.request(&request("/cable/new/zz", &[proto])), Some(400));
        assert_eq!(server.request(b"GET /cable/new/"), None, "incomplete request");
        server.close_all();
        assert_eq!(server.registry_entries(), 0);
    }
}
