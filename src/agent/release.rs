//! Releasing a credential to a peer under its policy, and the agent's audit log and askpass.

use super::{describe, now_secs, Agent, Released};
use crate::agent::policy::{self, Confirm, Rule};
use crate::audit::Audit;
use crate::credential::Origin;
use crate::error::Result;
use crate::peer::Peer;
use crate::store::{Slot, SlotKeyRef};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

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

    /// The policy of the credential a lookup would release, and its name for a prompt; `None`
    /// when the lookup will be refused anyway (locked, absent, disabled), so no dialog shows.
    fn rule_for(&self, origin: &Origin, project: Option<&Path>) -> Option<(Rule, String)> {
        let inner = self.inner();
        let meta = inner.index.resolve(origin.as_str(), project)?;
        let rule = Rule::of(meta);
        let what = match rule.is_open() {
            true => String::new(),
            false => describe(origin, meta.project.as_deref()),
        };
        (!inner.locked && meta.enabled).then_some((rule, what))
    }

    /// The credential that wins for `origin` looked up from `project` by `peer`, once its
    /// policy (allowed executables, then confirmation) agrees. The lock is not held while
    /// the user answers; the lookup refuses if the policy changed meanwhile.
    pub async fn release(
        &self,
        origin: &Origin,
        project: Option<&Path>,
        peer: &Peer,
    ) -> Result<Arc<Released>> {
        if let Some(hit) = self.cached_open(origin.as_str(), project) {
            return Ok(hit);
        }
        let (rule, what) = self.rule_for(origin, project).unwrap_or_default();
        if !rule.is_open() {
            policy::check(&rule, &self.confirm, peer, &what).await?;
        }
        self.get_as(origin, project, &rule).await
    }

    /// The everyday lookup in one pass under the lock: an enabled credential with no policy
    /// whose secret is already cached, released as [`Agent::get_as`] would release it.
    /// `None` sends the lookup down the full path, which also gives every refusal its reason.
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
        let key = SlotKeyRef {
            origin,
            project: meta.project.as_deref(),
            slot: Slot::Current,
        };
        let hit = Arc::clone(inner.cache.get(&key)?);
        meta.last_used = Some(now_secs());
        inner.dirty = true;
        inner.clock.released(Instant::now());
        Some(hit)
    }
}
