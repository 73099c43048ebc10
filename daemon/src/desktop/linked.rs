//! State-assisted ceremonies with a linked phone (§6.3, §9.3): contact the phone through
//! `/cable/contact/<id>` with a fresh client payload, wait for its advert sealed under
//! `EidKey::from_link(link secret, client nonce)`, and run NKpsk0 against the stored phone key.
//! HTTP 410 Gone means the contact id is dead: the link is forgotten and the user told so.

use cablebridge_protocol::hybrid::eid::{EidKey, EidMode};
use cablebridge_protocol::hybrid::tunnel::{self as wire, ClientPayload, TunnelPath};
use rand::RngCore;
use tokio_util::sync::CancellationToken;

use super::{injected, open_input, redact_url, session, wait_advert, DesktopConfig};
use crate::advert::AdvertMatcher;
use crate::ceremony::{
    cancellable, AdvertInput, CeremonyError, CeremonyErrorKind, CeremonyOutcome, CeremonyRequest,
    CeremonyStage, Events, ProgressDetail, StageClock,
};
use crate::tunnel::client::connect;

/// Runs one ceremony with the linked phone `name` (name or id in the link store).
pub(crate) async fn run(
    config: &DesktopConfig,
    name: &str,
    adverts: AdvertInput,
    request: CeremonyRequest,
    sink: Events,
    cancel: &CancellationToken,
) -> Result<CeremonyOutcome, CeremonyError> {
    request.validate()?;
    let setup = CeremonyStage::Setup;
    let mut progress = StageClock::new(setup, sink);
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
    let injected = injected(config, &adverts);
    let adverts = cancellable(cancel, setup, open_input(adverts)).await?;

    let mut client_nonce = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut client_nonce);
    let payload = ClientPayload { link_id: link.link_id, client_nonce, hint: request.hint() };
    let mut matcher = AdvertMatcher::new(injected);
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
    let connecting = async {
        tokio::select! {
            biased;
            () = cancel.cancelled() => Err(CeremonyError::cancelled(tc)),
            r = connect(&url, &opts) => Ok(r),
        }
    };
    let conn = match connecting.await? {
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

    let waited =
        wait_advert(adverts, &mut matcher, &progress, config.timeouts.advert, cancel).await;
    let (advert, rssi) = match waited {
        Ok(found) => found,
        Err(e) => {
            // The tunnel is open but no handshake ran: a close frame is all the phone gets.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), conn.close()).await;
            return Err(e);
        }
    };
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
    session::drive(conn, start, request, config, None, &mut progress, cancel).await
}
