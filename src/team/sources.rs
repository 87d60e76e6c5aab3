//! The team sources the daemon reads through: for a lookup, each team's project-scoped and
//! unscoped secret, from the cache or the engine; a 403 drops that team's cache and token;
//! an outage serves cached entries within the grace; `lock` wipes it all.

use super::auth::{self, Approle, Session};
use super::cache::{Cache, Held, Hit};
use super::client::Engine;
use super::kv;
use super::{secret_path, TeamConfig, TeamError};
use crate::secret::Secret;
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

/// One configured team source.
pub struct Team {
    /// Its name.
    pub name: String,
    /// Its settings.
    pub cfg: TeamConfig,
    engine: Engine,
    session: tokio::sync::Mutex<Option<Session>>,
    approle: Option<Approle>,
    outage: Mutex<Option<(Instant, String)>>,
}

impl Team {
    /// A source from its settings; `approle` holds the stored login for `--auth approle`.
    pub fn new(name: &str, cfg: TeamConfig, approle: Option<Approle>) -> Result<Team, TeamError> {
        cfg.validate().map_err(|reason| TeamError::Config {
            team: name.to_owned(),
            reason,
        })?;
        Ok(Team {
            name: name.to_owned(),
            engine: Engine::new(name, &cfg)?,
            cfg,
            session: tokio::sync::Mutex::new(None),
            approle,
            outage: Mutex::new(None),
        })
    }

    /// The engine (for status and the lifecycle).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// A token good for now: the held one, renewed past two thirds of its TTL, else a new
    /// session (the token file read again, or a fresh login).
    pub async fn token(&self) -> Result<Secret<String>, TeamError> {
        let mut held = self.session.lock().await;
        if let Some(s) = held.as_mut() {
            let expired = s.ttl_left().is_some_and(|t| t.is_zero());
            if s.needs_renewal() && auth::renew_self(&self.engine, s).await.is_err() {
                *held = None;
            } else if !expired {
                return Ok(s.token.clone());
            } else {
                *held = None;
            }
        }
        let s = auth::session(&self.engine, &self.cfg, self.approle.as_ref()).await?;
        let token = s.token.clone();
        *held = Some(s);
        Ok(token)
    }

    /// The TTL left and renewability of the held token, if any.
    pub async fn token_state(&self) -> Option<(Option<std::time::Duration>, bool)> {
        self.session
            .lock()
            .await
            .as_ref()
            .map(|s| (s.ttl_left(), s.renewable))
    }

    async fn forget_token(&self) {
        *self.session.lock().await = None;
    }

    /// Since when, and why, every address has failed; `None` while the engine answers.
    pub fn outage(&self) -> Option<(Instant, String)> {
        self.outage
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_outage(&self, why: Option<String>) {
        let mut o = self.outage.lock().unwrap_or_else(|e| e.into_inner());
        match why {
            None => *o = None,
            Some(w) => {
                let since = o.as_ref().map_or_else(Instant::now, |(s, _)| *s);
                *o = Some((since, w));
            }
        }
    }
}

/// One team's answer for one scope of a lookup.
pub struct Found {
    /// The team.
    pub team: String,
    /// Project-scoped (`projects/{name}/`) rather than unscoped.
    pub scoped: bool,
    /// The path under the mount.
    pub path: String,
    /// The entry, `None` for "no secret there", or why the team could not say.
    pub result: Result<Held, Arc<TeamError>>,
    /// Served past its TTL because the engine is down (within the grace).
    pub stale: bool,
}

/// Every configured team source and their shared cache.
#[derive(Default)]
pub struct Sources {
    teams: Vec<Team>,
    cache: Mutex<Cache>,
}

impl Sources {
    /// The sources, in config.toml's name order.
    pub fn new(teams: Vec<Team>) -> Sources {
        Sources {
            teams,
            cache: Mutex::new(Cache::default()),
        }
    }

    /// The sources.
    pub fn teams(&self) -> &[Team] {
        &self.teams
    }

    /// Whether no team is configured.
    pub fn is_empty(&self) -> bool {
        self.teams.is_empty()
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every team's answers for `origin`: project-scoped first when a project name is given,
    /// then unscoped, team by team. `fresh` bypasses the cache (the plugin's 401 refresh).
    pub async fn lookup(&self, origin: &str, project: Option<&str>, fresh: bool) -> Vec<Found> {
        let mut out = Vec::new();
        for team in &self.teams {
            let unscoped = secret_path(&team.cfg.prefix, None, origin);
            match project {
                Some(p) => {
                    let scoped = secret_path(&team.cfg.prefix, Some(p), origin);
                    let (a, b) = tokio::join!(
                        self.fetch(team, &scoped, fresh),
                        self.fetch(team, &unscoped, fresh)
                    );
                    out.push(found(team, true, scoped, a));
                    out.push(found(team, false, unscoped, b));
                }
                None => {
                    let r = self.fetch(team, &unscoped, fresh).await;
                    out.push(found(team, false, unscoped, r));
                }
            }
        }
        out
    }

    /// One path of one team, through the cache.
    pub async fn fetch(
        &self,
        team: &Team,
        path: &str,
        fresh: bool,
    ) -> Result<(Held, bool), TeamError> {
        let (ttl, grace) = (team.cfg.cache_ttl(), team.cfg.grace());
        let cached = self.cache().get(&team.name, path, ttl, grace);
        if let (Hit::Fresh(h), false) = (&cached, fresh) {
            return Ok((h.clone(), false));
        }
        let read = async {
            let token = team.token().await?;
            kv::read(&team.engine, &token, &team.cfg.mount, path, None).await
        };
        match read.await {
            Ok(entry) => {
                team.set_outage(None);
                let held = Some(Arc::new(entry));
                self.cache().put(&team.name, path, held.clone());
                Ok((held, false))
            }
            Err(TeamError::NotFound { .. }) => {
                team.set_outage(None);
                self.cache().put(&team.name, path, None);
                Ok((None, false))
            }
            Err(e @ TeamError::Forbidden { .. }) => {
                team.set_outage(None);
                self.cache().drop_team(&team.name);
                team.forget_token().await;
                Err(e)
            }
            Err(e @ TeamError::Unavailable { .. }) => {
                team.set_outage(Some(e.to_string()));
                match cached {
                    Hit::Fresh(h) | Hit::Stale(h) => Ok((h, true)),
                    Hit::Miss => Err(e),
                }
            }
            Err(e) => {
                self.cache().remove(&team.name, path);
                Err(e)
            }
        }
    }

    /// Wipes every cached secret and held token (`lock`).
    pub async fn lock(&self) {
        self.cache().clear();
        for t in &self.teams {
            t.forget_token().await;
        }
    }

    /// How many paths are cached.
    pub fn cached(&self) -> usize {
        self.cache().len()
    }
}

fn found(team: &Team, scoped: bool, path: String, r: Result<(Held, bool), TeamError>) -> Found {
    let (result, stale) = match r {
        Ok((h, stale)) => (Ok(h), stale),
        Err(e) => (Err(Arc::new(e)), false),
    };
    Found {
        team: team.name.clone(),
        scoped,
        path,
        result,
        stale,
    }
}
