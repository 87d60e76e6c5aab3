//! What a small file said, remembered by the file's identity: config.toml's warning horizon and a project's composer.json name, read again only when the file changed, and checked inline without a blocking thread.
//!
//! A memo entry holds the file's [`Stamp`] (device, inode, size, modification and change
//! times) taken before its content was read; a request takes the file's stamp afresh
//! ([`FileMemo::cached`]: `openat2` with `RESOLVE_CACHED`, then `statx` with
//! `AT_STATX_DONT_SYNC`, no I/O by the kernel's word) and uses the memo only when the two
//! are equal. Any write changes the change time, a replacement changes the inode, so a
//! changed file never matches, with one gap that this closes: a file written twice
//! within one tick of the file system's clock, with the same size, keeps its stamp. An
//! entry is kept only when the file's times were [`SETTLED`] in the past when it was read
//! (git's "racily clean" rule); a file written since reads with a later change time.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// How far in the past a file's times must be for its content to be remembered: more than
/// the coarsest file-system clock (FAT's two seconds) and the kernel's timestamp tick.
pub const SETTLED: Duration = Duration::from_secs(3);

/// Files remembered at most; the memo starts over past it.
const CAPACITY: usize = 64;

/// A file's identity and version as `stat` tells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, u32),
    ctime: (i64, u32),
}

impl Stamp {
    /// The stamp of the file `meta` describes.
    #[cfg(unix)]
    pub fn of(meta: &std::fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        let nanos = |n: i64| u32::try_from(n).unwrap_or(0);
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), nanos(meta.mtime_nsec())),
            ctime: (meta.ctime(), nanos(meta.ctime_nsec())),
        }
    }

    /// Whether both times are at least [`SETTLED`] before `now`.
    fn settled(&self, now: SystemTime) -> bool {
        let Ok(now) = now.duration_since(SystemTime::UNIX_EPOCH) else {
            return false;
        };
        let limit = now.saturating_sub(SETTLED);
        let at = |(s, ns): (i64, u32)| {
            u64::try_from(s).map_or(Duration::ZERO, |s| Duration::new(s, ns.min(999_999_999)))
        };
        at(self.mtime) <= limit && at(self.ctime) <= limit
    }
}

/// What a file's stamp says without I/O.
#[derive(Debug, PartialEq, Eq)]
pub enum Probe {
    /// The file is there, with this stamp.
    Present(Stamp),
    /// It is not there (the kernel's cache says so).
    Absent,
    /// Not known without I/O, or not a kind of file this reads.
    Unknown,
}

/// `path`'s stamp from the kernel's caches alone: the walk through the dentry cache
/// (`RESOLVE_CACHED`, symlinks followed as `open` follows them) and the attributes it holds
/// (`AT_STATX_DONT_SYNC`). Three system calls, none of which waits for a disk or a server.
#[cfg(target_os = "linux")]
pub fn probe(path: &Path) -> Probe {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    let mut buf = [0u8; libc::PATH_MAX as usize];
    if bytes.len() >= buf.len() || bytes.contains(&0) {
        return Probe::Unknown;
    }
    buf[..bytes.len()].copy_from_slice(bytes);
    // SAFETY: open_how is plain data; all-zero is its empty value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_PATH | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_CACHED;
    // SAFETY: `buf` holds the path and a NUL after it; `how` is a valid open_how of the
    // size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            libc::AT_FDCWD,
            buf.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return match std::io::Error::last_os_error().raw_os_error() {
            // A negative dentry: the kernel knows, without I/O, that nothing is there.
            Some(libc::ENOENT) => Probe::Absent,
            _ => Probe::Unknown,
        };
    }
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // SAFETY: statx is plain data; all-zero is a valid value to be overwritten.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    let want = libc::STATX_TYPE
        | libc::STATX_INO
        | libc::STATX_SIZE
        | libc::STATX_MTIME
        | libc::STATX_CTIME;
    // SAFETY: `fd` is open, the path is the empty C string (AT_EMPTY_PATH: the descriptor
    // itself), and `st` is writable.
    let rc = unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_STATX_DONT_SYNC,
            want,
            &mut st,
        )
    };
    if rc != 0
        || st.stx_mask & want != want
        || u32::from(st.stx_mode) & libc::S_IFMT != libc::S_IFREG
    {
        return Probe::Unknown;
    }
    Probe::Present(Stamp {
        dev: libc::makedev(st.stx_dev_major, st.stx_dev_minor),
        ino: st.stx_ino,
        size: st.stx_size,
        mtime: (st.stx_mtime.tv_sec, st.stx_mtime.tv_nsec),
        ctime: (st.stx_ctime.tv_sec, st.stx_ctime.tv_nsec),
    })
}

/// Elsewhere nothing says that a `stat` cannot block.
#[cfg(not(target_os = "linux"))]
pub fn probe(_path: &Path) -> Probe {
    Probe::Unknown
}

/// What a file said, by path, each with the stamp it had when read.
pub struct FileMemo<T> {
    entries: Mutex<Vec<(PathBuf, Stamp, T)>>,
}

