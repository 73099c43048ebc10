//! Who is waiting for whom: the tunnel and listener tables and the server-wide counters.
//!
//! Every operation is one O(1) hash-map step under a `std::sync::Mutex` held for no await
//! (the upgrade callback that calls it is synchronous). A waiting phone's connection task owns
//! a [`SlotGuard`]; dropping it removes the entry, so a vanished or expired phone can never
//! leave a stale slot behind, and a generation number keeps a late guard from removing a
//! newer entry under the same key.

use super::relay::DesktopArrival;
use cablebridge_protocol::hybrid::tunnel::{RoutingId, TunnelId};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::oneshot;

/// Why an upgrade was refused; also the HTTP status sent.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// Not one of our paths, or malformed ids (404).
    BadPath,
    /// No `Sec-WebSocket-Protocol: fido.cable` (400, as Google's server answers).
    MissingSubprotocol,
    /// `/cable/connect` for a tunnel nobody waits on, or whose TTL passed (404).
    UnknownTunnel,
    /// `/cable/connect` with a routing id other than the one given to the phone (404).
    RoutingMismatch,
    /// `/cable/connect` for a tunnel that already has its desktop (409).
    AlreadyPaired,
    /// `/cable/new` with a tunnel id already in use (409).
    DuplicateTunnel,
    /// `/cable/contact` for a contact id with no listening phone right now (404: "not reachable";
    /// the desktop keeps the link and may try again later).
    UnknownContact,
    /// `/cable/contact` or `/cable/listen` for a contact id its phone revoked (410 Gone: the
    /// desktop forgets the link). Also the answer that confirms a revocation.
    RevokedContact,
    /// `/cable/listen` without the listen secret of the contact id in the path (403).
    ListenForbidden,
    /// `/cable/contact` without a hex client payload (400).
    BadClientPayload,
    /// [`super::TunnelServerConfig::max_tunnels`] reached (503).
    AtCapacity,
    /// A known path (`/cable/new`, `/cable/connect`, `/cable/contact`, `/cable/listen`) whose id
    /// has the wrong length or characters, or extra segments (400).
    MalformedId,
    /// The upgrade request (request line + headers) exceeds
    /// [`super::TunnelServerConfig::max_request_bytes`] (431).
    RequestTooLarge,
    /// [`super::TunnelServerConfig::max_connections`] reached (503, before the upgrade).
    Overloaded,
    /// [`super::TunnelServerConfig::max_connections_per_ip`] reached for this source (429,
    /// before the upgrade).
    TooManyFromSource,
    /// Unpaired phones hold [`super::TunnelServerConfig::max_unpaired_buffer`] bytes: no new
    /// `/cable/new` or `/cable/listen` (503).
    BufferFull,
}

impl Reject {
    /// The HTTP status answered instead of 101.
    pub fn status(self) -> u16 {
        match self {
            Reject::BadPath
            | Reject::UnknownTunnel
            | Reject::RoutingMismatch
            | Reject::UnknownContact => 404,
            Reject::MissingSubprotocol | Reject::BadClientPayload | Reject::MalformedId => 400,
            Reject::AlreadyPaired | Reject::DuplicateTunnel => 409,
            Reject::RevokedContact => 410,
            Reject::ListenForbidden => 403,
            Reject::TooManyFromSource => 429,
            Reject::RequestTooLarge => 431,
            Reject::AtCapacity | Reject::Overloaded | Reject::BufferFull => 503,
        }
    }

    /// Whether this refusal protects the server's resources (logged as a warning).
    fn is_cap(self) -> bool {
        matches!(
            self,
            Reject::AtCapacity
                | Reject::Overloaded
                | Reject::TooManyFromSource
                | Reject::BufferFull
                | Reject::RequestTooLarge
        )
    }

    fn index(self) -> usize {
        self as usize
    }

    const ALL: [Reject; 16] = [
        Reject::BadPath,
        Reject::MissingSubprotocol,
        Reject::UnknownTunnel,
        Reject::RoutingMismatch,
        Reject::AlreadyPaired,
        Reject::DuplicateTunnel,
        Reject::UnknownContact,
        Reject::RevokedContact,
        Reject::ListenForbidden,
        Reject::BadClientPayload,
        Reject::AtCapacity,
        Reject::MalformedId,
        Reject::RequestTooLarge,
        Reject::Overloaded,
        Reject::TooManyFromSource,
        Reject::BufferFull,
    ];
}

