//! `cablebridge tunnel-domain <id>`: the host name for an encoded tunnel-server domain (§4).

use crate::cmd::input_error;
use crate::output::{CmdError, Report};
use cablebridge_protocol::hybrid::domain::{tunnel_domain, DomainId};
use clap::Args;

/// Arguments of `tunnel-domain`.
#[derive(Debug, Args)]
pub struct TunnelDomainArgs {
    /// Encoded domain id, 0-65535 (2-255 are reserved and rejected).
    pub id: u16,
}

/// Runs `tunnel-domain`.
pub fn run(args: &TunnelDomainArgs) -> Result<Report, CmdError> {
    let host = tunnel_domain(args.id).map_err(|e| input_error("tunnel domain", &e))?;
    let kind = if u64::from(args.id) < DomainId::KNOWN_ASSIGNED { "assigned" } else { "hashed" };
    Ok(Report::new().field("id", args.id).field("host", host.as_ref()).field("kind", kind))
}
