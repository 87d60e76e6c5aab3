//! The project paths proven canonical, remembered for as long as the kernel says nothing on the way to them changed: inotify on every directory the path walks through, and the mount table's change notice.
//!
//! A path is learned by walking it one component at a time with `openat2` (`RESOLVE_CACHED
//! | RESOLVE_NO_SYMLINKS`, so nothing blocks and no symlink is crossed), each directory
//! watched before the next component is looked up in it. Once the walk is done, any change
//! that could make the path resolve elsewhere is a name created, removed or renamed in one
//! of those directories, one of them removed or moved, or a mount or unmount: inotify
//! queues the first kinds on the watched directories, and `/proc/self/mountinfo` polls
//! `EPOLLPRI` on the last, both before the system call that made the change returns. So a
//! request sent after the change finds it queued, and [`Memo::knows`] asks first: any such
//! event, or a lost one (queue overflow), forgets every path. Asking costs no system call
//! on the thread the memo's [`Bell`] rings for (the daemon's one async thread): the kernel
//! posts word of a queued event to memory it shares with the daemon before that thread's
//! next system call returns, the one that read the request among them. Elsewhere, or
//! without io_uring, and whenever the bell has rung, it is one `epoll_wait` with no
//! timeout. Directories on file systems whose changes may come from elsewhere (NFS,
//! FUSE, and anything not on the list of local ones) are never remembered: their paths
//! are walked on every request, as before.

use std::collections::{HashMap, HashSet};
use std::ffi::CStr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

use super::bell::Bell;

/// At most this many paths are remembered; one more forgets them all (and their watches).
const MAX_PATHS: usize = 64;

/// File systems whose every change is made through this kernel, so inotify sees it.
const LOCAL: &[&str] = &[
    "ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "f2fs", "overlay",
];

/// What inotify reports that can change where a name in a watched directory leads.
const MASK: u32 = libc::IN_CREATE
    | libc::IN_DELETE
    | libc::IN_MOVED_FROM
    | libc::IN_MOVED_TO
    | libc::IN_DELETE_SELF
    | libc::IN_MOVE_SELF
    | libc::IN_ONLYDIR;

/// The remembered canonical project paths; empty (and every path walked) where the kernel
/// offers no inotify, epoll or mount notice.
#[derive(Default)]
pub struct Memo {
    state: Mutex<Option<State>>,
}

/// Open while anything is remembered; dropped (closing the watches) when it is all forgotten.
struct State {
    /// Rung when inotify queues an event or the mount table changes; `None` where the
    /// kernel offers no io_uring.
    bell: Option<Bell>,
    epoll: OwnedFd,
    inotify: OwnedFd,
    /// Kept open only for its `EPOLLPRI` on a mount table change.
    _mounts: OwnedFd,
    /// Mount id → whether its file system is local, as `/proc/self/mountinfo` said at open.
    local: HashMap<u64, bool>,
    /// (watch, name in that directory) on the way to a remembered path.
    names: HashSet<(i32, Box<str>)>,
    /// Asked on every project lookup: hashed with foldhash, as the other per-lookup tables.
    paths: HashSet<Box<str>, foldhash::fast::RandomState>,
    /// How many times the kernel was asked (`unchanged`), for the tests.
    #[cfg(test)]
    asked: usize,
    /// Paths through a file system that is not local: walked on every request and not
    /// tried again (a learn costs system calls per component) until a mount change
    /// reopens the state, the only change that can make them local.
    remote: HashSet<Box<str>, foldhash::fast::RandomState>,
}

impl Memo {
    /// Whether `path` was learned and nothing on the way to it changed since.
    pub fn knows(&self, path: &str) -> bool {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(state) = guard.as_mut() else {
            return false;
        };
        if state.bell.as_mut().is_some_and(Bell::quiet) {
            return state.paths.contains(path);
        }
        if !state.unchanged() {
            *guard = None;
            return false;
        }
        state.paths.contains(path)
    }

