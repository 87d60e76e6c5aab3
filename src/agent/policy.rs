//! Per-credential release policy: only to allowed executables (`--allow-exe`), and only after the user confirms through an askpass program (`--confirm`, as `ssh-add -c`).

mod approvals;
mod tty;

use crate::audit::{printable, printable_max};
use crate::error::{Error, Result};
use crate::index::Meta;
use crate::peer::Peer;
use crate::protocol::ConfirmScope;
use crate::remember::{Decision, Key, Memory};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use zeroize::Zeroizing;

/// The daemon's askpass program: `$COMPOSER_KEYD_ASKPASS`, else `$SSH_ASKPASS` with a display.
pub const ENV_ASKPASS: &str = "COMPOSER_KEYD_ASKPASS";
/// Most allowed executables one credential may list.
pub const MAX_ALLOWED_EXES: usize = 16;

/// What a credential demands before it is released.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rule {
    /// Ask the user (through the askpass program) before each release (`--confirm`).
    pub confirm: bool,
    /// Release only to these executables (`--allow-exe`); empty means any.
    pub allow_exe: Vec<String>,
    /// What one confirmation covers (`--confirm=program|session`); `each` by default.
    pub scope: ConfirmScope,
    /// For `session`: seconds an approval holds; `None` until `lock`.
    pub confirm_for: Option<u64>,
}

impl Rule {
    /// The rule stored with a credential.
    pub fn of(meta: &Meta) -> Rule {
        Rule {
            confirm: meta.confirm,
            allow_exe: meta.allow_exe.clone(),
            scope: meta.confirm_scope,
            confirm_for: meta.confirm_for,
        }
    }

    /// No condition at all.
    pub fn is_open(&self) -> bool {
        Rule::none_on(self.confirm, &self.allow_exe)
    }

    /// Whether the credential `meta` has no condition, without copying its rule.
    pub fn open_for(meta: &Meta) -> bool {
        Rule::none_on(meta.confirm, &meta.allow_exe)
    }

    fn none_on(confirm: bool, allow_exe: &[String]) -> bool {
        !confirm && allow_exe.is_empty()
    }
}

/// Checks an `allow_exe` list from a client: absolute paths of existing files, made
/// canonical so they compare equal to `/proc/PID/exe`.
pub fn canonical_exes(list: &[String]) -> Result<Vec<String>> {
    if list.len() > MAX_ALLOWED_EXES {
        return Err(Error::BadRequest(format!(
            "at most {MAX_ALLOWED_EXES} allowed executables per credential"
        )));
    }
    let mut out = Vec::with_capacity(list.len());
    for p in list {
        if !p.starts_with('/') || p.len() > 4096 || p.contains('\0') {
            return Err(Error::BadRequest(
                "an allowed executable must be an absolute path".into(),
            ));
        }
        let real = std::fs::canonicalize(p).map_err(|e| {
            Error::BadRequest(format!(
                "the allowed executable {} cannot be resolved: {e}",
                printable(p)
            ))
        })?;
        if !real.is_file() {
            return Err(Error::BadRequest(format!(
                "the allowed executable {} is not a file",
                real.display()
            )));
        }
        let real = real.to_string_lossy().into_owned();
        if !out.contains(&real) {
            out.push(real);
        }
    }
    Ok(out)
}

/// Asks the user, through an askpass program, before a release.
pub struct Confirm {
    program: Option<PathBuf>,
    timeout: Duration,
    /// One dialog at a time, as ssh-agent shows them.
    dialog: tokio::sync::Mutex<()>,
    /// Releases let through a policy, which also cover our git helper beneath them.
    approvals: approvals::Approvals,
    /// Dialogs asked through a door other than the main socket (a grant) wait here first,
    /// one at a time, so the user's own never wait behind more than one of theirs.
    door_dialog: tokio::sync::Mutex<()>,
    /// How many are waiting there; past [`MAX_DOOR_WAITING`] the next is refused at once.
    door_waiting: std::sync::atomic::AtomicUsize,
    /// Approvals that hold for a program or a session (`--confirm=program|session`).
    memory: Memory,
}

/// Confirmations asked through other doors that may wait at once.
pub const MAX_DOOR_WAITING: usize = 4;

