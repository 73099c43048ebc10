//! # cablebridge-service
//!
//! `cablebridged`, the background service, as a library over the engine crate (`cablebridged`):
//! the JSON-RPC control API on a Unix socket ([`server`], [`methods`], [`rpc`]), the session
//! registry that runs one task per session ([`sessions`]: ceremonies [`ceremony`], phones
//! [`bridge`], lab runs [`labruns`], Digital Credentials requests [`present`]) with one shared advert intake ([`adverts`]), access control by peer
//! credentials ([`access`]), configuration ([`config`]), systemd glue ([`systemd`]), logging
//! ([`logging`]), and the client used by the `cablebridge` CLI ([`client`]).
//!
//! The engine never imports this crate (the crate graph enforces it: `cablebridged` does not
//! depend on `cablebridge-service`). The binary `cablebridged` (`src/main.rs`) parses flags and
//! calls [`run`].
//!
//! Run loop: bind or adopt the socket → `READY=1` → accept connections (one task each) until
//! SIGTERM/SIGINT → `STOPPING=1` → cancel every session and wait (bounded) → remove the socket
//! file if we created it. The watchdog, when enabled, is the only periodic timer.

pub mod access;
pub mod adverts;
pub mod bridge;
pub mod ceremony;
pub mod client;
pub mod config;
pub mod devices;
pub mod events;
pub mod labruns;
pub mod logging;
pub mod methods;
pub mod present;
pub mod rpc;
pub mod server;
pub mod sessions;
pub mod systemd;
pub mod uhid;

use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

pub use config::Config;
use server::{Daemon, Listening, SocketError};

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The control socket.
    #[error(transparent)]
    Socket(#[from] SocketError),
    /// Socket activation handed us something unusable.
    #[error("cannot adopt the socket passed by systemd: {0}")]
    Adopt(#[source] std::io::Error),
    /// Signal handlers.
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(config: Config) -> Result<(), DaemonError> {
    let listening = match systemd::adopted_listener().map_err(DaemonError::Adopt)? {
        Some(std_listener) => {
            std_listener.set_nonblocking(true).map_err(DaemonError::Adopt)?;
            Listening::Adopted(
                tokio::net::UnixListener::from_std(std_listener).map_err(DaemonError::Adopt)?,
            )
        }
        None => server::bind(&config.socket, &config.socket_group)?,
    };
    let (listener, bound, where_) = match &listening {
        Listening::Adopted(l) => {
            let path =
                l.local_addr().ok().and_then(|a| a.as_pathname().map(|p| p.display().to_string()));
            (
                l,
                None,
                format!("{} (socket activation)", path.unwrap_or_else(|| "systemd socket".into())),
            )
        }
        Listening::Bound(l, path) => (l, Some(path.clone()), path.display().to_string()),
    };
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;

    let daemon = Arc::new(Daemon::new(config, where_.clone()));
    let shutdown = CancellationToken::new();
    tracing::info!(socket = %where_, state_dir = %daemon.config.state_dir.display(), "cablebridged listening");
    systemd::ready(&format!("listening on {where_}"));

    let watchdog = systemd::watchdog_interval().map(|every| {
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = tick.tick() => systemd::watchdog(),
                }
            }
        })
    });

    if daemon.config.uhid.enabled {
        // A front that cannot start (no /dev/uhid access) is logged; the control API still
        // serves, and `bridge.uhid` / the doctor say why.
        if let Err(e) = daemon.uhid.start(&daemon.config, &daemon.registry, None).await {
            tracing::error!("uhid front not started: {}", e.message);
        }
    }

    tokio::select! {
        () = server::serve(Arc::clone(&daemon), listener, shutdown.clone()) => {}
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    systemd::stopping();
    shutdown.cancel();
    daemon.registry.shutdown(Duration::from_secs(5)).await;
    daemon.uhid.stop().await;
    if let Some(w) = watchdog {
        w.abort();
    }
    if let Some(path) = bound {
        let _ = std::fs::remove_file(&path);
    }
    tracing::info!("stopped");
    Ok(())
}
