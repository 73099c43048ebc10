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
use cablebridged::phone::{PhoneConfig, PhoneState, VirtualPhone};
use cablebridged::testkit::{with_phone, EventLog};
use cablebridged::tunnel::server::{TunnelServer, TunnelServerConfig};
use clap::Args;
use serde_json::{json, Value};
use std::io::Write;
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
    /// The virtual phone's AAGUID [default: cablebridge's e0e1bb60-…].
    #[arg(long, value_name = "UUID", value_parser = crate::cmd::policy_flags::parse_aaguid)]
    pub phone_aaguid: Option<cablebridged::evidence::Aaguid>,
    /// The virtual phone's attestation format.
    #[arg(long, value_enum, default_value_t = crate::cmd::phone::AttestationArg::Packed)]
    pub phone_attestation: crate::cmd::phone::AttestationArg,
    /// The virtual phone answers as a synced passkey provider (BE and BS set).
    #[arg(long)]
    pub phone_backup_eligible: bool,
    /// Entra policy verdict and MDS metadata for both results.
    #[command(flatten)]
    pub policy: crate::cmd::policy_flags::PolicyArgs,
}

/// Runs the demo.
pub fn run(args: &DemoArgs, json: bool) -> Result<Report, CmdError> {
    runtime()?.block_on(demo(args, json))
}

async fn demo(args: &DemoArgs, json: bool) -> Result<Report, CmdError> {
    let policy = args.policy.load()?;
    let server = TunnelServer::bind(TunnelServerConfig::default())
        .await
        .map_err(|e| CmdError::environment(e.to_string()))?;
    // A private (0700) directory for the advert socket, removed on drop.
    let dir = tempfile::Builder::new()
        .prefix("cablebridge-demo-")
        .tempdir()
        .map_err(|e| CmdError::environment(format!("cannot create a temporary directory: {e}")))?;
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
    phone_config.attestation = match args.phone_attestation {
        crate::cmd::phone::AttestationArg::None => AttestationMode::None,
        crate::cmd::phone::AttestationArg::Packed => AttestationMode::PackedTestCa,
    };
    if let Some(a) = args.phone_aaguid {
        phone_config.aaguid = a.0;
    }
    phone_config.backup_eligible = args.phone_backup_eligible;
    phone_config.presence_delay = Duration::from_millis(args.user_presence_delay_ms);
    phone_config.desktop_timeout = STAGE_TIMEOUT;
    phone_config.idle_timeout = STAGE_TIMEOUT;
    // Human phone lines on stderr; with --json only the desktop ceremony's lines are printed.
    let phone_progress = if json { None } else { crate::cmd::phone::stderr_events(false) };
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
    desktop_config.aaguids = policy.table.clone();

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
    let reg_extra = policy.registration_fields(&reg);
    emit_line(
        json,
        with_fields(reg.to_json(), &reg_extra),
        &format!(
            "registered credential {}{}",
            cablebridged::ceremony::b64url(&reg.credential_id),
            human_verdict(&reg_extra)
        ),
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
    let auth_extra = policy.authentication_fields(&auth, Some(reg.aaguid));
    emit_line(
        json,
        with_fields(auth.to_json(), &auth_extra),
        &format!("authenticated with the new credential{}", human_verdict(&auth_extra)),
    );

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
        .field("verification", "OK")
        .opt_field("policy", policy.policy.as_ref().map(|_| {
            json!({"register": verdict_of(&reg_extra), "authenticate": verdict_of(&auth_extra)})
        })))
}

/// `value` with the extra result fields (`policy`, `attestation_chain`) added.
fn with_fields(mut value: Value, extra: &[(&'static str, Value)]) -> Value {
    for (k, v) in extra {
        value[*k] = v.clone();
    }
    value
}

/// `"; policy reject: reason; reason"` for the human lines (empty without --policy).
fn human_verdict(extra: &[(&'static str, Value)]) -> String {
    let Some((_, p)) = extra.iter().find(|(k, _)| *k == "policy") else {
        return String::new();
    };
    let reasons: Vec<&str> = p["reasons"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    format!("; policy {}: {}", p["verdict"].as_str().unwrap_or("?"), reasons.join("; "))
}

/// The `policy.verdict` among extra result fields.
fn verdict_of(extra: &[(&'static str, Value)]) -> Value {
    extra
        .iter()
        .find(|(k, _)| *k == "policy")
        .map(|(_, v)| v["verdict"].clone())
        .unwrap_or_default()
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
