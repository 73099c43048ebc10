//! The tunnel client's connection machinery over loopback: redirects (with headers re-attached,
//! loops and limits), TLS with a self-signed CA in a custom root store, and the typed errors for
//! refused insecure URLs, TCP failures and untrusted certificates.

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cablebridge_protocol::error::{Classify, Fault};
use cablebridge_protocol::hybrid::tunnel::{url, TunnelId, TunnelPath};
use cablebridged::tunnel::client::{connect, ConnectOptions, TlsRoots, TunnelClientError};
use cablebridged::tunnel::listen::{contact_id, listen_headers, ListenSecret};
use cablebridged::tunnel::listen_url;
use cablebridged::tunnel::server::{TlsFiles, TunnelServer, TunnelServerConfig};
use common::test_ca_and_leaf;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const LIMIT: Duration = Duration::from_secs(20);

async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f).await.expect("test exceeded its time bound")
}

fn opts() -> ConnectOptions {
    ConnectOptions { timeout: Duration::from_secs(5), ..ConnectOptions::default() }
}

/// A minimal HTTP server answering every request with `307` and a `Location` computed from the
/// request path. Returns its address.
async fn redirector(location: impl Fn(&str) -> String + Send + Sync + 'static) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let location = Arc::new(location);
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let location = location.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf);
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let resp = format!(
                    "HTTP/1.1 307 Temporary Redirect\r\nLocation: {}\r\nContent-Length: 0\r\n\r\n",
                    location(&path)
                );
                let _ = tcp.write_all(resp.as_bytes()).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn redirect_is_followed_with_headers_reattached() {
    bounded(async {
        let s = TunnelServer::bind(TunnelServerConfig::default()).await.unwrap();
        let secret = ListenSecret::new([9; 32]);
        let redirected = contact_id(&secret).to_vec();
        let phone_opts = ConnectOptions { extra_headers: listen_headers(&secret, false), ..opts() };
        let mut listener =
            connect(&listen_url(&s.base_url(), &redirected), &phone_opts).await.unwrap();
        while s.stats().listening == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // The redirector sends the desktop to the real server, same path, as an http:// URL.
        let real = s.local_addr();
        let front = redirector(move |path| format!("http://{real}{path}")).await;
        let contact =
            url(&format!("ws://{front}"), &TunnelPath::Contact { contact_id: redirected });
        let o = ConnectOptions {
            client_payload: Some("BEEF".into()),
            signal_connection: true,
            ..opts()
        };
        let mut d = connect(&contact, &o).await.unwrap();
        // Both private headers survived the hop: the payload arrived, the signal was echoed.
        assert!(d.signal_connection());
        d.await_phone_connected().await.unwrap();
        assert_eq!(listener.await_client_payload().await.unwrap(), vec![0xBE, 0xEF]);
        d.send(b"through").await.unwrap();
        assert_eq!(listener.recv().await.unwrap().unwrap().as_ref(), b"through");
    })
    .await;
}

#[tokio::test]
async fn redirect_loops_and_chains_are_bounded() {
    bounded(async {
        let looping = redirector(|path| path.to_owned()).await;
        let tunnel_id = "A1".repeat(16);
        let e =
            connect(&format!("ws://{looping}/cable/new/{tunnel_id}"), &opts()).await.unwrap_err();
        assert!(matches!(e, TunnelClientError::RedirectLoop { .. }), "{e}");
        assert_eq!(e.fault(), Fault::Peer);
        // The error names the server and the path kind, never the tunnel id (issue 8.5).
        assert!(e.to_string().contains(&format!("ws://{looping}/cable/new/…")), "{e}");
        assert!(!format!("{e} {e:?}").contains(&tunnel_id), "{e:?}");

        // Relative Locations with a growing query never repeat: the hop limit stops them.
        let chain = redirector(|path| format!("{path}x")).await;
        let o = ConnectOptions { max_redirects: 2, ..opts() };
        let e = connect(&format!("ws://{chain}/cable/new/A?hop="), &o).await.unwrap_err();
        assert!(matches!(e, TunnelClientError::TooManyRedirects { limit: 2 }), "{e}");
    })
    .await;
}

