//! `session`: an established hybrid session exchanging CTAP-sized frames in memory, in three
//! layers so the allocation boundary is visible:
//!
//! 1. **session**: the desktop seals a CTAP request in place, the phone opens it into its
//!    session scratch (`PhoneOpen::receive_borrowed`) and seals its response into a reused buffer
//!    (`respond_ctap_into`), the desktop opens that in place. Our code; goal 0 allocations.
//! 2. **websocket**: the same ciphertexts carried over a WebSocket pair (tokio-tungstenite,
//!    client and server role over an in-memory duplex pipe, no TCP): what the library itself
//!    allocates per message, sending the way `TunnelConnection::send` does
//!    (`Bytes::copy_from_slice`) and receiving a `Message::Binary`.
//! 3. **desktop request**: the desktop's one CTAP request per connection (`send_ctap_into`, 0)
//!    and its response (`DesktopEvent::CtapResponse` hands the body out as an owned `Vec`: 1).
//!
//! Allocations are counted single-threaded (a current-thread runtime for the WebSocket layer),
//! so every counted allocation is this exchange's.

use super::{time_per_op, Measurement, Options};
use cablebridge_protocol::ctap2::{Command, StatusCode};
use cablebridge_protocol::hybrid::crypter::{sealed_len, Crypter};
use cablebridge_protocol::hybrid::keys::Psk;
use cablebridge_protocol::hybrid::messages::PostHandshake;
use cablebridge_protocol::hybrid::noise::IdentityKeyPair;
use cablebridge_protocol::hybrid::session::{
    DesktopEvent, DesktopHandshake, DesktopOpen, PhoneFrame, PhoneHandshaken, PhoneOpen,
};
use futures_util::{SinkExt, StreamExt};
use p256::SecretKey;
use rand::SeedableRng;
use std::hint::black_box;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_tungstenite::WebSocketStream;

/// CTAP-sized bodies: a getAssertion-sized request, a typical makeCredential with packed
/// attestation, a large one.
const SIZES: &[usize] = &[256, 1024, 4096];

/// One QR session, handshaken and past the post-handshake message: the desktop's crypter (as
/// the data phase uses it), the phone's open session, and the desktop's session phase.
fn open_pair(seed: u64) -> Result<(DesktopOpen, PhoneOpen), String> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let identity = IdentityKeyPair::new(SecretKey::random(&mut rng));
    let psk = Psk::new([seed as u8; 32]);
    let (desktop, msg1) = DesktopHandshake::start_qr(&psk, &identity, &mut rng);
    let (phone, msg2) = PhoneHandshaken::respond_qr(&psk, &identity.public_key(), &msg1, &mut rng)
        .map_err(|e| format!("session bench: handshake: {e}"))?;
    let desktop = desktop.read_response(&msg2).map_err(|e| format!("session bench: {e}"))?;
    let (phone, post) = phone
        .send_post_handshake(&PostHandshake::ctap(vec![0xa0]))
        .map_err(|e| format!("session bench: post-handshake: {e}"))?;
    let desktop = desktop.read_post_handshake(&post).map_err(|e| format!("session bench: {e}"))?;
    Ok((desktop, phone))
}

/// The data phase of one session as the two sides run it after the one request: the desktop's
/// crypter for raw frames (a session sends one request per connection, so a loop of requests
/// is modelled by sealing `[0x01 ‖ command ‖ params]` in place, which is what
/// `send_ctap_into` does) and the phone's open session.
struct Exchange {
    desktop: Crypter,
    phone: PhoneOpen,
    request: Vec<u8>,
    response: Vec<u8>,
    body: Vec<u8>,
}

impl Exchange {
    fn new(seed: u64) -> Result<Exchange, String> {
        // The desktop's crypter comes from a raw handshake: the session phase types own theirs.
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let identity = IdentityKeyPair::new(SecretKey::random(&mut rng));
        let psk = Psk::new([seed as u8; 32]);
        let (init, msg1) = cablebridge_protocol::hybrid::noise::Initiator::start(
            cablebridge_protocol::hybrid::noise::InitiatorKeys::Qr { desktop_identity: &identity },
            &psk,
            &mut rng,
        );
        let (phone, msg2) =
            PhoneHandshaken::respond_qr(&psk, &identity.public_key(), &msg1, &mut rng)
                .map_err(|e| format!("session bench: handshake: {e}"))?;
        let mut desktop = init
            .read_response(&msg2)
            .map_err(|e| format!("session bench: handshake: {e}"))?
            .crypter;
        let (phone, mut post) = phone
            .send_post_handshake(&PostHandshake::ctap(vec![0xa0]))
            .map_err(|e| format!("session bench: post-handshake: {e}"))?;
        desktop.open_in_place(&mut post).map_err(|e| format!("session bench: {e}"))?;
        let max = *SIZES.iter().max().unwrap_or(&4096);
        Ok(Exchange {
            desktop,
            phone,
            request: vec![0; sealed_len(max + 2)],
            response: Vec::with_capacity(sealed_len(max + 2)),
            body: vec![0x5a; max],
        })
    }

