//! State-assisted ceremonies with a linked phone (§6.3, §9.3): contact the phone through
//! `/cable/contact/<id>` with a fresh client payload, wait for its advert sealed under
//! `EidKey::from_link(link secret, client nonce)`, and run NKpsk0 against the stored phone key.
//! HTTP 410 Gone means the contact id is dead: the link is forgotten and the user told so.

use std::sync::Arc;

use cablebridge_protocol::hybrid::eid::{EidKey, EidMode};
use cablebridge_protocol::hybrid::tunnel::{self as wire, ClientPayload, TunnelPath};
use rand::RngCore;

use super::{
    open_source, redact_url, session, wait_advert, CeremonyOutcome, CeremonyRequest, DesktopConfig,
};
use crate::advert::AdvertMatcher;
use crate::ceremony::{
    CeremonyError, CeremonyErrorKind, CeremonyStage, Progress, ProgressDetail, ProgressSink,
};
use crate::tunnel::client::connect;

pub(super) async fn run(
    config: &DesktopConfig,
    name: &str,
    request: CeremonyRequest,
    sink: Option<Arc<dyn ProgressSink>>,
) -> Result<CeremonyOutcome, CeremonyError> {
    let setup = CeremonyStage::Setup;
    let mut progress = Progress::new(setup, sink);
    let store = config.link_store.as_ref().ok_or_else(|| {
        CeremonyError::usage(setup, "--linked needs a state directory holding linked phones")
    })?;
    let link = store
        .find(name)
        .map_err(|e| CeremonyError::classified(setup, "cannot read linked phones", &e))?
        .ok_or_else(|| {
            CeremonyError::usage(
                setup,
                format!("no linked phone named {name:?} (see `cablebridge links list`)"),
            )
        })?;
    let adverts = open_source(config).await?;

    let mut client_nonce = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut client_nonce);
    let payload = ClientPayload { link_id: link.link_id, client_nonce, hint: request.hint() };
    let mut matcher =
        AdvertMatcher::new(config.advert_source != crate::advert::AdvertSource::Bluez);
    matcher.add(0, EidKey::from_link(&link.link_secret, &client_nonce), EidMode::Linked);
    progress.finish(
        setup,
        CeremonyStage::TunnelConnect,
        ProgressDetail::Text(format!("contacting linked phone {} (id {})", link.name, link.id())),
    );

    let tc = CeremonyStage::TunnelConnect;
    let host = cablebridge_protocol::hybrid::domain::tunnel_domain(link.tunnel_domain)
        .map_err(|e| CeremonyError::classified(tc, "the stored link names no usable tunnel", &e))?;
    let path = TunnelPath::Contact { contact_id: link.contact_id.clone() };
    let url = wire::url(&config.tunnel_base(&host), &path);
    let mut opts = config.connect_options();
    opts.client_payload = Some(payload.header_value());
    let conn = match connect(&url, &opts).await {
        Ok(c) => c,
        Err(e) if e.is_gone() => {
            let forgotten = store.forget(&link.id());
            let what = match forgotten {
                Ok(_) => "the link was forgotten; scan a QR code to link again",
                Err(_) => {
                    "forgetting the link failed too; remove it with `cablebridge links forget`"
                }
            };
            return Err(CeremonyError::new(
                tc,
                CeremonyErrorKind::Peer,
                format!(
                    "the tunnel service says linked phone {:?} is gone (HTTP 410); {what}",
                    link.name
                ),
            ));
        }
        Err(e) => return Err(CeremonyError::classified(tc, "cannot open the tunnel", &e)),
    };
    progress.finish(tc, CeremonyStage::Advert, ProgressDetail::Text(redact_url(&url)));

    let (advert, rssi) =
        wait_advert(adverts, &mut matcher, &progress, config.timeouts.advert).await?;
    progress.finish(
        CeremonyStage::Advert,
        CeremonyStage::Handshake,
        ProgressDetail::Advert {
            rssi,
            routing_id: advert.plaintext.routing_id().to_hex(),
            tunnel_host: host.to_string(),
        },
    );
    let psk = advert.psk(link.link_secret.expose());
    let start = session::Start::Linked { phone: &link.phone_public_key, psk: &psk };
    // Updates in a linked session cannot be verified (§9.2): no link sink.
    session::drive(conn, start, request, config, None, &mut progress).await
}
