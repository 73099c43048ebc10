//! Configuration of the tunnel server, its defaults (and why), and TLS loading.

use super::ServerError;
use cablebridge_protocol::hybrid::tunnel::{RoutingId, MAX_MESSAGE_LEN};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// PEM files for `wss://`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, leaf first (PEM).
    pub cert: PathBuf,
    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Everything `cablebridge tunnel-server` can set. [`Default`] gives the production values.
#[derive(Debug, Clone)]
pub struct TunnelServerConfig {
    /// Address to listen on (`127.0.0.1:0` picks a free loopback port, for tests).
    pub listen: SocketAddr,
    /// Serve `wss://` with these files; `None` serves plain `ws://` (behind a TLS proxy, or tests).
    pub tls: Option<TlsFiles>,
    /// Routing ID handed to phones. `None`: a random one per tunnel, so a desktop cannot reach a
    /// tunnel with a guessed tunnel id alone. `Some`: one fixed id for this instance (what a
    /// fleet behind a router keyed on routing id needs).
    pub routing_id: Option<RoutingId>,
    /// How long a phone's `/cable/new` tunnel waits for its desktop. 120 s, like webauthn-rs's
    /// server: the user scans the QR code before the phone connects, so the desktop follows
    /// within seconds; anything older is abandoned.
    pub unpaired_ttl: Duration,
    /// How long a `/cable/listen` registration lasts before the phone must re-register; bounds
    /// the state a vanished phone leaves behind (the socket may look alive through NAT).
    pub listen_ttl: Duration,
    /// Largest message accepted from either side; a bigger one closes that side with 1008
    /// (policy violation). 1 MiB = Chrome's own limit (§6.1).
    pub max_message: usize,
    /// Data messages each side may send over one tunnel's lifetime. A hybrid transaction is
    /// about 5 per side (handshake, post-handshake, request/response, update, shutdown); 64
    /// leaves room for getInfo plus several requests and linking updates while keeping the
    /// relay useless as a general-purpose pipe (webauthn-rs's server uses 16).
    pub max_messages_per_peer: u32,
    /// Unpaired + paired tunnels (QR and contact) + listeners held at once; beyond it upgrades
    /// get HTTP 503.
    pub max_tunnels: usize,
    /// TCP connections held at once, counted from `accept` to close: upgrades in progress,
    /// waiting phones, listeners, and both sockets of every paired tunnel. Beyond it a new
    /// connection gets HTTP 503 before any upgrade. Also bounds the worst case of memory: each
    /// connection may hold one partly received message of up to `max_message` bytes.
    pub max_connections: usize,
    /// Connections held at once from one source address (IPv6: one /64 prefix); beyond it a new
    /// connection gets HTTP 429. 256 leaves room for a site behind one NAT address.
    pub max_connections_per_ip: usize,
    /// Bytes that unpaired phones may hold buffered (messages sent before their desktop came),
    /// all phones together. A phone whose message would cross it is closed with 1008, and while
    /// it is reached new `/cable/new` and `/cable/listen` upgrades get HTTP 503. A phone answers
    /// its desktop's handshake, so a real phone buffers nothing.
    pub max_unpaired_buffer: usize,
    /// A paired tunnel with no data message either way for this long is closed (pings and pongs
    /// do not count). 300 s: user verification on the phone may take minutes while nothing
    /// flows (WebAuthn's own timeouts go up to 5 minutes).
    pub idle_timeout: Duration,
    /// Absolute limit on a paired tunnel's life, however busy: 600 s is two WebAuthn timeouts.
    pub max_tunnel_lifetime: Duration,
    /// Every message the server sends (relayed data, the phone's early messages, the contact
    /// prelude) must be taken by the receiver within this; a peer that stops reading ends its
    /// tunnel instead of pinning a task. 30 s covers a 1 MiB message on a slow mobile link.
    pub send_timeout: Duration,
    /// Limit for the TLS handshake plus receiving the complete HTTP upgrade request and
    /// answering it (slow-loris protection).
    pub handshake_timeout: Duration,
    /// Largest HTTP upgrade request (request line + headers) read; a larger one gets HTTP 431.
    /// Real requests are under 1 KiB.
    pub max_request_bytes: usize,
    /// How long shutdown waits for connections to finish their closing handshakes.
    pub shutdown_grace: Duration,
}

impl Default for TunnelServerConfig {
    fn default() -> Self {
        TunnelServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: None,
            routing_id: None,
            unpaired_ttl: Duration::from_secs(120),
            listen_ttl: Duration::from_secs(600),
            max_message: MAX_MESSAGE_LEN,
            max_messages_per_peer: 64,
            max_tunnels: 100_000,
            max_connections: 16_384,
            max_connections_per_ip: 256,
            max_unpaired_buffer: 16 << 20,
            idle_timeout: Duration::from_secs(300),
            max_tunnel_lifetime: Duration::from_secs(600),
            send_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
            max_request_bytes: 8 * 1024,
            shutdown_grace: Duration::from_secs(2),
        }
    }
}

/// Reads the PEM files into a rustls server config (ring provider, TLS 1.2 and 1.3).
pub(crate) fn load_tls(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    let tls_err = |what: String| ServerError::Tls(what);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| tls_err(format!("reading certificate {}: {e}", files.cert.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| tls_err(format!("parsing certificate {}: {e}", files.cert.display())))?;
    if certs.is_empty() {
        return Err(tls_err(format!("no certificate in {}", files.cert.display())));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| tls_err(format!("reading private key {}: {e}", files.key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(format!("TLS versions: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| tls_err(format!("certificate/key pair rejected: {e}")))?;
    Ok(Arc::new(config))
}
