//! Tunnel-service addressing (§6): tunnel IDs, routing IDs, the three request paths
//! (`/cable/new`, `/cable/connect`, `/cable/contact`), header names and the state-assisted
//! client payload.
//!
//! What it is: pure value types and string formatting/parsing shared by the desktop client, the
//! phone side and our own tunnel server. What it is not: a WebSocket implementation — the daemon
//! and the tunnel server own the sockets. Hosts come from [`super::domain`].
//!
//! Hex is written **uppercase** (Chrome does; servers appear case-insensitive, §6.1) and parsed
//! case-insensitively (libwebauthn writes lowercase).

use crate::cbor::{self, CborError, Value};
use crate::error::{Classify, Fault, Stage};
use crate::hybrid::keys::{self, KeyPurpose, QrSecret};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use core::fmt;

/// WebSocket subprotocol; Google's tunnel answers HTTP 400 without it (pitfall §11.2 item 1).
pub const SUBPROTOCOL: &str = "fido.cable";
/// Response header of `/cable/new` carrying the 3-byte routing ID as hex (§6.2).
pub const ROUTING_ID_HEADER: &str = "X-caBLE-Routing-ID";
/// Request header of `/cable/contact` carrying [`ClientPayload::header_value`] (§6.3).
pub const CLIENT_PAYLOAD_HEADER: &str = "X-caBLE-Client-Payload";
/// Optional `/cable/contact` header; echoed by the server ⇒ a `0x00` connect signal follows (§6.3).
pub const SIGNAL_CONNECTION_HEADER: &str = "X-caBLE-Signal-Connection";
/// Largest WebSocket message accepted; Chrome closes on anything bigger (§6.1).
pub const MAX_MESSAGE_LEN: usize = 1 << 20;

/// Errors parsing tunnel identifiers, paths and client payloads.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TunnelError {
    /// An identifier was not hex of the right length.
    BadId { what: &'static str, expected_hex_chars: usize, got: String },
    /// The request path is not one of the three `/cable/...` forms.
    UnknownPath(String),
    /// The contact ID in `/cable/contact/<id>` is not unpadded base64url (or is empty).
    BadContactId,
    /// The client payload header is not hex.
    ClientPayloadNotHex,
    /// The client payload CBOR is malformed or misses a field.
    ClientPayload(CborError),
}

impl fmt::Display for TunnelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TunnelError::BadId { what, expected_hex_chars, got } => {
                write!(f, "{what} must be {expected_hex_chars} hex characters, got {got:?}")
            }
            TunnelError::UnknownPath(p) => write!(
                f,
                "unknown tunnel path {p:?} (expected /cable/new/<TUNNEL>, \
                 /cable/connect/<ROUTING>/<TUNNEL> or /cable/contact/<base64url>)"
            ),
            TunnelError::BadContactId => {
                write!(f, "contact id is not non-empty unpadded base64url")
            }
            TunnelError::ClientPayloadNotHex => {
                write!(f, "{CLIENT_PAYLOAD_HEADER} header is not hex")
            }
            TunnelError::ClientPayload(e) => write!(f, "client payload: {e}"),
        }
    }
}

impl std::error::Error for TunnelError {}

impl Classify for TunnelError {
    fn fault(&self) -> Fault {
        Fault::Peer
    }
    fn stage(&self) -> Stage {
        Stage::Tunnel
    }
}

fn parse_fixed_hex<const N: usize>(s: &str, what: &'static str) -> Result<[u8; N], TunnelError> {
    let bad = || TunnelError::BadId { what, expected_hex_chars: 2 * N, got: s.to_owned() };
    if s.len() != 2 * N {
        return Err(bad());
    }
    let mut out = [0u8; N];
    // `hex` accepts both cases, which is what we want (§6.1: libwebauthn writes lowercase).
    hex::decode_to_slice(s, &mut out).map_err(|_| bad())?;
    Ok(out)
}