/// A place in the doors' queue, given back when dropped.
struct Waiting<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Which askpass program applies: ours when set; ssh's only where ssh itself would run it.
fn askpass_from(
    ours: Option<std::ffi::OsString>,
    ssh: Option<std::ffi::OsString>,
    display: bool,
    forced: bool,
) -> Option<PathBuf> {
    ours.or(ssh.filter(|_| display || forced))
        .map(PathBuf::from)
}

impl Default for Confirm {
    fn default() -> Confirm {
        Confirm::new(None, Duration::from_secs(30))
    }
}

impl Confirm {
    /// Confirms with `program` (none: every confirmation is refused), waiting at most `timeout`.
    pub fn new(program: Option<PathBuf>, timeout: Duration) -> Confirm {
        Confirm {
            program,
            timeout,
            dialog: tokio::sync::Mutex::new(()),
            approvals: approvals::Approvals::default(),
            door_dialog: tokio::sync::Mutex::new(()),
            door_waiting: std::sync::atomic::AtomicUsize::new(0),
            memory: Memory::default(),
        }
    }

    /// Forgets every approval given for a program or a session (`lock`); how many.
    pub fn forget_approvals(&self) -> usize {
        self.memory.forget()
    }

    /// The program from `$COMPOSER_KEYD_ASKPASS`, else `$SSH_ASKPASS` as ssh takes it: only
    /// with a display (`$DISPLAY` or `$WAYLAND_DISPLAY`) or `SSH_ASKPASS_REQUIRE=force`.
    /// Without one, a daemon in a terminal's foreground asks on its terminal instead.
    pub fn program_from_env() -> Option<PathBuf> {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        askpass_from(
            var(ENV_ASKPASS),
            var("SSH_ASKPASS"),
            var("DISPLAY").is_some() || var("WAYLAND_DISPLAY").is_some(),
            var("SSH_ASKPASS_REQUIRE").is_some_and(|v| v == "force"),
        )
    }

    /// The askpass program in use.
    pub fn program(&self) -> Option<&Path> {
        self.program.as_deref()
    }

