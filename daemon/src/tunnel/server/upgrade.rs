//! The HTTP upgrade decision: which path, which subprotocol, which waiting phone — or which
//! HTTP status instead of 101 (§6.1–§6.3 plus our private `/cable/listen`).
//!
//! Runs inside tungstenite's synchronous handshake callback, so it only does O(1) table
//! operations and header formatting; the connection task acts on the returned [`Admission`].
//!
//! Ids are checked for exact length (hex ids) or a bounded length (base64url contact ids,
//! [`MAX_CONTACT_ID_LEN`]) and their character set before anything is decoded or allocated for
//! them ([`check_shape`]); a malformed id on one of our paths is a 400, an unknown path a 404.

use super::registry::{ContactHold, DesktopReceiver, DesktopSender, Reject, SlotGuard};
use super::relay::DesktopKind;
use super::Shared;
use crate::tunnel::listen::{self, LISTEN_SECRET_HEADER, REVOKE_HEADER};
use crate::tunnel::LISTEN_PATH_PREFIX;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use cablebridge_protocol::hybrid::tunnel::{
    RoutingId, TunnelId, TunnelPath, CLIENT_PAYLOAD_HEADER, ROUTING_ID_HEADER,
    SIGNAL_CONNECTION_HEADER, SUBPROTOCOL,
};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::header::{
    CONNECTION, CONTENT_LENGTH, SEC_WEBSOCKET_PROTOCOL,
};
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue, StatusCode};

/// Longest client payload header accepted. Chrome's is ~2 × 36 hex chars (§6.3); 1 KiB leaves
/// room for future map keys without letting a desktop park large blobs on a phone.
const MAX_CLIENT_PAYLOAD_HEX: usize = 1024;

/// Longest contact id (decoded) on `/cable/contact` and `/cable/listen`: 256 bytes, several
/// times a 32-byte random or hashed credential and room for a push-service token.
pub const MAX_CONTACT_ID_LEN: usize = 256;
/// Its unpadded base64url length.
const MAX_CONTACT_ID_B64: usize = (MAX_CONTACT_ID_LEN * 4).div_ceil(3);

/// Checks the shape of a request path without allocating: `/cable/new/<32 hex>`,
/// `/cable/connect/<6 hex>/<32 hex>`, `/cable/contact/<base64url>` and `/cable/listen/<base64url>`
/// (1..=[`MAX_CONTACT_ID_B64`] chars of `A-Z a-z 0-9 - _`). Not under `/cable/<one of those>/`:
/// [`Reject::BadPath`] (404); under one but malformed: [`Reject::MalformedId`] (400).
pub(crate) fn check_shape(path: &str) -> Result<(), Reject> {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let rest = path.strip_prefix("/cable/").ok_or(Reject::BadPath)?;
    let (kind, ids) = rest.split_once('/').ok_or(Reject::BadPath)?;
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    let base64url = |s: &str| {
        (1..=MAX_CONTACT_ID_B64).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let ok = match kind {
        "new" => hex(ids, 32),
        "connect" => ids.split_once('/').is_some_and(|(r, t)| hex(r, 6) && hex(t, 32)),
        "contact" | "listen" => base64url(ids),
        _ => return Err(Reject::BadPath),
    };
    if ok {
        Ok(())
    } else {
        Err(Reject::MalformedId)
    }
}

/// What an accepted upgrade turns into.
#[derive(Debug)]
pub(crate) enum Admission {
    /// `/cable/new`: a phone waiting for its desktop.
    Phone { tunnel_id: TunnelId, guard: SlotGuard, desktop: DesktopReceiver },
    /// `/cable/listen`: a phone waiting for a state-assisted desktop.
    Listener { guard: SlotGuard, desktop: DesktopReceiver },
    /// `/cable/connect` or `/cable/contact`: a desktop that claimed a waiting phone (`hold`:
    /// a contact tunnel's place under `max_tunnels`).
    Desktop { claim: DesktopSender, kind: DesktopKind, hold: Option<ContactHold> },
}

enum Route {
    Tunnel(TunnelPath),
    Listen(Vec<u8>),
}

fn parse_route(path: &str) -> Result<Route, Reject> {
    if let Some(id) = path.strip_prefix(LISTEN_PATH_PREFIX) {
        let id = id.split(['?', '#']).next().unwrap_or_default();
        return match URL_SAFE_NO_PAD.decode(id) {
            Ok(contact_id) if !contact_id.is_empty() => Ok(Route::Listen(contact_id)),
            _ => Err(Reject::BadPath),
        };
    }
    TunnelPath::parse(path).map(Route::Tunnel).map_err(|_| Reject::BadPath)
}

/// `Sec-WebSocket-Protocol` may list several protocols, in one header or several.
fn offers_fido_cable(req: &Request) -> bool {
    req.headers()
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == SUBPROTOCOL)
}

