//! `cablebridge demo`: a complete cross-device ceremony on one machine with no Bluetooth and no
//! network. In one process: our tunnel server on `127.0.0.1:0`, the virtual phone, and the
//! engine's `ceremony::run` (the phone-scans-desktop wiring is `cablebridged::testkit`). The advert path is real: the phone writes to a Unix datagram socket
//! the desktop's `unix:` advert source listens on (in a private temporary directory). Registers
//! (packed attestation), then authenticates with the new credential (allowList), verifies both
//! signatures and prints a summary (plus every JSON record with `--json`).

use crate::cmd::ceremony::{ceremony_error, Renderer};
use crate::cmd::tunnel_server::runtime;
use crate::output::{CmdError, Report};
use cablebridge_protocol::authenticator::AttestationMode;
use cablebridged::advert::AdvertSource;
use cablebridged::ceremony::{
    AuthenticateOptions, CeremonyEvent, CeremonyOutcome, CeremonyRequest, HybridTransport,
    RegisterOptions, Transport,
};
use cablebridged::desktop::DesktopConfig;
use cablebridged::phone::sink::AdvertSinkSpec;
use cablebridged::phone::{PhoneConfig, PhoneState, Progress, VirtualPhone};
use cablebridged::testkit::{with_phone, EventLog};
use cablebridged::tunnel::server::{TunnelServer, TunnelServerConfig};
use clap::Args;
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Every stage of the demo is loopback work: a few seconds is already generous.
const STAGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Arguments of `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Relying party id used for both ceremonies.
    #[arg(long, default_value = "demo.cablebridge.example")]
    pub rp_id: String,
    /// Milliseconds the simulated user takes to approve on the phone.
    #[arg(long, default_value_t = 100)]
    pub user_presence_delay_ms: u64,
}

/// A private directory for the advert socket, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir, CmdError> {
        use std::os::unix::fs::DirBuilderExt;
        let path = std::env::temp_dir().join(format!(
            "cablebridge-demo-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| CmdError::environment(format!("cannot create {}: {e}", path.display())))?;
        Ok(TempDir(path))
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the demo.
pub fn run(args: &DemoArgs, json: bool) -> Result<Report, CmdError> {
    runtime()?.block_on(demo(args, json))
}

async fn demo(args: &DemoArgs, json: bool) -> Result<Report, CmdError> {
    let server = TunnelServer::bind(TunnelServerConfig::default())
        .await
        .map_err(|e| CmdError::environment(e.to_string()))?;
    let dir = TempDir::new()?;
    let advert_path = dir.path().join("adverts.sock");
    emit_line(
        json,
        json!({"event": "demo", "tunnel": server.base_url(), "adverts": format!("unix:{}", advert_path.display())}),
        &format!(
            "demo: tunnel server on {}, adverts over unix:{}",
            server.base_url(),
            advert_path.display()
        ),
    );

    let mut phone_config = PhoneConfig::new(server.base_url());
    phone_config.sink = AdvertSinkSpec::Unix(advert_path.clone());
    phone_config.attestation = AttestationMode::PackedTestCa;
    phone_config.presence_delay = Duration::from_millis(args.user_presence_delay_ms);
    phone_config.desktop_timeout = STAGE_TIMEOUT;
    phone_config.idle_timeout = STAGE_TIMEOUT;
    let phone_progress = Arc::new(move |ms: u64, p: &Progress| {
        if !json {
            let _ = writeln!(std::io::stderr(), "{}", p.to_human(ms));
        }
    });
    let mut phone = VirtualPhone::new(
        phone_config,
        PhoneState::new(&mut rand::rngs::OsRng),
        None,
        phone_progress,
    );

    let mut desktop_config = DesktopConfig::new(AdvertSource::UnixDatagram(advert_path));
    desktop_config.tunnel_url = Some(server.base_url());
    desktop_config.timeouts.advert = STAGE_TIMEOUT;
    desktop_config.timeouts.connect = STAGE_TIMEOUT;
    desktop_config.timeouts.handshake = STAGE_TIMEOUT;
    desktop_config.timeouts.user = STAGE_TIMEOUT;
    desktop_config.timeouts.late_updates = Duration::from_millis(200);

    let register = RegisterOptions::new(args.rp_id.clone(), "demo-user");
    let reg = match ceremony(&desktop_config, CeremonyRequest::Register(register), &mut phone, json)
        .await?
    {
        CeremonyOutcome::Registered(r) => r,
        CeremonyOutcome::Authenticated(_) => {
            return Err(CmdError::ceremony("register returned an assertion"))
        }
    };
    let attestation = reg
        .verify()
        .map_err(|e| CmdError::ceremony(format!("attestation does not verify: {e}")))?;
    emit_line(
        json,
        reg.to_json(),
        &format!("registered credential {}", cablebridged::ceremony::b64url(&reg.credential_id)),
    );

    let mut auth_options = AuthenticateOptions::new(args.rp_id.clone());
    auth_options.allow_credentials = vec![reg.credential_id.clone()];
    let auth = match ceremony(
        &desktop_config,
        CeremonyRequest::Authenticate(auth_options),
        &mut phone,
        json,
    )
    .await?
    {
        CeremonyOutcome::Authenticated(a) => a,
        CeremonyOutcome::Registered(_) => {
            return Err(CmdError::ceremony("authenticate returned a registration"))
        }
    };
    auth.verify(&reg.public_key)
        .map_err(|e| CmdError::ceremony(format!("assertion signature does not verify: {e}")))?;
    emit_line(json, auth.to_json(), "authenticated with the new credential");

    let stats = server.stats();
    server.shutdown().await;
    Ok(Report::new()
        .field("event", "summary")
        .field("aaguid", reg.aaguid.to_string())
        .opt_field("authenticator_name", reg.authenticator_name.clone())
        .field("attestation_format", reg.attestation_format.clone())
        .field("attestation_type", format!("{attestation:?}"))
        .field("credential_id", cablebridged::ceremony::b64url(&reg.credential_id))
        .field("register_ms", reg.timings.total_ms())
        .field("register_timings_ms", reg.timings.to_json())
        .field("authenticate_ms", auth.timings.total_ms())
        .field("authenticate_timings_ms", auth.timings.to_json())
        .field("tunnels_paired", stats.total_paired)
        .field("verification", "OK"))
}

/// One desktop ceremony with the phone answering the QR it shows.
async fn ceremony(
    config: &DesktopConfig,
    request: CeremonyRequest,
    phone: &mut VirtualPhone,
    json: bool,
) -> Result<CeremonyOutcome, CmdError> {
    let mut log = EventLog::forwarding(Box::new(move |e: &CeremonyEvent| {
        if json {
            if let Some(line) = Renderer::event_line(e) {
                println!("{line}");
            }
        } else {
            eprint!("{}", Renderer::human_text(e));
        }
    }));
    let transport = Transport::Hybrid(HybridTransport::new(config.clone()));
    let (desktop_result, phone_result) =
        with_phone(transport, request, &mut log, |qr| async move { phone.run_qr(&qr).await }).await;
    let outcome = desktop_result.map_err(ceremony_error)?;
    match phone_result {
        Some(Ok(_)) => Ok(outcome),
        Some(Err(e)) => Err(CmdError::ceremony(format!("phone: {e}"))),
        None => Err(CmdError::ceremony("the desktop showed no QR")),
    }
}

fn emit_line(json: bool, value: Value, human: &str) {
    if json {
        println!("{value}");
    } else {
        let _ = writeln!(std::io::stderr(), "{human}");
    }
}
