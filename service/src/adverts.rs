//! The daemon's advert intake: ONE open advert source per source spec, shared by every pending
//! hybrid (and linked) session that uses it.
//!
//! A session asks the [`AdvertHub`] for a feed ([`AdvertHub::subscribe`]) and hands it to the
//! engine as `AdvertInput::Feed`. The first subscriber of a source opens it (one BLE scan for
//! `bluez`, one bound socket for `unix:PATH`, ...); later subscribers join the open intake. A
//! pump task reads the source and offers every item to every subscriber, so each pending
//! session's matcher trial-opens every advert (the engine's `AdvertMatcher` per session; its
//! dedupe drops repeats). A session leaves when its feed is dropped — the engine drops it as soon
//! as the advert wait ends (matched, timed out, cancelled, failed) — and the last one to leave
//! closes the source (scan stopped, socket file removed) before anyone can open it again.
//!
//! Sessions naming a different source get an intake of their own, keyed by the source.
//! Back-pressure: a subscriber whose queue is full misses that item (counted as `dropped`);
//! adverts repeat several times a second, and the pump never waits for a slow session.
//!
//! A source that ends (a replayed file at EOF) or fails (BlueZ vanished) ends every subscriber's
//! feed the same way a private source would: `Failed` is delivered to all, then the feeds end.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use cablebridged::advert::{AdvertFeed, AdvertItem, AdvertSource, AdvertSourceError};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Items queued per subscriber before it misses some.
const QUEUE: usize = 256;