fn header<'r>(req: &'r Request, name: &str) -> Option<&'r str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Validates the hex client payload and normalises it to lowercase.
fn client_payload(req: &Request) -> Result<String, Reject> {
    let raw = header(req, CLIENT_PAYLOAD_HEADER).ok_or(Reject::BadClientPayload)?.trim();
    if raw.is_empty() || raw.len() > MAX_CLIENT_PAYLOAD_HEX {
        return Err(Reject::BadClientPayload);
    }
    let bytes = hex::decode(raw).map_err(|_| Reject::BadClientPayload)?;
    Ok(hex::encode(bytes))
}

fn refusal(shared: &Shared, reason: Reject) -> ErrorResponse {
    shared.counters.reject(reason);
    let body = format!("{reason:?}\n");
    let length = body.len().to_string();
    let mut resp = ErrorResponse::new(Some(body));
    *resp.status_mut() = StatusCode::from_u16(reason.status()).unwrap_or(StatusCode::BAD_REQUEST);
    // tungstenite writes the body but no length; without one a client would read to EOF.
    if let Ok(v) = HeaderValue::from_str(&length) {
        resp.headers_mut().insert(CONTENT_LENGTH, v);
    }
    resp.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    resp
}

fn add_header(resp: &mut Response, name: &str, value: &str) {
    // Both are ASCII constants or hex we formatted; a failure here would be our bug, and
    // leaving the header out makes the client fail loudly rather than the server panic.
    if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value))
    {
        resp.headers_mut().insert(n, v);
    }
}