/// The 16-byte tunnel ID: `Derive(qr_secret, ∅, TunnelID, 16)` (§3). Not secret by itself — it
/// appears in URLs — but it is unguessable, which is what keeps strangers off a tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TunnelId(pub [u8; 16]);

impl TunnelId {
    /// Derives the tunnel ID from the QR secret.
    pub fn derive(secret: &QrSecret) -> TunnelId {
        TunnelId(keys::derive_array(secret.expose(), &[], KeyPurpose::TunnelId))
    }
    /// 32 uppercase hex characters, as Chrome writes them.
    pub fn to_hex(&self) -> String {
        hex::encode_upper(self.0)
    }
    /// Parses 32 hex characters of either case.
    pub fn parse_hex(s: &str) -> Result<TunnelId, TunnelError> {
        parse_fixed_hex(s, "tunnel id").map(TunnelId)
    }
}

impl fmt::Display for TunnelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The 3-byte routing ID the tunnel server hands the phone and the phone copies into its advert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RoutingId(pub [u8; 3]);

impl RoutingId {
    /// 6 uppercase hex characters.
    pub fn to_hex(&self) -> String {
        hex::encode_upper(self.0)
    }
    /// Parses 6 hex characters of either case (Chrome's phone parses the header case-insensitively).
    pub fn parse_hex(s: &str) -> Result<RoutingId, TunnelError> {
        parse_fixed_hex(s, "routing id").map(RoutingId)
    }
}

impl fmt::Display for RoutingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The request path of a tunnel WebSocket upgrade.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TunnelPath {
    /// Phone → tunnel (Google convention, §6.2): `/cable/new/<TUNNEL>`.
    New {
        /// Tunnel the phone opens.
        tunnel_id: TunnelId,
    },
    /// Desktop → tunnel, QR-initiated (§6.1): `/cable/connect/<ROUTING>/<TUNNEL>`.
    Connect {
        /// Routing ID from the advert.
        routing_id: RoutingId,
        /// Tunnel ID derived from the QR secret.
        tunnel_id: TunnelId,
    },
    /// Desktop → tunnel, state-assisted (§6.3): `/cable/contact/<base64url(contact_id)>`.
    Contact {
        /// The opaque contact ID the phone gave in its linking info.
        contact_id: Vec<u8>,
    },
}

impl TunnelPath {
    /// Parses an HTTP request path (a query string or fragment is ignored).
    pub fn parse(path: &str) -> Result<TunnelPath, TunnelError> {
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let unknown = || TunnelError::UnknownPath(path.to_owned());
        let rest = path.strip_prefix("/cable/").ok_or_else(unknown)?;
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            ["new", tunnel] => Ok(TunnelPath::New { tunnel_id: TunnelId::parse_hex(tunnel)? }),
            ["connect", routing, tunnel] => Ok(TunnelPath::Connect {
                routing_id: RoutingId::parse_hex(routing)?,
                tunnel_id: TunnelId::parse_hex(tunnel)?,
            }),
            ["contact", id] => {
                let contact_id =
                    URL_SAFE_NO_PAD.decode(id).map_err(|_| TunnelError::BadContactId)?;
                if contact_id.is_empty() {
                    return Err(TunnelError::BadContactId);
                }
                Ok(TunnelPath::Contact { contact_id })
            }
            _ => Err(unknown()),
        }
    }

    /// The path as a client sends it (uppercase hex, unpadded base64url).
    pub fn to_path(&self) -> String {
        match self {
            TunnelPath::New { tunnel_id } => format!("/cable/new/{tunnel_id}"),
            TunnelPath::Connect { routing_id, tunnel_id } => {
                format!("/cable/connect/{routing_id}/{tunnel_id}")
            }
            TunnelPath::Contact { contact_id } => {
                format!("/cable/contact/{}", URL_SAFE_NO_PAD.encode(contact_id))
            }
        }
    }
}

/// `wss://<host>`: the production base URL for a tunnel host from [`super::domain`].
pub fn wss_base(host: &str) -> String {
    format!("wss://{host}")
}

