//! The team sources the daemon reads through: for a lookup, each team's project-scoped and
//! unscoped secret, from the cache or the engine; a 403 drops that team's cache and token;
//! an outage serves cached entries within the grace; `lock` wipes it all.

use super::auth::{self, Approle, Session};
use super::cache::{Cache, Held, Hit};
use super::client::Engine;
use super::kv;
use super::kv::TeamEntry;
use super::{secret_path, winner, Candidate, TeamConfig, TeamError};
use crate::secret::Secret;
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

/// After every address failed, how long lookups answer from the cache (or with the error)
/// without waiting on the engine: a hanging engine costs one request's budget per this
/// period, not every lookup's.
pub const RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

/// How far a lookup trusts the cache of team entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// An entry younger than its TTL is served from memory: the later lookups of a
    /// Composer run, git's credential helper, `exec`.
    Cached,
    /// Read through to the engine whatever the entry's age: the plugin's first lookup of an
    /// origin in a Composer run, so that a rotation in the engine reaches the next run.
    /// While the engine rests after an outage ([`RETRY_AFTER`]), and when it cannot
    /// answer, the cached entry is served within the grace, as for [`Freshness::Cached`].
    RunStart,
    /// Read through to the engine even while it rests: a repository refused the entry the
    /// run was given (the plugin's post-failure refresh).
    Refresh,
}

