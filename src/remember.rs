//! Approvals that remember (`--confirm=program`, `--confirm=session`): which approvals hold,
//! until `lock` or their time runs out, and one dialog for a burst of requests that need
//! the same approval (the others wait on its answer, a refusal included).
//!
//! The memory holds no secret: a key names the credential and policy (`what`, `rule`), the
//! approved executable and, for `session`, the session it ran in.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;
use tokio::sync::watch;

/// Most approvals remembered; past it, the one that ends first goes (it asks again).
pub const MAX_REMEMBERED: usize = 256;

/// What one approval covers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    /// The credential, as the policy check names it (origin and scope).
    pub what: String,
    /// The policy passed, so that a changed policy is not covered by an old approval.
    pub rule: String,
    /// The executable approved (as first read at accept).
    pub exe: PathBuf,
    /// For `session`: the session it ran in, as [`session_of`] names it.
    pub session: Option<String>,
}

/// How a request got past its approval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// An approval given earlier covered it; nobody was asked.
    Remembered,
    /// This request opened the dialog, which answered yes (`true`) or no.
    Asked(bool),
    /// Another request's dialog, open when this one came, answered for it too.
    Shared(bool),
}

impl Decision {
    /// Whether the request may go on.
    pub fn approved(self) -> bool {
        matches!(
            self,
            Decision::Remembered | Decision::Asked(true) | Decision::Shared(true)
        )
    }
}

#[derive(Default)]
struct State {
    /// Approved keys and when each ends (`None`: at `lock`).
    approved: HashMap<Key, Option<Instant>>,
    /// Open dialogs: their answer arrives on the channel.
    asking: HashMap<Key, watch::Receiver<Option<bool>>>,
    /// Bumped by `forget`: a dialog answered after a lock is not remembered.
    epoch: u64,
}

/// The remembered approvals of one daemon.
#[derive(Default)]
pub struct Memory(Mutex<State>);

/// Removes an open dialog's entry however its request ends (a client that hangs up cancels
/// the future holding this), so the requests waiting on it ask again instead of waiting.
struct Opened<'a> {
    memory: &'a Memory,
    key: &'a Key,
}

impl Drop for Opened<'_> {
    fn drop(&mut self) {
        self.memory.state().asking.remove(self.key);
    }
}

impl Memory {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `key` is approved now.
    pub fn holds(&self, key: &Key, now: Instant) -> bool {
        match self.state().approved.get(key) {
            Some(None) => true,
            Some(Some(t)) => *t > now,
            None => false,
        }
    }

    /// Passes `key` through: a remembered approval, the answer of a dialog already open for
    /// it, or a new dialog (`ask`), whose yes is remembered until `until` (`None`: `lock`).
    pub async fn approve<F, Fut>(&self, key: &Key, until: Option<Instant>, ask: F) -> Decision
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = bool>,
    {
        let mut ask = Some(ask);
        loop {
            let step = {
                let mut st = self.state();
                let now = Instant::now();
                match st.approved.get(key) {
                    Some(None) => return Decision::Remembered,
                    Some(Some(t)) if *t > now => return Decision::Remembered,
                    Some(Some(_)) => {
                        st.approved.remove(key);
                    }
                    None => {}
                }
                match st.asking.get(key).cloned() {
                    Some(rx) => Err(rx),
                    None => {
                        let (tx, rx) = watch::channel(None);
                        st.asking.insert(key.clone(), rx);
                        Ok((tx, st.epoch))
                    }
                }
            };
            let (tx, epoch) = match step {
                Ok(opened) => opened,
                Err(rx) => match wait(rx).await {
                    Some(answer) => return Decision::Shared(answer),
                    // The dialog's request went away unanswered: ask again.
                    None => continue,
                },
            };
            let opened = Opened { memory: self, key };
            let Some(ask) = ask.take() else {
                // Only reached when a dialog this request waited on vanished after this one
                // had already asked once: nothing more to ask with.
                return Decision::Asked(false);
            };
            let answer = ask().await;
            {
                let mut st = self.state();
                if answer && st.epoch == epoch {
                    if st.approved.len() >= MAX_REMEMBERED {
                        evict(&mut st.approved);
                    }
                    st.approved.insert(key.clone(), until);
                }
            }
            drop(opened);
            let _ = tx.send(Some(answer));
            return Decision::Asked(answer);
        }
    }

    /// Forgets every approval (`lock`); dialogs open now are not remembered when answered.
    /// Returns how many were forgotten.
    pub fn forget(&self) -> usize {
        let mut st = self.state();
        st.epoch += 1;
        let n = st.approved.len();
        st.approved.clear();
        n
    }
}

/// The answer on `rx`, or `None` when its dialog ended without one.
async fn wait(mut rx: watch::Receiver<Option<bool>>) -> Option<bool> {
    loop {
        if let Some(a) = *rx.borrow_and_update() {
            return Some(a);
        }
        if rx.changed().await.is_err() {
            return *rx.borrow();
        }
    }
}

/// Drops the approval that ends first (one until `lock` ends last).
fn evict(map: &mut HashMap<Key, Option<Instant>>) {
    let first = map
        .iter()
        .min_by_key(|(_, until)| until.map_or((1, None), |t| (0, Some(t))))
        .map(|(k, _)| k.clone());
    if let Some(k) = first {
        map.remove(&k);
    }
}