/// Full URL: `base` is `wss://host` or a test override such as `ws://127.0.0.1:1234` (a trailing
/// slash is tolerated).
pub fn url(base: &str, path: &TunnelPath) -> String {
    format!("{}{}", base.trim_end_matches('/'), path.to_path())
}

/// The request-type hint of QR key 5 and client-payload key 3 (§2.1, §6.3).
///
/// Only a UI hint: it does not constrain later messages. Unknown strings are kept verbatim for
/// display; for behaviour they count as `"ga"` (see [`RequestHint::effective`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum RequestHint {
    /// `"ga"`: getAssertion.
    #[default]
    GetAssertion,
    /// `"mc"`: makeCredential.
    MakeCredential,
    /// `"dcp"`: digital-credential presentation.
    DcPresentation,
    /// `"dci"`: digital-credential issuance.
    DcIssuance,
    /// Anything else, preserved.
    Other(String),
}

impl RequestHint {
    /// Maps the wire string.
    pub fn from_wire(s: &str) -> RequestHint {
        match s {
            "ga" => RequestHint::GetAssertion,
            "mc" => RequestHint::MakeCredential,
            "dcp" => RequestHint::DcPresentation,
            "dci" => RequestHint::DcIssuance,
            other => RequestHint::Other(other.to_owned()),
        }
    }
    /// The wire string.
    pub fn as_str(&self) -> &str {
        match self {
            RequestHint::GetAssertion => "ga",
            RequestHint::MakeCredential => "mc",
            RequestHint::DcPresentation => "dcp",
            RequestHint::DcIssuance => "dci",
            RequestHint::Other(s) => s,
        }
    }
    /// The hint to act on: unknown values behave as getAssertion (Chrome, §2.1).
    pub fn effective(&self) -> RequestHint {
        match self {
            RequestHint::Other(_) => RequestHint::GetAssertion,
            known => known.clone(),
        }
    }
}

impl fmt::Display for RequestHint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `X-caBLE-Client-Payload` map of a state-assisted connection (§6.3):
/// `{1: link ID (8 bytes), 2: client nonce (16 bytes), 3: hint}`.
///
/// The client nonce is public (it travels in a header); it salts the linked EID key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientPayload {
    /// The pairing/link ID from the stored linking info.
    pub link_id: [u8; 8],
    /// 16 fresh random bytes per connection.
    pub client_nonce: [u8; 16],
    /// Request-type hint; a missing key 3 parses as getAssertion.
    pub hint: RequestHint,
}

