//! The virtual key's one task: the CTAPHID device loop of [`super`] (feed one input, drain every
//! output, sleep until the next report or timer).
//!
//! Inputs are datagrams, the earliest timer (CTAPHID message timeout, keepalive tick, presence
//! approval) and shutdown. Outputs are reports, sent to the address that last spoke on the
//! report's channel (or `reply_to`). The fault switch is read per CBOR request.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;

use cablebridge_protocol::authenticator::{
    Authenticator, Config, CredentialStore, Ctx, MemoryStore, PendingOp, PersistentState,
    PresenceOutcome, PresencePolicy, Step,
};
use cablebridge_protocol::ctap1::U2fAuthenticator;
use cablebridge_protocol::ctaphid::{
    Capabilities, Cid, Command, DeviceConfig, DeviceEvent, DeviceState, ErrorCode, KeepAliveStatus,
    Packet, Report,
};
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::net::UdpSocket;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use super::state_file::{self, apply_initial_pin};
use super::{KeyStats, LabFault, VirtualKeyConfig, VirtualKeyError, KEEPALIVE_INTERVAL};

/// Channels whose host address we remember (the device remembers 16 channels).
const MAX_PEERS: usize = 32;
/// `CTAP1_ERR_OTHER`, sent when the state could not be persisted.
const CTAP1_ERR_OTHER: u8 = 0x7f;

/// A request waiting for the simulated touch.
struct Presence {
    cid: Cid,
    op: PendingOp,
    approve_at: Instant,
    next_keepalive: Instant,
}

/// The U2F-only personality: the authenticator and its simulated button.
struct U2fKey {
    auth: U2fAuthenticator,
    /// When the pending touch "happens" (set by the first request that wanted one).
    touch_at: Option<Instant>,
}

/// Why the loop stops before shutdown.
enum Stop {
    /// The vanish fault fired: close the socket and end the task.
    Vanish,
}

pub(super) struct Runner {
    socket: UdpSocket,
    reply_to: Option<SocketAddr>,
    device: DeviceState,
    auth: Authenticator<MemoryStore>,
    rng: StdRng,
    persisted: PersistentState,
    state_file: Option<PathBuf>,
    presence_delay: std::time::Duration,
    presence: Option<Presence>,
    /// Keepalive-forever fault: the channel being strung along and the next tick.
    stalling: Option<(Cid, Instant)>,
    peers: VecDeque<(Cid, SocketAddr)>,
    last_sender: Option<SocketAddr>,
    stats: KeyStats,
    u2f: Option<U2fKey>,
    /// [`super::VirtualKeyConfig::fault_on`].
    fault_on: Option<u8>,
}

impl Runner {
    /// Binds, loads state, powers up the authenticator. Returns the local address and CA cert.
    pub(super) async fn start(
        config: &VirtualKeyConfig,
    ) -> Result<(Runner, SocketAddr, Option<Vec<u8>>), VirtualKeyError> {
        let mut rng = StdRng::from_entropy();
        let (mut state, mut dirty) = match &config.state_file {
            Some(path) => state_file::load(path, &mut rng).await?,
            None => (PersistentState::new(&mut rng), false),
        };
        dirty |= apply_initial_pin(&mut state, config.initial_pin.as_ref());
        if let (Some(path), true) = (&config.state_file, dirty) {
            state_file::save(path, &state).await?;
        }
        let socket = UdpSocket::bind(config.listen).await.map_err(|source| {
            VirtualKeyError::Bind { listen: config.listen.to_string(), source }
        })?;
        let local_addr = socket
            .local_addr()
            .map_err(|source| VirtualKeyError::Socket { action: "querying the address", source })?;
        let mut auth_config = Config::virtual_key();
        auth_config.aaguid = config.aaguid;
        auth_config.attestation = config.attestation.mode();
        auth_config.enterprise_rp_ids = config.enterprise_rp_ids.clone();
        auth_config.bio = config.bio;
        let store = MemoryStore::from_state(state.clone());
        let auth = Authenticator::new(auth_config, store, &mut rng, std::time::Instant::now());
        let (u2f, ca_der, device_config) = if config.u2f_only {
            let auth =
                U2fAuthenticator::new(state.master_key.clone(), state.global_sign_count, &mut rng)
                    .map_err(|e| VirtualKeyError::U2fSetup(e.to_string()))?;
            let cert = auth.attestation_cert_der().to_vec();
            // No CBOR, no NMSG: what a U2F-only key's INIT says (unless the lab switch makes it
            // claim CBOR it does not speak).
            let capabilities = if config.u2f_claims_cbor {
                Capabilities::WINK | Capabilities::CBOR
            } else {
                Capabilities::WINK
            };
            let device = DeviceConfig { capabilities, ..DeviceConfig::default() };
            (Some(U2fKey { auth, touch_at: None }), Some(cert), device)
        } else {
            let ca = auth.attestation_ca_der().map(<[u8]>::to_vec);
            (None, ca, DeviceConfig::default())
        };
        let runner = Runner {
            socket,
            reply_to: config.reply_to,
            device: DeviceState::new(device_config),
            auth,
            rng,
            persisted: state,
            state_file: config.state_file.clone(),
            presence_delay: config.presence_delay,
            presence: None,
            stalling: None,
            peers: VecDeque::new(),
            last_sender: None,
            stats: KeyStats::default(),
            u2f,
            fault_on: config.fault_on,
        };
        Ok((runner, local_addr, ca_der))
    }

