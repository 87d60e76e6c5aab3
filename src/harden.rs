//! Process hardening for the daemon (and the CLI commands that hold secrets): no core dumps, no same-uid ptrace, secret memory kept out of swap and dumps, and enough file descriptors.
//!
//! # Locking memory: only what holds secrets
//!
//! The long-lived copies of secrets (the decrypted cache) are built in a small locked
//! arena (`secret::in_locked_arena`: `mlock2(MLOCK_ONFAULT)` and `MADV_DONTDUMP`), so
//! VmLck is the size of the secrets held, not of the process. The whole process is not
//! locked: `mlockall` pinned every transient buffer (scrypt's 256 MiB, each connection's
//! buffers) and kept them resident. Transient copies are wiped on free by the zeroizing
//! global allocator instead. A secret that does not fit the arena has its heap pages
//! locked one by one ([`protect`]) within `RLIMIT_MEMLOCK`, and marked `MADV_DONTDUMP`,
//! because a `core_pattern` pipe with `suid_dumpable=2` still dumps a non-dumpable process.
//!
//! # Giving memory back
//!
//! A burst of connections leaves freed blocks all over the heap, which glibc keeps.
//! [`harden_process`] puts every thread on one malloc arena, and [`trim_after_bursts`], a
//! task on the daemon's runtime, returns free pages to the kernel (`malloc_trim`) once the
//! last connection of a burst has closed and a quiet period passed. It sleeps on a
//! notification, not a timer, so an idle daemon never wakes for it.
//!
//! Code and read-only data are unmapped once the daemon listens, again at each trim, and
//! shortly after each run of backend calls ([`backend_used`]: rare work with megabytes of
//! code) ([`clean_pages`]); what runs next faults back in.

pub mod clean_pages;

use crate::credential::Credential;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

/// How memory holding secrets is kept out of swap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryLock {
    /// Cached secrets live in the locked arena; the few that overflow it have their pages
    /// locked one by one, within `RLIMIT_MEMLOCK` (bytes).
    Pages {
        /// `RLIMIT_MEMLOCK`, in bytes.
        limit: u64,
    },
    /// Not locked (no support on this platform).
    Off,
}

/// What [`harden_process`] managed to do; each step that failed says why in the log.
#[derive(Clone, Debug)]
pub struct Report {
    /// Linux: `PR_SET_DUMPABLE` is 0 (no core dump, no same-uid ptrace, /proc/PID owned by root).
    pub not_dumpable: bool,
    /// macOS: `PT_DENY_ATTACH` is in force.
    pub deny_attach: bool,
    /// `RLIMIT_CORE` is 0.
    pub no_core: bool,
    /// How secret memory is kept out of swap.
    pub memory: MemoryLock,
    /// The soft `RLIMIT_NOFILE` after raising it to the hard limit.
    pub open_files: u64,
}

const MODE_OFF: u8 = 0;
const MODE_PAGES: u8 = 2;

/// The mode [`protect`] works in; set once by [`harden_process`].
static MODE: AtomicU8 = AtomicU8::new(MODE_OFF);
/// Set when the kernel refused to lock more pages, so we stop asking (and warn once).
static LOCK_BUDGET_SPENT: AtomicBool = AtomicBool::new(false);
/// The soft `RLIMIT_NOFILE` we started with, restored in child processes (askpass).
static ORIGINAL_NOFILE: AtomicU64 = AtomicU64::new(0);

/// Hardens this process. Call it first thing in `serve`, before any secret is read.
pub fn harden_process() -> Report {
    let report = Report {
        not_dumpable: set_not_dumpable(),
        deny_attach: deny_attach(),
        no_core: set_no_core(),
        memory: lock_memory(),
        open_files: raise_nofile(),
    };
    one_arena();
    tracing::info!(
        not_dumpable = report.not_dumpable,
        deny_attach = report.deny_attach,
        no_core = report.no_core,
        memory = ?report.memory,
        open_files = report.open_files,
        "process hardened"
    );
    report
}

/// Hardens a CLI command that holds a secret (`add`, `unlock`, `import`, `exec`, ...): no
/// core dump and no same-uid ptrace. Memory is left alone: the CLI is short-lived and its
/// heap is wiped on free by the zeroizing allocator. Returns whether every step took.
pub fn harden_cli() -> bool {
    let dumpable = if cfg!(target_os = "linux") {
        set_not_dumpable()
    } else {
        deny_attach()
    };
    set_no_core() && dumpable
}

