//! `--strict`'s answer to git's `erase`: the server refused the credential git was given, and
//! git is about to fail with "Authentication failed", after which Composer's `Util\Git`
//! retries with the credential in the URL. Stopping git's remote helper first makes git fail
//! with "git-remote-http died of signal 9" instead, which Composer does not retry.

use crate::procstat::parent;
use std::path::Path;

/// Most ancestors walked: this helper, `sh -c`, then git's remote helper.
const MAX_ANCESTORS: usize = 8;

/// The pid of the `git remote-http(s)` process this helper runs under: an ancestor, of our
/// uid, whose executable is git's and whose argv names the remote helper. `None` when there
/// is none (a plain `git credential` call, a test), so nothing else is ever signalled.
pub fn remote_helper_ancestor() -> Option<i32> {
    let me = crate::paths::euid();
    let mut pid = parent(std::process::id() as i32)?;
    for _ in 0..MAX_ANCESTORS {
        if pid <= 1 {
            return None;
        }
        if is_remote_helper(pid, me) {
            return Some(pid);
        }
        pid = parent(pid)?;
    }
    None
}

/// Stops `pid` (from [`remote_helper_ancestor`]) at once.
pub fn stop(pid: i32) -> bool {
    // SAFETY: kill has no memory effects; the pid is our own verified ancestor.
    unsafe { libc::kill(pid, libc::SIGKILL) == 0 }
}

fn is_remote_helper(pid: i32, uid: u32) -> bool {
    let owner = std::fs::metadata(format!("/proc/{pid}"))
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .ok();
    let exe = crate::harden::process_exe(pid);
    let is_git = exe
        .as_deref()
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
        .is_some_and(|n| n == "git" || n.starts_with("git-remote-http"));
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let mut args = cmdline.split(|&b| b == 0).map(|a| {
        let name = a.rsplit(|&b| b == b'/').next().unwrap_or(a);
        name.to_vec()
    });
    let first = args.next().unwrap_or_default();
    let second = args.next().unwrap_or_default();
    let names_helper = |a: &[u8]| {
        a == b"git-remote-http"
            || a == b"git-remote-https"
            || a == b"remote-http"
            || a == b"remote-https"
    };
    owner == Some(uid) && is_git && (names_helper(&first) || names_helper(&second))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_git_there_is_nothing_to_stop() {
        assert_eq!(remote_helper_ancestor(), None);
        let me = std::process::id() as i32;
        assert!(!is_remote_helper(me, crate::paths::euid()));
    }
}