/// One configured team source.
pub struct Team {
    /// Its name.
    pub name: String,
    /// Its settings.
    pub cfg: TeamConfig,
    engine: Engine,
    session: tokio::sync::Mutex<Option<Session>>,
    approle: Mutex<Option<Approle>>,
    outage: Mutex<Option<(Instant, String)>>,
    /// When an attempt last found every address failing: for [`RETRY_AFTER`], lookups do
    /// not wait on the engine again (the cache, or the error, answers at once).
    failed_at: Mutex<Option<Instant>>,
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
            approle: Mutex::new(approle),
            outage: Mutex::new(None),
            failed_at: Mutex::new(None),
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
        let approle = self
            .approle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let s = auth::session(&self.engine, &self.cfg, approle.as_ref()).await?;
        let token = s.token.clone();
        *held = Some(s);
        Ok(token)
    }

    /// Whether this source logs in with an approle whose role_id and secret_id it lacks.
    pub fn wants_approle(&self) -> bool {
        self.cfg.auth == super::AuthMethod::Approle
            && self
                .approle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_none()
    }

    /// Sets the approle's role_id and secret_id (read from the local backend).
    pub fn set_approle(&self, approle: Approle) {
        *self.approle.lock().unwrap_or_else(|e| e.into_inner()) = Some(approle);
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

    /// Whether every address failed less than [`RETRY_AFTER`] ago.
    fn resting(&self) -> bool {
        self.failed_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|at| at.elapsed() < RETRY_AFTER)
    }

    /// Since when, and why, every address has failed; `None` while the engine answers.
    pub fn outage(&self) -> Option<(Instant, String)> {
        self.outage
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_outage(&self, why: Option<String>) {
        *self.failed_at.lock().unwrap_or_else(|e| e.into_inner()) =
            why.is_some().then(Instant::now);
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

/// What wins a lookup, by [`super::winner`]'s table.
pub enum Pick<'a> {
    /// The local credential.
    Local,
    /// A team's entry.
    Team(&'a Found, Arc<TeamEntry>),
    /// Nothing anywhere.
    NotFound,
    /// The candidate that would win is a team that could not answer.
    Failed(&'a Found, Arc<TeamError>),
}

/// Picks the winner between the local credential (`Some(scoped)` when there is one) and
/// the teams' answers. A team that could not answer does not stand in the way of a local
/// credential (a down or hanging engine never stops local credentials); without one, it
/// stands where its entry would, so a weaker team entry is not served in its place.
pub fn pick(local: Option<bool>, found: &[Found]) -> Pick<'_> {
    let mut cands = Vec::new();
    let mut which = Vec::new();
    if let Some(scoped) = local {
        cands.push(Candidate {
            scoped,
            team: false,
        });
        which.push(None);
    }
    for (i, f) in found.iter().enumerate() {
        if matches!(f.result, Ok(None)) || (local.is_some() && f.result.is_err()) {
            continue;
        }
        cands.push(Candidate {
            scoped: f.scoped,
            team: true,
        });
        which.push(Some(i));
    }
    match winner(&cands).map(|w| which[w]) {
        None => Pick::NotFound,
        Some(None) => Pick::Local,
        Some(Some(i)) => match &found[i].result {
            Ok(Some(e)) => Pick::Team(&found[i], e.clone()),
            Err(e) => Pick::Failed(&found[i], e.clone()),
            Ok(None) => unreachable!("absent entries are not candidates"),
        },
    }
}

/// A team's origins for a scope, and when they were listed.
type Listed = (Instant, Vec<String>);

/// Every configured team source and their shared cache.
#[derive(Default)]
pub struct Sources {
    teams: Vec<Team>,
    cache: Mutex<Cache>,
    origins: Mutex<std::collections::HashMap<(String, Option<String>), Listed>>,
}

impl Sources {
    /// The sources, in config.toml's name order.
    pub fn new(teams: Vec<Team>) -> Sources {
        Sources {
            teams,
            cache: Mutex::new(Cache::default()),
            origins: Mutex::default(),
        }
    }

    /// The sources config.toml names; a source whose settings are wrong is left out, with
    /// its error.
    pub fn load() -> (Sources, Vec<TeamError>) {
        let mut errors = Vec::new();
        let teams = match crate::config::path().and_then(|p| super::config::load(&p)) {
            Ok(list) => list
                .into_iter()
                .filter_map(|(name, cfg)| {
                    Team::new(&name, cfg, None).map_err(|e| errors.push(e)).ok()
                })
                .collect(),
            Err(e) => {
                errors.push(TeamError::Config {
                    team: "(all)".into(),
                    reason: e.to_string(),
                });
                Vec::new()
            }
        };
        (Sources::new(teams), errors)
    }

    /// The origins the teams hold for `project` (its scoped entries) and unscoped, through
    /// `LIST` (a policy needs `list` on the metadata), cached for each team's TTL; a team
    /// that cannot answer adds none.
    pub async fn origins(&self, project: Option<&str>) -> Vec<String> {
        let mut out = Vec::new();
        for team in &self.teams {
            let key = (team.name.clone(), project.map(str::to_owned));
            let held = self
                .origins
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&key)
                .filter(|(at, _)| at.elapsed() < team.cfg.cache_ttl())
                .map(|(_, l)| l.clone());
            let list = match held {
                Some(l) => l,
                None => {
                    let Ok(token) = team.token().await else {
                        continue;
                    };
                    let (e, m, p) = (&team.engine, &team.cfg.mount, &team.cfg.prefix);
                    let mut list: Vec<String> = kv::list(e, &token, m, p)
                        .await
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|k| !k.ends_with('/'))
                        .collect();
                    if let Some(name) = project {
                        let scoped = format!("{p}/projects/{name}");
                        list.extend(
                            kv::list(e, &token, m, &scoped)
                                .await
                                .unwrap_or_default()
                                .into_iter()
                                .filter(|k| !k.ends_with('/')),
                        );
                    }
                    self.origins
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(key, (Instant::now(), list.clone()));
                    list
                }
            };
            out.extend(list);
        }
        out.sort();
        out.dedup();
        out
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
    /// then unscoped, team by team, through the cache as `fresh` says.
    pub async fn lookup(
        &self,
        origin: &str,
        project: Option<&str>,
        fresh: Freshness,
    ) -> Vec<Found> {
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

    /// One path of one team, through the cache as `fresh` says.
    pub async fn fetch(
        &self,
        team: &Team,
        path: &str,
        fresh: Freshness,
    ) -> Result<(Held, bool), TeamError> {
        let (ttl, grace) = (team.cfg.cache_ttl(), team.cfg.grace());
        let cached = self.cache().get(&team.name, path, ttl, grace);
        if let (Hit::Fresh(h), Freshness::Cached) = (&cached, fresh) {
            return Ok((h.clone(), false));
        }
        if fresh != Freshness::Refresh && team.resting() {
            let why = team.outage().map(|(_, w)| w).unwrap_or_default();
            return match cached {
                Hit::Fresh(h) | Hit::Stale(h) => Ok((h, true)),
                Hit::Miss => Err(TeamError::Unavailable {
                    team: team.name.clone(),
                    detail: format!("failing; retried after {} s: {why}", RETRY_AFTER.as_secs()),
                }),
            };
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
        self.origins
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        for t in &self.teams {
            t.forget_token().await;
        }
    }

    /// Wipes every cached secret and listing at once, and the tokens no request holds
    /// (`lock`, which cannot wait).
    pub fn lock_now(&self) {
        self.cache().clear();
        self.origins
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        for t in &self.teams {
            if let Ok(mut s) = t.session.try_lock() {
                *s = None;
            }
        }
    }

    /// One line per team for `status` and `doctor`: answering, or every address failing
    /// since when, and until when cached entries are served.
    pub fn status_lines(&self) -> Vec<String> {
        self.teams
            .iter()
            .map(|t| match t.outage() {
                None => format!("{}: answering (or not asked yet)", t.name),
                Some((since, why)) => format!(
                    "{}: every address failing for {} s; cached entries are served for up to {} past their TTL ({})",
                    t.name,
                    since.elapsed().as_secs(),
                    humantime::format_duration(t.cfg.grace()),
                    why
                ),
            })
            .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credential::Credential;

    fn f(scoped: bool, r: Result<bool, ()>) -> Found {
        let entry = || {
            Arc::new(TeamEntry {
                credential: Credential::Bearer {
                    token: Secret::from("t"),
                },
                version: 1,
                label: None,
                disabled: false,
            })
        };
        Found {
            team: "acme".into(),
            scoped,
            path: String::new(),
            result: match r {
                Ok(true) => Ok(Some(entry())),
                Ok(false) => Ok(None),
                Err(()) => Err(Arc::new(TeamError::Unavailable {
                    team: "acme".into(),
                    detail: String::new(),
                })),
            },
            stale: false,
        }
    }

    fn name(p: Pick<'_>) -> String {
        match p {
            Pick::Local => "local".into(),
            Pick::Team(f, _) => format!("team scoped={}", f.scoped),
            Pick::NotFound => "none".into(),
            Pick::Failed(f, _) => format!("failed scoped={}", f.scoped),
        }
    }

    #[test]
    fn pick_follows_the_table_and_fails_closed() {
        let both = [f(true, Ok(true)), f(false, Ok(true))];
        assert_eq!(name(pick(Some(true), &both)), "local");
        assert_eq!(name(pick(Some(false), &both)), "team scoped=true");
        let unscoped_only = [f(true, Ok(false)), f(false, Ok(true))];
        assert_eq!(name(pick(Some(false), &unscoped_only)), "local");
        assert_eq!(name(pick(None, &unscoped_only)), "team scoped=false");
        assert_eq!(name(pick(None, &[f(true, Ok(false))])), "none");
        // A team that cannot answer never stops a local credential; without one, it is not
        // skipped for a weaker team entry.
        let failed = [f(true, Err(())), f(false, Ok(true))];
        assert_eq!(name(pick(Some(false), &failed)), "local");
        assert_eq!(name(pick(Some(true), &failed)), "local");
        assert_eq!(name(pick(None, &failed)), "failed scoped=true");
        assert_eq!(
            name(pick(None, &[f(false, Err(()))])),
            "failed scoped=false"
        );
    }
}