    pub(super) async fn run(
        mut self,
        mut shutdown: oneshot::Receiver<()>,
        fault: watch::Receiver<LabFault>,
    ) -> Result<KeyStats, VirtualKeyError> {
        let mut buf = [0u8; 65];
        loop {
            let timer = self.next_timer();
            let input = tokio::select! {
                _ = &mut shutdown => return Ok(self.stats),
                got = self.socket.recv_from(&mut buf) => Some(got),
                _ = sleep_until_opt(timer) => None,
            };
            let outcome = match input {
                Some(Ok((n, from))) => {
                    let current = *fault.borrow();
                    self.on_datagram(buf.get(..n).unwrap_or_default(), from, current).await
                }
                // ICMP port unreachable from a client that went away: not our problem.
                Some(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Ok(None),
                Some(Err(source)) => {
                    return Err(VirtualKeyError::Socket { action: "receiving", source })
                }
                None => self.on_timer().await,
            };
            match outcome? {
                None => {}
                Some(Stop::Vanish) => {
                    tracing::info!("virtual key: vanishing mid-transaction (fault)");
                    return Ok(self.stats);
                }
            }
        }
    }

    fn next_timer(&self) -> Option<Instant> {
        let device = self.device.poll_timeout().map(Instant::from_std);
        let presence = self.presence.as_ref().map(|p| p.approve_at.min(p.next_keepalive));
        let stall = self.stalling.map(|(_, at)| at);
        [device, presence, stall].into_iter().flatten().min()
    }

    async fn on_datagram(
        &mut self,
        datagram: &[u8],
        from: SocketAddr,
        fault: LabFault,
    ) -> Result<Option<Stop>, VirtualKeyError> {
        self.stats.datagrams_in += 1;
        if datagram.len() != 64 {
            self.stats.datagrams_malformed += 1;
            return Ok(None);
        }
        self.last_sender = Some(from);
        if let Ok(packet) = Packet::parse(datagram) {
            self.remember_peer(packet.cid(), from);
        }
        let now = Instant::now();
        self.device.handle_report(datagram, now.into_std(), &mut self.rng);
        let stop = self.drain_events(fault).await?;
        self.flush().await?;
        Ok(stop)
    }

    async fn on_timer(&mut self) -> Result<Option<Stop>, VirtualKeyError> {
        let now = Instant::now();
        self.device.handle_timeout(now.into_std());
        if let Some((cid, at)) = self.stalling {
            if now >= at {
                self.stalling = match self.device.keepalive(cid, KeepAliveStatus::Processing) {
                    Ok(()) => {
                        self.stats.keepalives += 1;
                        Some((cid, at + super::KEEPALIVE_INTERVAL))
                    }
                    // Resynced away: nothing left to stall.
                    Err(_) => None,
                };
            }
        }
        if let Some(p) = self.presence.take() {
            if now >= p.approve_at {
                self.finish_presence(p, PresenceOutcome::Approved).await?;
            } else if now >= p.next_keepalive {
                if self.device.keepalive(p.cid, KeepAliveStatus::UpNeeded).is_ok() {
                    self.stats.keepalives += 1;
                }
                let next_keepalive = p.next_keepalive + KEEPALIVE_INTERVAL;
                self.presence = Some(Presence { next_keepalive, ..p });
            } else {
                self.presence = Some(p);
            }
        }
        self.flush().await?;
        Ok(None)
    }

    async fn drain_events(&mut self, fault: LabFault) -> Result<Option<Stop>, VirtualKeyError> {
        while let Some(event) = self.device.poll_event() {
            match event {
                DeviceEvent::Request { cid, cmd: Command::Cbor, payload } if self.u2f.is_none() => {
                    if let Some(stop) = self.on_cbor(cid, &payload, fault).await? {
                        return Ok(Some(stop));
                    }
                }
                DeviceEvent::Request { cid, cmd: Command::Msg, payload } if self.u2f.is_some() => {
                    self.on_msg(cid, &payload).await?;
                }
                DeviceEvent::Request { cid, cmd, .. } => {
                    // CTAP1/U2F and vendor commands: not supported by this key.
                    tracing::debug!(%cid, ?cmd, "virtual key: unsupported command");
                    let _ = self.device.respond_error(cid, ErrorCode::InvalidCmd);
                }
                DeviceEvent::Wink { cid } => {
                    self.stats.winks += 1;
                    tracing::info!(%cid, "virtual key: wink (imagine a blinking LED)");
                }
                DeviceEvent::Cancel { cid } => self.on_cancel(cid).await?,
                _ => {}
            }
        }
        Ok(None)
    }

    async fn on_cbor(
        &mut self,
        cid: Cid,
        request: &[u8],
        fault: LabFault,
    ) -> Result<Option<Stop>, VirtualKeyError> {
        self.stats.cbor_requests += 1;
        let fault = match self.fault_on {
            Some(command) if request.first() != Some(&command) => LabFault::None,
            _ => fault,
        };
        match fault {
            LabFault::NeverAnswer => return Ok(None),
            LabFault::KeepaliveForever => {
                self.stalling = Some((cid, Instant::now()));
                return Ok(None);
            }
            LabFault::Busy => {
                let _ = self.device.respond_error(cid, ErrorCode::ChannelBusy);
                return Ok(None);
            }
            LabFault::VanishMidTransaction => {
                let _ = self.device.keepalive(cid, KeepAliveStatus::Processing);
                self.flush().await?;
                return Ok(Some(Stop::Vanish));
            }
            _ => {}
        }
        let now = Instant::now();
        let mut policy = if self.presence_delay.is_zero() {
            PresencePolicy::AlwaysApprove
        } else {
            PresencePolicy::Deferred
        };
        let step = {
            let mut ctx = Ctx { rng: &mut self.rng, now: now.into_std(), presence: &mut policy };
            self.auth.handle(request, &mut ctx)
        };
        match step {
            Step::Done(response) => self.respond(cid, response.as_bytes(), fault).await,
            Step::Pending(op) => {
                tracing::info!(%cid, request = ?op.request().kind, "virtual key: touch requested");
                if self.device.keepalive(cid, KeepAliveStatus::UpNeeded).is_ok() {
                    self.stats.keepalives += 1;
                }
                self.presence = Some(Presence {
                    cid,
                    op,
                    approve_at: now + self.presence_delay,
                    next_keepalive: now + KEEPALIVE_INTERVAL,
                });
                Ok(None)
            }
        }
    }

    /// One U2F APDU: answered at once (0x6985 while the simulated touch has not happened).
    async fn on_msg(&mut self, cid: Cid, apdu: &[u8]) -> Result<(), VirtualKeyError> {
        self.stats.msg_requests += 1;
        let Some(u2f) = self.u2f.as_mut() else { return Ok(()) };
        let now = Instant::now();
        let present = self.presence_delay.is_zero() || u2f.touch_at.is_some_and(|at| now >= at);
        let before = u2f.auth.counter();
        let reply = u2f.auth.handle(apdu, present, &mut self.rng);
        if reply.presence_used {
            u2f.touch_at = None;
        } else if reply.presence_wanted && u2f.touch_at.is_none() {
            tracing::info!(%cid, "virtual key: U2F touch requested");
            u2f.touch_at = Some(now + self.presence_delay);
        }
        let counter = u2f.auth.counter();
        if counter != before {
            let mut next = self.persisted.clone();
            next.global_sign_count = counter;
            if let Some(path) = self.state_file.clone() {
                state_file::save(&path, &next).await?;
                self.stats.state_writes += 1;
            }
            self.persisted = next;
        }
        if self.device.respond(cid, Command::Msg, &reply.apdu).is_ok() {
            self.flush().await?;
        }
        Ok(())
    }

    async fn on_cancel(&mut self, cid: Cid) -> Result<(), VirtualKeyError> {
        match self.presence.take() {
            Some(p) if p.cid == cid => {
                self.stats.cancels += 1;
                self.finish_presence(p, PresenceOutcome::Cancelled).await?;
            }
            other => self.presence = other,
        }
        Ok(())
    }

    async fn finish_presence(
        &mut self,
        p: Presence,
        outcome: PresenceOutcome,
    ) -> Result<(), VirtualKeyError> {
        let mut policy = PresencePolicy::Deferred;
        let result = {
            let mut ctx =
                Ctx { rng: &mut self.rng, now: std::time::Instant::now(), presence: &mut policy };
            self.auth.complete(p.op, outcome, &mut ctx)
        };
        match result {
            // Faults are not applied to deferred answers: a fault switch acts on the request.
            Ok(response) => {
                self.respond(p.cid, response.as_bytes(), LabFault::None).await.map(|_| ())
            }
            Err(e) => {
                tracing::debug!(cid = %p.cid, "virtual key: {e}");
                Ok(())
            }
        }
    }

    /// Persists a changed state, then sends the response (mangled by `fault`).
    async fn respond(
        &mut self,
        cid: Cid,
        response: &[u8],
        fault: LabFault,
    ) -> Result<Option<Stop>, VirtualKeyError> {
        if self.auth.store().state() != &self.persisted {
            if let Some(path) = self.state_file.clone() {
                if let Err(e) = state_file::save(&path, self.auth.store().state()).await {
                    // Memory and disk disagree now: answer "other error" and stop, like a key
                    // whose flash failed, rather than hand out credentials we could forget.
                    let _ = self.device.respond(cid, Command::Cbor, &[CTAP1_ERR_OTHER]);
                    self.flush().await?;
                    return Err(e);
                }
                self.stats.state_writes += 1;
            }
            self.persisted = self.auth.store().state().clone();
        }
        self.flush().await?;
        if self.device.respond(cid, Command::Cbor, response).is_err() {
            // The host resynced the channel while we worked; the answer has nobody to go to.
            return Ok(None);
        }
        let mut reports = Vec::new();
        while let Some(r) = self.device.poll_transmit() {
            reports.push(r);
        }
        for report in fault.mangle_response(cid, reports) {
            self.send(&report, cid).await?;
        }
        Ok(None)
    }

    async fn flush(&mut self) -> Result<(), VirtualKeyError> {
        while let Some(report) = self.device.poll_transmit() {
            let cid = Packet::parse(&report).map(|p| p.cid()).unwrap_or(Cid::BROADCAST);
            self.send(&report, cid).await?;
        }
        Ok(())
    }

    /// Sends one report to whoever owns `cid` (the channel the reply belongs to, even if a
    /// fault rewrote the CID inside the report).
    async fn send(&mut self, report: &Report, cid: Cid) -> Result<(), VirtualKeyError> {
        let to = self.reply_to.or_else(|| self.peer(cid)).or(self.last_sender);
        let Some(to) = to else { return Ok(()) };
        match self.socket.send_to(report, to).await {
            Ok(_) => {
                self.stats.reports_out += 1;
                Ok(())
            }
            // A client that went away (ICMP unreachable, or its socket closed): keep serving.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::AddrNotAvailable
                ) =>
            {
                Ok(())
            }
            Err(source) => Err(VirtualKeyError::Socket { action: "sending a report", source }),
        }
    }

    fn remember_peer(&mut self, cid: Cid, from: SocketAddr) {
        self.peers.retain(|(c, _)| *c != cid);
        if self.peers.len() >= MAX_PEERS {
            self.peers.pop_front();
        }
        self.peers.push_back((cid, from));
    }

    fn peer(&self, cid: Cid) -> Option<SocketAddr> {
        self.peers.iter().find(|(c, _)| *c == cid).map(|(_, a)| *a)
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