    /// Walks `path` (absolute, lexically canonical) watching every directory on the way,
    /// and remembers it when the walk proves it canonical; nothing when any part of it is
    /// not cached, crosses a symlink, or lies on a file system that is not local.
    pub fn learn(&self, path: &str) {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(state) = guard.as_mut() {
            if !state.unchanged() || state.paths.len() + state.remote.len() >= MAX_PATHS {
                *guard = None;
            }
        }
        if guard.is_none() {
            *guard = State::open();
        }
        let Some(state) = guard.as_mut() else {
            return;
        };
        if state.remote.contains(path) {
            return;
        }
        if state.walk(path).is_some() {
            state.paths.insert(path.into());
        }
    }
}

impl State {
    fn open() -> Option<State> {
        // SAFETY: plain system calls with no pointers; each result is checked.
        let epoll = owned(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: as above.
        let inotify = owned(unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) })?;
        // Opened before its table is read: a change while reading is then still seen.
        let mounts = std::fs::File::open("/proc/self/mountinfo").ok()?;
        let local = mount_types(&std::io::read_to_string(&mounts).ok()?);
        let mounts = OwnedFd::from(mounts);
        for (fd, events) in [
            (inotify.as_raw_fd(), libc::EPOLLIN as u32),
            (mounts.as_raw_fd(), libc::EPOLLPRI as u32),
        ] {
            let mut ev = libc::epoll_event {
                events,
                u64: fd as u64,
            };
            // SAFETY: both descriptors are open; `ev` is a valid epoll_event.
            let r = unsafe { libc::epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
            if r != 0 {
                return None;
            }
        }
        // Armed on the thread that opens the state: the one that learns, and asks, most.
        let bell = Bell::arm(inotify.as_raw_fd());
        Some(State {
            bell,
            epoll,
            inotify,
            _mounts: mounts,
            local,
            names: HashSet::new(),
            paths: HashSet::default(),
            remote: HashSet::default(),
            #[cfg(test)]
            asked: 0,
        })
    }

