//! Handing a credential to a peer under its policy: one resolution of the index per pass, the cache consulted in the same pass; and the agent's audit log and askpass.

use super::{describe, now_secs, Agent, Inner, Released};
use crate::agent::policy::{self, Confirm, Rule};
use crate::audit::Audit;
use crate::credential::Origin;
use crate::error::{Error, Result};
use crate::peer::Peer;
use crate::store::{SecretKey, SecretKeyRef, Store, Which};
use crate::team::sources::Freshness;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// What the door a lookup came through adds to the credential's own policy.
#[derive(Clone, Copy)]
pub struct Through<'a> {
    /// Which scopes it may hand out: `Err` refuses the credential that would win, before
    /// its policy asks anything and before its secret is read.
    pub within: &'a (dyn Fn(Option<&str>) -> Result<()> + Sync),
    /// Whether it asks the user before every release, as `--confirm` does.
    pub confirms: bool,
}

impl Through<'static> {
    /// No door's rule: every scope, the credential's own policy alone.
    pub fn anywhere() -> Through<'static> {
        fn any(_: Option<&str>) -> Result<()> {
            Ok(())
        }
        Through {
            within: &any,
            confirms: false,
        }
    }
}

impl Through<'_> {
    /// The credential's rule with the door's added.
    fn rule(&self, meta: &crate::index::Meta) -> Rule {
        let mut rule = Rule::of(meta);
        if self.confirms {
            // A door that confirms every release keeps its own rule: one yes, one release.
            rule.confirm = true;
            rule.scope = crate::protocol::ConfirmScope::Each;
            rule.confirm_for = None;
        }
        rule
    }
}

/// What one pass under the lock found.
enum Pass {
    /// Cached: handed over.
    Hit(Arc<Released>),
    /// Not cached: read `key` from the backend, cache it unless `generation` moved.
    Read { key: SecretKey, generation: u64 },
    /// Its policy asks first: `rule`, for the credential named `what`.
    Ask { rule: Rule, what: String },
}

impl Agent {
    /// Records releases, refusals and changes in `audit`.
    pub fn with_audit(mut self, audit: Audit) -> Agent {
        self.audit = audit;
        self
    }

    /// Asks through `confirm` before releasing a credential added with `--confirm`.
    pub fn with_confirm(mut self, confirm: Confirm) -> Agent {
        self.confirm = confirm;
        self
    }

    /// The audit log.
    pub fn audit(&self) -> &Audit {
        &self.audit
    }

    /// Records the user's yes to a confirmation, with what it covers: one release
    /// (`--confirm=each`), or the program or session until lock or its time
    /// (`--confirm=program|session`). The releases it lets through are recorded as releases.
    pub(super) fn audit_approval(&self, origin: &Origin, what: &str, peer: &Peer, covers: &str) {
        self.audit.record(&peer.audit(crate::audit::Record {
            origin: Some(origin.to_string()),
            detail: Some(format!("{what}: {covers}")),
            ..crate::audit::Record::new(crate::audit::Event::Approve)
        }));
    }

    /// The credential that wins for `origin` looked up from `project` by `peer`, if the door
    /// it came `through` lets its scope out, once its policy and the door's (allowed
    /// executables, then confirmation) agree.
    ///
    /// The index is resolved once per pass, and the cache read in the same pass: an open
    /// credential takes the lock once when cached, twice when its secret is read (the second
    /// to cache it). A policy adds one pass after the user answered, since the lock is not
    /// held while they do; that pass refuses if the policy changed meanwhile.
    pub async fn release(
        &self,
        origin: &Origin,
        project: Option<&Path>,
        peer: &Peer,
        through: Through<'_>,
    ) -> Result<Arc<Released>> {
        if self.has_teams() {
            return self
                .release_with_teams(origin, project, peer, through, Freshness::Cached)
                .await;
        }
        self.release_local(origin, project, peer, through).await
    }

