//! The audit log: every credential release, refusal and change, with who asked, as JSON lines in size-rotated files in the state dir (and on stderr for journald under systemd). Never a secret.
//!
//! Refusals (a peer the door does not admit, a refused request) are rate-limited
//! (`refusals.rs`) and go to a file of their own, `refusals.log`, rotated apart from
//! `audit.log`: no flood of them can push a release or a change out of the retained log.
//! [`read`] merges both.

mod printable;
mod refusals;
mod repeats;

pub use printable::{is_format, json_without_format_chars, printable, printable_max};
pub use repeats::MAX_COUNTED;

use crate::protocol::ErrorKind;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// The log file's name in the state dir; rotated copies get `.1`, `.2`, ...
pub const FILE_NAME: &str = "audit.log";
/// The refusals' file, rotated alike.
pub const REFUSALS_FILE: &str = "refusals.log";
pub use refusals::{BUDGET as REFUSAL_BUDGET, INTERVAL as REFUSAL_INTERVAL};

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Event {
    /// A credential was handed to a peer.
    Release,
    /// A request was refused (policy, disabled, locked, not found, bad input, backend).
    Refuse,
    /// A connection from another user was closed before a byte was read.
    RejectPeer,
    /// A credential was added, replaced or rotated (`PUT`).
    Store,
    /// A credential (or its project binding) was removed.
    Remove,
    /// A disabled credential was turned back on.
    Enable,
    /// A credential was turned off; it stays stored.
    Disable,
    /// `rotate --rollback` put the previous secret back.
    Rollback,
    /// The daemon was locked on request.
    Lock,
    /// The daemon was unlocked on request.
    Unlock,
    /// A credential's release policy changed (`detail` says from what to what).
    Policy,
    /// Every credential moved to another backend.
    Migrate,
    /// The vault's passphrase changed.
    Passwd,
    /// The user said yes to a confirmation before a release: for that release alone
    /// (`--confirm=each`, or a door that confirms) or for a program or session
    /// (`--confirm=program|session`); `detail` says which credential and what it covers.
    Approve,
    /// An event a newer daemon wrote.
    #[serde(other)]
    Unknown,
}

/// One line of the audit log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    /// What happened; the daemon always sets it.
    pub event: Option<Event>,
    /// The origin the event is about; `None` for events about no credential (lock, unlock, passwd).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// The stored credential's scope (its project), when one was resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The project directory the peer asked from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Why a request was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ErrorKind>,
    /// The refusal's message, made printable and cut short; never holds a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What a change did (`confirm → none`, `keyring → vault: 3 copied`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The peer's pid, where the OS tells it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// The peer's uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// The peer's executable (`/proc/PID/exe`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    /// On a `release` line only: how many more times the same connection was handed this
    /// credential after the line without `repeats` that it repeats. Written when the
    /// connection ends or the daemon locks; a line without it is one release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeats: Option<u64>,
    /// On a refusal line only: how many more refusals like it (same event, uid, kind, origin
    /// and request) came within the interval after the line without `similar` that it
    /// counts, written as this one line when the interval ends (`refusals.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub similar: Option<u64>,
}

/// The time now, as records spell it.
pub fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

impl Record {
    /// A record of `event`, timed now.
    pub fn new(event: Event) -> Record {
        Record {
            time: now(),
            event: Some(event),
            ..Record::default()
        }
    }

    /// The record as one JSON line, format characters escaped so that a terminal showing
    /// the raw file cannot be made to reorder it.
    pub fn to_json(&self) -> String {
        // Records are plain strings and numbers: serializing cannot fail.
        let json = serde_json::to_string(self).expect("audit records serialize");
        json_without_format_chars(json)
    }

    /// When it happened, if the time field parses.
    pub fn when(&self) -> Option<SystemTime> {
        humantime::parse_rfc3339_weak(&self.time).ok()
    }

    /// One human line: time, event, origin and scope, then the peer.
    pub fn to_line(&self) -> String {
        use std::fmt::Write as _;
        let event = self.event.map_or("unknown".into(), |e| name(&e));
        let mut line = format!("{} {event:<11}", self.time);
        if let Some(o) = &self.origin {
            let _ = write!(line, " {}", printable(o));
        }
        if let Some(s) = &self.scope {
            let _ = write!(line, " scope={}", printable(s));
        }
        if let Some(p) = &self.project {
            let _ = write!(line, " project={}", printable(p));
        }
        if let Some(pid) = self.pid {
            let _ = write!(line, " pid={pid}");
        }
        if let Some(uid) = self.uid {
            let _ = write!(line, " uid={uid}");
        }
        if let Some(exe) = &self.exe {
            let _ = write!(line, " exe={}", printable(exe));
        }
        if let Some(n) = self.repeats {
            let _ = write!(line, " repeats={n}");
        }
        if let Some(n) = self.similar {
            let _ = write!(line, " similar={n}");
        }
        if let Some(k) = self.kind {
            let _ = write!(line, " kind={}", name(&k));
        }
        if let Some(d) = &self.detail {
            let _ = write!(line, " [{}]", printable(d));
        }
        if let Some(r) = &self.reason {
            let _ = write!(line, " ({})", printable(r));
        }
        line
    }
}