impl ClientPayload {
    /// Canonical CBOR of the map.
    pub fn to_cbor(&self) -> Vec<u8> {
        Value::int_map([
            (1, Value::bytes(self.link_id.to_vec())),
            (2, Value::bytes(self.client_nonce.to_vec())),
            (3, Value::text(self.hint.as_str())),
        ])
        .to_vec()
    }
    /// The header value: uppercase hex of [`Self::to_cbor`] (as Chrome writes it).
    pub fn header_value(&self) -> String {
        hex::encode_upper(self.to_cbor())
    }
    /// Parses the CBOR map; unknown keys are ignored.
    pub fn from_cbor(bytes: &[u8]) -> Result<ClientPayload, TunnelError> {
        let v = Value::decode(bytes).map_err(TunnelError::ClientPayload)?;
        let map =
            cbor::field::map(Some(&v), "client payload").map_err(TunnelError::ClientPayload)?;
        let link_id = *cbor::field::fixed::<8>(map.get(1), "link id (1)")
            .map_err(TunnelError::ClientPayload)?;
        let client_nonce = *cbor::field::fixed::<16>(map.get(2), "client nonce (2)")
            .map_err(TunnelError::ClientPayload)?;
        let hint = match map.get(3) {
            None => RequestHint::GetAssertion,
            Some(h) => RequestHint::from_wire(
                cbor::field::text(Some(h), "hint (3)").map_err(TunnelError::ClientPayload)?,
            ),
        };
        Ok(ClientPayload { link_id, client_nonce, hint })
    }
    /// Parses a header value (hex of either case).
    pub fn parse_header(value: &str) -> Result<ClientPayload, TunnelError> {
        let bytes = hex::decode(value.trim()).map_err(|_| TunnelError::ClientPayloadNotHex)?;
        ClientPayload::from_cbor(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tunnel_id_vector_and_hex_case() {
        let id = TunnelId::derive(&QrSecret::new([0; 16]));
        assert_eq!(id.to_hex(), "3EEF97097986413B059EAA2A30D653D4");
        assert_eq!(TunnelId::parse_hex("3eef97097986413b059eaa2a30d653d4"), Ok(id));
        assert!(matches!(TunnelId::parse_hex("3EEF"), Err(TunnelError::BadId { .. })));
        assert!(TunnelId::parse_hex("ZZEF97097986413B059EAA2A30D653D4").is_err());
        let r = RoutingId::parse_hex("a1b2c3").unwrap();
        assert_eq!(r.to_hex(), "A1B2C3");
        assert!(RoutingId::parse_hex("A1B2C").is_err());
    }

    #[test]
    fn paths_round_trip() {
        let t = TunnelId([0xAB; 16]);
        let r = RoutingId([1, 2, 3]);
        for p in [
            TunnelPath::New { tunnel_id: t },
            TunnelPath::Connect { routing_id: r, tunnel_id: t },
            TunnelPath::Contact { contact_id: b"contact-id-from-fcm".to_vec() },
        ] {
            assert_eq!(TunnelPath::parse(&p.to_path()), Ok(p.clone()));
            let with_query = format!("{}?x=1", p.to_path());
            assert_eq!(TunnelPath::parse(&with_query), Ok(p));
        }
        assert_eq!(
            TunnelPath::Contact { contact_id: b"contact-id-from-fcm".to_vec() }.to_path(),
            "/cable/contact/Y29udGFjdC1pZC1mcm9tLWZjbQ"
        );
        assert_eq!(
            url("ws://127.0.0.1:1234/", &TunnelPath::New { tunnel_id: t }),
            format!("ws://127.0.0.1:1234/cable/new/{}", "AB".repeat(16))
        );
        assert_eq!(wss_base("cable.ua5v.com"), "wss://cable.ua5v.com");
    }

    #[test]
    fn bad_paths_are_rejected() {
        for p in
            ["/", "/cable/new", "/cable/new/", "/cable/other/AA", "/cable/new/AA/BB", "cable/new/x"]
        {
            assert!(TunnelPath::parse(p).is_err(), "{p}");
        }
        assert_eq!(TunnelPath::parse("/cable/contact/"), Err(TunnelError::BadContactId));
        assert_eq!(TunnelPath::parse("/cable/contact/YQ=="), Err(TunnelError::BadContactId));
        assert!(matches!(
            TunnelPath::parse("/cable/connect/A1B2/00000000000000000000000000000000"),
            Err(TunnelError::BadId { what: "routing id", .. })
        ));
    }

    #[test]
    fn client_payload_vector() {
        let p = ClientPayload {
            link_id: *b"01234567",
            client_nonce: core::array::from_fn(|i| 0x40 + i as u8),
            hint: RequestHint::GetAssertion,
        };
        let header = "A3014830313233343536370250404142434445464748494A4B4C4D4E4F03626761";
        assert_eq!(p.header_value(), header);
        assert_eq!(ClientPayload::parse_header(&header.to_lowercase()), Ok(p));
        assert_eq!(ClientPayload::parse_header("zz"), Err(TunnelError::ClientPayloadNotHex));
        assert!(matches!(ClientPayload::parse_header("a0"), Err(TunnelError::ClientPayload(_))));
    }

    #[test]
    fn hints() {
        assert_eq!(RequestHint::from_wire("mc"), RequestHint::MakeCredential);
        let other = RequestHint::from_wire("zz");
        assert_eq!(other.as_str(), "zz");
        assert_eq!(other.effective(), RequestHint::GetAssertion);
        assert_eq!(TunnelError::BadContactId.stage(), Stage::Tunnel);
    }
}
