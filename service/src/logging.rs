//! Logging: `tracing` events with structured fields (`session`, `transport`, `stage`, `conn`,
//! `uid`), filtered by `RUST_LOG` (else `[daemon] log`). Under systemd with the journal attached
//! (`JOURNAL_STREAM` set) events go to journald natively, so the fields are journal fields
//! (`journalctl -u cablebridged SESSION=3`); elsewhere they are formatted lines on stderr.
//!
//! Never logged: QR URLs (they carry the QR secret), PSKs, link secrets, PINs, request params.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `default_filter` applies when `RUST_LOG` is unset or invalid.
pub fn init(default_filter: &str) {
    let filter = || {
        EnvFilter::try_from_default_env()
            .or_else(|_| EnvFilter::try_new(default_filter))
            .unwrap_or_else(|_| EnvFilter::new("info"))
    };
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        match tracing_journald::layer() {
            Ok(journald) => {
                let journald = journald.with_syslog_identifier("cablebridged".to_owned());
                if tracing_subscriber::registry().with(filter()).with(journald).try_init().is_ok() {
                    return;
                }
            }
            Err(e) => eprintln!("cablebridged: journald unavailable ({e}); logging to stderr"),
        }
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