    /// Whether no change that matters was queued since last asked: `false` forgets all.
    fn unchanged(&mut self) -> bool {
        #[cfg(test)]
        {
            self.asked += 1;
        }
        // Cleared before the queue is read: whatever is queued after this rings again.
        if self.bell.as_mut().is_some_and(|b| !b.clear()) {
            self.bell = None;
        }
        let mut ready = [libc::epoll_event { events: 0, u64: 0 }; 2];
        // SAFETY: `ready` is writable for the 2 events passed; a zero timeout never waits.
        let n = unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), ready.as_mut_ptr(), 2, 0) };
        if n < 0 {
            return false;
        }
        let mut unchanged = true;
        for ev in &ready[..n as usize] {
            let fd = ev.u64 as RawFd;
            if fd != self.inotify.as_raw_fd() {
                // The mount table changed: any path may now lead elsewhere.
                return false;
            }
            unchanged &= self.read_events();
        }
        unchanged
    }

    /// Reads every queued inotify event; `false` when one touches a remembered path.
    fn read_events(&self) -> bool {
        // Aligned for the event headers the kernel writes into it.
        #[repr(C, align(8))]
        struct Buf([u8; 4096]);
        let mut buf = Buf([0; 4096]);
        let header = std::mem::size_of::<libc::inotify_event>();
        let mut unchanged = true;
        loop {
            // SAFETY: `buf` is writable for its whole length.
            let n = unsafe {
                libc::read(
                    self.inotify.as_raw_fd(),
                    buf.0.as_mut_ptr().cast(),
                    buf.0.len(),
                )
            };
            let Ok(n) = usize::try_from(n) else {
                // EAGAIN: all read. Anything else: say changed, to be safe.
                let e = std::io::Error::last_os_error().raw_os_error();
                return unchanged && e == Some(libc::EAGAIN);
            };
            if n == 0 {
                return false;
            }
            let mut at = 0;
            while at + header <= n {
                // SAFETY: the kernel wrote whole events, each header at an aligned offset
                // followed by `len` bytes of NUL-padded name, within the `n` bytes read.
                let ev = unsafe { &*(buf.0.as_ptr().add(at) as *const libc::inotify_event) };
                let name_at = at + header;
                let name_end = (name_at + ev.len as usize).min(n);
                let name = CStr::from_bytes_until_nul(&buf.0[name_at..name_end])
                    .ok()
                    .and_then(|c| c.to_str().ok());
                unchanged &= !self.matters(ev, name);
                at = name_end;
            }
        }
    }

    /// Whether `ev` (with its `name`, when it is about an entry) can change a remembered path.
    fn matters(&self, ev: &libc::inotify_event, name: Option<&str>) -> bool {
        let about_itself = libc::IN_DELETE_SELF
            | libc::IN_MOVE_SELF
            | libc::IN_IGNORED
            | libc::IN_UNMOUNT
            | libc::IN_Q_OVERFLOW;
        if ev.mask & about_itself != 0 {
            return true;
        }
        match name {
            Some(name) => self.names.contains(&(ev.wd, Box::from(name))),
            None => true,
        }
    }

    /// The walk that proves `path` canonical, each directory watched before the next
    /// component is looked up in it; `None` as soon as one step does not hold.
    fn walk(&mut self, path: &str) -> Option<()> {
        let mut dir = open_step(None, c"/")?;
        let mut wd = self.watch(path, &dir)?;
        let mut parts = path
            .strip_prefix('/')?
            .split('/')
            .filter(|c| !c.is_empty())
            .peekable();
        while let Some(part) = parts.next() {
            let name = std::ffi::CString::new(part).ok()?;
            self.names.insert((wd, part.into()));
            dir = open_step(Some(&dir), &name)?;
            // The project directory itself needs no watch: what is inside it does not
            // change where its path leads, and a mount over it is a mount table change.
            if parts.peek().is_some() {
                wd = self.watch(path, &dir)?;
            }
        }
        Some(())
    }

    /// An inotify watch on the open directory `dir` on the way to `path`, when its file
    /// system is local; else `path` is remembered as not to be learned.
    fn watch(&mut self, path: &str, dir: &OwnedFd) -> Option<i32> {
        if !self.local.get(&mount_id(dir)?).copied().unwrap_or(false) {
            self.remote.insert(path.into());
            return None;
        }
        // inotify takes a path only: the descriptor's own magic link names the very
        // directory open, with no second walk of `path`.
        let link = std::ffi::CString::new(format!("/proc/self/fd/{}", dir.as_raw_fd())).ok()?;
        // SAFETY: `link` is NUL-terminated; the result is checked.
        let wd = unsafe { libc::inotify_add_watch(self.inotify.as_raw_fd(), link.as_ptr(), MASK) };
        (wd >= 0).then_some(wd)
    }
}

/// `name` opened as a directory in `parent` (or the root), from the dentry cache alone
/// and through no symlink.
fn open_step(parent: Option<&OwnedFd>, name: &CStr) -> Option<OwnedFd> {
    // SAFETY: open_how is plain data; all-zero is its empty value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_CACHED | libc::RESOLVE_NO_SYMLINKS;
    let at = parent.map_or(libc::AT_FDCWD, AsRawFd::as_raw_fd);
    // SAFETY: `name` is NUL-terminated, `how` a valid open_how of the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            at,
            name.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    owned(i32::try_from(fd).ok()?)
}

/// The mount `dir` is on, from the kernel's cached attributes (no I/O even on NFS).
fn mount_id(dir: &OwnedFd) -> Option<u64> {
    // SAFETY: statx is plain data; all-zero is a valid value to be overwritten.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: an empty path with AT_EMPTY_PATH names `dir` itself; `stx` is writable.
    let r = unsafe {
        libc::statx(
            dir.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_STATX_DONT_SYNC,
            libc::STATX_MNT_ID,
            &mut stx,
        )
    };
    (r == 0 && stx.stx_mask & libc::STATX_MNT_ID != 0).then_some(stx.stx_mnt_id)
}

