//! State-assisted ceremonies with a linked phone (§6.3, §9.3): contact the phone through
//! `/cable/contact/<id>` with a fresh client payload, wait for its advert sealed under
//! `EidKey::from_link(link secret, client nonce)`, and run NKpsk0 against the stored phone key.
//! HTTP 410 Gone means the contact id is dead (its phone revoked it): the link is forgotten and
//! the user told so. Any other refusal of the contact (404 "nobody listens on it right now",
//! 503, …) means the phone is not reachable *now*: the ceremony fails with "phone not reachable"
//! at `tunnel_connect` (a peer failure, exit code 1) and the link is kept.

use cablebridge_protocol::hybrid::advert_suffix::describe_suffix;
use cablebridge_protocol::hybrid::session::DesktopPairing;
use cablebridge_protocol::hybrid::tunnel::{self as wire, ClientPayload, TunnelPath};
use rand::RngCore;
use tokio_util::sync::CancellationToken;

use super::{
    injected, open_input, redact_url, session, wait_advert, DesktopConfig, DesktopOutcome,
    DesktopRequest,
};
use crate::advert::AdvertMatcher;
use crate::ceremony::{
    cancellable, AdvertInput, CeremonyError, CeremonyErrorKind, CeremonyStage, Events,
    ProgressDetail, StageClock,
};
use crate::store::{display_name, LinkLookup};
use crate::tunnel::client::{connect, TunnelClientError};

/// Runs one ceremony with the linked phone `name` (name or id in the link store).
pub(crate) async fn run(
    config: &DesktopConfig,
    name: &str,
    adverts: AdvertInput,
    request: DesktopRequest,
    sink: Events,
    cancel: &CancellationToken,
) -> Result<(DesktopOutcome, Option<super::LateUpdates>), CeremonyError> {
    request.validate()?;
    let setup = CeremonyStage::Setup;
    let mut progress = StageClock::new(setup, sink);
    let store = config.link_store.as_ref().ok_or_else(|| {
        CeremonyError::usage(setup, "--linked needs a state directory holding linked phones")
    })?;
    let found = store
        .find(name)
        .map_err(|e| CeremonyError::classified(setup, "cannot read linked phones", &e))?;
    let link = match found {
        LinkLookup::Found(link) => link,
        LinkLookup::NotFound => {
            return Err(CeremonyError::usage(
                setup,
                format!(
                    "no linked phone named {} (see `cablebridge links list`)",
                    display_name(name)
                ),
            ))
        }
        LinkLookup::Ambiguous(ids) => {
            return Err(CeremonyError::usage(
                setup,
                format!(
                    "{} matches several linked phones; name one by id: {}",
                    display_name(name),
                    ids.join(", ")
                ),
            ))
        }
    };
    let shown = link.display_name();
    let injected = injected(config, &adverts);
    let adverts = cancellable(cancel, setup, open_input(adverts)).await?;

    let mut client_nonce = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut client_nonce);
    let payload = ClientPayload { link_id: link.link_id, client_nonce, hint: request.hint() };
    let mut matcher = AdvertMatcher::new(injected);
    let pairing =
        DesktopPairing::from_link(&link.link_secret, &client_nonce, &link.phone_public_key);
    matcher.add(0, pairing.clone());
    progress.finish(
        setup,
        CeremonyStage::TunnelConnect,
        ProgressDetail::Text(format!("contacting linked phone {shown} (id {})", link.id())),
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
            let forgotten = store.forget_key(&link.phone_public_key);
            let what = match forgotten {
                Ok(_) => "the link was forgotten; scan a QR code to link again",
                Err(_) => {
                    "forgetting the link failed too; remove it with `cablebridge links forget`"
                }
            };
            return Err(CeremonyError::new(
                tc,
                CeremonyErrorKind::Peer,
                format!("the tunnel service says linked phone {shown} is gone (HTTP 410); {what}"),
            ));
        }
        Err(TunnelClientError::HttpStatus {
            status: status @ (404 | 429 | 502 | 503 | 504),
            ..
        }) => {
            return Err(CeremonyError::new(
                tc,
                CeremonyErrorKind::Peer,
                format!(
                    "linked phone {shown} is not reachable right now (the tunnel service answered \
                     HTTP {status}: it is not listening); the link is kept, try again when the \
                     phone is online"
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
            suffix: describe_suffix(&advert.suffix),
        },
    );
    let start = session::Start { pairing, advert: &advert };
    // Updates in a linked session cannot be verified (§9.2): no link sink.
    session::drive(conn, start, request, config, None, &mut progress, cancel).await
}