    /// Seals a request of `len` params into `self.request`; returns the ciphertext length.
    fn seal_request(&mut self, len: usize) -> Option<usize> {
        self.request[0] = 0x01; // CTAP frame
        self.request[1] = u8::from(Command::GetAssertion);
        self.request[2..2 + len].fill(0xa0);
        self.desktop.seal_in_place(&mut self.request, 2 + len).ok()
    }

    /// The phone opens `ciphertext` and answers with `len` bytes into `self.response`.
    fn phone_answer(&mut self, ciphertext: &[u8], len: usize) -> bool {
        match self.phone.receive_borrowed(ciphertext) {
            Ok(PhoneFrame::CtapRequest { params, .. }) if params.len() == len => {}
            _ => return false,
        }
        self.phone.respond_ctap_into(StatusCode::Ok, &self.body[..len], &mut self.response).is_ok()
    }

    /// One in-memory request/response; true when the desktop got the whole answer back.
    fn round(&mut self, len: usize) -> bool {
        let Some(n) = self.seal_request(len) else { return false };
        let request = std::mem::take(&mut self.request);
        let ok = self.phone_answer(&request[..n], len);
        self.request = request;
        ok && self.desktop.open_in_place(&mut self.response) == Ok(len + 2)
    }
}

/// Runs the three layers.
pub fn session(opts: &Options<'_>) -> Result<Vec<Measurement>, String> {
    let mut out = Vec::new();
    let frames: usize = if opts.quick { 50 } else { 20_000 };
    let mut ex = Exchange::new(1)?;
    for &len in SIZES {
        // Warm-up grows the phone's scratch and the response buffer once.
        if !ex.round(len) {
            return Err("session bench: an in-memory exchange failed".into());
        }
        let stats = time_per_op(opts.reps(), || {
            let mut ok = 0;
            for _ in 0..frames {
                ok += u64::from(ex.round(black_box(len)));
            }
            // Two frames per round: the request and the response.
            2 * ok
        });
        let allocs = opts.count_allocs(|| {
            for _ in 0..64 {
                black_box(ex.round(len));
            }
        });
        out.push(
            Measurement::new("session", format!("CTAP {len} B request+response"))
                .field("bytes", len as f64)
                .stats("ns", &stats)
                .opt_field("allocs_per_frame", allocs.map(|a| a as f64 / 128.0))
                .note(
                    "ns per frame; desktop seal/open in place, PhoneOpen::receive_borrowed + \
                     respond_ctap_into; goal 0 allocs",
                ),
        );
    }
    out.extend(websocket(opts, &mut ex)?);
    out.push(desktop_request(opts)?);
    Ok(out)
}

/// The session's frames over a WebSocket pair in memory (the library's own allocations).
fn websocket(opts: &Options<'_>, ex: &mut Exchange) -> Result<Vec<Measurement>, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("session bench: cannot start the async runtime: {e}"))?;
    let frames: usize = if opts.quick { 30 } else { 5_000 };
    runtime.block_on(async {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let mut desktop = WebSocketStream::from_raw_socket(a, Role::Client, None).await;
        let mut phone = WebSocketStream::from_raw_socket(b, Role::Server, None).await;
        let mut out = Vec::new();
        for &len in SIZES {
            ws_round(&mut desktop, &mut phone, ex, len, None).await?;
            let mut samples = Vec::with_capacity(opts.reps());
            for _ in 0..opts.reps() {
                let t = std::time::Instant::now();
                for _ in 0..frames {
                    ws_round(&mut desktop, &mut phone, ex, len, None).await?;
                }
                samples.push(super::ns(t.elapsed()) / (2 * frames) as f64);
            }
            let stats = super::Stats::of(samples);
            let rounds = 32u64;
            let mut total = (0, 0, 0);
            for _ in 0..rounds {
                let t = ws_round(&mut desktop, &mut phone, ex, len, opts.allocs).await?;
                total = (total.0 + t.0, total.1 + t.1, total.2 + t.2);
            }
            let per = |x: u64| x as f64 / (2 * rounds) as f64;
            let mut m = Measurement::new("session", format!("CTAP {len} B over WebSocket"))
                .field("bytes", len as f64)
                .stats("ns", &stats);
            if opts.allocs.is_some() {
                m = m
                    .field("session_allocs_per_frame", per(total.0))
                    // ws_send includes the copy into the message's Bytes, which is ours
                    // (TunnelConnection::send); the rest is tungstenite's.
                    .field("ws_send_allocs_per_frame", per(total.1))
                    .field("ws_recv_allocs_per_frame", per(total.2))
                    .field("allocs_per_frame", per(total.0 + total.1 + total.2));
            }
            out.push(m.note(
                "ns per frame through tokio-tungstenite over an in-memory pipe (both roles, \
                 masking); ws_send includes the Message::Binary(Bytes::copy_from_slice) made \
                 before the send as TunnelConnection::send does",
            ));
        }
        Ok(out)
    })
}

type Duplex = WebSocketStream<tokio::io::DuplexStream>;

