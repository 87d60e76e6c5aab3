//! The connection cap and the header deadline: which connections are open, which sit idle between requests and since when, and which one gives up its place when the cap is reached.
//!
//! At the cap, a new connection does not wait behind idle ones (a client's deadline,
//! such as the plugin's 1.5 s, would pass first): the connection idle longest is asked to
//! close, and the new one takes its place. Connections inside a request are never cut.
//!
//! A request marks its connection busy and then idle again with two atomic stores, not a
//! lock: every lookup does it. The time a connection went idle also serves the header
//! deadline ([`Slot::idle_since`]), so the daemon keeps one timer per connection rather
//! than arming one per request.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;
// tokio's clock, so that the header deadline's `Sleep` and these times agree when a test
// or the fuzz target pauses time.
use tokio::time::Instant;

/// The open connections, at most `max` of them.
pub struct Slots {
    max: usize,
    state: Mutex<State>,
    /// Signalled whenever a connection ends or goes idle: either may make room.
    changed: Notify,
    /// The origin of the idle times kept as integers.
    epoch: Instant,
}

#[derive(Default)]
struct State {
    next_id: u64,
    conns: crate::FastMap<u64, Arc<Shared>>,
}

/// What the cap and the connection's own task both see of a connection.
struct Shared {
    /// Nanoseconds after `epoch`, plus one, at which the connection last became idle;
    /// [`BUSY`] inside a request.
    idle_since: AtomicU64,
    /// Already asked to close (only read and written under the state lock).
    evicted: AtomicBool,
    close: Notify,
}

const BUSY: u64 = 0;

impl Slots {
    /// Room for `max` connections (at least one).
    pub fn new(max: usize) -> Arc<Slots> {
        Arc::new(Slots {
            max: max.max(1),
            state: Mutex::new(State::default()),
            changed: Notify::new(),
            epoch: Instant::now(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every critical section is a few map operations that cannot leave it half done.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Now, as an idle time (never [`BUSY`]).
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.state().conns.len()
    }

    /// A place for a connection that has just been accepted. At the cap, asks the
    /// connection idle longest to close and waits until one has ended; when every
    /// connection is inside a request, waits for one to finish.
    pub async fn acquire(self: &Arc<Self>) -> Slot {
        loop {
            let changed = self.changed.notified();
            {
                let mut st = self.state();
                if st.conns.len() < self.max {
                    st.next_id += 1;
                    let id = st.next_id;
                    let shared = Arc::new(Shared {
                        idle_since: AtomicU64::new(self.now()),
                        evicted: AtomicBool::new(false),
                        close: Notify::new(),
                    });
                    st.conns.insert(id, Arc::clone(&shared));
                    return Slot {
                        slots: Arc::clone(self),
                        id,
                        shared,
                    };
                }
                // One eviction at a time: the evicted connection's end wakes us.
                let pending = st.conns.values().any(|c| c.evicted.load(Ordering::Relaxed));
                if !pending {
                    let victim = st
                        .conns
                        .values()
                        .map(|c| (c.idle_since.load(Ordering::Acquire), c))
                        .filter(|(since, _)| *since != BUSY)
                        .min_by_key(|(since, _)| *since);
                    if let Some((_, v)) = victim {
                        v.evicted.store(true, Ordering::Relaxed);
                        v.close.notify_one();
                        tracing::debug!("at the connection cap: closing the longest-idle one");
                    }
                }
            }
            changed.await;
        }
    }

    /// Asks every connection to close once its current request is answered (shutdown).
    pub fn close_all(&self) {
        for c in self.state().conns.values() {
            c.evicted.store(true, Ordering::Relaxed);
            c.close.notify_one();
        }
    }
}

/// One connection's place; dropping it frees the place.
pub struct Slot {
    slots: Arc<Slots>,
    id: u64,
    shared: Arc<Shared>,
}

impl Slot {
    /// Marks the connection as inside a request until the guard is dropped.
    pub fn busy(self: &Arc<Self>) -> Busy {
        self.shared.idle_since.store(BUSY, Ordering::Release);
        Busy {
            slot: Arc::clone(self),
        }
    }

    /// When the connection last became idle (accepted, or its last request answered);
    /// `None` while it is inside a request.
    pub fn idle_since(&self) -> Option<Instant> {
        match self.shared.idle_since.load(Ordering::Acquire) {
            BUSY => None,
            t => Some(self.slots.epoch + Duration::from_nanos(t - 1)),
        }
    }

    /// Completes when the connection is asked to close.
    pub async fn closing(&self) {
        self.shared.close.notified().await;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let none_left = {
            let mut st = self.slots.state();
            st.conns.remove(&self.id);
            st.conns.is_empty()
        };
        self.slots.changed.notify_one();
        if none_left {
            crate::harden::connections_closed();
        }
    }
}

/// A request in progress; the connection is idle again when this drops.
pub struct Busy {
    slot: Arc<Slot>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        let slots = &self.slot.slots;
        self.slot
            .shared
            .idle_since
            .store(slots.now(), Ordering::Release);
        slots.changed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn at_the_cap_the_longest_idle_gives_way_and_busy_ones_stay() {
        let slots = Slots::new(3);
        let a = Arc::new(slots.acquire().await);
        let b = Arc::new(slots.acquire().await);
        let c = Arc::new(slots.acquire().await);
        // a is inside a request; b went idle before c.
        let busy = a.busy();
        drop(c.busy());
        let s = Arc::clone(&slots);
        let next = tokio::spawn(async move { s.acquire().await });
        tokio::time::timeout(Duration::from_secs(5), b.closing())
            .await
            .expect("b, the longest idle, is asked to close");
        assert_eq!(slots.open(), 3);
        drop(b);
        let d = Arc::new(
            tokio::time::timeout(Duration::from_secs(5), next)
                .await
                .expect("the new one gets b's place")
                .unwrap(),
        );
        assert_eq!(slots.open(), 3);
        // Now a is busy and c, d idle: c (idle longer) is next, never a.
        let s = Arc::clone(&slots);
        let next = tokio::spawn(async move { s.acquire().await });
        tokio::time::timeout(Duration::from_secs(5), c.closing())
            .await
            .expect("c is asked next");
        drop(c);
        let e = Arc::new(next.await.unwrap());
        // All busy: the next one waits until one of them goes idle, then takes its place.
        let (bd, be) = (d.busy(), e.busy());
        let s = Arc::clone(&slots);
        let next = tokio::spawn(async move { s.acquire().await });
        tokio::task::yield_now().await;
        assert!(!next.is_finished(), "no place while all are busy");
        drop(bd);
        tokio::time::timeout(Duration::from_secs(5), d.closing())
            .await
            .expect("d, idle now, is asked to close");
        drop(d);
        let _f = next.await.unwrap();
        drop((busy, be));
        drop((a, e));
    }

    #[tokio::test]
    async fn a_connection_is_idle_from_its_accept_and_again_after_each_request() {
        let slots = Slots::new(2);
        let before = Instant::now();
        let a = Arc::new(slots.acquire().await);
        let accepted = a.idle_since().expect("idle from the accept");
        assert!(accepted >= before && accepted <= Instant::now());
        let busy = a.busy();
        assert_eq!(a.idle_since(), None, "inside a request");
        std::thread::sleep(Duration::from_millis(5));
        drop(busy);
        let answered = a.idle_since().expect("idle after the answer");
        assert!(answered >= accepted + Duration::from_millis(5));
    }
}
