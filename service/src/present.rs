//! `ceremony.present`: a Digital Credentials request over hybrid (what `cablebridge present`
//! does in-process) as a daemon session. The daemon shows the QR code (`qr` event), sends the
//! request as the type-3 JSON message once the phone announced feature `"dc"`, and ends with
//! `{"event": "result", "kind": "presentation"|"issuance", "response": <the phone's JSON>}` or an
//! `error` (a phone without `"dc"`, a USB key behind a bridge: stage `post_handshake`, nothing
//! sent). Adverts come from the daemon's shared intake like every hybrid ceremony's.
//!
//! Parameters (docs/api.md): `request` (the JSON text, sent verbatim; at most
//! [`MAX_REQUEST_BYTES`]), `kind` (`presentation` default, or `issuance`), `user_timeout`, and the
//! hybrid ones of `ceremony.register` (`advert_source`, `tunnel_url`, `allow_insecure_tunnel`,
//! `advert_timeout`, `connect_timeout`, `handshake_timeout`); `detach`. No linking is offered
//! and `linked` is refused, as in the CLI.

use std::sync::Arc;

use cablebridged::ceremony::{
    AdvertInput, CeremonyErrorKind, CeremonyEvent, HybridTransport, Transport,
};
use cablebridged::desktop::{DcKind, DesktopConfig};
use serde_json::{json, Value};

use crate::ceremony::Route;
use crate::config::{check_advert_source, check_tunnel_url, Config};
use crate::events;
use crate::rpc::{Params, RpcError};
use crate::sessions::{Ending, Registry, Session};

/// Largest request accepted (the CLI's `--request` limit).
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;

/// A checked `ceremony.present`.
#[derive(Debug)]
pub struct PresentSpec {
    config: DesktopConfig,
    kind: DcKind,
    request: Vec<u8>,
    /// Keep running when the requesting connection closes.
    pub detach: bool,
}

fn kind_str(kind: DcKind) -> &'static str {
    match kind {
        DcKind::Issuance => "issuance",
        _ => "presentation",
    }
}

/// Reads `ceremony.present`'s params against the daemon's configuration.
pub fn parse(p: &mut Params, config: &Config) -> Result<PresentSpec, RpcError> {
    let request = p.string("request")?;
    if request.len() > MAX_REQUEST_BYTES {
        return Err(RpcError::param(
            "request",
            format!("{} bytes, more than {MAX_REQUEST_BYTES}", request.len()),
        ));
    }
    if let Err(e) = serde_json::from_str::<Value>(&request) {
        return Err(RpcError::param("request", format!("not JSON: {e}")));
    }
    let kind = match p.opt_string("kind")?.as_deref() {
        None | Some("presentation") => DcKind::Presentation,
        Some("issuance") => DcKind::Issuance,
        Some(other) => {
            return Err(RpcError::param(
                "kind",
                format!("{other:?} is not presentation or issuance"),
            ))
        }
    };
    if p.opt_string("linked")?.is_some() {
        return Err(RpcError::param("linked", "present works with a QR code only"));
    }
    let h = &config.hybrid;
    let spec = p.opt_string("advert_source")?.unwrap_or_else(|| h.advert_source.clone());
    let source = check_advert_source(&spec).map_err(|m| RpcError::param("advert_source", m))?;
    let mut d = DesktopConfig::new(source);
    d.tunnel_url = match p.opt_string("tunnel_url")? {
        Some(u) => {
            check_tunnel_url(&u).map_err(|m| RpcError::param("tunnel_url", m))?;
            Some(u)
        }
        None => h.tunnel_url.clone(),
    };
    d.allow_insecure_tunnel =
        p.opt_bool("allow_insecure_tunnel")?.unwrap_or(h.allow_insecure_tunnel);
    d.timeouts.advert = p.opt_duration("advert_timeout")?.unwrap_or(h.advert_timeout);
    d.timeouts.connect = p.opt_duration("connect_timeout")?.unwrap_or(h.connect_timeout);
    d.timeouts.handshake = p.opt_duration("handshake_timeout")?.unwrap_or(h.handshake_timeout);
    d.timeouts.user = p.opt_duration("user_timeout")?.unwrap_or(h.user_timeout);
    let detach = p.opt_bool("detach")?.unwrap_or(false);
    Ok(PresentSpec { config: d, kind, request: request.into_bytes(), detach })
}

impl PresentSpec {
    /// `presentation` / `issuance`.
    pub fn kind_str(&self) -> &'static str {
        kind_str(self.kind)
    }
}

/// Runs one `ceremony.present` session to its last event.
pub async fn run(registry: Arc<Registry>, session: Arc<Session>, spec: PresentSpec) -> Ending {
    let PresentSpec { config, kind, request, .. } = spec;
    let s = Arc::clone(&session);
    let r = Arc::clone(&registry);
    let sink = move |e: &CeremonyEvent| {
        if let CeremonyEvent::Progress(p) = e {
            s.set_stage(p.stage.as_str());
        }
        if let Some(object) = events::event_line(e) {
            r.publish(&s, &object);
        }
    };
    let cancel = session.cancel.clone();
    let adverts = AdvertInput::Source(config.advert_source.clone());
    let route = Route(Transport::Hybrid(HybridTransport { config: config.clone(), adverts }));
    let outcome = match registry.shared_adverts(route, &cancel).await {
        Ok(Route(Transport::Hybrid(h))) => {
            cablebridged::desktop::present(
                &config,
                h.adverts,
                kind,
                &request,
                Some(Arc::new(sink)),
                &cancel,
            )
            .await
        }
        Ok(_) => unreachable_route(),
        Err(e) => Err(e),
    };
    match outcome {
        Ok(response) => Ending::Succeeded(json!({
            "event": "result",
            "kind": kind_str(kind),
            "response": response,
        })),
        Err(e) if e.kind == CeremonyErrorKind::Cancelled || cancel.is_cancelled() => {
            Ending::Cancelled(events::error_object(&e))
        }
        Err(e) => Ending::Failed(events::error_object(&e)),
    }
}

/// `shared_adverts` hands back the route it was given; a hybrid one stays hybrid.
fn unreachable_route() -> Result<Value, cablebridged::ceremony::CeremonyError> {
    Err(cablebridged::ceremony::CeremonyError::new(
        cablebridged::ceremony::CeremonyStage::Setup,
        CeremonyErrorKind::Usage,
        "internal: the advert intake changed the transport",
    ))
}
