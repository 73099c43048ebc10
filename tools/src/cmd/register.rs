//! `cablebridge register` and `cablebridge authenticate`: one WebAuthn ceremony against a phone
//! (`--transport hybrid`, QR or `--linked`) or a security key (`--transport usb`), through the
//! engine's one entry point `cablebridged::ceremony::run`. This module only turns flags into a
//! `Transport` and a request; Ctrl-C cancels the ceremony in any stage (exit 1, an `error` event
//! naming the stage). Flags shared by both transports live in [`super::ceremony`].
//!
//! Through the daemon (`--daemon`, or by default when its socket is reachable) the same flags
//! become the `ceremony.*` params ([`daemon_params`]) and `super::daemon::follow` prints what
//! the in-process path prints. [`needs_this_process`] is the per-flag table of what only this
//! process can serve (README "Through the daemon").

use crate::cmd::ceremony::{
    ceremony_error, parse_duration, result_report, CeremonyArgs, Renderer, RequirementArg,
    TransportArg,
};
use crate::cmd::daemon::SocketArgs;
use crate::output::GlobalOpts;
use crate::output::{CmdError, Report};
use cablebridge_protocol::cbor::Value;
use cablebridge_protocol::ctap2::CoseKey;
use cablebridged::advert::AdvertSource;
use cablebridged::ceremony::{
    self, from_b64url, CeremonyOutcome, CeremonyRequest, HybridTransport, LinkedTransport,
    Transport,
};
use cablebridged::desktop::DesktopConfig;
use cablebridged::store::{default_state_dir, LinkStore};
use clap::Args;
use serde_json::{json, Map, Value as Json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Flags of the hybrid transport.
#[derive(Debug, Clone, Args)]
pub struct HybridArgs {
    /// Where BLE adverts come from: bluez (scan every BlueZ adapter; a Bluetooth failure ends
    /// the ceremony with exit 3 and its remedy), stdin, fifo:PATH, unix:PATH (datagram socket we
    /// bind) or unix-stream:PATH. Injected adverts are one hex service-data line each (`#`
    /// comments and blank lines ignored; optional ` rssi=-60`).
    #[arg(long, default_value = "bluez", value_name = "SOURCE")]
    pub advert_source: String,
    /// Tunnel server base URL (ws://HOST:PORT or wss://HOST) instead of the host the advert names.
    #[arg(long, value_name = "URL")]
    pub tunnel_url: Option<String>,
    /// Allow plain ws:// to non-loopback tunnel hosts.
    #[arg(long)]
    pub allow_insecure_tunnel: bool,
    /// Directory for linked phones [default: $XDG_STATE_HOME/cablebridge or
    /// ~/.local/state/cablebridge].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Do not offer linking (QR key 4 = false) and store nothing.
    #[arg(long)]
    pub no_linking: bool,
    /// Contact this linked phone (name or id from `links list`) instead of showing a QR code.
    #[arg(long, value_name = "NAME")]
    pub linked: Option<String>,
    /// Time for the phone to scan the QR code and advertise.
    #[arg(long, value_name = "DURATION", default_value = "180s", value_parser = parse_duration)]
    pub advert_timeout: Duration,
    /// Time to open the tunnel (DNS, TCP, TLS, WebSocket).
    #[arg(long, value_name = "DURATION", default_value = "20s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// Time for each handshake message (Noise message 2, post-handshake).
    #[arg(long, value_name = "DURATION", default_value = "20s", value_parser = parse_duration)]
    pub handshake_timeout: Duration,
    /// After the shutdown, keep reading the phone's late linking/update messages for up to
    /// DURATION (3m without a value, as Chrome does) instead of 2 s; the phone hanging up or
    /// Ctrl-C ends the wait without failing the ceremony. The result line follows the wait.
    #[arg(long, value_name = "DURATION", num_args = 0..=1, require_equals = true,
          default_missing_value = "3m", value_parser = parse_duration)]
    pub wait_for_linking: Option<Duration>,
}

