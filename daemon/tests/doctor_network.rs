//! `doctor`'s tunnel checks against local servers standing in for the tunnel hosts, reached only
//! through `--resolve` overrides (nothing leaves loopback): our own tunnel server over TLS with a
//! test CA (pass), a self-signed "interception" certificate (fail naming its issuer), a proxy
//! page instead of an upgrade, a reset after the request, a closed port, and NXDOMAIN.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cablebridged::doctor::network::{self, HostKind};
use cablebridged::doctor::{Check, DoctorOptions, ResolveOverride, Status};
use cablebridged::tunnel::server::{TlsFiles, TunnelServer, TunnelServerConfig};
use common::test_ca_and_leaf;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

const HOSTS: [&str; 5] = [
    "cable.ua5v.com",
    "cable.auth.com",
    "cable.example.org",
    "app-site-association.cdn-apple.com",
    "app-site-association.networking.apple",
];

struct Pki {
    dir: tempfile::TempDir,
    ca_file: std::path::PathBuf,
    leaf: TlsFiles,
}

/// A test CA, a leaf for every probed host signed by it, and the CA as a PEM file (`--ca-file`).
fn pki() -> Pki {
    let names: Vec<String> = HOSTS.iter().map(|h| (*h).to_owned()).collect();
    let (ca, leaf, leaf_key) = test_ca_and_leaf(names);
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: String| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let ca_file = write("ca.pem", ca.pem());
    let leaf = TlsFiles {
        cert: write("leaf.pem", leaf.pem()),
        key: write("leaf.key", leaf_key.serialize_pem()),
    };
    Pki { dir, ca_file, leaf }
}

/// A self-signed certificate for every host, as a TLS-inspecting proxy without a trusted CA
/// would present.
fn interception_files(dir: &std::path::Path) -> TlsFiles {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(HOSTS.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>())
            .unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, "Corp Inspection CA");
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "Example Corp");
    let cert = params.self_signed(&key).unwrap();
    let cert_path = dir.join("intercept.pem");
    let key_path = dir.join("intercept.key");
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    TlsFiles { cert: cert_path, key: key_path }
}

/// A TLS server that reads one request head and answers `answer` (or just closes when `None`).
async fn fake_server(files: &TlsFiles, answer: Option<&'static [u8]>) -> SocketAddr {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(&files.cert).unwrap().collect::<Result<_, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_file(&files.key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                if let Some(a) = answer {
                    tls.write_all(a).await.ok();
                }
                tls.shutdown().await.ok();
            });
        }
    });
    addr
}

fn opts_for(pki: &Pki, targets: &[(&str, SocketAddr)]) -> DoctorOptions {
    DoctorOptions {
        step_timeout: Duration::from_secs(5),
        extra_tunnel_hosts: vec!["cable.example.org".into()],
        resolve: targets
            .iter()
            .map(|(h, a)| format!("{h}:{a}").parse::<ResolveOverride>().unwrap())
            .collect(),
        tls_roots: Some(cablebridged::doctor::DoctorOptions::load_ca_file(&pki.ca_file).unwrap()),
        proxy_env: Some(vec![]),
        ..DoctorOptions::default()
    }
}

fn get<'a>(checks: &'a [Check], id: &str) -> &'a Check {
    checks.iter().find(|c| c.id == id).unwrap_or_else(|| panic!("no {id} in {checks:#?}"))
}

async fn probe(host: &str, kind: HostKind, opts: &DoctorOptions) -> Vec<Check> {
    timeout(Duration::from_secs(30), network::probe_host(host, kind, opts)).await.expect("bounded")
}

#[tokio::test]
async fn real_tunnel_server_with_test_ca_passes_every_step_for_every_host() {
    let pki = pki();
    let cfg = TunnelServerConfig { tls: Some(pki.leaf.clone()), ..Default::default() };
    let server = TunnelServer::bind(cfg).await.unwrap();
    let addr = server.local_addr();
    let targets: Vec<(&str, SocketAddr)> = HOSTS.iter().map(|h| (*h, addr)).collect();
    let opts = opts_for(&pki, &targets);
    let checks = timeout(Duration::from_secs(30), network::run(&opts)).await.unwrap();
    for c in &checks {
        assert_eq!(c.status, Status::Pass, "{c:?}");
    }
    // 3 tunnel hosts × 4 steps + 2 Apple hosts × 3 steps + tunnel.proxy.
    assert_eq!(checks.len(), 3 * 4 + 2 * 3 + 1, "{checks:#?}");
    let ws = get(&checks, "tunnel.cable.ua5v.com.websocket");
    assert!(ws.detail.contains("HTTP 404"), "our server refuses an unknown tunnel: {ws:?}");
    let tls = get(&checks, "tunnel.cable.auth.com.tls");
    assert!(
        tls.detail.contains("--ca-file") && tls.detail.contains("cablebridge test CA"),
        "{tls:?}"
    );
    assert!(get(&checks, "tunnel.cable.ua5v.com.dns").detail.contains("from --resolve"));
    assert!(checks.iter().all(|c| c.id != "tunnel.app-site-association.cdn-apple.com.websocket"));
    server.shutdown().await;
}