    /// Runs the askpass program with `prompt`. Allowed only when it exits 0 and prints
    /// nothing or `yes` (ssh's rule); a denial, a failure or the time-out refuses.
    async fn ask(&self, prompt: &str, action: &str, door: Option<&str>) -> Result<()> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let timed_out = || {
            Error::Forbidden(format!(
                "not confirmed within {} s; refused to {action}",
                self.timeout.as_secs()
            ))
        };
        let Some(program) = &self.program else {
            // No askpass: the terminal the daemon runs in, if it runs in one.
            if door.is_none() && tty::available() {
                let _one = tokio::time::timeout_at(deadline, self.dialog.lock())
                    .await
                    .map_err(|_| timed_out())?;
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                let line = prompt.to_owned();
                let answer = tokio::task::spawn_blocking(move || tty::ask(&line, left))
                    .await
                    .ok()
                    .flatten();
                match answer {
                    Some(true) => return Ok(()),
                    Some(false) => {
                        return Err(Error::Forbidden(format!(
                            "the user did not confirm on the terminal; refused to {action}"
                        )))
                    }
                    None => {}
                }
            }
            return Err(Error::Forbidden(format!(
                "to {action} needs confirmation and the daemon has no askpass program: \
                 start it with {ENV_ASKPASS} (or SSH_ASKPASS) set, or `serve --askpass PATH`"
            )));
        };
        // Through a door: its own queue first, bounded, then the shared one.
        let mut _door_turn = None;
        let _waiting = match door {
            Some(door) => {
                let n = self
                    .door_waiting
                    .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                let place = Waiting(&self.door_waiting);
                if n >= MAX_DOOR_WAITING {
                    return Err(Error::Forbidden(format!(
                        "{MAX_DOOR_WAITING} confirmations asked through other doors are waiting \
                         already; refused to {action} through {}",
                        printable(door)
                    )));
                }
                _door_turn = Some(
                    tokio::time::timeout_at(deadline, self.door_dialog.lock())
                        .await
                        .map_err(|_| timed_out())?,
                );
                Some(place)
            }
            None => None,
        };
        let _one = tokio::time::timeout_at(deadline, self.dialog.lock())
            .await
            .map_err(|_| timed_out())?;
        let mut cmd = tokio::process::Command::new(program);
        cmd.arg(prompt)
            .env("SSH_ASKPASS_PROMPT", "confirm")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(n) = crate::harden::original_nofile() {
            let back = libc::rlimit {
                rlim_cur: n as libc::rlim_t,
                rlim_max: libc::RLIM_INFINITY,
            };
            // SAFETY: runs in the forked child before exec; getrlimit/setrlimit are
            // async-signal-safe and touch only the structs on this stack frame.
            unsafe {
                cmd.pre_exec(move || {
                    let mut cur = back;
                    if libc::getrlimit(libc::RLIMIT_NOFILE, &mut cur) == 0 {
                        cur.rlim_cur = back.rlim_cur.min(cur.rlim_max);
                        // Best effort: a child with our raised limit still works.
                        let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &cur);
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().map_err(|e| {
            Error::Forbidden(format!(
                "the askpass program {} could not run ({e}); refused to {action}",
                program.display()
            ))
        })?;
        let pgid = child.id();
        let mut stdout = child.stdout.take();
        let answer = async {
            let mut out = Zeroizing::new(Vec::new());
            if let Some(s) = stdout.as_mut() {
                // At most a line: a confirm dialog prints nothing or "yes".
                let _ = s.take(256).read_to_end(&mut out).await; // a read error leaves `out` short: denied below unless the exit says yes
            }
            let status = child.wait().await;
            (status, out)
        };
        let Ok((status, out)) = tokio::time::timeout_at(deadline, answer).await else {
            if let Some(pgid) = pgid.and_then(|p| i32::try_from(p).ok()) {
                // SAFETY: kill has no memory effects; the group is the askpass child's own,
                // so stray helpers it started (a shell's `sleep`) go too.
                unsafe { libc::kill(-pgid, libc::SIGKILL) };
            }
            return Err(timed_out());
        };
        let said = String::from_utf8_lossy(&out);
        let said = said.trim();
        match status {
            Ok(s) if s.success() && (said.is_empty() || said.eq_ignore_ascii_case("yes")) => Ok(()),
            Ok(_) => Err(Error::Forbidden(format!(
                "the user did not confirm; refused to {action}"
            ))),
            Err(e) => Err(Error::Forbidden(format!(
                "the askpass program failed ({e}); refused to {action}"
            ))),
        }
    }
}

/// Checks `rule` for a release of the credential for `what` to `peer`: the executable first
/// (no dialog for a process that would be refused anyway), then the confirmation. A release
/// let through covers composer-keyd's own git helper beneath that process while it lives
/// (`approvals.rs`): one approval per Composer run, so that git is never left without the
/// credential that Composer holds.
///
/// Under `--confirm=program|session` the user's yes holds for the executable (and session)
/// until `lock` or its time; requests that need an approval being asked for wait on that
/// one dialog. Returns what the yes the user just gave covers, for the audit log's
/// `approve` record; `None` when nobody was asked (no `--confirm`, or an approval given
/// earlier covered it).
pub async fn check(
    rule: &Rule,
    confirm: &Confirm,
    peer: &Peer,
    what: &str,
) -> Result<Option<String>> {
    if confirm.approvals.covers(peer, what, rule) {
        return Ok(None);
    }
    let remembered = match remembered_key(rule, peer, what) {
        Some(k) => k,
        None => {
            check_all(
                std::slice::from_ref(rule),
                confirm,
                peer,
                what,
                "use this credential",
            )
            .await?;
            confirm.approvals.record(peer, what, rule);
            // A yes under `each` is an approval too, of this release alone: the log says so
            // beside the release record, as it does for the wider scopes.
            return Ok(rule.confirm.then(|| once_covers(peer)));
        }
    };
    let (key, covers) = remembered;
    // The executable first: no dialog, and no remembered yes, for a process refused anyway.
    let exe_only = Rule {
        confirm: false,
        ..rule.clone()
    };
    check_all(
        std::slice::from_ref(&exe_only),
        confirm,
        peer,
        what,
        "use this credential",
    )
    .await?;
    let until = rule
        .confirm_for
        .filter(|_| rule.scope == ConfirmScope::Session)
        .map(|s| std::time::Instant::now() + Duration::from_secs(s));
    let failure = std::sync::Mutex::new(None);
    let action = "use this credential";
    let decision = confirm
        .memory
        .approve(&key, until, || async {
            let asked = confirm
                .ask(
                    &prompt(peer, what, &format!("{action}; yes holds for {covers}")),
                    &format!("{action} ({})", printable(what)),
                    peer.door.as_deref(),
                )
                .await;
            match asked {
                Ok(()) => true,
                Err(e) => {
                    *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    false
                }
            }
        })
        .await;
    if !decision.approved() {
        let e = failure.lock().unwrap_or_else(|p| p.into_inner()).take();
        return Err(e.unwrap_or_else(|| {
            Error::Forbidden(format!(
                "the user did not confirm (one dialog answered for this {}); refused to {action}",
                rule.scope.as_str()
            ))
        }));
    }
    confirm.approvals.record(peer, what, rule);
    Ok(match decision {
        Decision::Asked(true) => Some(covers),
        _ => None,
    })
}

/// What a yes that is not remembered covers: this release, and (see `approvals.rs`)
/// composer-keyd's git helper beneath the process while it runs.
fn once_covers(peer: &Peer) -> String {
    let exe = peer.exe().map_or_else(
        || "an unknown executable".into(),
        |e| e.display().to_string(),
    );
    printable(&format!(
        "{exe} for this release only (and composer-keyd's git helper beneath it while it runs)"
    ))
}

/// The key a `program` or `session` approval is remembered under, and what it covers in
/// words; `None` when this release asks by itself (`each`, no confirmation, or a peer whose
/// executable or session is not known).
fn remembered_key(rule: &Rule, peer: &Peer, what: &str) -> Option<(Key, String)> {
    if !rule.confirm {
        return None;
    }
    let exe = peer.exe()?.to_path_buf();
    // A process that exec'd something else since it connected asks by itself.
    if crate::harden::process_exe(peer.pid?).as_deref() != Some(exe.as_path()) {
        return None;
    }
    let (session, covers) = match rule.scope {
        ConfirmScope::Program => (None, format!("{} until lock", exe.display())),
        ConfirmScope::Session => {
            let s = crate::remember::session_of(peer.pid?)?;
            let until = match rule.confirm_for {
                Some(secs) => format!("{} s or until lock", secs),
                None => "until lock".into(),
            };
            let covers = format!("{} in {s} {until}", exe.display());
            (Some(s), covers)
        }
        ConfirmScope::Each | ConfirmScope::Unknown => return None,
    };
    let key = Key {
        what: what.to_owned(),
        rule: format!("{rule:?}"),
        exe,
        session,
    };
    Some((key, printable(&covers)))
}

/// Checks the strictest of `rules` before `peer` may `action` `subject` (a release, or a
/// change that could lead to one): the caller's executable must be allowed by every rule
/// that lists executables, and the user confirms once when any rule asks for it.
pub async fn check_all(
    rules: &[Rule],
    confirm: &Confirm,
    peer: &Peer,
    subject: &str,
    action: &str,
) -> Result<()> {
    for rule in rules.iter().filter(|r| !r.allow_exe.is_empty()) {
        if let Err(exe) = exe_allowed(rule, peer) {
            return Err(Error::Forbidden(format!(
                "{}: only {} may {action}; the request came from {}",
                printable(subject),
                rule.allow_exe.join(", "),
                printable(&exe)
            )));
        }
    }
    if rules.iter().any(|r| r.confirm) {
        confirm
            .ask(
                &prompt(peer, subject, action),
                &format!("{action} ({})", printable(subject)),
                peer.door.as_deref(),
            )
            .await?;
    }
    Ok(())
}

/// Whether `peer` runs an allowed executable, both when it was first read (at accept, when
/// a policy named executables then) and now: a process that connected as `php` and then
/// exec'd something else is refused. Otherwise the executable to name in the refusal.
fn exe_allowed(rule: &Rule, peer: &Peer) -> Result<(), String> {
    let allowed = |exe: &Path| rule.allow_exe.iter().any(|a| Path::new(a) == exe);
    let unknown = || "an unknown executable".to_owned();
    let at_accept = peer.exe().ok_or_else(unknown)?;
    if !allowed(at_accept) {
        return Err(at_accept.display().to_string());
    }
    match peer.pid.and_then(crate::harden::process_exe) {
        Some(now) if allowed(&now) => Ok(()),
        Some(now) => Err(format!(
            "{} (it connected as {})",
            now.display(),
            at_accept.display()
        )),
        None => Err(format!(
            "a process that has gone (it connected as {})",
            at_accept.display()
        )),
    }
}

/// The question the askpass program shows, on one line: the subject and the pid first, so
/// that a long executable path cannot push them out of view; nothing the user did not type
/// is shown unescaped, and no format character (bidi override, zero-width) at all.
fn prompt(peer: &Peer, subject: &str, action: &str) -> String {
    let exe = peer
        .exe()
        .map_or("unknown".into(), |e| e.display().to_string());
    let pid = peer.pid.map_or("?".into(), |p| p.to_string());
    // Through another door the asker is not the user's own process: say whose it is first.
    let who = match &peer.door {
        Some(door) => format!(
            "{} for uid {}: pid {pid}",
            printable_max(door, 80),
            peer.uid
        ),
        None => format!("pid {pid}"),
    };
    format!(
        "composer-keyd: {} - {who} asks to {action}. Allow? Program: {}",
        printable_max(subject, 200),
        printable_max(&exe, 200)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_askpass_needs_a_display_as_ssh_does_ours_does_not() {
        let p = |s: &str| Some(std::ffi::OsString::from(s));
        let ours = askpass_from(p("/ours"), p("/ssh"), false, false);
        assert_eq!(ours.as_deref(), Some(Path::new("/ours")));
        assert_eq!(askpass_from(None, p("/ssh"), false, false), None);
        let shown = askpass_from(None, p("/ssh"), true, false);
        assert_eq!(shown.as_deref(), Some(Path::new("/ssh")));
        let forced = askpass_from(None, p("/ssh"), false, true);
        assert_eq!(forced.as_deref(), Some(Path::new("/ssh")));
    }
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    fn peer(exe: Option<&str>) -> Peer {
        Peer::with_exe(0, Some(1), exe.map(PathBuf::from))
    }

    /// A live process running `/bin/sh`, as a peer, and the child to reap.
    fn sh_peer() -> (Peer, std::process::Child) {
        let child = std::process::Command::new("/bin/sh")
            .args(["-c", "sleep 30"])
            .spawn()
            .unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        let exe = crate::harden::process_exe(pid);
        (Peer::with_exe(0, Some(pid), exe), child)
    }

    #[tokio::test]
    async fn askpass_answers() {
        let d = tempfile::tempdir().unwrap();
        let rule = Rule {
            confirm: true,
            allow_exe: vec![],
            ..Rule::default()
        };
        let t = Duration::from_secs(5);
        let yes = Confirm::new(Some(script(d.path(), "yes", "exit 0")), t);
        assert!(check(&rule, &yes, &peer(None), "a.example").await.is_ok());
        let typed_yes = Confirm::new(Some(script(d.path(), "typed", "echo yes")), t);
        assert!(check(&rule, &typed_yes, &peer(None), "a").await.is_ok());
        for (name, body) in [("no", "exit 1"), ("junk", "echo hunter2")] {
            let c = Confirm::new(Some(script(d.path(), name, body)), t);
            let e = check(&rule, &c, &peer(None), "a").await.unwrap_err();
            assert_eq!(e.kind(), crate::protocol::ErrorKind::Forbidden, "{name}");
            assert!(!e.to_string().contains("hunter2"));
        }
        let none = Confirm::new(None, t);
        assert!(check(&rule, &none, &peer(None), "a").await.is_err());
        let missing = Confirm::new(Some(d.path().join("absent")), t);
        assert!(check(&rule, &missing, &peer(None), "a").await.is_err());
        // A dialog nobody answers: refused at the time-out, its whole process group killed.
        let marker = d.path().join("still-running");
        let slow = Confirm::new(
            Some(script(
                d.path(),
                "slow",
                &format!("sleep 3; touch {}", marker.display()),
            )),
            Duration::from_millis(300),
        );
        let e = check(&rule, &slow, &peer(None), "a").await.unwrap_err();
        assert!(e.to_string().contains("not confirmed"), "{e}");
        std::thread::sleep(Duration::from_millis(3500));
        assert!(!marker.exists(), "the askpass group was killed");
    }

    #[tokio::test]
    async fn allowed_executables() {
        let rule = Rule {
            confirm: false,
            allow_exe: canonical_exes(&["/bin/sh".into()]).unwrap(),
            ..Rule::default()
        };
        let c = Confirm::default();
        let (sh, mut child) = sh_peer();
        assert!(check(&rule, &c, &sh, "a").await.is_ok());
        // The same process after it is gone (or exec'd elsewhere) is refused.
        let _ = child.kill();
        let _ = child.wait();
        let e = check(&rule, &c, &sh, "a").await.unwrap_err();
        assert!(e.to_string().contains("connected as"), "{e}");
        let e = check(&rule, &c, &peer(Some("/usr/bin/node")), "a")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("/usr/bin/node"), "{e}");
        assert!(check(&rule, &c, &peer(None), "a").await.is_err());
        assert!(canonical_exes(&["relative/php".into()]).is_err());
        assert!(canonical_exes(&["/nonexistent/php".into()]).is_err());
        assert!(canonical_exes(&["/tmp".into()]).is_err());
    }

    #[test]
    fn the_prompt_leads_with_subject_and_pid() {
        let long = format!("/tmp/{}\u{202E}exe.php\n/{}", "d/".repeat(400), "x");
        let p = prompt(&peer(Some(&long)), "x.example", "use this credential");
        assert!(
            p.starts_with("composer-keyd: x.example - pid 1 asks to use this credential."),
            "{p}"
        );
        assert!(!p
            .chars()
            .any(|c| crate::audit::is_format(c) || c.is_control()));
        assert!(p.chars().count() < 600, "{p}");
    }

    #[test]
    fn a_prompt_through_a_grant_names_the_grant_and_uid() {
        let p = prompt(
            &Peer::with_exe(33, Some(7), None).through(Some("grant shop-www".into())),
            "x.example",
            "use this credential",
        );
        assert!(
            p.starts_with(
                "composer-keyd: x.example - grant shop-www for uid 33: pid 7 asks to use this credential."
            ),
            "{p}"
        );
    }

    /// Asks through a grant wait in their own bounded queue: the user's own dialog comes
    /// right after the one on screen, not behind every grant's, and past the bound a grant's
    /// ask is refused at once.
    #[tokio::test]
    async fn grant_dialogs_queue_apart_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("answer");
        let log = dir.path().join("asked");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let program = script(
            dir.path(),
            "askpass",
            &format!(
                "printf '%s\\n' \"$1\" >> '{}'\nread answer < '{}'",
                log.display(),
                fifo.display()
            ),
        );
        // A time-out far past what five dialogs take even on a loaded machine: this test is
        // about their order and bound, and each is answered as soon as it is up.
        let confirm = Arc::new(Confirm::new(Some(program), Duration::from_secs(300)));
        let rule = Rule {
            confirm: true,
            allow_exe: Vec::new(),
            ..Rule::default()
        };
        let ask = |name: &str, door: bool| {
            let (confirm, rule) = (Arc::clone(&confirm), rule.clone());
            let peer =
                Peer::with_exe(33, Some(1), None).through(door.then(|| Arc::from("grant g")));
            let name = name.to_owned();
            tokio::spawn(async move { check(&rule, &confirm, &peer, &name).await })
        };
        let doors: Vec<_> = (1..=MAX_DOOR_WAITING)
            .map(|i| ask(&format!("door{i}.example"), true))
            .collect();
        let over = ask("over.example", true);
        let own = ask("own.example", false);
        let e = over.await.unwrap().unwrap_err();
        assert!(e.to_string().contains("waiting already"), "{e}");
        for k in 1..=MAX_DOOR_WAITING + 1 {
            // Answer the k-th dialog once it is up (the one before has exited by then, so
            // the answer cannot go to it).
            let up = |k: usize| std::fs::read_to_string(&log).is_ok_and(|t| t.lines().count() >= k);
            for _ in 0..2000 {
                if up(k) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let fifo = fifo.clone();
            let mut w = tokio::task::spawn_blocking(move || {
                std::fs::OpenOptions::new().write(true).open(fifo).unwrap()
            })
            .await
            .unwrap();
            std::io::Write::write_all(&mut w, b"yes\n").unwrap();
        }
        own.await.unwrap().unwrap();
        for d in doors {
            d.await.unwrap().unwrap();
        }
        let asked = std::fs::read_to_string(&log).unwrap();
        let order: Vec<&str> = asked
            .lines()
            .map(|l| l.split(' ').nth(1).unwrap())
            .collect();
        assert_eq!(
            order,
            [
                "door1.example",
                "own.example",
                "door2.example",
                "door3.example",
                "door4.example"
            ],
            "{asked}"
        );
    }
}
