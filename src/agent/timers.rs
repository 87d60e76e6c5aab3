//! Unlock timers on the gpg-agent model: lock after a period without credential releases
//! (`--idle-ttl`), or a fixed time after unlock whatever the use (`--max-ttl`).

use std::time::{Duration, Instant};

/// The two limits; `None` means no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ttl {
    /// Lock after this long without a release (`--idle-ttl`).
    pub idle: Option<Duration>,
    /// Lock this long after unlock, however much it is used (`--max-ttl`).
    pub max: Option<Duration>,
}

/// When the daemon was unlocked and last released a credential. Status calls never touch it.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    ttl: Ttl,
    unlocked_at: Option<Instant>,
    last_release: Option<Instant>,
}

impl Clock {
    /// A clock that starts unlocked at `unlocked_at`, or locked.
    pub fn new(unlocked_at: Option<Instant>) -> Clock {
        Clock {
            ttl: Ttl::default(),
            unlocked_at,
            last_release: unlocked_at,
        }
    }

    /// Sets the limits; they count from the last unlock and release already seen.
    pub fn set_ttl(&mut self, ttl: Ttl) {
        self.ttl = ttl;
    }

    /// The limits in force.
    pub fn ttl(&self) -> Ttl {
        self.ttl
    }

    /// Starts both timers.
    pub fn unlocked(&mut self, now: Instant) {
        self.unlocked_at = Some(now);
        self.last_release = Some(now);
    }

    /// A credential left the daemon: the idle timer starts again.
    pub fn released(&mut self, now: Instant) {
        if self.unlocked_at.is_some() {
            self.last_release = Some(now);
        }
    }

    /// Stops both timers.
    pub fn locked(&mut self) {
        self.unlocked_at = None;
        self.last_release = None;
    }

    /// When the daemon locks itself, if a limit is set and it is unlocked.
    pub fn deadline(&self) -> Option<Instant> {
        let unlocked = self.unlocked_at?;
        let idle = self
            .ttl
            .idle
            .map(|d| self.last_release.unwrap_or(unlocked) + d);
        let max = self.ttl.max.map(|d| unlocked + d);
        match (idle, max) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether a limit has passed at `now`.
    pub fn due(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|d| d <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_restarts_on_release_and_max_does_not() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut c = Clock::new(Some(t0));
        assert_eq!(c.deadline(), None, "no limits, no deadline");
        c.set_ttl(Ttl {
            idle: Some(s(10)),
            max: Some(s(25)),
        });
        assert_eq!(c.deadline(), Some(t0 + s(10)));
        c.released(t0 + s(8));
        assert_eq!(c.deadline(), Some(t0 + s(18)));
        assert!(!c.due(t0 + s(17)) && c.due(t0 + s(18)));
        c.released(t0 + s(20));
        assert_eq!(c.deadline(), Some(t0 + s(25)), "max wins over idle");
        c.locked();
        assert_eq!(c.deadline(), None);
        c.released(t0 + s(30));
        assert_eq!(c.deadline(), None, "a release while locked starts nothing");
        c.unlocked(t0 + s(40));
        assert_eq!(c.deadline(), Some(t0 + s(50)));
    }

    #[test]
    fn a_locked_clock_never_fires() {
        let mut c = Clock::new(None);
        c.set_ttl(Ttl {
            idle: Some(Duration::from_secs(1)),
            max: None,
        });
        assert!(!c.due(Instant::now() + Duration::from_secs(100)));
    }
}