    /// [`Agent::release`] from the local store alone.
    pub(super) async fn release_local(
        &self,
        origin: &Origin,
        project: Option<&Path>,
        peer: &Peer,
        through: Through<'_>,
    ) -> Result<Arc<Released>> {
        let pass = match self.pass(origin, project, through, None)? {
            Pass::Ask { rule, what } => {
                if let Some(covers) = policy::check(&rule, &self.confirm, peer, &what).await? {
                    self.audit_approval(origin, &what, peer, &covers);
                }
                self.pass(origin, project, through, Some(&rule))?
            }
            pass => pass,
        };
        match pass {
            Pass::Hit(hit) => Ok(hit),
            Pass::Read { key, generation } => self.read_and_cache(origin, key, generation).await,
            Pass::Ask { .. } => unreachable!("a pass with the rule checked never asks again"),
        }
    }

    /// One pass under the lock: resolves the winner, applies the door's scopes, and either hands it
    /// over from the cache, says what to read, or (unless `checked` is the rule the user
    /// already passed) says what to ask.
    fn pass(
        &self,
        origin: &Origin,
        project: Option<&Path>,
        through: Through<'_>,
        checked: Option<&Rule>,
    ) -> Result<Pass> {
        let mut guard = self.inner();
        let inner: &mut Inner = &mut guard;
        if inner.locked {
            return Err(Error::Locked);
        }
        let meta = inner
            .index
            .resolve_mut(origin.as_str(), project)
            .ok_or_else(|| Error::NotFound(origin.to_string()))?;
        (through.within)(meta.project.as_deref())?;
        if !meta.enabled {
            return Err(Error::Disabled {
                what: describe(origin, meta.project.as_deref()),
            });
        }
        match checked {
            None if through.confirms || !Rule::open_for(meta) => {
                return Ok(Pass::Ask {
                    rule: through.rule(meta),
                    what: describe(origin, meta.project.as_deref()),
                })
            }
            Some(rule) if through.rule(meta) != *rule => {
                return Err(Error::Forbidden(
                    "the credential's policy changed while the release was checked; try again"
                        .into(),
                ))
            }
            _ => {}
        }
        meta.last_used = Some(now_secs());
        let key = SecretKeyRef {
            origin: origin.as_str(),
            project: meta.project.as_deref(),
            which: Which::Current,
        };
        let cached = inner.cache.get(&key).map(Arc::clone);
        let key = match cached {
            Some(hit) => {
                inner.dirty = true;
                inner.clock.released(Instant::now());
                return Ok(Pass::Hit(hit));
            }
            None => SecretKey::new(origin, meta.project.as_deref(), Which::Current),
        };
        inner.dirty = true;
        Ok(Pass::Read {
            key,
            generation: inner.generation,
        })
    }

    /// Reads `key`'s secret, and caches it unless a write or a lock came in between.
    async fn read_and_cache(
        &self,
        origin: &Origin,
        key: SecretKey,
        generation: u64,
    ) -> Result<Arc<Released>> {
        let cred = self.read(&key).await?.ok_or_else(|| {
            Error::NotFound(format!(
                "{} (the index lists it but the {} has no secret; add it again)",
                describe(origin, key.project.as_deref()),
                self.store.kind().name()
            ))
        })?;
        let released = Released::new(origin, key.project.clone(), cred);
        let mut inner = self.inner();
        if inner.locked {
            return Err(Error::Locked);
        }
        if inner.generation == generation {
            inner.cache.insert(key, Arc::clone(&released));
        }
        inner.clock.released(Instant::now());
        Ok(released)
    }

    /// The everyday lookup in one pass under the lock, with no allocation: an enabled
    /// credential with no policy whose secret is already cached, released as
    /// [`Agent::release`] would release it. `None` sends the lookup down the full path,
    /// which also gives every refusal its reason.
    pub(crate) fn cached_open(
        &self,
        origin: &str,
        project: Option<&Path>,
    ) -> Option<Arc<Released>> {
        let mut guard = self.inner();
        let inner = &mut *guard;
        if inner.locked {
            return None;
        }
        let meta = inner.index.resolve_mut(origin, project)?;
        if !meta.enabled || !Rule::open_for(meta) {
            return None;
        }
        let key = SecretKeyRef {
            origin,
            project: meta.project.as_deref(),
            which: Which::Current,
        };
        let hit = Arc::clone(inner.cache.get(&key)?);
        meta.last_used = Some(now_secs());
        inner.dirty = true;
        inner.clock.released(Instant::now());
        Some(hit)
    }
}