/// The wire name of an enum value (`reject-peer`, `forbidden`).
fn name<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Where the log goes and how much of it is kept.
#[derive(Clone, Debug)]
pub struct AuditConfig {
    /// The state dir; the log is `dir/audit.log`.
    pub dir: PathBuf,
    /// Rotate when the file would grow past this many bytes.
    pub max_bytes: u64,
    /// Rotated files kept (`audit.log.1` .. `audit.log.N`).
    pub keep: usize,
}

impl AuditConfig {
    /// 4 MiB per file, 5 rotated files: about 100,000 releases.
    pub fn in_dir(dir: PathBuf) -> AuditConfig {
        AuditConfig {
            dir,
            max_bytes: 4 * 1024 * 1024,
            keep: 5,
        }
    }
}

struct Sink {
    cfg: AuditConfig,
    /// `audit.log` or `refusals.log`.
    name: &'static str,
    file: Option<File>,
    size: u64,
    /// A write failed and was reported; report again only after a success.
    failing: bool,
}

/// The daemon's audit log. Writes are synchronous and unbuffered, so a kill -9 loses no
/// record that was written, and a failure to write never blocks a release (it is logged).
/// Repeated releases on one connection are counted and written as one line at its end
/// ([`Audit::record_release`]).
#[derive(Default)]
pub struct Audit {
    sink: Option<Mutex<Sink>>,
    /// Where refusals go, apart from releases and changes.
    refused: Option<Mutex<Sink>>,
    refusals: refusals::Refusals,
    /// Also write each record to stderr, which systemd hands to journald.
    journal: bool,
    repeats: repeats::Repeats,
}

impl Audit {
    /// An audit log that records nothing (unit tests, tools).
    pub fn disabled() -> Audit {
        Audit::default()
    }

    /// Opens (creating) the log in `cfg.dir`, mode 0600 in a 0700 dir.
    pub fn open(cfg: AuditConfig) -> io::Result<Audit> {
        crate::paths::create_private_dir(&cfg.dir)?;
        Ok(Audit {
            refused: Some(Mutex::new(Sink::open(cfg.clone(), REFUSALS_FILE)?)),
            sink: Some(Mutex::new(Sink::open(cfg, FILE_NAME)?)),
            refusals: refusals::Refusals::default(),
            journal: stderr_is_journal(),
            repeats: repeats::Repeats::default(),
        })
    }

    /// Records a release of the credential for `origin` in `scope` on connection `conn`
    /// (0: no connection). The first on the connection is written now, as a whole line in
    /// one write(2), before the caller answers: a kill -9 after that cannot lose it. Later
    /// ones are only counted, and written as one `repeats` line by [`Audit::close`] or
    /// [`Audit::flush_repeats`]; a kill -9 loses only those counts, never the fact that the
    /// peer was handed the credential. `first` builds the record, and is not called for a repeat.
    pub fn record_release(
        &self,
        conn: u64,
        origin: &str,
        scope: Option<&str>,
        first: impl FnOnce() -> Record,
    ) {
        if self.sink.is_none() && !self.journal {
            return;
        }
        if conn == 0 {
            return self.record(&first());
        }
        if let Some(rec) = self.repeats.note(conn, origin, scope, first) {
            self.record(&rec);
        }
    }

    /// Connection `conn` ended: writes its counts of repeated releases.
    pub fn close(&self, conn: u64) {
        for rec in self.repeats.close(conn) {
            self.record(&rec);
        }
    }

    /// Writes every open connection's counts and starts them again (at lock and at exit),
    /// so the next release on any connection is written in full.
    pub fn flush_repeats(&self) {
        for rec in self.repeats.take_all() {
            self.record(&rec);
        }
        for rec in self.refusals.flush() {
            self.write(&self.refused, &rec);
        }
    }

    /// Writes the counts of refusals whose interval has run out (the daemon's flush task
    /// calls it once a minute).
    pub fn tick(&self) {
        for rec in self.refusals.tick(std::time::Instant::now()) {
            self.write(&self.refused, &rec);
        }
    }