/// `cablebridge register`.
#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// Ceremony flags.
    #[command(flatten)]
    pub ceremony: CeremonyArgs,
    /// Hybrid flags.
    #[command(flatten)]
    pub hybrid: HybridArgs,
    #[command(flatten)]
    pub usb: crate::cmd::usb::UsbCeremonyArgs,
    /// Entra policy verdict and MDS metadata.
    #[command(flatten)]
    pub policy: crate::cmd::policy_flags::PolicyArgs,
    /// The daemon's socket (see --daemon).
    #[command(flatten)]
    pub daemon: SocketArgs,
    /// Account name of the new credential.
    #[arg(long)]
    pub user_name: String,
    /// User handle as base64url (1-64 bytes) [default: 16 random bytes].
    #[arg(long)]
    pub user_id: Option<String>,
    /// Display name [default: the user name].
    #[arg(long)]
    pub display_name: Option<String>,
    /// Discoverable credential (passkey).
    #[arg(long, value_enum, default_value = "preferred")]
    pub resident_key: RequirementArg,
    /// Ask the key for its minimum PIN length (CTAP 2.1 minPinLength extension; the key answers
    /// only RP ids on the list set with `cablebridge config set-min-pin-length --rp-id`);
    /// reported as `min_pin_length` in the result.
    #[arg(long)]
    pub min_pin_length: bool,
    /// Request enterprise attestation: 1 vendor-facilitated (only RP ids the key is configured
    /// for), 2 platform-managed. The key must have it enabled (`cablebridge config enable-ep`);
    /// the result's `enterprise_attestation` is the key's epAtt.
    #[arg(long, value_name = "1|2", value_parser = clap::value_parser!(u64).range(1..=2))]
    pub enterprise_attestation: Option<u64>,
    /// WebAuthn extensions (prf, credProtect, credBlob, largeBlob).
    #[command(flatten)]
    pub extensions: crate::cmd::extension_flags::RegisterExtensionArgs,
}

/// `cablebridge authenticate`.
#[derive(Debug, Args)]
pub struct AuthenticateArgs {
    /// Ceremony flags.
    #[command(flatten)]
    pub ceremony: CeremonyArgs,
    /// Hybrid flags.
    #[command(flatten)]
    pub hybrid: HybridArgs,
    #[command(flatten)]
    pub usb: crate::cmd::usb::UsbCeremonyArgs,
    /// Entra policy verdict and MDS metadata.
    #[command(flatten)]
    pub policy: crate::cmd::policy_flags::PolicyArgs,
    /// The daemon's socket (see --daemon).
    #[command(flatten)]
    pub daemon: SocketArgs,
    /// With --policy: the AAGUID the credential was registered with (assertions carry none),
    /// for the key-restriction rule.
    #[arg(long, value_name = "UUID", value_parser = crate::cmd::policy_flags::parse_aaguid)]
    pub credential_aaguid: Option<cablebridged::evidence::Aaguid>,
    /// Acceptable credential id (base64url); repeat for several; none ⇒ discoverable.
    #[arg(long, value_name = "BASE64URL")]
    pub allow_credential: Vec<String>,
    /// The credential's public key (`public_key_cose` from `register`) to verify the signature.
    #[arg(long, value_name = "BASE64URL")]
    pub public_key: Option<String>,
    /// Several discoverable credentials for the RP on a USB key: use the Nth (1-based, the
    /// key's order); all are listed in the result's `credentials`. Without --pick and --json,
    /// on a terminal (stdin and stderr), a numbered list is shown and you type the number
    /// (Ctrl-C / Ctrl-D cancel); otherwise [default: the first].
    #[arg(long, value_name = "N")]
    pub pick: Option<usize>,
    /// WebAuthn extensions (prf, credBlob, largeBlob).
    #[command(flatten)]
    pub extensions: crate::cmd::extension_flags::AuthenticateExtensionArgs,
}