#[cfg(target_os = "linux")]
fn set_not_dumpable() -> bool {
    // SAFETY: prctl(PR_SET_DUMPABLE) takes integer arguments only and touches no memory of ours.
    let rc = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    if rc != 0 {
        tracing::warn!(
            "PR_SET_DUMPABLE failed: {}",
            std::io::Error::last_os_error()
        );
    }
    rc == 0
}

#[cfg(not(target_os = "linux"))]
fn set_not_dumpable() -> bool {
    false
}

#[cfg(target_os = "macos")]
fn deny_attach() -> bool {
    // SAFETY: PT_DENY_ATTACH ignores its pid, address and data arguments.
    let rc = unsafe { libc::ptrace(libc::PT_DENY_ATTACH, 0, std::ptr::null_mut(), 0) };
    if rc != 0 {
        tracing::warn!("PT_DENY_ATTACH failed: {}", std::io::Error::last_os_error());
    }
    rc == 0
}

#[cfg(not(target_os = "macos"))]
fn deny_attach() -> bool {
    false
}

fn set_no_core() -> bool {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit reads the struct we pass and nothing else.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) };
    if rc != 0 {
        tracing::warn!(
            "setting RLIMIT_CORE to 0 failed: {}",
            std::io::Error::last_os_error()
        );
    }
    rc == 0
}

/// `rlim_t` is u64 on Linux and macOS but not on every libc.
#[allow(clippy::unnecessary_cast)]
fn rlim(v: libc::rlim_t) -> u64 {
    v as u64
}

fn getrlimit(resource: libc::c_int) -> Option<libc::rlimit> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only into the struct we pass. The cast is for the
    // resource type, which differs between libcs.
    let rc = unsafe { libc::getrlimit(resource as _, &mut r) };
    (rc == 0).then_some(r)
}

/// Raises the soft limit on open files to the hard one, so `max_connections` can be reached.
fn raise_nofile() -> u64 {
    let Some(mut r) = getrlimit(libc::RLIMIT_NOFILE as libc::c_int) else {
        return 1024;
    };
    ORIGINAL_NOFILE.store(rlim(r.rlim_cur), Ordering::Relaxed);
    if r.rlim_cur < r.rlim_max {
        let wanted = libc::rlimit {
            rlim_cur: r.rlim_max,
            rlim_max: r.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we pass and nothing else.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) } == 0 {
            r.rlim_cur = r.rlim_max;
        } else {
            // macOS refuses RLIM_INFINITY for open files; OPEN_MAX is what it takes.
            let capped = libc::rlimit {
                rlim_cur: r.rlim_max.min(10240),
                rlim_max: r.rlim_max,
            };
            // SAFETY: as above.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &capped) } == 0 {
                r.rlim_cur = capped.rlim_cur;
            }
        }
    }
    rlim(r.rlim_cur)
}

/// The soft open-files limit the daemon started with (what a child should get back).
pub fn original_nofile() -> Option<u64> {
    match ORIGINAL_NOFILE.load(Ordering::Relaxed) {
        0 => None,
        n => Some(n),
    }
}

fn lock_memory() -> MemoryLock {
    let limit = getrlimit(libc::RLIMIT_MEMLOCK as libc::c_int).map_or(0, |r| rlim(r.rlim_cur));
    if cfg!(unix) {
        MODE.store(MODE_PAGES, Ordering::Relaxed);
        return MemoryLock::Pages { limit };
    }
    MemoryLock::Off
}

/// How long no connection may close before the trimmer runs: pages given back while a
/// burst lasts are only faulted in again.
const TRIM_QUIET: std::time::Duration = std::time::Duration::from_secs(2);
/// Bytes freed since the last trim that make one worth its walk over the heap.
const TRIM_AFTER_FREED: usize = 1 << 20;

/// Signalled when the last open connection closes ([`connections_closed`]).
static ALL_CLOSED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Tells the trimmer that no connection is open any more: a burst may just have ended.
pub fn connections_closed() {
    ALL_CLOSED.notify_one();
}

/// How long after the last backend call its code is given back: calls in a row (an
/// import, a lookup right after an add) share one walk over the mappings.
const BACKEND_QUIET: std::time::Duration = std::time::Duration::from_millis(100);