/// A snapshot of the server-wide counters. Refusals are counted before the HTTP answer is
/// sent; the gauges follow the connection tasks, so they may trail a client's 101 by a moment.
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Phones waiting on `/cable/new` right now.
    pub waiting: u64,
    /// Tunnels relaying right now (QR and contact).
    pub paired: u64,
    /// Phones registered on `/cable/listen` right now.
    pub listening: u64,
    /// Tunnels ever paired (QR and contact).
    pub total_paired: u64,
    /// Unpaired tunnels dropped at their TTL.
    pub expired: u64,
    /// Relayed data messages, both directions, all tunnels (counted when a tunnel ends).
    pub messages_relayed: u64,
    /// Relayed payload bytes, both directions, all tunnels (counted when a tunnel ends).
    pub bytes_relayed: u64,
    /// Connections whose TLS or WebSocket upgrade failed or timed out.
    pub handshake_failures: u64,
    /// Refused upgrades by reason.
    pub rejected: Vec<(Reject, u64)>,
    /// TCP connections held right now (upgrading, waiting, listening, both ends of paired
    /// tunnels), against `max_connections`.
    pub connections: u64,
    /// Bytes unpaired phones hold right now, against `max_unpaired_buffer`.
    pub unpaired_buffered_bytes: u64,
    /// Connections that did not send a complete upgrade request within `handshake_timeout`
    /// (slow-loris; also counted in `handshake_failures`).
    pub request_timeouts: u64,
    /// Over-cap connections closed without an HTTP answer because too many refusals were
    /// already being written.
    pub dropped_connections: u64,
    /// Unpaired phones closed for crossing `max_unpaired_buffer`.
    pub buffer_overflows: u64,
    /// Paired tunnels closed by `idle_timeout`.
    pub idle_closed: u64,
    /// Paired tunnels closed by `max_tunnel_lifetime`.
    pub lifetime_closed: u64,
    /// Tunnels closed because a peer did not take a message within `send_timeout`.
    pub send_timeouts: u64,
}

impl ServerStats {
    /// Refusals for one reason.
    pub fn rejected(&self, reason: Reject) -> u64 {
        self.rejected.iter().find(|(r, _)| *r == reason).map_or(0, |(_, n)| *n)
    }
    /// Unpaired + paired tunnels.
    pub fn active_tunnels(&self) -> u64 {
        self.waiting + self.paired
    }
    /// Whether nothing is held: no connection, tunnel, listener or buffered byte (the state
    /// after every client has gone).
    pub fn is_idle(&self) -> bool {
        self.connections == 0
            && self.waiting == 0
            && self.paired == 0
            && self.listening == 0
            && self.unpaired_buffered_bytes == 0
    }
}

/// Minimum time between two log lines for the same refusal reason.
const REFUSAL_LOG_EVERY_MS: u64 = 10_000;

#[derive(Debug)]
pub(crate) struct Counters {
    pub waiting: AtomicU64,
    pub paired: AtomicU64,
    pub listening: AtomicU64,
    pub total_paired: AtomicU64,
    pub expired: AtomicU64,
    pub messages: AtomicU64,
    pub bytes: AtomicU64,
    pub handshake_failures: AtomicU64,
    pub request_timeouts: AtomicU64,
    pub dropped_connections: AtomicU64,
    pub buffer_overflows: AtomicU64,
    pub idle_closed: AtomicU64,
    pub lifetime_closed: AtomicU64,
    pub send_timeouts: AtomicU64,
    rejected: [AtomicU64; Reject::ALL.len()],
    /// Per reason: when (ms since `epoch`) its last log line was written, and its total then.
    logged_at_ms: [AtomicU64; Reject::ALL.len()],
    logged_total: [AtomicU64; Reject::ALL.len()],
    epoch: std::time::Instant,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            waiting: AtomicU64::new(0),
            paired: AtomicU64::new(0),
            listening: AtomicU64::new(0),
            total_paired: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            messages: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            handshake_failures: AtomicU64::new(0),
            request_timeouts: AtomicU64::new(0),
            dropped_connections: AtomicU64::new(0),
            buffer_overflows: AtomicU64::new(0),
            idle_closed: AtomicU64::new(0),
            lifetime_closed: AtomicU64::new(0),
            send_timeouts: AtomicU64::new(0),
            rejected: Default::default(),
            logged_at_ms: Default::default(),
            logged_total: Default::default(),
            epoch: std::time::Instant::now(),
        }
    }
}