/// Runs `register`.
pub fn register(args: &RegisterArgs, global: &GlobalOpts) -> Result<Report, CmdError> {
    let c = &args.ceremony;
    let mut options = c.register_options(
        &args.user_name,
        args.user_id.as_deref(),
        args.display_name.as_deref(),
        args.resident_key,
    )?;
    options.min_pin_length = args.min_pin_length;
    options.enterprise_attestation = args.enterprise_attestation;
    options.extensions = Box::new(args.extensions.inputs()?);
    let policy = args.policy.load()?;
    let mut params = daemon_params(c, &args.hybrid, &args.usb, &args.policy)?;
    params.insert("user_name".into(), json!(args.user_name));
    insert_opt(&mut params, "user_id", args.user_id.as_deref());
    insert_opt(&mut params, "display_name", args.display_name.as_deref());
    params.insert("resident_key".into(), json!(requirement(args.resident_key)));
    if args.min_pin_length {
        params.insert("min_pin_length".into(), json!(true));
    }
    if let Some(ep) = args.enterprise_attestation {
        params.insert("enterprise_attestation".into(), json!(ep));
    }
    args.extensions.params(&mut params);
    let route = Route { method: "ceremony.register", params, socket: &args.daemon };
    let outcome = run(
        c,
        &args.hybrid,
        &args.usb,
        CeremonyRequest::Register(options),
        global,
        &policy,
        route,
    )?;
    let outcome = match outcome {
        Ran::Daemon(result) => return Ok(crate::cmd::ceremony::daemon_result_report(&result)),
        Ran::Here(outcome) => *outcome,
    };
    let CeremonyOutcome::Registered(reg) = &outcome else {
        return Err(CmdError::ceremony("the authenticator answered with an assertion"));
    };
    let mut extra = vec![("verification", outcome.verification(None))];
    extra.extend(policy.registration_fields(reg));
    Ok(result_report(&reg.to_json(), extra))
}

/// Runs `authenticate`.
pub fn authenticate(args: &AuthenticateArgs, global: &GlobalOpts) -> Result<Report, CmdError> {
    let mut options = args.ceremony.authenticate_options(&args.allow_credential)?;
    options.pick = args.pick;
    options.extensions = Box::new(args.extensions.inputs()?);
    options.validate().map_err(crate::cmd::ceremony::ceremony_error)?;
    let key = args.public_key.as_deref().map(parse_cose_key).transpose()?;
    let policy = args.policy.load()?;
    let mut params = daemon_params(&args.ceremony, &args.hybrid, &args.usb, &args.policy)?;
    params.insert("allow_credentials".into(), json!(args.allow_credential));
    insert_opt(&mut params, "public_key", args.public_key.as_deref());
    let aaguid = args.credential_aaguid.map(|a| a.to_string());
    insert_opt(&mut params, "credential_aaguid", aaguid.as_deref());
    args.extensions.params(&options.extensions, &mut params);
    let route = Route { method: "ceremony.authenticate", params, socket: &args.daemon };
    let outcome = run(
        &args.ceremony,
        &args.hybrid,
        &args.usb,
        CeremonyRequest::Authenticate(options),
        global,
        &policy,
        route,
    )?;
    let outcome = match outcome {
        Ran::Daemon(result) => return Ok(crate::cmd::ceremony::daemon_result_report(&result)),
        Ran::Here(outcome) => *outcome,
    };
    let CeremonyOutcome::Authenticated(auth) = &outcome else {
        return Err(CmdError::ceremony("the authenticator answered with a registration"));
    };
    let mut extra = vec![("verification", outcome.verification(key.as_ref()))];
    extra.extend(policy.authentication_fields(auth, args.credential_aaguid));
    Ok(result_report(&auth.to_json(), extra))
}

/// What the flags need that only this process has, as the reason to run the ceremony here (or,
/// with `--daemon`, the usage error naming the flag). Everything else is forwarded:
/// `--advert-source bluez|unix:|unix-stream:` (the daemon scans or binds the socket),
/// `--linked` (the daemon's linked phones), `--device`, the PIN from `CABLEBRIDGE_PIN` /
/// `--pin-stdin` (read here, sent as `pin`), `--policy`/`--mds` (absolute paths, read by the
/// daemon), timeouts, tunnel and WebAuthn options.
pub fn needs_this_process(c: &CeremonyArgs, h: &HybridArgs) -> Option<String> {
    if c.transport == TransportArg::Usb {
        return None;
    }
    hybrid_needs_this_process(h)
}

/// [`needs_this_process`] for the hybrid flags alone (also `present`'s rule).
pub fn hybrid_needs_this_process(h: &HybridArgs) -> Option<String> {
    match h.advert_source.parse::<AdvertSource>() {
        Ok(AdvertSource::Stdin) => {
            return Some("--advert-source stdin reads this process's standard input".into())
        }
        Ok(AdvertSource::Fifo(_)) => {
            return Some(
                "--advert-source fifo: is a feed this process reads (as you, from your files)"
                    .into(),
            )
        }
        _ => {}
    }
    h.state_dir.as_ref().map(|_| {
        "--state-dir names this process's link store; the daemon keeps linked phones in its own \
         state directory"
            .to_owned()
    })
}

