//! Team sources in a release: the local winner and the teams' answers ranked by
//! `team::winner`'s table; a team entry is handed over from memory only (never cached in the
//! store or the index), under the door's scope rule.

use super::policy::{self, Rule};
use super::{describe, Agent, Released};
use crate::agent::release::Through;
use crate::credential::Origin;
use crate::error::{Error, Result};
use crate::file_memo::FileMemo;
use crate::peer::Peer;
use crate::protocol::OriginInfo;
use crate::team::sources::{pick, Freshness, Pick, Sources};
use crate::team::TeamError;
use std::path::Path;
use std::sync::Arc;

/// A team's failure as the library's error, with the team's own message (it names the team
/// and the path, never a secret).
fn error(e: &TeamError) -> Error {
    match e {
        TeamError::NotFound { path, .. } => Error::NotFound(path.clone()),
        e => Error::Team(e.clone()),
    }
}

impl Agent {
    /// Reads team sources beside the store.
    pub fn with_teams(mut self, teams: Sources) -> Agent {
        self.teams = Arc::new(teams);
        self
    }

    /// Whether any team source is set up.
    pub fn has_teams(&self) -> bool {
        !self.teams.is_empty()
    }

    /// The team sources.
    pub fn teams(&self) -> &Sources {
        &self.teams
    }

    /// The project's name in team sources: composer.json's root `name` in the project
    /// directory; a project without one sees only unscoped team entries. Known inline while
    /// the file is unchanged (`file_memo`); read on a blocking thread when it changed.
    async fn team_project(project: Option<&Path>) -> Option<String> {
        static NAMES: FileMemo<Option<String>> = FileMemo::new();
        let dir = project?.to_owned();
        let file = dir.join("composer.json");
        if let Some(name) = NAMES.cached(&file, || None) {
            return name;
        }
        tokio::task::spawn_blocking(move || {
            NAMES.read(&file, || crate::team::project_name(&dir).ok())
        })
        .await
        .ok()
        .flatten()
    }

    /// A release with team sources: a local project-scoped credential wins at once; else the
    /// teams are asked (through their cache as `fresh` says) and the table decides.
    pub async fn release_with_teams(
        &self,
        origin: &Origin,
        project: Option<&Path>,
        peer: &Peer,
        through: Through<'_>,
        fresh: Freshness,
    ) -> Result<Arc<Released>> {
        let local = {
            let inner = self.inner();
            if inner.locked {
                return Err(Error::Locked);
            }
            inner
                .index
                .resolve(origin.as_str(), project)
                .map(|m| m.project.is_some())
        };
        if local == Some(true) {
            return self.release_local(origin, project, peer, through).await;
        }
        self.load_approles(peer).await;
        let name = Self::team_project(project).await;
        if local == Some(false) && name.is_none() {
            // Only unscoped entries could compete, and the local one beats them.
            return self.release_local(origin, project, peer, through).await;
        }
        let found = self
            .teams
            .lookup(origin.as_str(), name.as_deref(), fresh)
            .await;
        match pick(local, &found) {
            Pick::Local => self.release_local(origin, project, peer, through).await,
            Pick::NotFound => Err(Error::NotFound(origin.to_string())),
            Pick::Failed(_, e) => Err(error(&e)),
            Pick::Team(f, entry) => {
                let scope = f
                    .scoped
                    .then(|| project.map(|p| p.to_string_lossy().into_owned()))
                    .flatten();
                (through.within)(scope.as_deref())?;
                if entry.disabled {
                    return Err(Error::Disabled {
                        what: format!("{} in team {}", f.path, f.team),
                    });
                }
                let source = format!("team {} v{}", f.team, entry.version);
                if through.confirms {
                    // A door that asks first asks for a team entry as for a local one (one
                    // yes, one release), naming where the credential comes from.
                    let what = format!("{} from {source}", describe(origin, scope.as_deref()));
                    let rule = Rule {
                        confirm: true,
                        allow_exe: Vec::new(),
                        scope: crate::protocol::ConfirmScope::Each,
                        confirm_for: None,
                    };
                    if let Some(covers) = policy::check(&rule, &self.confirm, peer, &what).await? {
                        self.audit_approval(origin, &what, peer, &covers);
                    }
                }
                if self.inner().locked {
                    return Err(Error::Locked);
                }
                Ok(Released::from(
                    origin,
                    scope,
                    entry.credential.clone(),
                    Some(source),
                ))
            }
        }
    }

    /// Gives each approle team without its login the role_id and secret_id `team login`
    /// stored in the local backend (an http-basic credential under `auth::approle_origin`).
    async fn load_approles(&self, peer: &Peer) {
        for t in self.teams.teams() {
            if !t.wants_approle() {
                continue;
            }
            let Ok(origin) = Origin::parse(&crate::team::auth::approle_origin(&t.name)) else {
                continue;
            };
            let got = self
                .release_local(&origin, None, peer, Through::anywhere())
                .await;
            if let Ok(r) = got {
                if let crate::credential::Credential::HttpBasic { username, password } =
                    &*r.reply.credential
                {
                    t.set_approle(crate::team::auth::Approle {
                        role_id: username.clone(),
                        secret_id: password.clone(),
                    });
                }
            }
        }
    }

    /// The origins team sources hold for `project` (and unscoped), with their types, for
    /// `GET /v1/origins`; one the local index already lists is left to it.
    pub async fn team_origins(
        &self,
        project: Option<&Path>,
        local: &[OriginInfo],
    ) -> Vec<OriginInfo> {
        if !self.has_teams() || self.inner().locked {
            return Vec::new();
        }
        self.load_approles(&Peer::unknown()).await;
        let name = Self::team_project(project).await;
        let mut out = Vec::new();
        for o in self.teams.origins(name.as_deref()).await {
            let Ok(origin) = Origin::parse(&o) else {
                continue;
            };
            if local.iter().any(|l| l.origin == origin)
                || out.iter().any(|l: &OriginInfo| l.origin == origin)
            {
                continue;
            }
            let found = self
                .teams
                .lookup(origin.as_str(), name.as_deref(), Freshness::Cached)
                .await;
            let best = found.iter().find_map(|f| {
                f.result
                    .as_ref()
                    .ok()
                    .cloned()
                    .flatten()
                    .map(|e| (f.scoped, e))
            });
            if let Some((scoped, e)) = best {
                out.push(OriginInfo {
                    origin,
                    kind: e.credential.kind(),
                    project: scoped
                        .then(|| project.map(|p| p.to_string_lossy().into_owned()))
                        .flatten(),
                    enabled: !e.disabled,
                    expires: None,
                });
            }
        }
        out
    }
}