/// Each mount's id and whether its file system type is on the [`LOCAL`] list, from the
/// text of `/proc/self/mountinfo` (`ID PARENT MAJ:MIN ROOT POINT OPTIONS [TAGS] - TYPE …`).
fn mount_types(mountinfo: &str) -> HashMap<u64, bool> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let id = line.split(' ').next()?.parse().ok()?;
            let (_, after) = line.split_once(" - ")?;
            let fstype = after.split(' ').next()?;
            Some((id, LOCAL.contains(&fstype)))
        })
        .collect()
}

/// A descriptor the kernel just returned, owned; `None` for an error.
fn owned(fd: i32) -> Option<OwnedFd> {
    // SAFETY: a non-negative result is a descriptor nothing else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn learned(memo: &Memo, p: &std::path::Path) -> bool {
        let s = p.to_str().unwrap();
        // A walk may find a component not cached yet (another test renaming beside it):
        // the daemon walks again on its next request; so does this.
        (0..20).any(|_| {
            memo.learn(s);
            memo.knows(s)
        })
    }

    #[test]
    fn mountinfo_types() {
        let text = "22 1 0:21 / /proc rw,nosuid shared:12 - proc proc rw\n\
                    26 1 252:1 / / rw,relatime shared:1 - ext4 /dev/vda rw\n\
                    40 26 0:36 / /mnt/nfs rw - nfs4 srv:/x rw\n\
                    junk\n";
        let t = mount_types(text);
        assert_eq!(t.get(&26), Some(&true));
        assert_eq!(t.get(&40), Some(&false));
        assert_eq!(t.get(&22), Some(&false));
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn a_path_is_forgotten_when_anything_on_its_way_changes_and_only_then() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let shop = root.join("a/b/shop");
        std::fs::create_dir_all(&shop).unwrap();
        let memo = Memo::default();
        assert!(!memo.knows(shop.to_str().unwrap()));
        assert!(learned(&memo, &shop), "{shop:?} on a local file system");

        // Beside the path, and inside the project: nothing on its way.
        std::fs::create_dir(root.join("a/b/other")).unwrap();
        std::fs::write(shop.join("composer.json"), b"{}").unwrap();
        std::fs::rename(root.join("a/b/other"), root.join("a/b/other2")).unwrap();
        assert!(memo.knows(shop.to_str().unwrap()));

        // The project swapped for a symlink to another directory.
        let elsewhere = root.join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::rename(&shop, root.join("a/b/shop.old")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &shop).unwrap();
        assert!(!memo.knows(shop.to_str().unwrap()));
        // A path through a symlink is never learned.
        memo.learn(shop.to_str().unwrap());
        assert!(!memo.knows(shop.to_str().unwrap()));

        // An ancestor renamed away and another put in its place.
        std::fs::remove_file(&shop).unwrap();
        std::fs::rename(root.join("a/b/shop.old"), &shop).unwrap();
        assert!(learned(&memo, &shop));
        std::fs::rename(root.join("a"), root.join("a.old")).unwrap();
        std::fs::create_dir_all(&shop).unwrap();
        assert!(!memo.knows(shop.to_str().unwrap()));

        // An ancestor removed: the watch itself goes.
        assert!(learned(&memo, &shop));
        std::fs::remove_dir_all(root.join("a.old")).unwrap();
        let again = root.join("a.old/b/shop");
        std::fs::create_dir_all(&again).unwrap();
        assert!(learned(&memo, &again));
        std::fs::remove_dir_all(root.join("a.old")).unwrap();
        assert!(!memo.knows(again.to_str().unwrap()));
    }

    /// How many times the memo asked the kernel, and whether its bell works.
    fn asked(memo: &Memo) -> (usize, bool) {
        let guard = memo.state.lock().unwrap();
        let state = guard.as_ref().expect("a state");
        (state.asked, state.bell.is_some())
    }

    /// On the thread that armed the bell, an unchanged path is known with no system call;
    /// a change made by another thread or another process is seen by the next question,
    /// as one made by this thread is (the other tests).
    #[test]
    fn the_bell_answers_alone_until_a_change_from_anywhere_rings_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let shop = root.join("a/shop");
        std::fs::create_dir_all(&shop).unwrap();
        let path = shop.to_str().unwrap();
        let memo = Memo::default();
        assert!(learned(&memo, &shop));
        let (before, bell) = asked(&memo);
        assert!(
            bell,
            "no io_uring here (seccomp or kernel.io_uring_disabled?): the bell is what this tests"
        );
        for _ in 0..100 {
            assert!(memo.knows(path));
        }
        assert_eq!(asked(&memo).0, before, "an unchanged path asked the kernel");

        // Another thread: the swap is done and joined before the question.
        let (a, old) = (root.join("a"), root.join("a.old"));
        std::thread::spawn(move || {
            std::fs::rename(&a, &old).unwrap();
            std::fs::create_dir_all(a.join("shop")).unwrap();
        })
        .join()
        .unwrap();
        assert!(!memo.knows(path));

        // Another process, while this thread sleeps in `wait`.
        assert!(learned(&memo, &shop));
        let (_, bell) = asked(&memo);
        assert!(bell);
        let status = std::process::Command::new("mv")
            .arg(root.join("a"))
            .arg(root.join("a.gone"))
            .status()
            .expect("mv (Debian package coreutils)");
        assert!(status.success());
        assert!(!memo.knows(path));

        // Asked from a thread the bell does not ring for: the kernel is asked every time.
        std::fs::create_dir_all(&shop).unwrap();
        assert!(learned(&memo, &shop));
        let before = asked(&memo).0;
        std::thread::scope(|s| {
            s.spawn(|| {
                for _ in 0..3 {
                    assert!(memo.knows(path));
                }
            });
        });
        assert_eq!(asked(&memo).0, before + 3);
    }

    #[test]
    fn at_most_the_cap_is_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let memo = Memo::default();
        let paths: Vec<_> = (0..=MAX_PATHS)
            .map(|i| root.join(format!("p{i}")))
            .collect();
        for p in &paths {
            std::fs::create_dir(p).unwrap();
        }
        for p in &paths[..MAX_PATHS] {
            assert!(learned(&memo, p));
        }
        assert!(learned(&memo, &paths[MAX_PATHS]));
        // The one past the cap started a new memo: the first is forgotten.
        assert!(!memo.knows(paths[0].to_str().unwrap()));
    }

    /// A mount on the way to a learned path forgets it: here a directory whose `shop` is a
    /// symlink is bound over one whose `shop` was the project, so the same path now leads
    /// through a symlink. Mounting needs a mount namespace of its own, so the test runs
    /// itself again under `unshare` (a user namespace too when not root).
    #[test]
    fn a_mount_on_the_way_forgets_every_path() {
        const CHILD: &str = "COMPOSER_KEYD_TEST_MEMO_MOUNT";
        if std::env::var_os(CHILD).is_none() {
            let mut cmd = std::process::Command::new("unshare");
            // SAFETY: geteuid has no preconditions.
            if unsafe { libc::geteuid() } != 0 {
                cmd.args(["--user", "--map-root-user"]);
            }
            let out = cmd
                .args(["--mount", "--propagation", "private"])
                .arg(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "server::project::memo::tests::a_mount_on_the_way_forgets_every_path",
                ])
                .env(CHILD, "1")
                .output()
                .expect("unshare (Debian package util-linux)");
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success() && text.contains("1 passed"), "{text}");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let (x, y, other) = (root.join("x"), root.join("y"), root.join("other"));
        for d in [x.join("shop"), y.clone(), other.clone()] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::os::unix::fs::symlink(&other, y.join("shop")).unwrap();
        let shop = x.join("shop");
        let memo = Memo::default();
        assert!(learned(&memo, &shop));
        let c = |p: &std::path::Path| std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        // SAFETY: both paths are NUL-terminated; a bind mount takes no data.
        let r = unsafe {
            libc::mount(
                c(&y).as_ptr(),
                c(&x).as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            )
        };
        assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
        assert!(!memo.knows(shop.to_str().unwrap()));
        assert!(std::fs::symlink_metadata(&shop).unwrap().is_symlink());
    }
}