impl<T: Clone> Default for FileMemo<T> {
    fn default() -> Self {
        FileMemo::new()
    }
}

impl<T: Clone> FileMemo<T> {
    /// An empty memo.
    pub const fn new() -> FileMemo<T> {
        FileMemo {
            entries: Mutex::new(Vec::new()),
        }
    }

    /// What `path` says, known without I/O: `Some(absent)` when the file is not there,
    /// the remembered value when its stamp is the one it was read with, else `None` (read
    /// it with [`FileMemo::read`], on a thread that may block).
    pub fn cached(&self, path: &Path, absent: impl FnOnce() -> T) -> Option<T> {
        match probe(path) {
            Probe::Absent => Some(absent()),
            Probe::Unknown => None,
            Probe::Present(current) => {
                let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
                entries
                    .iter()
                    .find(|(p, stamp, _)| *stamp == current && p == path)
                    .map(|(_, _, v)| v.clone())
            }
        }
    }

    /// What `path` says, read now by `read` (which may block), and remembered when the
    /// file was settled. The stamp is taken before `read` reads: a change made in between
    /// leaves an entry whose stamp the file no longer has, never one that hides the change.
    pub fn read(&self, path: &Path, read: impl FnOnce() -> T) -> T {
        let stamp = std::fs::metadata(path)
            .ok()
            .filter(|m| m.is_file())
            .map(|m| Stamp::of(&m));
        let value = read();
        let Some(stamp) = stamp.filter(|s| s.settled(SystemTime::now())) else {
            return value;
        };
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|(p, _, _)| p != path);
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.push((path.to_path_buf(), stamp, value.clone()));
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sets a file's times `ago` into the past; its change time stays now.
    fn age(path: &Path, ago: Duration) {
        let f = std::fs::File::options().write(true).open(path).unwrap();
        f.set_modified(SystemTime::now() - ago).unwrap();
    }

    /// Whether the kernel keeps a negative dentry for a name just looked up in `dir`: not on
    /// tmpfs or ramfs (a `/tmp` on tmpfs, as Debian 13 mounts it), which forget a name that
    /// is not there at once, so an absent file there is never proven without I/O.
    #[cfg(target_os = "linux")]
    fn keeps_negative_dentries(dir: &Path) -> bool {
        use std::os::unix::ffi::OsStrExt;
        const TMPFS_MAGIC: i64 = 0x0102_1994;
        const RAMFS_MAGIC: i64 = 0x8584_58f6;
        let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
        // SAFETY: an all-zero `statfs` is a valid value of this plain C struct.
        let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: `path` is NUL-terminated and `fs` is writable for one `statfs`.
        let r = unsafe { libc::statfs(path.as_ptr(), &mut fs) };
        assert_eq!(r, 0, "statfs {dir:?}");
        #[allow(clippy::unnecessary_cast)] // its type differs between C libraries
        let kind = fs.f_type as i64;
        !matches!(kind, TMPFS_MAGIC | RAMFS_MAGIC)
    }

    #[test]
    fn probe_agrees_with_stat() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("composer.json");
        std::fs::write(&file, b"{}").unwrap();
        let stamp = Stamp::of(&std::fs::metadata(&file).unwrap());
        #[cfg(target_os = "linux")]
        {
            assert_eq!(probe(&file), Probe::Present(stamp));
            // Just looked up, so the kernel has a negative dentry for it, where it keeps one.
            let _ = std::fs::metadata(dir.path().join("missing"));
            let absent = match keeps_negative_dentries(dir.path()) {
                true => Probe::Absent,
                false => Probe::Unknown,
            };
            assert_eq!(probe(&dir.path().join("missing")), absent);
            assert_eq!(probe(dir.path()), Probe::Unknown, "a directory");
        }
        let _ = stamp;
    }

    #[test]
    fn only_a_settled_file_is_remembered_and_a_change_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"one").unwrap();
        let memo = FileMemo::<String>::new();
        let read = || std::fs::read_to_string(&file).unwrap();
        // Just written: its change time is now, so it is read every time.
        assert_eq!(memo.read(&file, read), "one");
        assert_eq!(memo.cached(&file, String::new), None);
        // Settled: remembered, and answered while the file is as it was.
        age(&file, Duration::from_secs(60));
        std::thread::sleep(SETTLED + Duration::from_millis(100));
        assert_eq!(memo.read(&file, read), "one");
        #[cfg(target_os = "linux")]
        assert_eq!(memo.cached(&file, String::new).as_deref(), Some("one"));
        // Written again with the same size: the change time moves, the memo is not used.
        std::fs::write(&file, b"two").unwrap();
        age(&file, Duration::from_secs(60));
        assert_eq!(memo.cached(&file, String::new), None);
        assert_eq!(memo.read(&file, read), "two");
        std::fs::remove_file(&file).unwrap();
        // Gone: known without I/O where the kernel keeps the name's negative dentry, else
        // left to the caller's read.
        #[cfg(target_os = "linux")]
        assert_eq!(
            memo.cached(&file, || "absent".into()).as_deref(),
            keeps_negative_dentries(dir.path()).then_some("absent")
        );
    }
}
