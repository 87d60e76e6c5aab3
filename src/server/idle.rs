//! Idle tracking for `--idle-exit`: how many connections are open and when the last one ended.
//!
//! Every request travels on a connection, so "no open connection and none ended for SECS"
//! means "no connection and no request for SECS".

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Open connections and the last moment one began or ended.
#[derive(Debug)]
pub struct Activity {
    open: AtomicUsize,
    last: Mutex<Instant>,
}

impl Default for Activity {
    fn default() -> Activity {
        Activity {
            open: AtomicUsize::new(0),
            last: Mutex::new(Instant::now()),
        }
    }
}

/// Held for as long as a connection is open.
#[derive(Debug)]
pub struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Activity {
    /// Marks a connection as open until the returned guard is dropped.
    pub fn begin(self: &Arc<Self>) -> Busy {
        self.open.fetch_add(1, Ordering::SeqCst);
        self.touch();
        Busy(Arc::clone(self))
    }

    fn touch(&self) {
        // A poisoned lock still holds a valid Instant.
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// How long nothing has happened, or `None` while a connection is open.
    pub fn idle_for(&self) -> Option<Duration> {
        if self.open.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let last = *self.last.lock().unwrap_or_else(|e| e.into_inner());
        // A connection that began after the load above moved `last` forward: not idle.
        (self.open.load(Ordering::SeqCst) == 0).then(|| last.elapsed())
    }

    /// Completes once the daemon has been idle for `period` while `may_exit` allows it.
    pub async fn idle(&self, period: Duration, may_exit: impl Fn() -> bool) {
        loop {
            let wait = match self.idle_for() {
                Some(quiet) if quiet >= period && may_exit() => return,
                Some(quiet) if quiet < period => period - quiet,
                _ => period,
            };
            // Never spin: wake at most ten times a second.
            tokio::time::sleep(wait.max(Duration::from_millis(100))).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_waits_for_quiet_and_for_permission() {
        let a = Arc::new(Activity::default());
        let period = Duration::from_secs(10);
        let busy = a.begin();
        assert_eq!(a.idle_for(), None);
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(a.idle_for(), None, "an open connection is never idle");
        drop(busy);
        let quiet = a.idle_for().unwrap();
        assert!(quiet < period, "closing a connection is activity");

        // With the clock paused, the runtime auto-advances through the sleeps; the
        // permission flag flips only after a few refusals.
        let refusals = std::sync::atomic::AtomicUsize::new(0);
        a.idle(period, || refusals.fetch_add(1, Ordering::SeqCst) >= 3)
            .await;
        assert_eq!(refusals.load(Ordering::SeqCst), 4);
        assert!(a.idle_for().unwrap() >= period);
    }
}
