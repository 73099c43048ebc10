//! The tunnel server against the tunnel client over loopback: pairing, verbatim relay, every
//! refusal status, TTL, size/type policing, closing, and the state-assisted contact flow.
//! Every test is bounded by `tokio::time::timeout`.

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cablebridge_protocol::error::{Classify, Fault};
use cablebridge_protocol::hybrid::tunnel::{url, RoutingId, TunnelId, TunnelPath, SUBPROTOCOL};
use cablebridged::tunnel::client::{connect, ConnectOptions, TunnelClientError, TunnelConnection};
use cablebridged::tunnel::listen::{contact_id, listen_headers, ListenSecret};
use cablebridged::tunnel::listen_url;
use cablebridged::tunnel::server::{Reject, TunnelServer, TunnelServerConfig, TunnelServerHandle};
use futures_util::{SinkExt, StreamExt};
use std::future::Future;
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

const LIMIT: Duration = Duration::from_secs(20);

async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f).await.expect("test exceeded its time bound")
}

async fn server(config: TunnelServerConfig) -> TunnelServerHandle {
    TunnelServer::bind(config).await.unwrap()
}

fn opts() -> ConnectOptions {
    ConnectOptions { timeout: Duration::from_secs(5), ..ConnectOptions::default() }
}

fn tunnel(n: u8) -> TunnelId {
    TunnelId([n; 16])
}

async fn phone(s: &TunnelServerHandle, t: TunnelId) -> TunnelConnection {
    connect(&url(&s.base_url(), &TunnelPath::New { tunnel_id: t }), &opts()).await.unwrap()
}

async fn desktop(
    s: &TunnelServerHandle,
    r: RoutingId,
    t: TunnelId,
) -> Result<TunnelConnection, TunnelClientError> {
    connect(&url(&s.base_url(), &TunnelPath::Connect { routing_id: r, tunnel_id: t }), &opts())
        .await
}

async fn pair(s: &TunnelServerHandle, t: TunnelId) -> (TunnelConnection, TunnelConnection) {
    let p = phone(s, t).await;
    let r = p.routing_id().expect("routing id header on /cable/new");
    let d = desktop(s, r, t).await.unwrap();
    (p, d)
}

fn status(e: TunnelClientError) -> u16 {
    match e {
        TunnelClientError::HttpStatus { status, .. } => status,
        other => panic!("expected an HTTP status, got {other}"),
    }
}