    /// Records a refusal: a peer a door does not admit, or a refused request. The first of
    /// its kind in an interval is written now, the rest counted (`refusals.rs`), to the
    /// refusals' own file. Whether this one was written now (the caller's own log can
    /// follow the same limit).
    pub fn refusal(&self, rec: Record) -> bool {
        let lines = self.refusals.note(rec, std::time::Instant::now());
        // The refusal itself, when written, is the last line.
        let written = lines.last().is_some_and(|l| l.similar.is_none());
        for rec in lines {
            self.write(&self.refused, &rec);
        }
        written
    }

    /// Appends one record: a release or a change.
    pub fn record(&self, rec: &Record) {
        self.write(&self.sink, rec);
    }

    fn write(&self, sink: &Option<Mutex<Sink>>, rec: &Record) {
        if self.journal {
            // One write per line, so lines from other threads never interleave with it.
            let line = format!("<5>audit: {}\n", rec.to_line());
            let _ = io::stderr().lock().write_all(line.as_bytes()); // stderr gone: nothing to do
        }
        let Some(sink) = sink else { return };
        let mut line = rec.to_json().into_bytes();
        line.push(b'\n');
        // Only this function takes the lock and it does not panic while holding it.
        let mut s = sink.lock().unwrap_or_else(|e| e.into_inner());
        match s.append(&line) {
            Ok(()) => s.failing = false,
            Err(e) if !s.failing => {
                s.failing = true;
                tracing::warn!("cannot write the audit log: {e}");
            }
            Err(_) => {}
        }
    }
}

impl Sink {
    fn open(cfg: AuditConfig, name: &'static str) -> io::Result<Sink> {
        let (file, size) = open_file(&cfg.dir.join(name))?;
        Ok(Sink {
            cfg,
            name,
            file: Some(file),
            size,
            failing: false,
        })
    }

    fn path(&self) -> PathBuf {
        self.cfg.dir.join(self.name)
    }

    fn append(&mut self, line: &[u8]) -> io::Result<()> {
        if self.size > 0 && self.size + line.len() as u64 > self.cfg.max_bytes {
            self.file = None;
            rotate(&self.cfg, self.name)?;
            self.size = 0;
        }
        if self.file.is_none() {
            let (f, size) = open_file(&self.path())?;
            self.file = Some(f);
            self.size = size;
        }
        let Some(f) = self.file.as_mut() else {
            return Ok(());
        };
        match f.write_all(line) {
            Ok(()) => {
                self.size += line.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Reopen next time: the file may have been removed or its disk remounted.
                self.file = None;
                Err(e)
            }
        }
    }
}

fn open_file(path: &Path) -> io::Result<(File, u64)> {
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    let size = f.metadata()?.len();
    Ok((f, size))
}

fn rotated(dir: &Path, name: &str, n: usize) -> PathBuf {
    dir.join(format!("{name}.{n}"))
}

