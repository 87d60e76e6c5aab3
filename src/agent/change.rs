//! Changes to stored credentials: add, replace or rotate (`put`), remove, enable and disable, roll back.

use super::{describe, now_secs, Agent, Released};
use crate::credential::Origin;
use crate::error::{Error, Result};
use crate::index::{new_meta, Meta};
use crate::peer::Peer;
use crate::protocol::{ConfirmScope, CredentialInfo, PutCredential, PutOutcome, PutReply};
use crate::store::{SecretKey, Store, Which};

/// What a `put` did: the reply's facts, and the policy change it made, if any, for the
/// door's audit record.
#[derive(Debug)]
pub struct Put {
    /// What the `PUT` did.
    pub outcome: PutOutcome,
    /// The stored credential's facts after the change.
    pub info: CredentialInfo,
    /// The release policy's change (`none -> confirm`), when it changed.
    pub policy: Option<String>,
}

impl From<Put> for PutReply {
    fn from(p: Put) -> PutReply {
        PutReply {
            outcome: p.outcome,
            info: p.info,
        }
    }
}

impl Agent {
    /// Adds, replaces or rotates the credential for exactly `origin` and `project`.
    /// A change to the credential's release policy is first checked against the policy it
    /// has (see `guard`).
    pub async fn put(
        &self,
        origin: &Origin,
        project: Option<String>,
        req: PutCredential,
        peer: &Peer,
    ) -> Result<Put> {
        req.credential.validate()?;
        if matches!(req.confirm_scope, Some((ConfirmScope::Unknown, _))) {
            return Err(Error::BadRequest(
                "confirm_scope must be each, program or session".into(),
            ));
        }
        let allow_exe = req
            .allow_exe
            .as_deref()
            .map(crate::agent::policy::canonical_exes)
            .transpose()?;
        let _w = self.writer.lock().await;
        self.ensure_unlocked()?;
        let scope = project.as_deref();
        let key = SecretKey::new(origin, scope, Which::Current);
        let existing = self.inner().index.get(origin, scope).cloned();
        let policy_change = match &existing {
            Some(e) => {
                self.guard_policy_change(
                    e,
                    req.confirm,
                    allow_exe.as_deref(),
                    req.confirm_scope,
                    peer,
                )
                .await?
            }
            None => None,
        };
        let old = match &existing {
            Some(_) => self.read(&key).await?,
            None => None,
        };
        if req.rotate && old.is_none() {
            return Err(Error::NotFound(format!(
                "{}: nothing to rotate; use `composer-keyd add`",
                describe(origin, scope)
            )));
        }
        let now = now_secs();
        let mut meta = existing.clone().unwrap_or_else(|| {
            new_meta(origin.clone(), project.clone(), req.credential.kind(), now)
        });
        let outcome = match &old {
            Some(o) if *o == req.credential => PutOutcome::Unchanged,
            Some(_) if req.no_clobber => {
                return Ok(Put {
                    outcome: PutOutcome::Conflict,
                    info: meta,
                    policy: None,
                })
            }
            Some(o) if req.rotate => {
                self.write(&SecretKey::new(origin, scope, Which::Previous), o)
                    .await?;
                meta.rotated = Some(now);
                meta.has_previous = true;
                PutOutcome::Rotated
            }
            Some(_) => PutOutcome::Replaced,
            None => PutOutcome::Created,
        };
        if outcome != PutOutcome::Unchanged {
            self.write(&key, &req.credential).await?;
        }
        meta.kind = req.credential.kind();
        if req.label.is_some() {
            meta.label = req.label.clone();
        }
        if let Some(c) = req.confirm {
            meta.confirm = c;
        }
        if let Some(exes) = allow_exe {
            meta.allow_exe = exes;
        }
        if let Some((scope, secs)) = req.confirm_scope {
            meta.confirm_scope = scope;
            meta.confirm_for = (scope == ConfirmScope::Session && secs > 0).then_some(secs);
        }
        meta.expires =
            crate::index::expiry_after_put(&meta, req.expires, outcome != PutOutcome::Unchanged);
        let changed = outcome != PutOutcome::Unchanged || existing.as_ref() != Some(&meta);
        {
            let mut inner = self.inner();
            inner.generation += 1;
            let released = Released::new(origin, project.clone(), req.credential);
            inner.cache.insert(key, released);
            inner.index.upsert(meta.clone());
        }
        if changed {
            self.save_index().await?;
        }
        Ok(Put {
            outcome,
            info: meta,
            policy: policy_change,
        })
    }

    /// Removes a credential and its previous secret.
    pub async fn delete(&self, origin: &Origin, project: Option<&str>) -> Result<CredentialInfo> {
        let _w = self.writer.lock().await;
        self.ensure_unlocked()?;
        let meta = self.existing(origin, project)?;
        for which in [Which::Current, Which::Previous] {
            let k = SecretKey::new(origin, project, which);
            self.backend(self.store.delete(&k)).await?;
        }
        {
            let mut inner = self.inner();
            inner.generation += 1;
            for which in [Which::Current, Which::Previous] {
                inner.cache.remove(&SecretKey::new(origin, project, which));
            }
            inner.index.remove(origin, project);
        }
        self.save_index().await?;
        Ok(meta)
    }

    fn existing(&self, origin: &Origin, project: Option<&str>) -> Result<Meta> {
        self.inner()
            .index
            .get(origin, project)
            .cloned()
            .ok_or_else(|| Error::NotFound(describe(origin, project)))
    }

    /// Enables or disables a credential. Metadata only, so it works while locked.
    pub async fn set_enabled(
        &self,
        origin: &Origin,
        project: Option<&str>,
        enabled: bool,
    ) -> Result<CredentialInfo> {
        let _w = self.writer.lock().await;
        let meta = {
            let mut inner = self.inner();
            let m = inner
                .index
                .get_mut(origin, project)
                .ok_or_else(|| Error::NotFound(describe(origin, project)))?;
            m.enabled = enabled;
            m.clone()
        };
        self.save_index().await?;
        Ok(meta)
    }

    /// Swaps the current secret with the one the last rotation replaced, once `peer` passes
    /// the credential's policy.
    pub async fn rollback(
        &self,
        origin: &Origin,
        project: Option<&str>,
        peer: &Peer,
    ) -> Result<CredentialInfo> {
        let _w = self.writer.lock().await;
        self.ensure_unlocked()?;
        let mut meta = self.existing(origin, project)?;
        self.guard_one(&meta, peer, "roll back to its previous secret")
            .await?;
        let cur_key = SecretKey::new(origin, project, Which::Current);
        let prev_key = SecretKey::new(origin, project, Which::Previous);
        let previous = match self.read(&prev_key).await? {
            Some(p) if meta.has_previous => p,
            _ => {
                return Err(Error::BadRequest(format!(
                    "{} has no previous secret to roll back to",
                    describe(origin, project)
                )))
            }
        };
        let current = self.read(&cur_key).await?;
        self.write(&cur_key, &previous).await?;
        if let Some(c) = &current {
            self.write(&prev_key, c).await?;
        }
        meta.kind = previous.kind();
        meta.rotated = Some(now_secs());
        meta.has_previous = current.is_some();
        {
            let mut inner = self.inner();
            inner.generation += 1;
            let released = Released::new(origin, project.map(str::to_owned), previous);
            inner.cache.insert(cur_key, released);
            inner.index.upsert(meta.clone());
        }
        self.save_index().await?;
        Ok(meta)
    }
}