/// The `ceremony.*` params both ceremonies share, from the flags (docs/api.md's table).
fn daemon_params(
    c: &CeremonyArgs,
    h: &HybridArgs,
    u: &crate::cmd::usb::UsbCeremonyArgs,
    p: &crate::cmd::policy_flags::PolicyArgs,
) -> Result<Map<String, Json>, CmdError> {
    let ms = |d: Duration| json!(format!("{}ms", d.as_millis()));
    let mut params = Map::new();
    params.insert("rp_id".into(), json!(c.rp_id));
    insert_opt(&mut params, "origin", c.origin.as_deref());
    insert_opt(&mut params, "challenge", c.challenge.as_deref());
    params.insert("uv".into(), json!(requirement(c.uv)));
    params.insert("user_timeout".into(), ms(c.user_timeout));
    if let Some(path) = &p.policy {
        params.insert("policy".into(), json!(absolute(path)?));
    }
    insert_opt(&mut params, "profile", p.profile.as_deref());
    if let Some(path) = &p.mds {
        params.insert("mds".into(), json!(absolute(path)?));
    }
    if c.transport == TransportArg::Usb {
        params.insert("transport".into(), json!("usb"));
        params.insert("device".into(), json!(u.device));
        return Ok(params);
    }
    let transport = if h.linked.is_some() { "linked" } else { "hybrid" };
    params.insert("transport".into(), json!(transport));
    params.insert("advert_source".into(), json!(daemon_advert_source(h)?));
    insert_opt(&mut params, "tunnel_url", h.tunnel_url.as_deref());
    params.insert("allow_insecure_tunnel".into(), json!(h.allow_insecure_tunnel));
    params.insert("no_linking".into(), json!(h.no_linking));
    insert_opt(&mut params, "linked", h.linked.as_deref());
    params.insert("advert_timeout".into(), ms(h.advert_timeout));
    params.insert("connect_timeout".into(), ms(h.connect_timeout));
    params.insert("handshake_timeout".into(), ms(h.handshake_timeout));
    Ok(params)
}

/// `--advert-source` as the daemon must see it: its working directory is not ours, so socket
/// paths go absolute.
pub fn daemon_advert_source(h: &HybridArgs) -> Result<String, CmdError> {
    Ok(match h.advert_source.split_once(':') {
        Some((kind @ ("unix" | "unix-stream"), path)) if !path.is_empty() => {
            format!("{kind}:{}", absolute(Path::new(path))?)
        }
        _ => h.advert_source.clone(),
    })
}

fn insert_opt(params: &mut Map<String, Json>, key: &str, value: Option<&str>) {
    if let Some(v) = value {
        params.insert(key.to_owned(), json!(v));
    }
}

fn requirement(r: RequirementArg) -> &'static str {
    match r {
        RequirementArg::Required => "required",
        RequirementArg::Preferred => "preferred",
        RequirementArg::Discouraged => "discouraged",
    }
}

fn absolute(path: &Path) -> Result<String, CmdError> {
    std::path::absolute(path)
        .map(|p| p.display().to_string())
        .map_err(|e| CmdError::environment(format!("cannot resolve {}: {e}", path.display())))
}

/// The daemon request of one ceremony.
struct Route<'a> {
    method: &'static str,
    params: Map<String, Json>,
    socket: &'a SocketArgs,
}

/// Where the ceremony ran and what it gave.
enum Ran {
    /// In this process: the engine's outcome.
    Here(Box<CeremonyOutcome>),
    /// Through the daemon: its `result` object (the CLI's result line).
    Daemon(Json),
}

fn parse_cose_key(s: &str) -> Result<CoseKey, CmdError> {
    let bytes = from_b64url(s)
        .ok_or_else(|| CmdError::usage("--public-key is not valid base64url".to_owned()))?;
    Value::decode(&bytes)
        .map_err(|e| e.to_string())
        .and_then(|v| CoseKey::from_cbor(&v).map_err(|e| e.to_string()))
        .map_err(|e| CmdError::usage(format!("--public-key is not a COSE key: {e}")))
}

