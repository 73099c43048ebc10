//! `cablebridge tunnel-server`: runs our caBLE tunnel relay (`cablebridged::tunnel::server`)
//! until Ctrl-C, then prints the final counters. Per-tunnel statistics are logged through
//! `tracing` on stderr (plain format, journald-friendly; `RUST_LOG` selects the level).

use crate::output::{CmdError, Report};
use cablebridge_protocol::hybrid::tunnel::RoutingId;
use cablebridged::tunnel::server::{ServerStats, TlsFiles, TunnelServer, TunnelServerConfig};
use clap::Args;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Arguments of `tunnel-server`.
#[derive(Debug, Args)]
pub struct TunnelServerArgs {
    /// Address to listen on; `127.0.0.1:0` picks a free port (printed at start).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// PEM certificate chain: serve wss:// (requires --tls-key).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Fixed routing id (6 hex digits) for every tunnel; random per tunnel if absent.
    #[arg(long)]
    pub routing_id: Option<String>,
    /// Seconds an unpaired /cable/new tunnel waits for its desktop.
    #[arg(long, default_value_t = 120)]
    pub ttl_secs: u64,
}

/// Installs a stderr `tracing` subscriber honouring `RUST_LOG` (default `info`), without
/// colours or timestamps' ANSI noise so journald stores clean lines.
pub fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

/// A small (2-worker) tokio runtime for one command: the CLI front end is synchronous.
pub fn runtime() -> Result<tokio::runtime::Runtime, CmdError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CmdError::environment(format!("cannot start the async runtime: {e}")))
}

/// Runs the server until Ctrl-C.
pub fn run(args: &TunnelServerArgs, json: bool) -> Result<Report, CmdError> {
    init_tracing("info");
    let mut config = TunnelServerConfig {
        listen: args.listen,
        unpaired_ttl: Duration::from_secs(args.ttl_secs),
        ..TunnelServerConfig::default()
    };
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        config.tls = Some(TlsFiles { cert: cert.clone(), key: key.clone() });
    }
    if let Some(hex) = &args.routing_id {
        let id = RoutingId::parse_hex(hex.trim())
            .map_err(|e| crate::cmd::input_error("invalid --routing-id", &e))?;
        config.routing_id = Some(id);
    }
    runtime()?.block_on(async move {
        let server = TunnelServer::bind(config).await.map_err(|e| {
            CmdError::environment(e.to_string()).at(cablebridge_protocol::Stage::Tunnel)
        })?;
        let start = if json {
            serde_json::json!({
                "event": "listening",
                "address": server.local_addr().to_string(),
                "base_url": server.base_url(),
            })
            .to_string()
        } else {
            format!("listening on {} (base URL {})", server.local_addr(), server.base_url())
        };
        // Printed at once (and flushed) so scripts can read the ephemeral port.
        let mut out = std::io::stdout();
        let _ = writeln!(out, "{start}");
        let _ = out.flush();
        tokio::signal::ctrl_c()
            .await
            .map_err(|e| CmdError::environment(format!("cannot wait for Ctrl-C: {e}")))?;
        let stats = server.stats();
        server.shutdown().await;
        Ok(stats_report(&stats))
    })
}

fn stats_report(s: &ServerStats) -> Report {
    Report::new()
        .field("event", "stopped")
        .field("total_paired", s.total_paired)
        .field("expired", s.expired)
        .field("messages_relayed", s.messages_relayed)
        .field("bytes_relayed", s.bytes_relayed)
        .field("handshake_failures", s.handshake_failures)
        .field("active_at_stop", s.active_tunnels())
        .field("listening_at_stop", s.listening)
}