impl Counters {
    /// Counts a refusal and logs it: the first of each reason at once, then at most one line
    /// per reason every 10 s carrying the running total and the count since the last line, so
    /// a flood cannot flood the journal. (Each refusal is also logged at debug level.)
    pub fn reject(&self, reason: Reject) {
        let i = reason.index();
        let (Some(count), Some(at), Some(logged)) =
            (self.rejected.get(i), self.logged_at_ms.get(i), self.logged_total.get(i))
        else {
            return;
        };
        let total = count.fetch_add(1, Relaxed) + 1;
        tracing::debug!(?reason, status = reason.status(), total, "tunnel upgrade refused");
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = at.load(Relaxed);
        let due = total == 1 || now.saturating_sub(last) >= REFUSAL_LOG_EVERY_MS;
        if !due || at.compare_exchange(last, now, Relaxed, Relaxed).is_err() {
            return;
        }
        let since = total.saturating_sub(logged.swap(total, Relaxed));
        let status = reason.status();
        if reason.is_cap() {
            tracing::warn!(
                ?reason,
                status,
                total,
                since_last_line = since,
                "tunnel server refusing"
            );
        } else {
            tracing::info!(
                ?reason,
                status,
                total,
                since_last_line = since,
                "tunnel server refusing"
            );
        }
    }

    pub fn snapshot(&self) -> ServerStats {
        ServerStats {
            waiting: self.waiting.load(Relaxed),
            paired: self.paired.load(Relaxed),
            listening: self.listening.load(Relaxed),
            total_paired: self.total_paired.load(Relaxed),
            expired: self.expired.load(Relaxed),
            messages_relayed: self.messages.load(Relaxed),
            bytes_relayed: self.bytes.load(Relaxed),
            handshake_failures: self.handshake_failures.load(Relaxed),
            rejected: Reject::ALL
                .iter()
                .zip(self.rejected.iter())
                .map(|(r, n)| (*r, n.load(Relaxed)))
                .collect(),
            // Filled in by the server handle from the connection table and buffer budget.
            connections: 0,
            unpaired_buffered_bytes: 0,
            request_timeouts: self.request_timeouts.load(Relaxed),
            dropped_connections: self.dropped_connections.load(Relaxed),
            buffer_overflows: self.buffer_overflows.load(Relaxed),
            idle_closed: self.idle_closed.load(Relaxed),
            lifetime_closed: self.lifetime_closed.load(Relaxed),
            send_timeouts: self.send_timeouts.load(Relaxed),
        }
    }
}

/// Increments a gauge now and decrements it on drop, whatever path the task leaves by.
#[derive(Debug)]
pub(crate) struct Gauge<'a>(&'a AtomicU64);