/// Counters for `status` (`adverts`).
#[derive(Debug, Default)]
pub struct AdvertCounters {
    /// Sources opened (a BLE scan started, a socket bound).
    pub intakes_opened: AtomicU64,
    /// Sources closed (last subscriber gone, or the source ended).
    pub intakes_closed: AtomicU64,
    /// Subscriptions (one per hybrid/linked session that waited for adverts).
    pub subscriptions: AtomicU64,
    /// Adverts read from the sources.
    pub received: AtomicU64,
    /// Unusable lines/datagrams read from the sources.
    pub warnings: AtomicU64,
    /// Items handed to sessions (an advert offered to three sessions counts three).
    pub delivered: AtomicU64,
    /// Items a session missed because its queue was full.
    pub dropped: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// One open source.
#[derive(Debug)]
struct Intake {
    id: u64,
    subscribers: Vec<(u64, mpsc::Sender<AdvertItem>)>,
    pump: Option<JoinHandle<()>>,
    /// Fired when the intake goes away, so the subscribers' watchers drop their senders and the
    /// feeds end.
    ended: CancellationToken,
    opened: Instant,
}

/// The daemon-wide advert intake.
#[derive(Debug, Default)]
pub struct AdvertHub {
    intakes: Mutex<HashMap<AdvertSource, Intake>>,
    /// Held while a source is opened or closed: a source is never opened while its previous
    /// intake is still being torn down (its socket file would be removed under the new one).
    open_close: tokio::sync::Mutex<()>,
    next_id: AtomicU64,
    /// Counters for `status`.
    pub counters: AdvertCounters,
}

impl AdvertHub {
    /// A hub with no open source.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<AdvertSource, Intake>> {
        self.intakes.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A feed of every item `source` produces from now on, opening the source if no pending
    /// session has it open. Dropping the feed leaves; the last one to leave closes the source.
    pub async fn subscribe(
        self: &Arc<Self>,
        source: &AdvertSource,
    ) -> Result<AdvertFeed, AdvertSourceError> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let sub = self.next_id.fetch_add(1, Ordering::Relaxed);
        let guard = self.open_close.lock().await;
        let joined = {
            let mut map = self.lock();
            map.get_mut(source).map(|intake| {
                intake.subscribers.push((sub, tx.clone()));
                intake.ended.clone()
            })
        };
        let ended = match joined {
            Some(ended) => ended,
            None => {
                let feed = source.open().await?;
                let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                let ended = CancellationToken::new();
                // Spawned under the map lock: the pump's first item waits until the intake
                // (with this subscriber) is in the map, so nothing is read before anyone listens.
                let mut map = self.lock();
                let pump = tokio::spawn(Arc::clone(self).pump(source.clone(), id, feed));
                map.insert(
                    source.clone(),
                    Intake {
                        id,
                        subscribers: vec![(sub, tx.clone())],
                        pump: Some(pump),
                        ended: ended.clone(),
                        opened: Instant::now(),
                    },
                );
                drop(map);
                bump(&self.counters.intakes_opened);
                tracing::info!(source = %source, intake = id, "advert intake opened");
                ended
            }
        };
        drop(guard);
        bump(&self.counters.subscriptions);
        let hub = Arc::clone(self);
        let source = source.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = tx.closed() => hub.leave(&source, sub).await,
                () = ended.cancelled() => {}
            }
        });
        Ok(AdvertFeed::from_channel(rx))
    }

    /// Subscriber `sub` is gone; closes the source when it was the last one.
    async fn leave(&self, source: &AdvertSource, sub: u64) {
        let _guard = self.open_close.lock().await;
        let closing = {
            let mut map = self.lock();
            let Some(intake) = map.get_mut(source) else { return };
            intake.subscribers.retain(|(s, _)| *s != sub);
            if intake.subscribers.is_empty() {
                map.remove(source)
            } else {
                None
            }
        };
        if let Some(mut intake) = closing {
            intake.ended.cancel();
            if let Some(pump) = intake.pump.take() {
                pump.abort();
                // The pump owns the open source: once it is gone, the scan has stopped and the
                // socket file is removed.
                let _ = pump.await;
            }
            bump(&self.counters.intakes_closed);
            tracing::info!(source = %source, intake = intake.id, "advert intake closed: no pending session needs it");
        }
    }

    /// Reads `feed` and offers every item to every subscriber of intake `id`.
    async fn pump(self: Arc<Self>, source: AdvertSource, id: u64, mut feed: AdvertFeed) {
        loop {
            let item = feed.next().await;
            let last = match &item {
                None | Some(AdvertItem::Failed(_)) => true,
                Some(AdvertItem::Advert { .. }) => {
                    bump(&self.counters.received);
                    false
                }
                Some(AdvertItem::Warning(_)) => {
                    bump(&self.counters.warnings);
                    false
                }
            };
            if let Some(item) = item {
                let subscribers: Vec<mpsc::Sender<AdvertItem>> = self
                    .lock()
                    .get(&source)
                    .filter(|i| i.id == id)
                    .map(|i| i.subscribers.iter().map(|(_, tx)| tx.clone()).collect())
                    .unwrap_or_default();
                for tx in subscribers {
                    match tx.try_send(item.clone()) {
                        Ok(()) => bump(&self.counters.delivered),
                        Err(TrySendError::Full(_)) => bump(&self.counters.dropped),
                        Err(TrySendError::Closed(_)) => {}
                    }
                }
            }
            if last {
                // Close the source before the intake leaves the map, so a new subscriber
                // opening the same path never races our socket-file removal.
                drop(feed);
                let removed = {
                    let mut map = self.lock();
                    match map.get(&source) {
                        Some(i) if i.id == id => map.remove(&source),
                        _ => None,
                    }
                };
                if let Some(intake) = removed {
                    intake.ended.cancel();
                    bump(&self.counters.intakes_closed);
                    tracing::info!(source = %source, intake = id, "advert intake ended: the source stopped");
                }
                return;
            }
        }
    }

    /// Open sources and how many sessions wait on each (for `status`).
    pub fn to_json(&self) -> Value {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut intakes: Vec<Value> = self
            .lock()
            .iter()
            .map(|(source, i)| {
                json!({
                    "source": source.to_string(),
                    "pending_sessions": i.subscribers.len(),
                    "open_ms": u64::try_from(i.opened.elapsed().as_millis()).unwrap_or(u64::MAX),
                })
            })
            .collect();
        intakes.sort_by(|a, b| a["source"].as_str().cmp(&b["source"].as_str()));
        let c = &self.counters;
        json!({
            "intakes_open": intakes.len(),
            "intakes": intakes,
            "intakes_opened": g(&c.intakes_opened),
            "intakes_closed": g(&c.intakes_closed),
            "subscriptions": g(&c.subscriptions),
            "received": g(&c.received),
            "warnings": g(&c.warnings),
            "delivered": g(&c.delivered),
            "dropped": g(&c.dropped),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const HEX20: &str = "000102030405060708090a0b0c0d0e0f10111213";

    #[tokio::test]
    async fn one_source_for_all_subscribers_closed_by_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.sock");
        let source = AdvertSource::UnixDatagram(path.clone());
        let hub = Arc::new(AdvertHub::new());
        let mut a = hub.subscribe(&source).await.unwrap();
        let mut b = hub.subscribe(&source).await.unwrap();
        assert_eq!(hub.counters.intakes_opened.load(Ordering::Relaxed), 1);
        let client = tokio::net::UnixDatagram::unbound().unwrap();
        client.send_to(format!("{HEX20}\n").as_bytes(), &path).await.unwrap();
        assert!(matches!(a.next().await, Some(AdvertItem::Advert { .. })));
        assert!(matches!(b.next().await, Some(AdvertItem::Advert { .. })));
        drop(a);
        drop(b);
        for _ in 0..500 {
            if hub.counters.intakes_closed.load(Ordering::Relaxed) == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(hub.to_json()["intakes_open"], 0);
        assert!(!path.exists(), "the socket file goes with the intake");
        // Reopened on demand.
        let _c = hub.subscribe(&source).await.unwrap();
        assert_eq!(hub.counters.intakes_opened.load(Ordering::Relaxed), 2);
        assert!(path.exists());
    }

    #[tokio::test]
    async fn a_source_that_ends_ends_every_feed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("capture.txt");
        std::fs::write(&file, format!("{HEX20}\n")).unwrap();
        let hub = Arc::new(AdvertHub::new());
        let source = AdvertSource::Fifo(file);
        let mut a = hub.subscribe(&source).await.unwrap();
        let mut seen = 0;
        while let Some(item) =
            tokio::time::timeout(std::time::Duration::from_secs(10), a.next()).await.unwrap()
        {
            assert!(matches!(item, AdvertItem::Advert { .. }));
            seen += 1;
        }
        assert_eq!(seen, 1);
        assert_eq!(hub.to_json()["intakes_open"], 0);
    }
}