/// Polls the server counters until `check` holds (tunnel-end accounting is asynchronous).
async fn eventually(
    s: &TunnelServerHandle,
    check: impl Fn(&cablebridged::tunnel::server::ServerStats) -> bool,
) {
    for _ in 0..200 {
        if check(&s.stats()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("stats never matched: {:?}", s.stats());
}

/// A raw tungstenite client, for what our client refuses to do (text, oversize, no subprotocol).
async fn raw(
    target: &str,
    subprotocol: bool,
    max: usize,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    WsError,
> {
    let mut req = target.into_client_request().unwrap();
    if subprotocol {
        req.headers_mut().insert("Sec-WebSocket-Protocol", SUBPROTOCOL.parse().unwrap());
    }
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    tokio_tungstenite::connect_async_with_config(req, Some(config), false).await.map(|(ws, _)| ws)
}

#[tokio::test]
async fn pairs_and_relays_verbatim_both_ways() {
    bounded(async {
        let s = server(TunnelServerConfig::default()).await;
        let (mut p, mut d) = pair(&s, tunnel(1)).await;
        let r = p.routing_id().unwrap();
        assert_eq!(r.to_hex().len(), 6);
        eventually(&s, |st| st.paired == 1).await;
        for len in [0usize, 1, 64 * 1024, 1 << 20] {
            let msg: Vec<u8> = (0..len).map(|i| (i * 31 + len) as u8).collect();
            d.send(&msg).await.unwrap();
            assert_eq!(p.recv().await.unwrap().unwrap().as_ref(), &msg[..], "desktop→phone {len}");
            let back: Vec<u8> = msg.iter().map(|b| !b).collect();
            p.send(&back).await.unwrap();
            assert_eq!(d.recv().await.unwrap().unwrap().as_ref(), &back[..], "phone→desktop {len}");
        }
        d.close().await.unwrap();
        assert!(p.recv().await.is_none(), "phone must see the close");
        assert_eq!(p.close_frame().map(|(c, _)| c), Some(1000));
        let total = 2 * (64 * 1024 + (1 << 20) + 1) as u64;
        eventually(&s, |st| {
            st.paired == 0 && st.messages_relayed == 8 && st.bytes_relayed == total
        })
        .await;
        assert_eq!(s.stats().total_paired, 1);
        s.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn desktop_messages_sent_before_phone_reads_are_delivered_in_order() {
    bounded(async {
        let s = server(TunnelServerConfig::default()).await;
        let (mut p, mut d) = pair(&s, tunnel(2)).await;
        for i in 0..20u8 {
            d.send(&[i; 100]).await.unwrap();
        }
        for i in 0..20u8 {
            assert_eq!(p.recv().await.unwrap().unwrap().as_ref(), &[i; 100][..]);
        }
    })
    .await;
}

#[tokio::test]
async fn fixed_routing_id_is_used_and_hex_is_case_insensitive() {
    bounded(async {
        let fixed = RoutingId([0xAB, 0xCD, 0xEF]);
        let s = server(TunnelServerConfig { routing_id: Some(fixed), ..Default::default() }).await;
        let mut p = phone(&s, tunnel(3)).await;
        assert_eq!(p.routing_id(), Some(fixed));
        let lower = format!("{}/cable/connect/abcdef/{}", s.base_url(), "03".repeat(16));
        let mut d = connect(&lower, &opts()).await.unwrap();
        d.send(b"hi").await.unwrap();
        assert_eq!(p.recv().await.unwrap().unwrap().as_ref(), b"hi");
    })
    .await;
}

#[tokio::test]
async fn refusals_carry_the_documented_statuses() {
    bounded(async {
        let s = server(TunnelServerConfig::default()).await;
        // No subprotocol: 400, as Google's server answers.
        let new = url(&s.base_url(), &TunnelPath::New { tunnel_id: tunnel(4) });
        match raw(&new, false, 1 << 20).await {
            Err(WsError::Http(resp)) => assert_eq!(resp.status().as_u16(), 400),
            other => panic!("expected HTTP 400, got {:?}", other.map(|_| ())),
        }
        // Unknown tunnel: 404.
        let e = desktop(&s, RoutingId([1, 2, 3]), tunnel(5)).await.unwrap_err();
        assert_eq!(e.fault(), Fault::Peer);
        assert_eq!(status(e), 404);
        // Wrong routing id: 404, and the tunnel stays claimable with the right one.
        let _p = phone(&s, tunnel(6)).await;
        let right = _p.routing_id().unwrap();
        let wrong = RoutingId([right.0[0] ^ 1, right.0[1], right.0[2]]);
        assert_eq!(status(desktop(&s, wrong, tunnel(6)).await.unwrap_err()), 404);
        let _d = desktop(&s, right, tunnel(6)).await.unwrap();
        // Already paired: 409. Duplicate tunnel id from a phone: 409.
        assert_eq!(status(desktop(&s, right, tunnel(6)).await.unwrap_err()), 409);
        let dup = connect(&new.replace(&tunnel(4).to_hex(), &tunnel(6).to_hex()), &opts()).await;
        assert_eq!(status(dup.unwrap_err()), 409);
        // Not our path: 404.
        let other = connect(&format!("{}/elsewhere", s.base_url()), &opts()).await;
        assert_eq!(status(other.unwrap_err()), 404);
        let st = s.stats();
        assert_eq!(st.rejected(Reject::MissingSubprotocol), 1);
        assert_eq!(st.rejected(Reject::UnknownTunnel), 1);
        assert_eq!(st.rejected(Reject::RoutingMismatch), 1);
        assert_eq!(st.rejected(Reject::AlreadyPaired), 1);
        assert_eq!(st.rejected(Reject::DuplicateTunnel), 1);
        assert_eq!(st.rejected(Reject::BadPath), 1);
    })
    .await;
}

#[tokio::test]
async fn unpaired_tunnel_expires_after_ttl() {
    bounded(async {
        let cfg = TunnelServerConfig {
            unpaired_ttl: Duration::from_millis(200),
            ..TunnelServerConfig::default()
        };
        let s = server(cfg).await;
        let mut p = phone(&s, tunnel(7)).await;
        let r = p.routing_id().unwrap();
        eventually(&s, |st| st.waiting == 1).await;
        assert!(p.recv().await.is_none(), "the server closes an expired tunnel");
        assert_eq!(p.close_frame().map(|(c, _)| c), Some(1001));
        assert_eq!(status(desktop(&s, r, tunnel(7)).await.unwrap_err()), 404);
        eventually(&s, |st| st.expired == 1 && st.waiting == 0).await;
    })
    .await;
}

#[tokio::test]
async fn oversize_message_closes_with_policy_violation_and_closes_the_peer() {
    bounded(async {
        let s = server(TunnelServerConfig::default()).await;
        let mut p = phone(&s, tunnel(8)).await;
        let r = p.routing_id().unwrap();
        let target =
            url(&s.base_url(), &TunnelPath::Connect { routing_id: r, tunnel_id: tunnel(8) });
        let mut d = raw(&target, true, 4 << 20).await.unwrap();
        d.send(Message::binary(vec![0u8; (1 << 20) + 1])).await.unwrap();
        match d.next().await {
            Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1008),
            other => panic!("expected a 1008 close, got {other:?}"),
        }
        assert!(p.recv().await.is_none(), "the phone side is closed too");
        // Our client refuses to send what the server would refuse.
        let (_p2, mut d2) = pair(&s, tunnel(9)).await;
        let e = d2.send(&vec![0u8; (1 << 20) + 1]).await.unwrap_err();
        assert_eq!(e.fault(), Fault::Caller);
    })
    .await;
}

#[tokio::test]
async fn text_message_closes_both_sides() {
    bounded(async {
        let s = server(TunnelServerConfig::default()).await;
        let mut p = phone(&s, tunnel(10)).await;
        let r = p.routing_id().unwrap();
        let target =
            url(&s.base_url(), &TunnelPath::Connect { routing_id: r, tunnel_id: tunnel(10) });
        let mut d = raw(&target, true, 1 << 20).await.unwrap();
        d.send(Message::text("hello")).await.unwrap();
        match d.next().await {
            Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1003),
            other => panic!("expected a 1003 close, got {other:?}"),
        }
        assert!(p.recv().await.is_none());
    })
    .await;
}

#[tokio::test]
async fn phone_closing_closes_desktop_and_frees_the_slot() {
    bounded(async {
        let s = server(TunnelServerConfig::default()).await;
        let (p, mut d) = pair(&s, tunnel(11)).await;
        let r = d.routing_id();
        assert!(r.is_none(), "only /cable/new carries a routing id");
        p.close().await.unwrap();
        assert!(d.recv().await.is_none());
        eventually(&s, |st| st.paired == 0).await;
        // The tunnel id is free again.
        let _p = phone(&s, tunnel(11)).await;
    })
    .await;
}

#[tokio::test]
async fn message_budget_per_peer_is_enforced() {
    bounded(async {
        let cfg = TunnelServerConfig { max_messages_per_peer: 3, ..Default::default() };
        let s = server(cfg).await;
        let (mut p, mut d) = pair(&s, tunnel(12)).await;
        for i in 0..3u8 {
            d.send(&[i]).await.unwrap();
            assert_eq!(p.recv().await.unwrap().unwrap().as_ref(), &[i]);
        }
        d.send(&[3]).await.unwrap();
        assert!(p.recv().await.is_none(), "the fourth message ends the tunnel");
        assert!(d.recv().await.is_none());
        assert_eq!(d.close_frame().map(|(c, _)| c), Some(1008));
    })
    .await;
}

#[tokio::test]
async fn idle_tunnel_is_closed() {
    bounded(async {
        let cfg =
            TunnelServerConfig { idle_timeout: Duration::from_millis(300), ..Default::default() };
        let s = server(cfg).await;
        let (mut p, mut d) = pair(&s, tunnel(13)).await;
        // Activity postpones the idle close.
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            d.send(b"x").await.unwrap();
            assert_eq!(p.recv().await.unwrap().unwrap().as_ref(), b"x");
        }
        assert!(p.recv().await.is_none());
        assert_eq!(p.close_frame().map(|(c, _)| c), Some(1001));
        assert!(d.recv().await.is_none());
    })
    .await;
}

/// Holds `/cable/listen` for the contact id of listen secret `[seed; 32]` (the phone's
/// credential; see `cablebridged::tunnel::listen`).
async fn listen(s: &TunnelServerHandle, seed: u8) -> (Vec<u8>, TunnelConnection) {
    let secret = ListenSecret::new([seed; 32]);
    let id = contact_id(&secret).to_vec();
    let o = ConnectOptions { extra_headers: listen_headers(&secret, false), ..opts() };
    let conn = connect(&listen_url(&s.base_url(), &id), &o).await.unwrap();
    (id, conn)
}

#[tokio::test]
async fn contact_flow_delivers_payload_and_connect_signal() {
    bounded(async {
        let s = server(TunnelServerConfig::default()).await;
        let (contact_id, mut listener) = listen(&s, 1).await;
        eventually(&s, |st| st.listening == 1).await;
        let contact = url(&s.base_url(), &TunnelPath::Contact { contact_id: contact_id.clone() });
        let payload = vec![0xA3, 0x01, 0x48, 0x00, 0xFF];
        let desktop_opts = ConnectOptions {
            client_payload: Some(hex::encode_upper(&payload)),
            signal_connection: true,
            ..opts()
        };
        let mut d = connect(&contact, &desktop_opts).await.unwrap();
        assert!(d.signal_connection(), "server echoes X-caBLE-Signal-Connection");
        d.await_phone_connected().await.unwrap();
        assert_eq!(listener.await_client_payload().await.unwrap(), payload);
        d.send(b"noise msg 1").await.unwrap();
        assert_eq!(listener.recv().await.unwrap().unwrap().as_ref(), b"noise msg 1");
        listener.send(b"noise msg 2").await.unwrap();
        assert_eq!(d.recv().await.unwrap().unwrap().as_ref(), b"noise msg 2");
        // The listener was consumed: the phone is not reachable on it now (404, not Gone).
        let again = connect(&contact, &desktop_opts).await.unwrap_err();
        assert_eq!(status(again), 404);
        assert_eq!(s.stats().rejected(Reject::UnknownContact), 1);
    })
    .await;
}

#[tokio::test]
async fn contact_without_signal_and_unknown_contact_gone() {
    bounded(async {
        let s = server(TunnelServerConfig::default()).await;
        let gone = url(&s.base_url(), &TunnelPath::Contact { contact_id: b"nobody".to_vec() });
        let with_payload = ConnectOptions { client_payload: Some("A0".into()), ..opts() };
        // Nobody listens on it: not reachable (404); only a revoked id is Gone (410).
        let e = connect(&gone, &with_payload).await.unwrap_err();
        assert!(!e.is_gone());
        assert_eq!(e.fault(), Fault::Peer);
        assert!(e.to_string().contains("404"), "{e}");

        let (phone_1, mut listener) = listen(&s, 2).await;
        eventually(&s, |st| st.listening == 1).await;
        let contact = url(&s.base_url(), &TunnelPath::Contact { contact_id: phone_1 });
        // Missing client payload: 400, and the listener stays registered.
        assert_eq!(status(connect(&contact, &opts()).await.unwrap_err()), 400);
        let mut d = connect(&contact, &with_payload).await.unwrap();
        assert!(!d.signal_connection());
        assert_eq!(listener.await_client_payload().await.unwrap(), vec![0xA0]);
        // No 0x00 signal: the first message is the phone's.
        listener.send(b"first").await.unwrap();
        assert_eq!(d.recv().await.unwrap().unwrap().as_ref(), b"first");
    })
    .await;
}

#[tokio::test]
async fn newer_listener_replaces_older() {
    bounded(async {
        let s = server(TunnelServerConfig::default()).await;
        let (p, mut old) = listen(&s, 3).await;
        eventually(&s, |st| st.listening == 1).await;
        let (_, mut new) = listen(&s, 3).await;
        assert!(old.recv().await.is_none(), "the replaced listener is closed");
        let contact = url(&s.base_url(), &TunnelPath::Contact { contact_id: p });
        let with_payload = ConnectOptions { client_payload: Some("01".into()), ..opts() };
        let _d = connect(&contact, &with_payload).await.unwrap();
        assert_eq!(new.await_client_payload().await.unwrap(), vec![1]);
    })
    .await;
}

#[tokio::test]
async fn capacity_limit_answers_503_and_shutdown_closes_tunnels() {
    bounded(async {
        let s = server(TunnelServerConfig { max_tunnels: 1, ..Default::default() }).await;
        let (mut p, mut d) = pair(&s, tunnel(14)).await;
        let e = connect(&url(&s.base_url(), &TunnelPath::New { tunnel_id: tunnel(15) }), &opts())
            .await
            .unwrap_err();
        assert_eq!(status(e), 503);
        s.shutdown().await;
        assert!(p.recv().await.is_none());
        assert_eq!(p.close_frame().map(|(c, _)| c), Some(1001));
        assert!(d.recv().await.is_none());
    })
    .await;
}
