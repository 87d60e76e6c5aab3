//! Changes that could lead to a release are held to the policies they touch: a policy change or a rollback to the credential's own, a migration or a new passphrase to the strictest among all credentials.

use super::{describe, Agent};
use crate::agent::policy::{self, Rule};
use crate::error::Result;
use crate::index::Meta;
use crate::peer::Peer;
use crate::protocol::ConfirmScope;

impl Agent {
    /// Checks `peer` against the policy `meta` has now before it may `action`.
    pub(super) async fn guard_one(&self, meta: &Meta, peer: &Peer, action: &str) -> Result<()> {
        let rule = Rule::of(meta);
        if rule.is_open() {
            return Ok(());
        }
        let subject = describe(&meta.origin, meta.project.as_deref());
        policy::check_all(&[rule], &self.confirm, peer, &subject, action).await
    }

    /// Checks `peer` against the strictest policy among every stored credential before it
    /// may `action` (a migration or a new passphrase touches them all).
    pub(super) async fn guard_all(&self, peer: &Peer, action: &str) -> Result<()> {
        let mut rules: Vec<Rule> = Vec::new();
        for meta in self.inner().index.all() {
            let r = Rule::of(&meta);
            if !r.is_open() && !rules.contains(&r) {
                rules.push(r);
            }
        }
        if rules.is_empty() {
            return Ok(());
        }
        policy::check_all(&rules, &self.confirm, peer, "every credential", action).await
    }

    /// The policy a `PUT` would leave on `existing`, checked against the one it has when
    /// they differ. Returns the audit detail of the change, if there is one.
    pub(super) async fn guard_policy_change(
        &self,
        existing: &Meta,
        confirm: Option<bool>,
        allow_exe: Option<&[String]>,
        scope: Option<(ConfirmScope, u64)>,
        peer: &Peer,
    ) -> Result<Option<String>> {
        let before = Rule::of(existing);
        let mut after = before.clone();
        if let Some((s, secs)) = scope {
            after.scope = s;
            after.confirm_for = (s == ConfirmScope::Session && secs > 0).then_some(secs);
        }
        if let Some(c) = confirm {
            after.confirm = c;
        }
        if let Some(x) = allow_exe {
            after.allow_exe = x.to_vec();
        }
        if after == before {
            return Ok(None);
        }
        let change = format!("{} -> {}", rule_text(&before), rule_text(&after));
        self.guard_one(
            existing,
            peer,
            &format!("change its release policy ({change})"),
        )
        .await?;
        Ok(Some(change))
    }
}

/// A policy in a few words: `confirm, allow-exe /usr/bin/php8.2` or `none`.
pub fn rule_text(rule: &Rule) -> String {
    let mut parts = Vec::new();
    match (rule.confirm, rule.scope, rule.confirm_for) {
        (false, ..) => {}
        (true, ConfirmScope::Session, Some(s)) => parts.push(format!("confirm=session {s} s")),
        (true, ConfirmScope::Each, _) => parts.push("confirm".to_owned()),
        (true, scope, _) => parts.push(format!("confirm={}", scope.as_str())),
    }
    if !rule.allow_exe.is_empty() {
        parts.push(format!("allow-exe {}", rule.allow_exe.join(" ")));
    }
    match parts.is_empty() {
        true => "none".into(),
        false => parts.join(", "),
    }
}