/// Signalled after each backend call ([`backend_used`]).
static BACKEND_USED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Tells the trimmer that the store was just called. What a backend call runs (the
/// keyring's D-Bus calls and their session encryption, the age file's scrypt, the index
/// writer) is rare work whose code is megabytes once fault-around has mapped it: an add
/// took the daemon from 2.6 MB to 8.9 MB of RSS, 8.2 MB of it file-backed, and it stayed
/// there until a burst of connections brought a trim.
pub fn backend_used() {
    BACKEND_USED.notify_one();
}

/// Gives memory back for as long as the daemon runs, on the daemon's runtime (no thread
/// of its own), waking only after work that leaves some: freed heap pages and the burst's
/// code after bursts of connections, and the code of backend calls soon after them.
pub async fn trim_after_bursts() {
    tokio::join!(after_bursts(), after_backend_calls());
}

/// 2 s after the last close of a burst of connections, trims if at least 1 MiB was freed
/// since the last trim.
async fn after_bursts() {
    loop {
        ALL_CLOSED.notified().await;
        // Each further close (a client making one connection per request) restarts the wait.
        while tokio::time::timeout(TRIM_QUIET, ALL_CLOSED.notified())
            .await
            .is_ok()
        {}
        if crate::secret::freed_since_last_take() >= TRIM_AFTER_FREED {
            trim();
            // The burst's code (accepts at the cap, connection set-ups) goes with its heap.
            clean_pages::unmap();
        }
    }
}

/// [`BACKEND_QUIET`] after the last backend call, unmaps the clean code and data pages it
/// brought in ([`clean_pages`]); what the lookups after it run faults back in.
async fn after_backend_calls() {
    loop {
        BACKEND_USED.notified().await;
        while tokio::time::timeout(BACKEND_QUIET, BACKEND_USED.notified())
            .await
            .is_ok()
        {}
        clean_pages::unmap();
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only releases free pages of the allocator.
    unsafe { libc::malloc_trim(0) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn one_arena() {
    // Each malloc arena keeps its own free memory, out of reach of the main thread's trim
    // until it runs, and costs at least a page per thread that used it; the daemon's few
    // threads (the runtime, the keyring calls) never contend enough to need a second.
    // SAFETY: mallopt takes integers only.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn one_arena() {}

/// Keeps the pages under `bytes` out of swap (when locking pages one by one) and out of core dumps.
/// Does nothing until [`harden_process`] ran, so the CLI and unit tests are unaffected.
pub fn protect(bytes: &[u8]) {
    protect_region(bytes.as_ptr() as usize, bytes.len());
}

/// [`protect`] for the address range `addr .. addr + len`, which may include memory that is
/// allocated but not initialised: only the address range goes to the kernel, no byte is read.
fn protect_region(addr: usize, len: usize) {
    if len == 0 || crate::secret::in_arena(addr as *const u8) {
        return;
    }
    if MODE.load(Ordering::Relaxed) != MODE_PAGES {
        return;
    }
    dont_dump(addr, len);
    if !LOCK_BUDGET_SPENT.load(Ordering::Relaxed) {
        if let Err(e) = lock_region(addr, len) {
            LOCK_BUDGET_SPENT.store(true, Ordering::Relaxed);
            tracing::warn!(
                "RLIMIT_MEMLOCK reached ({e}); further secrets are not locked in memory. \
                 Raise it (LimitMEMLOCK= in the service unit) to lock them all"
            );
        }
    }
}

/// [`protect`] for every secret field of a credential, over each string's whole capacity:
/// a string that grew may have left earlier copies in its spare capacity.
pub fn protect_credential(cred: &Credential) {
    for (_, secret) in cred.fields() {
        let s = secret.expose();
        // The spare capacity is uninitialised, so no slice may cover it: pass the range.
        protect_region(s.as_ptr() as usize, s.capacity());
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).ok().filter(|&n| n > 0).unwrap_or(4096)
}

/// The page-aligned range covering `addr .. addr + len`.
fn page_range(addr: usize, len: usize) -> Option<(*mut libc::c_void, usize)> {
    if len == 0 {
        return None;
    }
    let page = page_size();
    let start = addr & !(page - 1);
    let end = (addr + len).div_ceil(page) * page;
    Some((start as *mut libc::c_void, end - start))
}

/// Locks the pages under `bytes` into RAM. A page stays locked after its secret is freed:
/// other data may share it, and unlocking is not reference-counted.
pub fn lock_pages(bytes: &[u8]) -> std::io::Result<()> {
    lock_region(bytes.as_ptr() as usize, bytes.len())
}

fn lock_region(addr: usize, len: usize) -> std::io::Result<()> {
    let Some((addr, len)) = page_range(addr, len) else {
        return Ok(());
    };
    // SAFETY: the range covers pages of a live allocation; mlock changes no contents.
    if unsafe { libc::mlock(addr, len) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn dont_dump(addr: usize, len: usize) {
    if let Some((addr, len)) = page_range(addr, len) {
        // SAFETY: the range covers pages of a live allocation; MADV_DONTDUMP only sets a
        // flag on the mapping and changes no contents. A failure leaves the default.
        let _ = unsafe { libc::madvise(addr, len, libc::MADV_DONTDUMP) };
    }
}

#[cfg(not(target_os = "linux"))]
fn dont_dump(_addr: usize, _len: usize) {}

/// The executable of process `pid` (`/proc/PID/exe` on Linux), when it can be read.
#[cfg(target_os = "linux")]
pub fn process_exe(pid: i32) -> Option<std::path::PathBuf> {
    if pid <= 0 {
        return None;
    }
    std::fs::read_link(format!("/proc/{pid}/exe")).ok()
}

/// The executable of process `pid` (`proc_pidpath` on macOS), when it can be read.
#[cfg(target_os = "macos")]
pub fn process_exe(pid: i32) -> Option<std::path::PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    if pid <= 0 {
        return None;
    }
    let mut buf = vec![0u8; libc::PROC_PIDPATHINFO_MAXSIZE as usize];
    // SAFETY: proc_pidpath writes at most `buf.len()` bytes into `buf`.
    let n = unsafe { libc::proc_pidpath(pid, buf.as_mut_ptr().cast(), buf.len() as u32) };
    let n = usize::try_from(n).ok().filter(|&n| n > 0)?;
    Some(std::ffi::OsStr::from_bytes(&buf[..n]).into())
}

/// No way to tell a process's executable on this platform.
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
pub fn process_exe(_pid: i32) -> Option<std::path::PathBuf> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_kb(field: &str) -> u64 {
        let s = std::fs::read_to_string("/proc/self/status").unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn locked_pages_show_in_vmlck_and_are_not_dumped() {
        let page = page_size();
        // A buffer of its own pages, so the flags we look for are on it alone.
        let buf = vec![7u8; page * 4];
        let inner = &buf[page..page * 2];
        let before = status_kb("VmLck:");
        match lock_pages(inner) {
            Ok(()) => assert!(status_kb("VmLck:") > before, "VmLck grew"),
            // An unprivileged run over its RLIMIT_MEMLOCK: the refusal is the answer.
            Err(e) => assert!(matches!(e.raw_os_error(), Some(libc::ENOMEM | libc::EPERM))),
        }
        dont_dump(inner.as_ptr() as usize, inner.len());
        let (addr, _) = page_range(inner.as_ptr() as usize, inner.len()).unwrap();
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut in_range = false;
        let mut flags = None;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ') {
                if let Some((a, b)) = range.split_once('-') {
                    if let (Ok(a), Ok(b)) =
                        (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
                    {
                        in_range = (a..b).contains(&(addr as usize));
                        continue;
                    }
                }
            }
            if in_range {
                if let Some(f) = line.strip_prefix("VmFlags:") {
                    flags = Some(f.to_owned());
                }
            }
        }
        let flags = flags.expect("the page is mapped");
        assert!(flags.split_whitespace().any(|f| f == "dd"), "{flags}");
    }

    #[test]
    fn page_range_covers_the_bytes() {
        let page = page_size();
        let buf = vec![0u8; page * 3];
        let s = &buf[10..page + 20];
        let (addr, len) = page_range(s.as_ptr() as usize, s.len()).unwrap();
        assert_eq!(addr as usize % page, 0);
        assert!(addr as usize <= s.as_ptr() as usize);
        assert!(addr as usize + len >= s.as_ptr() as usize + s.len());
        assert!(page_range(s.as_ptr() as usize, 0).is_none());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn exe_of_self() {
        let me = process_exe(std::process::id() as i32).unwrap();
        assert_eq!(me, std::env::current_exe().unwrap());
        assert_eq!(process_exe(0), None);
    }
}