#[tokio::test]
async fn insecure_and_unreachable_urls_are_typed_errors() {
    bounded(async {
        let e = connect("ws://tunnel.example.invalid/cable/new/00", &opts()).await.unwrap_err();
        assert!(matches!(e, TunnelClientError::InsecureNotAllowed { .. }), "{e}");
        assert_eq!(e.fault(), Fault::Caller);

        let e = connect("http://127.0.0.1/x", &opts()).await.unwrap_err();
        assert!(matches!(e, TunnelClientError::InvalidUrl { .. }), "{e}");
        let secret = "C0FFEE".repeat(5);
        let e = connect(&format!("http://127.0.0.1/cable/contact/{secret}"), &opts())
            .await
            .unwrap_err();
        assert!(matches!(e, TunnelClientError::InvalidUrl { .. }), "{e}");
        assert!(!format!("{e} {e:?}").contains(&secret), "{e:?}");

        // A port nobody listens on: TCP connect fails, which is the environment's fault.
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        let e = connect(&format!("ws://{closed}/cable/new/00"), &opts()).await.unwrap_err();
        assert!(matches!(e, TunnelClientError::TcpConnect { .. }), "{e}");
        assert_eq!(e.fault(), Fault::Environment);
    })
    .await;
}

struct Pki {
    ca_der: Vec<u8>,
    files: TlsFiles,
}

/// A throwaway CA and a leaf for `localhost` + `127.0.0.1`, written as PEM files so the server's
/// real file-loading path is exercised.
fn make_pki(tag: &str) -> Pki {
    let (ca, leaf, leaf_key) =
        test_ca_and_leaf(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]);

    let dir = std::env::temp_dir().join(format!("cablebridge-tunnel-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, leaf.pem()).unwrap();
    std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
    Pki { ca_der: ca.der().to_vec(), files: TlsFiles { cert, key } }
}

#[tokio::test]
async fn tls_with_custom_roots_pairs_and_relays() {
    bounded(async {
        let pki = make_pki("ok");
        let cfg = TunnelServerConfig { tls: Some(pki.files.clone()), ..Default::default() };
        let s = TunnelServer::bind(cfg).await.unwrap();
        assert!(s.base_url().starts_with("wss://"));
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pki.ca_der.clone().into()).unwrap();
        let o = ConnectOptions { tls_roots: TlsRoots::Custom(Arc::new(roots)), ..opts() };
        let base = format!("wss://localhost:{}", s.local_addr().port());
        let t = TunnelId([0x42; 16]);
        let mut p = connect(&url(&base, &TunnelPath::New { tunnel_id: t }), &o).await.unwrap();
        let r = p.routing_id().unwrap();
        // By IP address too (the leaf carries an IP SAN).
        let ip_base = format!("wss://127.0.0.1:{}", s.local_addr().port());
        let target = url(&ip_base, &TunnelPath::Connect { routing_id: r, tunnel_id: t });
        let mut d = connect(&target, &o).await.unwrap();
        d.send(&[1, 2, 3]).await.unwrap();
        assert_eq!(p.recv().await.unwrap().unwrap().as_ref(), &[1, 2, 3]);
        p.send(&[]).await.unwrap();
        assert_eq!(d.recv().await.unwrap().unwrap().as_ref(), &[] as &[u8]);

        // An empty custom store (or the system store) does not trust our test CA.
        let untrusted = ConnectOptions {
            tls_roots: TlsRoots::Custom(Arc::new(rustls::RootCertStore::empty())),
            ..opts()
        };
        let e = connect(&url(&base, &TunnelPath::New { tunnel_id: TunnelId([1; 16]) }), &untrusted)
            .await
            .unwrap_err();
        assert!(matches!(e, TunnelClientError::Tls { .. }), "{e}");
        assert_eq!(e.fault(), Fault::Environment);
        let e = connect(&url(&base, &TunnelPath::New { tunnel_id: TunnelId([2; 16]) }), &opts())
            .await
            .unwrap_err();
        assert!(
            matches!(e, TunnelClientError::Tls { .. } | TunnelClientError::NativeRoots(_)),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(pki.files.cert.parent().unwrap());
    })
    .await;
}

#[tokio::test]
async fn bad_tls_files_fail_at_bind() {
    let cfg = TunnelServerConfig {
        tls: Some(TlsFiles {
            cert: "/nonexistent/cert.pem".into(),
            key: "/nonexistent/key.pem".into(),
        }),
        ..Default::default()
    };
    let e = TunnelServer::bind(cfg).await.unwrap_err();
    assert_eq!(e.fault(), Fault::Environment);
    assert!(e.to_string().contains("/nonexistent/cert.pem"), "{e}");
}