/// Most ancestors walked to find the root of a process tree.
const MAX_ANCESTORS: usize = 256;

/// The session a process runs in, for `--confirm=session`: its login session
/// (`/proc/PID/sessionid`, set by pam_loginuid), else its process session (`getsid`), which
/// a terminal's shell and everything it starts share.
///
/// In a pid namespace entered with its session (a container, a CI job under `unshare`), the
/// session's leader is outside and `getsid` answers 0. Every process there that still has
/// that session descends from the one that entered, whose parent is outside (pid 0 here):
/// that process, named with its start time so that a reused pid is another tree, stands for
/// the session.
pub fn session_of(pid: i32) -> Option<String> {
    let login = std::fs::read_to_string(format!("/proc/{pid}/sessionid"))
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|&s| s != u32::MAX);
    if let Some(s) = login {
        return Some(format!("login {s}"));
    }
    // SAFETY: getsid only reads the kernel's process table.
    let sid = unsafe { libc::getsid(pid) };
    if sid > 0 {
        return Some(format!("process session {sid}"));
    }
    if sid < 0 {
        return None;
    }
    let (root, start) = tree_root(pid)?;
    Some(format!("process tree {root} (started at tick {start})"))
}

/// The topmost ancestor of `pid` that shares its hidden session (see [`session_of`]).
fn tree_root(pid: i32) -> Option<(i32, u64)> {
    let mut cur = pid;
    for _ in 0..MAX_ANCESTORS {
        let stat = crate::procstat::read(cur)?;
        // SAFETY: getsid only reads the kernel's process table.
        let hidden = unsafe { libc::getsid(stat.ppid) } == 0;
        if stat.ppid == 0 || !hidden {
            return Some((cur, stat.start));
        }
        cur = stat.ppid;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    fn key(exe: &str) -> Key {
        Key {
            what: "github.com".into(),
            rule: "confirm".into(),
            exe: exe.into(),
            session: None,
        }
    }

    #[tokio::test]
    async fn one_prompt_per_program_until_forgotten() {
        let m = Memory::default();
        let asked = AtomicUsize::new(0);
        let ask = || async {
            asked.fetch_add(1, Ordering::SeqCst);
            true
        };
        assert_eq!(
            m.approve(&key("/usr/bin/php"), None, ask).await,
            Decision::Asked(true)
        );
        for _ in 0..9 {
            assert_eq!(
                m.approve(&key("/usr/bin/php"), None, ask).await,
                Decision::Remembered
            );
        }
        assert_eq!(
            m.approve(&key("/usr/bin/git"), None, ask).await,
            Decision::Asked(true)
        );
        assert_eq!(asked.load(Ordering::SeqCst), 2);
        assert_eq!(m.forget(), 2);
        assert!(m.approve(&key("/usr/bin/php"), None, ask).await.approved());
        assert_eq!(asked.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_refusal_is_not_remembered_and_a_time_limit_ends_it() {
        let m = Memory::default();
        assert_eq!(
            m.approve(&key("/p"), None, || async { false }).await,
            Decision::Asked(false)
        );
        assert!(!m.holds(&key("/p"), Instant::now()));
        let soon = Instant::now() + Duration::from_millis(30);
        assert!(m
            .approve(&key("/p"), Some(soon), || async { true })
            .await
            .approved());
        assert!(m.holds(&key("/p"), Instant::now()));
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(!m.holds(&key("/p"), Instant::now()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_waits_on_one_dialog_refusal_included() {
        for answer in [true, false] {
            let m = Arc::new(Memory::default());
            let asked = Arc::new(AtomicUsize::new(0));
            let (go, _) = tokio::sync::broadcast::channel::<()>(1);
            let mut tasks = Vec::new();
            for _ in 0..16 {
                let (m, asked, mut wait_go) = (m.clone(), asked.clone(), go.subscribe());
                tasks.push(tokio::spawn(async move {
                    m.approve(&key("/php"), None, || async move {
                        asked.fetch_add(1, Ordering::SeqCst);
                        // The dialog stays open until every request has arrived.
                        let _ = wait_go.recv().await;
                        answer
                    })
                    .await
                }));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            go.send(()).unwrap();
            let mut results = Vec::new();
            for t in tasks {
                results.push(t.await.unwrap());
            }
            assert_eq!(asked.load(Ordering::SeqCst), 1, "{results:?}");
            assert!(
                results.iter().all(|d| d.approved() == answer),
                "{results:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_dialog_answered_after_lock_is_not_remembered() {
        let m = Memory::default();
        let d = m
            .approve(&key("/p"), None, || async {
                m.forget();
                true
            })
            .await;
        assert_eq!(d, Decision::Asked(true));
        assert!(!m.holds(&key("/p"), Instant::now()));
    }

    /// Every process has a session: its login session, its process session, or (in a pid
    /// namespace whose session leader is outside it) the tree that entered the namespace.
    #[test]
    fn this_process_has_a_session_and_keeps_it() {
        let me = std::process::id() as i32;
        let first = session_of(me).expect("a session");
        assert_eq!(session_of(me).as_deref(), Some(first.as_str()));
        // A child shares it.
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let theirs = session_of(child.id() as i32);
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(theirs.as_deref(), Some(first.as_str()));
        assert_eq!(session_of(-1), None);
    }
}