impl<'a> Gauge<'a> {
    pub fn up(counter: &'a AtomicU64) -> Gauge<'a> {
        counter.fetch_add(1, Relaxed);
        Gauge(counter)
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

#[derive(Debug)]
enum TunnelSlot {
    Waiting { routing_id: RoutingId, desktop: oneshot::Sender<DesktopArrival>, generation: u64 },
    Paired { generation: u64 },
}

impl TunnelSlot {
    fn generation(&self) -> u64 {
        match self {
            TunnelSlot::Waiting { generation, .. } | TunnelSlot::Paired { generation } => {
                *generation
            }
        }
    }
}

#[derive(Debug)]
struct ListenSlot {
    desktop: oneshot::Sender<DesktopArrival>,
    generation: u64,
}

#[derive(Debug, Default)]
struct Tables {
    tunnels: HashMap<TunnelId, TunnelSlot>,
    listeners: HashMap<Vec<u8>, ListenSlot>,
    /// Contact ids their phones revoked, oldest first in `revoked_order`; bounded by
    /// [`MAX_REVOKED`] (forgetting the oldest only turns its 410 into a 404, which keeps links).
    revoked: HashSet<Vec<u8>>,
    revoked_order: VecDeque<Vec<u8>>,
    next_generation: u64,
    /// Paired tunnels that came from `/cable/contact`: their listener entry is gone, but they
    /// still count against the cap (see [`ContactHold`]).
    contact_tunnels: usize,
}

/// Revoked contact ids remembered (in memory, per server process): 16-byte ids, ~1 MiB at most.
const MAX_REVOKED: usize = 16 * 1024;

/// The shared tables. Cheap to clone (an `Arc`).
#[derive(Debug, Clone)]
pub(crate) struct Registry {
    tables: Arc<Mutex<Tables>>,
    max_entries: usize,
}

#[derive(Debug)]
enum SlotKey {
    Tunnel(TunnelId),
    Listener(Vec<u8>),
}

/// Removes its table entry when dropped (if the entry is still the one it created).
#[derive(Debug)]
pub(crate) struct SlotGuard {
    registry: Registry,
    key: SlotKey,
    generation: u64,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let mut t = self.registry.lock();
        match &self.key {
            SlotKey::Tunnel(id) => {
                if t.tunnels.get(id).map(TunnelSlot::generation) == Some(self.generation) {
                    t.tunnels.remove(id);
                }
            }
            SlotKey::Listener(id) => {
                if t.listeners.get(id).map(|s| s.generation) == Some(self.generation) {
                    t.listeners.remove(id);
                }
            }
        }
    }
}

/// One paired `/cable/contact` tunnel counted against the cap; travels with the desktop's
/// connection into the relay.
#[derive(Debug)]
pub(crate) struct ContactHold {
    registry: Registry,
}

impl Drop for ContactHold {
    fn drop(&mut self) {
        let mut t = self.registry.lock();
        t.contact_tunnels = t.contact_tunnels.saturating_sub(1);
    }
}

/// What a phone waits on: the desktop's connection, handed over once its upgrade completes.
pub(crate) type DesktopReceiver = oneshot::Receiver<DesktopArrival>;
/// The claim a desktop's upgrade takes on a waiting phone.
pub(crate) type DesktopSender = oneshot::Sender<DesktopArrival>;

impl Registry {
    pub fn new(max_entries: usize) -> Registry {
        Registry { tables: Arc::new(Mutex::new(Tables::default())), max_entries }
    }

    fn lock(&self) -> MutexGuard<'_, Tables> {
        // A panic while holding the lock cannot leave the maps inconsistent (each operation is
        // a single insert/remove), so a poisoned lock is still usable.
        self.tables.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Entries counted against the cap right now (tunnels, listeners, contact tunnels).
    pub fn entries(&self) -> usize {
        let t = self.lock();
        t.tunnels.len() + t.listeners.len() + t.contact_tunnels
    }

    fn full(&self, t: &Tables) -> bool {
        t.tunnels.len() + t.listeners.len() + t.contact_tunnels >= self.max_entries
    }

    /// Counts one `/cable/contact` tunnel against the cap until the returned hold is dropped.
    /// Taken just before the contact claim (which removes the listener entry), so the count
    /// never dips below the truth in between.
    pub fn hold_contact_tunnel(&self) -> ContactHold {
        self.lock().contact_tunnels += 1;
        ContactHold { registry: self.clone() }
    }

    /// `/cable/new`: a phone opens `tunnel_id`.
    pub fn open_tunnel(
        &self,
        tunnel_id: TunnelId,
        routing_id: RoutingId,
    ) -> Result<(SlotGuard, DesktopReceiver), Reject> {
        let mut t = self.lock();
        if t.tunnels.contains_key(&tunnel_id) {
            return Err(Reject::DuplicateTunnel);
        }
        if self.full(&t) {
            return Err(Reject::AtCapacity);
        }
        let (tx, rx) = oneshot::channel();
        t.next_generation += 1;
        let generation = t.next_generation;
        t.tunnels.insert(tunnel_id, TunnelSlot::Waiting { routing_id, desktop: tx, generation });
        let guard =
            SlotGuard { registry: self.clone(), key: SlotKey::Tunnel(tunnel_id), generation };
        Ok((guard, rx))
    }

    /// `/cable/connect`: a desktop claims the phone waiting on `tunnel_id`.
    pub fn claim_tunnel(
        &self,
        tunnel_id: TunnelId,
        routing_id: RoutingId,
    ) -> Result<DesktopSender, Reject> {
        let mut t = self.lock();
        let slot = t.tunnels.get_mut(&tunnel_id).ok_or(Reject::UnknownTunnel)?;
        let generation = match slot {
            TunnelSlot::Paired { .. } => return Err(Reject::AlreadyPaired),
            TunnelSlot::Waiting { routing_id: expected, desktop, generation } => {
                if *expected != routing_id {
                    return Err(Reject::RoutingMismatch);
                }
                if desktop.is_closed() {
                    // The phone's task is gone and its guard is about to remove the slot.
                    return Err(Reject::UnknownTunnel);
                }
                *generation
            }
        };
        match std::mem::replace(slot, TunnelSlot::Paired { generation }) {
            TunnelSlot::Waiting { desktop, .. } => Ok(desktop),
            TunnelSlot::Paired { .. } => Err(Reject::AlreadyPaired),
        }
    }

    /// `/cable/listen`: a phone registers for its contact id, replacing an older registration
    /// (a reconnecting phone must win over its own half-dead previous socket). The caller has
    /// checked the phone's listen secret.
    pub fn listen(&self, contact_id: Vec<u8>) -> Result<(SlotGuard, DesktopReceiver), Reject> {
        let mut t = self.lock();
        if t.revoked.contains(&contact_id) {
            return Err(Reject::RevokedContact);
        }
        if !t.listeners.contains_key(&contact_id) && self.full(&t) {
            return Err(Reject::AtCapacity);
        }
        let (tx, rx) = oneshot::channel();
        t.next_generation += 1;
        let generation = t.next_generation;
        // Dropping the old sender wakes the old listener, which then closes.
        t.listeners.insert(contact_id.clone(), ListenSlot { desktop: tx, generation });
        let guard =
            SlotGuard { registry: self.clone(), key: SlotKey::Listener(contact_id), generation };
        Ok((guard, rx))
    }

    /// `/cable/listen` with the revoke header: the phone unlinks `contact_id` for good (a
    /// listener on it is dropped; desktops get 410 from now on). The caller has checked the
    /// phone's listen secret.
    pub fn revoke(&self, contact_id: Vec<u8>) {
        let mut t = self.lock();
        // Dropping the slot's sender wakes its listener, which then closes.
        t.listeners.remove(&contact_id);
        if t.revoked.insert(contact_id.clone()) {
            t.revoked_order.push_back(contact_id);
            while t.revoked_order.len() > MAX_REVOKED {
                if let Some(old) = t.revoked_order.pop_front() {
                    t.revoked.remove(&old);
                }
            }
        }
    }

    /// `/cable/contact`: a desktop claims the phone listening on `contact_id`.
    pub fn claim_contact(&self, contact_id: &[u8]) -> Result<DesktopSender, Reject> {
        let mut t = self.lock();
        if t.revoked.contains(contact_id) {
            return Err(Reject::RevokedContact);
        }
        let slot = t.listeners.remove(contact_id).ok_or(Reject::UnknownContact)?;
        if slot.desktop.is_closed() {
            return Err(Reject::UnknownContact);
        }
        Ok(slot.desktop)
    }

    #[cfg(test)]
    fn len(&self) -> (usize, usize) {
        let t = self.lock();
        (t.tunnels.len(), t.listeners.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: TunnelId = TunnelId([7; 16]);
    const R: RoutingId = RoutingId([1, 2, 3]);

    #[test]
    fn tunnel_lifecycle_and_rejections() {
        let reg = Registry::new(10);
        assert_eq!(reg.claim_tunnel(T, R).err(), Some(Reject::UnknownTunnel));
        let (guard, _rx) = reg.open_tunnel(T, R).unwrap();
        assert_eq!(reg.open_tunnel(T, R).err(), Some(Reject::DuplicateTunnel));
        assert_eq!(reg.claim_tunnel(T, RoutingId([9, 9, 9])).err(), Some(Reject::RoutingMismatch));
        let _tx = reg.claim_tunnel(T, R).unwrap();
        assert_eq!(reg.claim_tunnel(T, R).err(), Some(Reject::AlreadyPaired));
        drop(guard);
        assert_eq!(reg.len(), (0, 0));
        assert_eq!(reg.claim_tunnel(T, R).err(), Some(Reject::UnknownTunnel));
    }

    #[test]
    fn claim_of_vanished_phone_is_unknown() {
        let reg = Registry::new(10);
        let (_guard, rx) = reg.open_tunnel(T, R).unwrap();
        drop(rx);
        assert_eq!(reg.claim_tunnel(T, R).err(), Some(Reject::UnknownTunnel));
    }

    #[test]
    fn newer_listener_replaces_older_and_survives_its_guard() {
        let reg = Registry::new(10);
        let (old_guard, mut old_rx) = reg.listen(b"c".to_vec()).unwrap();
        let (_new_guard, _new_rx) = reg.listen(b"c".to_vec()).unwrap();
        // The old receiver learns it was replaced.
        assert!(old_rx.try_recv().is_err());
        drop(old_guard);
        assert_eq!(reg.len(), (0, 1));
        assert!(reg.claim_contact(b"c").is_ok());
        assert_eq!(reg.claim_contact(b"c").err(), Some(Reject::UnknownContact));
    }

    #[test]
    fn revoked_contact_is_gone_for_desktops_and_listeners() {
        let reg = Registry::new(10);
        let (_guard, mut rx) = reg.listen(b"c".to_vec()).unwrap();
        assert_eq!(reg.claim_contact(b"other").err(), Some(Reject::UnknownContact));
        reg.revoke(b"c".to_vec());
        // The listener is woken (its slot is gone) and nobody can listen or contact again.
        assert!(rx.try_recv().is_err());
        assert_eq!(reg.claim_contact(b"c").err(), Some(Reject::RevokedContact));
        assert_eq!(reg.listen(b"c".to_vec()).err(), Some(Reject::RevokedContact));
        reg.revoke(b"c".to_vec());
        assert_eq!(reg.lock().revoked_order.len(), 1, "revoking twice stores one entry");
    }

    #[test]
    fn revoked_set_is_bounded_and_forgets_the_oldest() {
        let reg = Registry::new(10);
        for i in 0..=MAX_REVOKED as u32 {
            reg.revoke(i.to_be_bytes().to_vec());
        }
        let t = reg.lock();
        assert_eq!((t.revoked.len(), t.revoked_order.len()), (MAX_REVOKED, MAX_REVOKED));
        assert!(!t.revoked.contains(0u32.to_be_bytes().as_slice()));
        drop(t);
        assert_eq!(reg.claim_contact(&0u32.to_be_bytes()).err(), Some(Reject::UnknownContact));
    }

    #[test]
    fn capacity_counts_tunnels_and_listeners() {
        let reg = Registry::new(2);
        let _a = reg.open_tunnel(T, R).unwrap();
        let _b = reg.listen(b"x".to_vec()).unwrap();
        assert_eq!(reg.open_tunnel(TunnelId([8; 16]), R).err(), Some(Reject::AtCapacity));
        assert_eq!(reg.listen(b"y".to_vec()).err(), Some(Reject::AtCapacity));
        // Re-registering an existing contact id does not grow the table.
        assert!(reg.listen(b"x".to_vec()).is_ok());
    }

    #[test]
    fn claimed_contact_tunnels_still_count_against_the_cap() {
        let reg = Registry::new(1);
        let (_guard, _rx) = reg.listen(b"x".to_vec()).unwrap();
        let hold = reg.hold_contact_tunnel();
        let _tx = reg.claim_contact(b"x").unwrap();
        assert_eq!(reg.open_tunnel(T, R).err(), Some(Reject::AtCapacity));
        assert_eq!(reg.listen(b"y".to_vec()).err(), Some(Reject::AtCapacity));
        drop(hold);
        assert!(reg.open_tunnel(T, R).is_ok());
    }

    #[test]
    fn statuses_match_the_documented_http_answers() {
        assert_eq!(Reject::MissingSubprotocol.status(), 400);
        assert_eq!(Reject::RoutingMismatch.status(), 404);
        assert_eq!(Reject::UnknownContact.status(), 404, "not listening now is not gone");
        assert_eq!(Reject::RevokedContact.status(), 410);
        assert_eq!(Reject::ListenForbidden.status(), 403);
        let c = Counters::default();
        c.reject(Reject::UnknownContact);
        assert_eq!(c.snapshot().rejected(Reject::UnknownContact), 1);
        assert_eq!(c.snapshot().rejected(Reject::BadPath), 0);
    }
}
