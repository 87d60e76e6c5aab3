//! The connection cap: which connections are open, which sit idle between requests, and which one gives up its place when the cap is reached.
//!
//! At the cap, a new connection does not wait behind idle ones (a client's deadline,
//! such as the plugin's 1.5 s, would pass first): the connection idle longest is asked to
//! close, and the new one takes its place. Connections inside a request are never cut.

use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// The open connections, at most `max` of them.
pub struct Slots {
    max: usize,
    state: Mutex<State>,
    /// Signalled whenever a connection ends or goes idle: either may make room.
    changed: Notify,
}

#[derive(Default)]
struct State {
    next_id: u64,
    /// Ticks on every change of idleness, so "idle longest" needs no clock.
    tick: u64,
    conns: crate::FastMap<u64, Conn>,
}

struct Conn {
    /// The tick at which the connection last became idle; `None` inside a request.
    idle_since: Option<u64>,
    /// Already asked to close.
    evicted: bool,
    close: Arc<Notify>,
}

impl Slots {
    /// Room for `max` connections (at least one).
    pub fn new(max: usize) -> Arc<Slots> {
        Arc::new(Slots {
            max: max.max(1),
            state: Mutex::new(State::default()),
            changed: Notify::new(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every critical section is a few map operations that cannot leave it half done.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
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
                    st.tick += 1;
                    let (id, tick) = (st.next_id, st.tick);
                    let close = Arc::new(Notify::new());
                    st.conns.insert(
                        id,
                        Conn {
                            idle_since: Some(tick),
                            evicted: false,
                            close: Arc::clone(&close),
                        },
                    );
                    return Slot {
                        slots: Arc::clone(self),
                        id,
                        close,
                    };
                }
                let pending = st.conns.values().any(|c| c.evicted);
                if !pending {
                    let victim = st
                        .conns
                        .values_mut()
                        .filter(|c| c.idle_since.is_some())
                        .min_by_key(|c| c.idle_since);
                    if let Some(v) = victim {
                        v.evicted = true;
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
        for c in self.state().conns.values_mut() {
            c.evicted = true;
            c.close.notify_one();
        }
    }

    fn set_idle(&self, id: u64, idle: bool) {
        let mut st = self.state();
        st.tick += 1;
        let tick = st.tick;
        if let Some(c) = st.conns.get_mut(&id) {
            c.idle_since = idle.then_some(tick);
        }
        drop(st);
        if idle {
            self.changed.notify_one();
        }
    }
}

/// One connection's place; dropping it frees the place.
pub struct Slot {
    slots: Arc<Slots>,
    id: u64,
    close: Arc<Notify>,
}

impl Slot {
    /// Marks the connection as inside a request until the guard is dropped.
    pub fn busy(&self) -> Busy {
        self.slots.set_idle(self.id, false);
        Busy {
            slots: Arc::clone(&self.slots),
            id: self.id,
        }
    }

    /// Completes when the connection is asked to close.
    pub async fn closing(&self) {
        self.close.notified().await;
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
    slots: Arc<Slots>,
    id: u64,
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.slots.set_idle(self.id, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn at_the_cap_the_longest_idle_gives_way_and_busy_ones_stay() {
        let slots = Slots::new(3);
        let a = slots.acquire().await;
        let b = slots.acquire().await;
        let c = slots.acquire().await;
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
        let d = tokio::time::timeout(Duration::from_secs(5), next)
            .await
            .expect("the new one gets b's place")
            .unwrap();
        assert_eq!(slots.open(), 3);
        // Now a is busy and c, d idle: c (idle longer) is next, never a.
        let s = Arc::clone(&slots);
        let next = tokio::spawn(async move { s.acquire().await });
        tokio::time::timeout(Duration::from_secs(5), c.closing())
            .await
            .expect("c is asked next");
        drop(c);
        let e = next.await.unwrap();
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
}
