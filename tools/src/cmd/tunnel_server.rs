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
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Resource limits (defaults: `TunnelServerConfig::default()`). Over a connection cap a client
/// gets HTTP 503 (global) or 429 (per source) before any upgrade; every refusal reason is
/// logged (first time, then at most every 10 s with its count) and counted.
#[derive(Debug, Args)]
#[command(next_help_heading = "Limits")]
pub struct LimitArgs {
    /// TCP connections held at once (upgrading, waiting, listening, both ends of each
    /// tunnel); more get HTTP 503. Memory worst case ≈ this × (1 MiB message + ~20 KiB).
    #[arg(long, default_value_t = d().max_connections, value_name = "N")]
    pub max_connections: usize,
    /// Connections held at once from one source address (IPv6: per /64); more get HTTP 429.
    /// Behind a TLS-terminating proxy every client has the proxy's address: raise this to
    /// --max-connections there and cap per client at the proxy.
    #[arg(long, default_value_t = d().max_connections_per_ip, value_name = "N")]
    pub max_connections_per_ip: usize,
    /// Tunnels + listeners held at once (paired contact tunnels included); more get HTTP 503.
    #[arg(long, default_value_t = d().max_tunnels, value_name = "N")]
    pub max_tunnels: usize,
    /// Bytes all unpaired phones may hold (messages sent before their desktop came); the phone
    /// crossing it is closed (1008) and new phones get HTTP 503 while it is reached.
    #[arg(long, default_value_t = d().max_unpaired_buffer, value_name = "BYTES")]
    pub max_unpaired_buffer: usize,
    /// Largest HTTP upgrade request (request line + headers); larger gets HTTP 431.
    #[arg(long, default_value_t = d().max_request_bytes, value_name = "BYTES")]
    pub max_request_bytes: usize,
    /// Seconds for TLS + the complete upgrade request (slow-loris limit).
    #[arg(long, default_value_t = d().handshake_timeout.as_secs(), value_name = "SECS",
        value_parser = clap::value_parser!(u64).range(1..))]
    pub handshake_timeout_secs: u64,
    /// Seconds a /cable/listen registration lasts before the phone must renew it.
    #[arg(long, default_value_t = d().listen_ttl.as_secs(), value_name = "SECS",
        value_parser = clap::value_parser!(u64).range(1..))]
    pub listen_ttl_secs: u64,
    /// Seconds a paired tunnel may go without a data message (pings do not count).
    #[arg(long, default_value_t = d().idle_timeout.as_secs(), value_name = "SECS",
        value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout_secs: u64,
    /// Absolute maximum seconds a paired tunnel lives, however busy.
    #[arg(long, default_value_t = d().max_tunnel_lifetime.as_secs(), value_name = "SECS",
        value_parser = clap::value_parser!(u64).range(1..))]
    pub max_lifetime_secs: u64,
    /// Seconds a peer has to take each message the server sends it; a peer that stops reading
    /// ends its tunnel.
    #[arg(long, default_value_t = d().send_timeout.as_secs(), value_name = "SECS",
        value_parser = clap::value_parser!(u64).range(1..))]
    pub send_timeout_secs: u64,
}

/// The library defaults, shown by `--help`.
fn d() -> TunnelServerConfig {
    TunnelServerConfig::default()
}

impl LimitArgs {
    fn apply(&self, c: &mut TunnelServerConfig) {
        c.max_connections = self.max_connections;
        c.max_connections_per_ip = self.max_connections_per_ip;
        c.max_tunnels = self.max_tunnels;
        c.max_unpaired_buffer = self.max_unpaired_buffer;
        c.max_request_bytes = self.max_request_bytes;
        c.handshake_timeout = Duration::from_secs(self.handshake_timeout_secs);
        c.listen_ttl = Duration::from_secs(self.listen_ttl_secs);
        c.idle_timeout = Duration::from_secs(self.idle_timeout_secs);
        c.max_tunnel_lifetime = Duration::from_secs(self.max_lifetime_secs);
        c.send_timeout = Duration::from_secs(self.send_timeout_secs);
    }
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
    args.limits.apply(&mut config);
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
        // Ctrl-C is caught from before the address is printed: a script that reads it and
        // interrupts at once must get the `stopped` report, not a killed process.
        let mut interrupt =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
                .map_err(|e| CmdError::environment(format!("cannot wait for Ctrl-C: {e}")))?;
        // Printed at once (and flushed) so scripts can read the ephemeral port.
        let mut out = std::io::stdout();
        let _ = writeln!(out, "{start}");
        let _ = out.flush();
        interrupt.recv().await;
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
        .field("connections_at_stop", s.connections)
        .field("request_timeouts", s.request_timeouts)
        .field("dropped_connections", s.dropped_connections)
        .field("buffer_overflows", s.buffer_overflows)
        .field("idle_closed", s.idle_closed)
        .field("lifetime_closed", s.lifetime_closed)
        .field("send_timeouts", s.send_timeouts)
        .field("rejected", rejected_map(s))
}

/// Refusals by reason, only the non-zero ones (`{"Overloaded": 3, ...}`).
fn rejected_map(s: &ServerStats) -> serde_json::Value {
    let map: serde_json::Map<String, serde_json::Value> = s
        .rejected
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(r, n)| (format!("{r:?}"), serde_json::Value::from(*n)))
        .collect();
    serde_json::Value::Object(map)
}
