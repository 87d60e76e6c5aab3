//! One approval per run: a release that passed a credential's policy (`--confirm`,
//! `--allow-exe`) also covers composer-keyd's own git helper running beneath the approved
//! process, while that process lives.
//!
//! Why: the Composer plugin (in PHP) is approved, then git, started by that Composer, asks
//! the helper for the same credential. Refusing the helper (its executable is not PHP), or
//! asking the user a second time, left git with nothing, and Composer then retried with the
//! credential in git's URL, in its argv. The helper is served only when it runs this very
//! binary, both at accept and now, and one of its ancestors is the approved process itself
//! (pid and start time, so a reused pid does not match).

use super::Rule;
use crate::peer::Peer;
use crate::procstat::{parent, start_time};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// Most approvals remembered; the oldest goes first (it asks again, nothing is widened).
const MAX_APPROVALS: usize = 64;
/// Most ancestors walked from the helper (helper, sh, git-remote-http, git, ..., PHP).
const MAX_ANCESTORS: usize = 32;

/// The live approvals: which credential, for which process.
#[derive(Debug, Default)]
pub struct Approvals(Mutex<Vec<Approval>>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Approval {
    /// The credential, as the policy check names it (origin and scope).
    what: String,
    /// The policy that was passed: a changed policy is not covered by the old approval.
    rule: Rule,
    pid: i32,
    /// The process's start time (clock ticks since boot), against pid reuse.
    start: u64,
}

impl Approvals {
    /// Remembers that `peer` was let through `rule`, the policy of `what`.
    pub fn record(&self, peer: &Peer, what: &str, rule: &Rule) {
        let Some(pid) = peer.pid else { return };
        let Some(start) = start_time(pid) else { return };
        let mut list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // Approvals of processes that have gone cover nothing any more.
        list.retain(|a| start_time(a.pid) == Some(a.start));
        let new = Approval {
            what: what.to_owned(),
            rule: rule.clone(),
            pid,
            start,
        };
        if !list.contains(&new) {
            if list.len() >= MAX_APPROVALS {
                list.remove(0);
            }
            list.push(new);
        }
    }

    /// Whether `peer` is this program's git helper beneath a process approved for `what`
    /// under this very `rule`.
    pub fn covers(&self, peer: &Peer, what: &str, rule: &Rule) -> bool {
        let Some(pid) = peer.pid else { return false };
        let matches = |a: &Approval| a.what == what && a.rule == *rule;
        {
            let list = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if !list.iter().any(matches) {
                return false;
            }
        }
        let Some(own) = own_exe() else { return false };
        let is_own = |exe: Option<&Path>| exe.is_some_and(|e| e == own);
        if !is_own(peer.exe()) || !is_own(crate::harden::process_exe(pid).as_deref()) {
            return false;
        }
        let mut cur = parent(pid);
        for _ in 0..MAX_ANCESTORS {
            let Some(p) = cur.filter(|&p| p > 1) else {
                return false;
            };
            let start = start_time(p);
            let list = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if list
                .iter()
                .any(|a| matches(a) && a.pid == p && Some(a.start) == start)
            {
                return true;
            }
            drop(list);
            cur = parent(p);
        }
        false
    }
}

/// This program's executable, as `/proc/PID/exe` shows it.
fn own_exe() -> Option<&'static Path> {
    static OWN: OnceLock<Option<PathBuf>> = OnceLock::new();
    OWN.get_or_init(|| crate::harden::process_exe(std::process::id() as i32))
        .as_deref()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Peer {
        let pid = std::process::id() as i32;
        Peer::with_exe(0, Some(pid), crate::harden::process_exe(pid))
    }

    fn confirm() -> Rule {
        Rule {
            confirm: true,
            allow_exe: vec![],
            ..Rule::default()
        }
    }

    #[test]
    fn an_approval_covers_this_program_beneath_the_approved_process_only() {
        let r = &confirm();
        let a = Approvals::default();
        let parent_pid = parent(std::process::id() as i32).unwrap();
        let approved = Peer::with_exe(0, Some(parent_pid), None);
        assert!(!a.covers(&me(), "a.example", r), "nothing approved yet");
        a.record(&approved, "a.example", r);
        assert!(a.covers(&me(), "a.example", r));
        assert!(!a.covers(&me(), "b.example", r), "another credential");
        let changed = Rule {
            confirm: true,
            allow_exe: vec!["/usr/bin/php".into()],
            ..Rule::default()
        };
        assert!(!a.covers(&me(), "a.example", &changed), "a changed policy");
        // Another program beneath the same process: a shell, not this binary.
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", "sleep 30"])
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let sh = Peer::with_exe(0, Some(pid), crate::harden::process_exe(pid));
        let covered = a.covers(&sh, "a.example", r);
        // A peer that says it is this binary but runs something else now.
        let liar = Peer::with_exe(0, Some(pid), own_exe().map(Path::to_path_buf));
        let covered_liar = a.covers(&liar, "a.example", r);
        let _ = child.kill();
        let _ = child.wait();
        assert!(!covered && !covered_liar);
        // This process approved does not cover itself through an ancestor walk.
        let b = Approvals::default();
        b.record(&me(), "a.example", r);
        assert!(!b.covers(&me(), "a.example", r));
    }
}
