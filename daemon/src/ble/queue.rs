//! The bounded hand-off between the per-adapter scan tasks and the advert matcher.
//!
//! Why not `tokio::sync::mpsc`: under an advert flood (a busy office, a deliberate spammer) the
//! queue must neither grow without bound nor block the scan tasks, and the advert that matters is
//! the **newest** one (a phone that has just started advertising). mpsc can only drop the newest
//! (`try_send` fails); this queue drops the **oldest** and counts what it dropped, so a matching
//! advert arriving during a flood is always retained and seen next by a matcher that keeps up.
//! The scan's terminal error is delivered after the adverts already queued.

use super::{BleError, ReceivedAdvert};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// Counters of one scan, readable while it runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// caBLE adverts (0xFFF9/0xFDE2 service data) the scanner saw.
    pub fido_adverts: u64,
    /// Adverts handed to the queue (after de-duplication).
    pub forwarded: u64,
    /// Identical (address, uuid, data) repeats dropped inside the de-duplication window.
    pub duplicates_dropped: u64,
    /// Oldest queued adverts dropped because the consumer fell behind.
    pub overflow_dropped: u64,
    /// Advertisement events without caBLE service data (other devices), ignored.
    pub foreign_events: u64,
    /// BlueZ signals (or advert properties in them) of an unexpected shape — e.g. a
    /// `ServiceData` entry that is not a byte array — skipped.
    pub malformed: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub fido_adverts: AtomicU64,
    pub forwarded: AtomicU64,
    pub duplicates_dropped: AtomicU64,
    pub overflow_dropped: AtomicU64,
    pub foreign_events: AtomicU64,
    pub malformed: AtomicU64,
}

#[derive(Debug)]
struct State {
    queue: VecDeque<ReceivedAdvert>,
    terminal: Option<BleError>,
    closed: bool,
}

/// Shared between the producer side (scan tasks, watcher) and the [`AdvertStream`].
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    notify: Notify,
    capacity: usize,
    pub counters: Counters,
}

impl Shared {
    pub(crate) fn new(capacity: usize) -> Arc<Shared> {
        Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::with_capacity(capacity.min(4096)),
                terminal: None,
                closed: false,
            }),
            notify: Notify::new(),
            capacity: capacity.max(1),
            counters: Counters::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means a producer panicked mid-push; the queue is still valid.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue an advert, dropping the oldest one when full. Never blocks on the consumer.
    pub(crate) fn push(&self, advert: ReceivedAdvert) {
        let mut st = self.lock();
        if st.closed {
            return;
        }
        if st.queue.len() >= self.capacity {
            st.queue.pop_front();
            self.counters.overflow_dropped.fetch_add(1, Ordering::Relaxed);
        }
        st.queue.push_back(advert);
        self.counters.forwarded.fetch_add(1, Ordering::Relaxed);
        drop(st);
        self.notify.notify_one();
    }

    /// End the scan with `err` (the first terminal error wins); queued adverts are still delivered.
    pub(crate) fn fail(&self, err: BleError) {
        let mut st = self.lock();
        if st.closed {
            return;
        }
        st.closed = true;
        st.terminal = Some(err);
        drop(st);
        self.notify.notify_one();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    pub(crate) fn stats(&self) -> ScanStats {
        let c = &self.counters;
        ScanStats {
            fido_adverts: c.fido_adverts.load(Ordering::Relaxed),
            forwarded: c.forwarded.load(Ordering::Relaxed),
            duplicates_dropped: c.duplicates_dropped.load(Ordering::Relaxed),
            overflow_dropped: c.overflow_dropped.load(Ordering::Relaxed),
            foreign_events: c.foreign_events.load(Ordering::Relaxed),
            malformed: c.malformed.load(Ordering::Relaxed),
        }
    }
}

/// The consumer end of a scan: adverts in arrival order, then the error that ended the scan.
#[derive(Debug)]
pub struct AdvertStream {
    shared: Arc<Shared>,
    finished: bool,
}

impl AdvertStream {
    pub(crate) fn new(shared: Arc<Shared>) -> AdvertStream {
        AdvertStream { shared, finished: false }
    }

    /// The next advert. `Some(Err(_))` once when the scan ended (BlueZ vanished, adapter removed
    /// or powered off...), then `None` forever.
    pub async fn recv(&mut self) -> Option<Result<ReceivedAdvert, BleError>> {
        loop {
            if self.finished {
                return None;
            }
            {
                let mut st = self.shared.lock();
                if let Some(a) = st.queue.pop_front() {
                    return Some(Ok(a));
                }
                if st.closed {
                    self.finished = true;
                    return st.terminal.take().map(Err);
                }
            }
            // notify_one stores a permit when nobody waits, so a push between the check above
            // and this await is not lost.
            self.shared.notify.notified().await;
        }
    }

    /// Take every advert queued right now without waiting (for a matcher that works in batches).
    pub fn drain_ready(&mut self, out: &mut Vec<ReceivedAdvert>) {
        out.extend(self.shared.lock().queue.drain(..));
    }

    /// Counters so far.
    pub fn stats(&self) -> ScanStats {
        self.shared.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ble::{BleAddress, FidoUuid};
    use std::time::Instant;

    fn advert(n: u8) -> ReceivedAdvert {
        ReceivedAdvert {
            service_data: vec![n; 20],
            uuid: FidoUuid::Fff9,
            rssi: None,
            address: BleAddress([n; 6]),
            adapter: "hci0".into(),
            received_at: Instant::now(),
        }
    }

    #[tokio::test]
    async fn overflow_drops_the_oldest_and_keeps_the_newest() {
        let shared = Shared::new(4);
        let mut rx = AdvertStream::new(shared.clone());
        for n in 0..10 {
            shared.push(advert(n));
        }
        shared.fail(BleError::BluezVanished);
        let mut seen = vec![];
        while let Some(item) = rx.recv().await {
            match item {
                Ok(a) => seen.push(a.service_data[0]),
                Err(e) => {
                    assert_eq!(e, BleError::BluezVanished);
                    seen.push(255);
                }
            }
        }
        assert_eq!(seen, vec![6, 7, 8, 9, 255]);
        let s = rx.stats();
        assert_eq!((s.forwarded, s.overflow_dropped), (10, 6));
        // Pushes after the end are ignored, the stream stays finished.
        shared.push(advert(1));
        assert!(rx.recv().await.is_none());
    }

    #[tokio::test]
    async fn a_waiting_consumer_is_woken_by_a_push() {
        let shared = Shared::new(8);
        let mut rx = AdvertStream::new(shared.clone());
        let producer = tokio::spawn(async move {
            tokio::task::yield_now().await;
            shared.push(advert(7));
        });
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
            .await
            .ok()
            .flatten()
            .and_then(Result::ok)
            .map(|a| a.address);
        assert_eq!(got, Some(BleAddress([7; 6])));
        producer.await.ok();
    }
}