/// `NAME.N-1` -> `.N`, ..., `NAME` -> `.1`; the oldest beyond `keep` is removed.
fn rotate(cfg: &AuditConfig, name: &str) -> io::Result<()> {
    let dir = &cfg.dir;
    if cfg.keep == 0 {
        return std::fs::remove_file(dir.join(name));
    }
    match std::fs::remove_file(rotated(dir, name, cfg.keep)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    for n in (1..cfg.keep).rev() {
        match std::fs::rename(rotated(dir, name, n), rotated(dir, name, n + 1)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    std::fs::rename(dir.join(name), rotated(dir, name, 1))
}

/// Whether stderr is the journal: `JOURNAL_STREAM` names its device and inode (systemd.exec(5)).
fn stderr_is_journal() -> bool {
    let Some(v) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    // SAFETY: libc::stat is plain integer fields, for which all-zero bytes are a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fd 2 is always a valid descriptor number; fstat fails cleanly if it is closed.
    if unsafe { libc::fstat(2, &mut st) } != 0 {
        return false;
    }
    st.st_dev as u64 == dev && st.st_ino as u64 == ino
}

/// Every record in the log dir at or after `since`, oldest first: `audit.log` and
/// `refusals.log` with their rotated copies, merged by time (each file's own order kept
/// among records of the same millisecond). Lines that do not parse (a torn last line after a
/// crash, a newer format) are skipped and counted.
pub fn read(dir: &Path, since: Option<SystemTime>) -> io::Result<(Vec<Record>, usize)> {
    let (mut out, bad) = read_set(dir, FILE_NAME, since)?;
    let (refused, bad_refused) = read_set(dir, REFUSALS_FILE, since)?;
    if !refused.is_empty() {
        out.extend(refused);
        // Stable: the same instant keeps releases and changes before refusals.
        out.sort_by_key(Record::when);
    }
    Ok((out, bad + bad_refused))
}

/// The records of `name` and its rotated copies, oldest first.
fn read_set(dir: &Path, name: &str, since: Option<SystemTime>) -> io::Result<(Vec<Record>, usize)> {
    let mut numbered: Vec<(usize, PathBuf)> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .flatten()
            .filter_map(|e| {
                let file = e.file_name();
                let n = file.to_str()?.strip_prefix(name)?.strip_prefix('.')?;
                Some((n.parse().ok()?, e.path()))
            })
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    // The highest number is the oldest.
    numbered.sort_by_key(|n| std::cmp::Reverse(n.0));
    let mut files: Vec<PathBuf> = numbered.into_iter().map(|(_, p)| p).collect();
    files.push(dir.join(name));
    let mut out = Vec::new();
    let mut bad = 0;
    for path in files {
        let f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for line in io::BufReader::new(f).split(b'\n') {
            let line = line?;
            if line.is_empty() {
                continue;
            }
            match serde_json::from_slice::<Record>(&line) {
                Ok(r) if since.is_none_or(|s| r.when().is_some_and(|w| w >= s)) => out.push(r),
                Ok(_) => {}
                Err(_) => bad += 1,
            }
        }
    }
    Ok((out, bad))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(origin: &str) -> Record {
        Record {
            origin: Some(origin.into()),
            pid: Some(42),
            uid: Some(1000),
            exe: Some("/usr/bin/php8.2".into()),
            ..Record::new(Event::Release)
        }
    }

    #[test]
    fn rotates_by_size_and_keeps_n() {
        let d = tempfile::tempdir().unwrap();
        let cfg = AuditConfig {
            dir: d.path().to_path_buf(),
            max_bytes: 1000,
            keep: 2,
        };
        let audit = Audit::open(cfg).unwrap();
        for i in 0..100 {
            audit.record(&rec(&format!("o{i}.example")));
        }
        let names: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(FILE_NAME))
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
        for n in ["audit.log", "audit.log.1", "audit.log.2"] {
            let size = std::fs::metadata(d.path().join(n)).unwrap().len();
            assert!(size <= 1000, "{n} is {size} bytes");
        }
        let (all, bad) = read(d.path(), None).unwrap();
        assert_eq!(bad, 0);
        // The newest records survive, in order.
        assert_eq!(all.last().unwrap().origin.as_deref(), Some("o99.example"));
        let nums: Vec<usize> = all
            .iter()
            .map(|r| {
                r.origin.as_ref().unwrap()[1..]
                    .split('.')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect();
        assert!(nums.windows(2).all(|w| w[1] == w[0] + 1), "{nums:?}");
        assert!(nums.len() < 100 && nums.len() > 5);
    }

    #[test]
    fn read_filters_by_time_and_skips_torn_lines() {
        let d = tempfile::tempdir().unwrap();
        let old = Record {
            time: "2020-01-01T00:00:00.000Z".into(),
            ..rec("old.example")
        };
        let mut text = serde_json::to_string(&old).unwrap();
        text.push('\n');
        text.push_str(&serde_json::to_string(&rec("new.example")).unwrap());
        text.push_str("\n{\"time\":\"20");
        std::fs::write(d.path().join(FILE_NAME), text).unwrap();
        let (all, bad) = read(d.path(), None).unwrap();
        assert_eq!((all.len(), bad), (2, 1));
        let hour_ago = SystemTime::now() - std::time::Duration::from_secs(3600);
        let (recent, _) = read(d.path(), Some(hour_ago)).unwrap();
        assert_eq!(recent.len(), 1);
        assert_eq!(recent[0].origin.as_deref(), Some("new.example"));
    }

    #[test]
    fn lines_are_printable() {
        let r = Record {
            exe: Some("/tmp/evil\nFAKE LINE".into()),
            kind: Some(ErrorKind::Forbidden),
            ..rec("a.example")
        };
        let line = r.to_line();
        assert!(!line.contains('\n'));
        assert!(
            line.contains("release") && line.contains("kind=forbidden"),
            "{line}"
        );
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains(r#""event":"release""#), "{json}");
        let unknown: Record =
            serde_json::from_str(r#"{"time":"2020-01-01T00:00:00Z","event":"teleport"}"#).unwrap();
        assert_eq!(unknown.event, Some(Event::Unknown));
    }
}