/// Runs `f` with the counter on when there is one; adds its allocations to `tally`.
fn counted<T>(counter: Counter<'_>, tally: &mut u64, f: impl FnOnce() -> T) -> T {
    if let Some(c) = counter {
        c.start();
    }
    let r = f();
    if let Some(c) = counter {
        *tally += c.stop();
    }
    r
}

type Counter<'a> = Option<&'a dyn super::AllocCounter>;

/// One request/response through the WebSocket pair; with a counter, the allocations of its
/// parts: (session work, WebSocket sends, WebSocket receives).
async fn ws_round(
    desktop: &mut Duplex,
    phone: &mut Duplex,
    ex: &mut Exchange,
    len: usize,
    counter: Counter<'_>,
) -> Result<(u64, u64, u64), String> {
    let mut tally = (0, 0, 0);
    let n = counted(counter, &mut tally.0, || ex.seal_request(len))
        .ok_or("session bench: sealing a request failed")?;
    send(desktop, &ex.request[..n], counter, &mut tally.1).await?;
    let got = recv(phone, counter, &mut tally.2).await?;
    if !counted(counter, &mut tally.0, || ex.phone_answer(&got, len)) {
        return Err("session bench: the phone rejected a request".into());
    }
    send(phone, &ex.response, counter, &mut tally.1).await?;
    let got = recv(desktop, counter, &mut tally.2).await?;
    ex.response.clear();
    ex.response.extend_from_slice(&got);
    let opened = counted(counter, &mut tally.0, || ex.desktop.open_in_place(&mut ex.response));
    if opened != Ok(len + 2) {
        return Err("session bench: the desktop could not open a response".into());
    }
    Ok(tally)
}

/// Sends `payload` as `TunnelConnection::send` does: the message owns a copy of it (counted with
/// the send: that copy is the one allocation of ours on this path).
async fn send(
    ws: &mut Duplex,
    payload: &[u8],
    counter: Counter<'_>,
    tally: &mut u64,
) -> Result<(), String> {
    if let Some(c) = counter {
        c.start();
    }
    let r = ws.send(Message::Binary(Bytes::copy_from_slice(payload))).await;
    if let Some(c) = counter {
        *tally += c.stop();
    }
    r.map_err(|e| format!("session bench: WebSocket send: {e}"))
}

async fn recv(ws: &mut Duplex, counter: Counter<'_>, tally: &mut u64) -> Result<Bytes, String> {
    if let Some(c) = counter {
        c.start();
    }
    let got = ws.next().await;
    if let Some(c) = counter {
        *tally += c.stop();
    }
    match got {
        Some(Ok(Message::Binary(b))) => Ok(b),
        Some(Ok(other)) => Err(format!("session bench: unexpected WebSocket message {other:?}")),
        Some(Err(e)) => Err(format!("session bench: WebSocket receive: {e}")),
        None => Err("session bench: the WebSocket pipe closed".into()),
    }
}

/// The desktop's one request per connection: sealing it (`send_ctap_into` into a reused buffer)
/// and taking the response (`DesktopEvent::CtapResponse` owns its body).
fn desktop_request(opts: &Options<'_>) -> Result<Measurement, String> {
    let len = 1024;
    let params = vec![0xa0u8; len];
    let mut out = Vec::with_capacity(sealed_len(len + 2));
    let mut response = Vec::with_capacity(sealed_len(len + 2));
    let sessions = if opts.quick { 2 } else { 8 };
    let (mut send_allocs, mut recv_allocs) = (Some(0u64), Some(0u64));
    for seed in 0..sessions {
        let (desktop, mut phone) = open_pair(100 + seed)?;
        let mut awaiting = None;
        let a = opts.count_allocs(|| {
            awaiting = desktop.send_ctap_into(Command::GetAssertion, &params, &mut out).ok()
        });
        let mut awaiting = awaiting.ok_or("session bench: send_ctap_into failed")?;
        match phone.receive_borrowed(&out) {
            Ok(PhoneFrame::CtapRequest { .. }) => {}
            _ => return Err("session bench: the phone rejected the request".into()),
        }
        phone
            .respond_ctap_into(StatusCode::Ok, &params, &mut response)
            .map_err(|e| format!("session bench: {e}"))?;
        let mut event = None;
        let b = opts.count_allocs(|| event = awaiting.receive(&response).ok());
        if !matches!(event, Some(DesktopEvent::CtapResponse { status: StatusCode::Ok, .. })) {
            return Err("session bench: the desktop rejected the response".into());
        }
        send_allocs = send_allocs.zip(a).map(|(x, y)| x + y);
        recv_allocs = recv_allocs.zip(b).map(|(x, y)| x + y);
    }
    Ok(Measurement::new("session", "desktop request, 1024 B")
        .field("bytes", len as f64)
        .field("sessions", sessions as f64)
        .opt_field("allocs_per_request", send_allocs.map(|a| a as f64 / sessions as f64))
        .opt_field("allocs_per_response", recv_allocs.map(|a| a as f64 / sessions as f64))
        .note(
            "one request per connection; the response body is handed to the caller as an owned \
             Vec (1 allocation)",
        ))
}