/// The handshake callback body: decides, records the decision in `out`, returns the response.
/// (The large error type is the one tungstenite's `Callback` trait prescribes.)
#[allow(clippy::result_large_err)]
pub(crate) fn decide(
    shared: &Shared,
    req: &Request,
    mut resp: Response,
    out: &mut Option<Admission>,
) -> Result<Response, ErrorResponse> {
    check_shape(req.uri().path()).map_err(|r| refusal(shared, r))?;
    // The shape is right; a decode failure left (e.g. base64 of impossible length) is malformed.
    let route = parse_route(req.uri().path()).map_err(|_| refusal(shared, Reject::MalformedId))?;
    // Checked before any table lookup, as Google's server does (pitfall §11.2 item 1).
    if !offers_fido_cable(req) {
        return Err(refusal(shared, Reject::MissingSubprotocol));
    }
    add_header(&mut resp, SEC_WEBSOCKET_PROTOCOL.as_str(), SUBPROTOCOL);
    let registry = &shared.registry;
    let unpaired = matches!(route, Route::Listen(_) | Route::Tunnel(TunnelPath::New { .. }));
    if unpaired && shared.budget.exhausted() {
        return Err(refusal(shared, Reject::BufferFull));
    }
    let admission = match route {
        Route::Tunnel(TunnelPath::New { tunnel_id }) => {
            let routing_id = shared.config.routing_id.unwrap_or_else(|| RoutingId(rand::random()));
            let (guard, desktop) =
                registry.open_tunnel(tunnel_id, routing_id).map_err(|r| refusal(shared, r))?;
            add_header(&mut resp, ROUTING_ID_HEADER, &routing_id.to_hex());
            Admission::Phone { tunnel_id, guard, desktop }
        }
        Route::Tunnel(TunnelPath::Connect { routing_id, tunnel_id }) => {
            let claim =
                registry.claim_tunnel(tunnel_id, routing_id).map_err(|r| refusal(shared, r))?;
            Admission::Desktop { claim, kind: DesktopKind::Connect, hold: None }
        }
        Route::Tunnel(TunnelPath::Contact { contact_id }) => {
            let client_payload_hex = client_payload(req).map_err(|r| refusal(shared, r))?;
            let signal = header(req, SIGNAL_CONNECTION_HEADER)
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
            // Counted before the claim frees the listener's entry, so it never escapes the cap.
            let hold = registry.hold_contact_tunnel();
            let claim = registry.claim_contact(&contact_id).map_err(|r| refusal(shared, r))?;
            if signal {
                add_header(&mut resp, SIGNAL_CONNECTION_HEADER, "true");
            }
            let kind = DesktopKind::Contact { client_payload_hex, signal };
            Admission::Desktop { claim, kind, hold: Some(hold) }
        }
        Route::Listen(contact_id) => {
            // The contact id is public (every linked desktop has one): only the phone's listen
            // secret, whose one-way derivation it is, may hold or revoke it.
            let proven = header(req, LISTEN_SECRET_HEADER)
                .is_some_and(|s| listen::secret_matches(&contact_id, s));
            if !proven {
                return Err(refusal(shared, Reject::ListenForbidden));
            }
            if header(req, REVOKE_HEADER).is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
                registry.revoke(contact_id);
                tracing::info!("contact id revoked by its phone");
                return Err(refusal(shared, Reject::RevokedContact));
            }
            let (guard, desktop) = registry.listen(contact_id).map_err(|r| refusal(shared, r))?;
            Admission::Listener { guard, desktop }
        }
        // Unreachable today; keeps compiling (and refusing) if TunnelPath grows a variant.
        #[allow(unreachable_patterns)]
        Route::Tunnel(_) => return Err(refusal(shared, Reject::BadPath)),
    };
    *out = Some(admission);
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert!(
            matches!(parse_route("/cable/listen/AQID"), Ok(Route::Listen(v)) if v == [1, 2, 3])
        );
        assert_eq!(parse_route("/cable/listen/").err(), Some(Reject::BadPath));
        assert_eq!(parse_route("/cable/listen/!!").err(), Some(Reject::BadPath));
        assert_eq!(parse_route("/other").err(), Some(Reject::BadPath));
        let lower = format!("/cable/connect/0a0b0c/{}", "ab".repeat(16));
        assert!(matches!(
            parse_route(&lower),
            Ok(Route::Tunnel(TunnelPath::Connect { routing_id: RoutingId([10, 11, 12]), .. }))
        ));
    }

    #[test]
    fn id_shapes_are_exact_or_bounded() {
        let t = "0A".repeat(16);
        for ok in [
            format!("/cable/new/{t}"),
            format!("/cable/connect/abcDEF/{t}"),
            "/cable/contact/AQID".to_owned(),
            format!("/cable/listen/{}", "A".repeat(MAX_CONTACT_ID_B64)),
            format!("/cable/new/{t}?x=1"),
        ] {
            assert_eq!(check_shape(&ok), Ok(()), "{ok}");
        }
        for bad in [
            "/cable/new/".to_owned(),
            format!("/cable/new/{t}0"),
            format!("/cable/new/{}", "zz".repeat(16)),
            format!("/cable/new/{t}/"),
            format!("/cable/connect/abcde/{t}"),
            format!("/cable/connect/abcdef/{t}/x"),
            "/cable/contact/".to_owned(),
            "/cable/contact/a+b".to_owned(),
            "/cable/contact/a/b".to_owned(),
            format!("/cable/listen/{}", "A".repeat(MAX_CONTACT_ID_B64 + 1)),
        ] {
            assert_eq!(check_shape(&bad), Err(Reject::MalformedId), "{bad}");
        }
        for unknown in ["/", "/cable", "/cable/new", "/cable/other/x", "/elsewhere"] {
            assert_eq!(check_shape(unknown), Err(Reject::BadPath), "{unknown}");
        }
    }

    #[test]
    fn subprotocol_lists_and_client_payload() {
        let req = |proto: &str, payload: &str| {
            Request::builder()
                .uri("/cable/contact/AQID")
                .header("Sec-WebSocket-Protocol", proto)
                .header(CLIENT_PAYLOAD_HEADER, payload)
                .body(())
                .unwrap()
        };
        assert!(offers_fido_cable(&req("chat, fido.cable", "00")));
        assert!(!offers_fido_cable(&req("fido.cable2", "00")));
        assert_eq!(client_payload(&req("fido.cable", "A1FF")).unwrap(), "a1ff");
        assert_eq!(client_payload(&req("fido.cable", "xyz")).err(), Some(Reject::BadClientPayload));
        let long = "00".repeat(MAX_CLIENT_PAYLOAD_HEX);
        assert_eq!(client_payload(&req("fido.cable", &long)).err(), Some(Reject::BadClientPayload));
    }
}