fn run(
    c: &CeremonyArgs,
    h: &HybridArgs,
    u: &crate::cmd::usb::UsbCeremonyArgs,
    request: CeremonyRequest,
    global: &GlobalOpts,
    policy: &crate::cmd::policy_flags::PolicyContext,
    mut route: Route<'_>,
) -> Result<Ran, CmdError> {
    let pin =
        if c.transport == TransportArg::Usb { crate::cmd::usb::ceremony_pin(u)? } else { None };
    let transport = if c.transport == TransportArg::Usb {
        let mut usb = crate::cmd::usb::usb_transport(c, u, pin.as_deref().map(String::as_str))?;
        usb.aaguids = policy.table.clone();
        Transport::Usb(usb)
    } else {
        hybrid_transport(c, h, policy)?
    };
    let renderer = Renderer { json: global.json };
    let interactive =
        crate::cmd::picker::applies(&request, c.transport == TransportArg::Usb, global.json);
    let cli_only = needs_this_process(c, h).or_else(|| {
        (interactive && !global.daemon).then(|| {
            "the interactive account picker reads this terminal (--pick N or --json choose \
             without it)"
                .to_owned()
        })
    });
    crate::cmd::usb::block_on(|cancel| async move {
        let daemon = crate::cmd::daemon::connect_for_ceremony(global, route.socket, cli_only);
        if let Some(mut client) = daemon.await? {
            if let Some(p) = &pin {
                // Never logged: the daemon puts it straight into its zeroizing PIN type.
                route.params.insert("pin".into(), json!(p.as_str()));
            }
            let params = Json::Object(std::mem::take(&mut route.params));
            match crate::cmd::daemon::start(&mut client, route.method, params).await {
                Ok(session) => {
                    let path = route.socket.path();
                    return crate::cmd::daemon::follow(client, &path, session, renderer, cancel)
                        .await
                        .map(Ran::Daemon);
                }
                Err(e) if global.daemon => return Err(crate::cmd::daemon::refused(e)),
                Err(e) => global.note(&format!(
                    "running the ceremony in this process: the daemon did not start it ({e})"
                )),
            }
        }
        let sink = Arc::new(renderer);
        let mut outcome = ceremony::run(transport, request, Some(sink), cancel.clone())
            .await
            .map_err(ceremony_error)?;
        if let CeremonyOutcome::Authenticated(auth) = &mut outcome {
            if interactive && auth.candidates.len() > 1 {
                crate::cmd::picker::pick(auth, &cancel).await.map_err(ceremony_error)?;
            }
        }
        Ok(Ran::Here(Box::new(outcome)))
    })
}

/// `Transport::Hybrid`, or `Transport::Linked` with `--linked`, from the flags.
fn hybrid_transport(
    c: &CeremonyArgs,
    h: &HybridArgs,
    policy: &crate::cmd::policy_flags::PolicyContext,
) -> Result<Transport, CmdError> {
    let source: AdvertSource = h
        .advert_source
        .parse()
        .map_err(|e: cablebridged::advert::AdvertSourceError| CmdError::usage(e.to_string()))?;
    let mut config = DesktopConfig::new(source);
    config.tunnel_url.clone_from(&h.tunnel_url);
    config.allow_insecure_tunnel = h.allow_insecure_tunnel;
    let state_dir = h.state_dir.clone().or_else(default_state_dir);
    if !h.no_linking || h.linked.is_some() {
        config.link_store = state_dir.as_deref().map(LinkStore::in_dir);
    }
    config.timeouts.advert = h.advert_timeout;
    config.timeouts.connect = h.connect_timeout;
    config.timeouts.handshake = h.handshake_timeout;
    config.timeouts.user = c.user_timeout;
    if let Some(window) = h.wait_for_linking {
        config.timeouts.late_updates = window;
        config.late_update_mode = cablebridged::desktop::LateUpdateMode::AfterResult;
    }
    config.aaguids = policy.table.clone();
    Ok(match &h.linked {
        Some(link) => Transport::Linked(LinkedTransport::new(link.clone(), config)),
        None => Transport::Hybrid(HybridTransport::new(config)),
    })
}
