//! The in-memory cache of team secrets (and of their absence): fresh for the source's TTL,
//! served past it only within the grace while every address fails; a team's entries are
//! dropped at once on a 403, and all of them on `lock`. Never written anywhere.

use super::kv::TeamEntry;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// What the cache holds for a path: the entry, or `None` when the engine said 404.
pub type Held = Option<Arc<TeamEntry>>;

struct Cached {
    held: Held,
    fetched: Instant,
}

/// What a look in the cache found.
pub enum Hit {
    /// Younger than the TTL.
    Fresh(Held),
    /// Past the TTL but within the grace: served only when the engine cannot answer.
    Stale(Held),
    /// Nothing, or older than TTL + grace.
    Miss,
}

/// Team secrets by (team, path).
#[derive(Default)]
pub struct Cache {
    entries: HashMap<(String, String), Cached>,
}

impl Cache {
    /// Looks `team`'s `path` up against its TTL and grace.
    pub fn get(&self, team: &str, path: &str, ttl: Duration, grace: Duration) -> Hit {
        let Some(c) = self.entries.get(&(team.to_owned(), path.to_owned())) else {
            return Hit::Miss;
        };
        let age = c.fetched.elapsed();
        if age < ttl {
            Hit::Fresh(c.held.clone())
        } else if age < ttl + grace {
            Hit::Stale(c.held.clone())
        } else {
            Hit::Miss
        }
    }

    /// Holds what the engine just answered.
    pub fn put(&mut self, team: &str, path: &str, held: Held) {
        self.entries.insert(
            (team.to_owned(), path.to_owned()),
            Cached {
                held,
                fetched: Instant::now(),
            },
        );
    }

    /// Forgets one path.
    pub fn remove(&mut self, team: &str, path: &str) {
        self.entries.remove(&(team.to_owned(), path.to_owned()));
    }

    /// Forgets everything of one team (a 403: the token or policy changed).
    pub fn drop_team(&mut self, team: &str) {
        self.entries.retain(|(t, _), _| t != team);
    }

    /// Forgets everything (`lock`).
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// How many paths are held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn fresh_then_stale_then_gone() {
        let mut c = Cache::default();
        let (ttl, grace) = (Duration::from_secs(10), Duration::from_secs(20));
        c.put("acme", "composer/x", None);
        c.put("other", "composer/x", None);
        assert!(matches!(
            c.get("acme", "composer/x", ttl, grace),
            Hit::Fresh(None)
        ));
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(matches!(
            c.get("acme", "composer/x", ttl, grace),
            Hit::Stale(None)
        ));
        tokio::time::advance(Duration::from_secs(20)).await;
        assert!(matches!(c.get("acme", "composer/x", ttl, grace), Hit::Miss));
        c.put("acme", "composer/x", None);
        c.drop_team("acme");
        assert!(matches!(c.get("acme", "composer/x", ttl, grace), Hit::Miss));
        assert_eq!(c.len(), 1, "another team's entry stays");
        c.clear();
        assert!(c.is_empty());
    }
}