#[tokio::test]
async fn self_signed_interception_certificate_fails_tls_naming_the_issuer() {
    let pki = pki();
    let files = interception_files(pki.dir.path());
    let addr =
        fake_server(&files, Some(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")).await;
    let opts = opts_for(&pki, &[("cable.ua5v.com", addr)]);
    let checks = probe("cable.ua5v.com", HostKind::Tunnel, &opts).await;
    let tls = get(&checks, "tunnel.cable.ua5v.com.tls");
    assert_eq!(tls.status, Status::Fail, "{tls:?}");
    assert!(tls.detail.contains("CN=Corp Inspection CA"), "{tls:?}");
    assert!(
        tls.detail.contains("self-signed") && tls.detail.contains("probable TLS interception"),
        "{tls:?}"
    );
    assert!(tls.remedy.as_deref().unwrap().contains("exempt cable.ua5v.com from TLS inspection"));
    assert_eq!(get(&checks, "tunnel.cable.ua5v.com.tcp").status, Status::Pass);
    assert_eq!(get(&checks, "tunnel.cable.ua5v.com.websocket").status, Status::Skip);
}

#[tokio::test]
async fn proxy_page_instead_of_an_upgrade_fails_websocket_with_its_evidence() {
    let pki = pki();
    let page: &'static [u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nVia: 1.1 corp-proxy\r\n\
        Content-Length: 61\r\nConnection: close\r\n\r\n<html><title>Access Denied by Policy</title><body></body></html>";
    let addr = fake_server(&pki.leaf, Some(page)).await;
    let opts = opts_for(&pki, &[("cable.auth.com", addr)]);
    let checks = probe("cable.auth.com", HostKind::Tunnel, &opts).await;
    assert_eq!(get(&checks, "tunnel.cable.auth.com.tls").status, Status::Pass);
    let ws = get(&checks, "tunnel.cable.auth.com.websocket");
    assert_eq!(ws.status, Status::Fail, "{ws:?}");
    assert!(ws.detail.contains("HTTP 200 with a page"), "{ws:?}");
    assert!(ws.detail.contains("via: 1.1 corp-proxy"), "{ws:?}");
    assert!(ws.detail.contains("Access Denied by Policy"), "{ws:?}");
    assert!(ws.remedy.as_deref().unwrap().contains("allow WebSocket upgrades"), "{ws:?}");
}

#[tokio::test]
async fn reset_after_the_request_and_proxy_auth_fail_websocket() {
    let pki = pki();
    let addr = fake_server(&pki.leaf, None).await;
    let opts = opts_for(&pki, &[("cable.ua5v.com", addr)]);
    let checks = probe("cable.ua5v.com", HostKind::Tunnel, &opts).await;
    let ws = get(&checks, "tunnel.cable.ua5v.com.websocket");
    assert_eq!(ws.status, Status::Fail, "{ws:?}");
    assert!(
        ws.detail.contains("closed before any HTTP answer")
            || ws.detail.contains("failed during the upgrade"),
        "{ws:?}"
    );

    let addr = fake_server(
        &pki.leaf,
        Some(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n"),
    )
    .await;
    let opts = opts_for(&pki, &[("cable.ua5v.com", addr)]);
    let checks = probe("cable.ua5v.com", HostKind::Tunnel, &opts).await;
    let ws = get(&checks, "tunnel.cable.ua5v.com.websocket");
    assert_eq!(ws.status, Status::Fail, "{ws:?}");
    assert!(ws.detail.contains("407"), "{ws:?}");
}

#[tokio::test]
async fn closed_port_fails_tcp_and_skips_tls_and_websocket() {
    let pki = pki();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let opts = opts_for(&pki, &[("cable.ua5v.com", addr)]);
    let checks = probe("cable.ua5v.com", HostKind::Tunnel, &opts).await;
    assert_eq!(get(&checks, "tunnel.cable.ua5v.com.dns").status, Status::Pass);
    let tcp = get(&checks, "tunnel.cable.ua5v.com.tcp");
    assert_eq!(tcp.status, Status::Fail, "{tcp:?}");
    assert!(tcp.detail.contains("refused"), "{tcp:?}");
    assert!(tcp.remedy.as_deref().unwrap().contains("allow outbound TCP"), "{tcp:?}");
    for step in ["tls", "websocket"] {
        assert_eq!(get(&checks, &format!("tunnel.cable.ua5v.com.{step}")).status, Status::Skip);
    }
}

#[tokio::test]
async fn nxdomain_fails_dns_and_skips_the_rest() {
    let pki = pki();
    let mut opts = opts_for(&pki, &[]);
    opts.resolve = vec!["app-site-association.networking.apple:nxdomain".parse().unwrap()];
    let host = "app-site-association.networking.apple";
    let checks = probe(host, HostKind::AppleAssociation, &opts).await;
    assert_eq!(checks.len(), 3, "no websocket step for Apple's association host: {checks:?}");
    let dns = get(&checks, &format!("tunnel.{host}.dns"));
    assert_eq!(dns.status, Status::Fail, "{dns:?}");
    assert!(dns.detail.contains("NXDOMAIN"), "{dns:?}");
    assert!(dns.remedy.as_deref().unwrap().contains(host));
    assert!(checks[1..].iter().all(|c| c.status == Status::Skip), "{checks:?}");
}
