//! `cablebridge register` and `cablebridge authenticate`: one WebAuthn ceremony against a phone
//! (`--transport hybrid`, QR or `--linked`) or a security key (`--transport usb`), through the
//! engine's one entry point `cablebridged::ceremony::run`. This module only turns flags into a
//! `Transport` and a request; Ctrl-C cancels the ceremony in any stage (exit 1, an `error` event
//! naming the stage). Flags shared by both transports live in [`super::ceremony`].

use crate::cmd::ceremony::{
    ceremony_error, parse_duration, result_report, CeremonyArgs, Renderer, RequirementArg,
    TransportArg,
};
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
use std::path::PathBuf;
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
    /// key's order); all are listed in the result's `credentials` [default: the first].
    #[arg(long, value_name = "N")]
    pub pick: Option<usize>,
}

/// Runs `register`.
pub fn register(args: &RegisterArgs, global: &GlobalOpts) -> Result<Report, CmdError> {
    let c = &args.ceremony;
    let options = c.register_options(
        &args.user_name,
        args.user_id.as_deref(),
        args.display_name.as_deref(),
        args.resident_key,
    )?;
    let policy = args.policy.load()?;
    let outcome =
        run(c, &args.hybrid, &args.usb, CeremonyRequest::Register(options), global, &policy)?;
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
    options.validate().map_err(crate::cmd::ceremony::ceremony_error)?;
    let key = args.public_key.as_deref().map(parse_cose_key).transpose()?;
    let policy = args.policy.load()?;
    let outcome = run(
        &args.ceremony,
        &args.hybrid,
        &args.usb,
        CeremonyRequest::Authenticate(options),
        global,
        &policy,
    )?;
    let CeremonyOutcome::Authenticated(auth) = &outcome else {
        return Err(CmdError::ceremony("the authenticator answered with a registration"));
    };
    let mut extra = vec![("verification", outcome.verification(key.as_ref()))];
    extra.extend(policy.authentication_fields(auth, args.credential_aaguid));
    Ok(result_report(&auth.to_json(), extra))
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
) -> Result<CeremonyOutcome, CmdError> {
    let transport = if c.transport == TransportArg::Usb {
        let mut usb = crate::cmd::usb::usb_transport(c, u)?;
        usb.aaguids = policy.table.clone();
        Transport::Usb(usb)
    } else {
        hybrid_transport(c, h, policy)?
    };
    let sink = Arc::new(Renderer { json: global.json });
    crate::cmd::usb::block_on(|cancel| async move {
        ceremony::run(transport, request, Some(sink), cancel).await.map_err(ceremony_error)
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
    config.aaguids = policy.table.clone();
    Ok(match &h.linked {
        Some(link) => Transport::Linked(LinkedTransport::new(link.clone(), config)),
        None => Transport::Hybrid(HybridTransport::new(config)),
    })
}
