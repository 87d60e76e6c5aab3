//! The project directory a lookup names, resolved through symlinks: on the async thread when the kernel can do it from its caches alone, else on a blocking thread.
//!
//! Every request resolves its project afresh, or is answered from a [`Memo`] of paths proven
//! canonical that forgets a path as soon as the kernel reports any change on its way (a
//! rename, a removal, a new name, a mount): a project directory replaced by a symlink is
//! seen by the next request that names it, either way. What makes a walk cheap is where it runs and what it asks, not fewer checks: `openat2`
//! with `RESOLVE_CACHED` walks the path only through the kernel's dentry cache and fails
//! with `EAGAIN` when any component would need I/O or a revalidation that may sleep (NFS,
//! a FUSE mount), so it can run on the daemon's single async thread.
//!
//! The plugin sends `realpath(3)` of the project, so the path is nearly always canonical
//! already. A path with no empty, `.` or `..` component that `openat2` walks to a directory
//! with `RESOLVE_NO_SYMLINKS` (no component, the last included, is a symlink) is its own
//! `realpath`: two system calls (`openat2`, `close`) and the path as given, no copy; none
//! when the main door's memo knows it and its bell is quiet. A path
//! through a symlink fails that walk with `ELOOP`, and is then resolved by the kernel: the
//! directory opened with symlinks followed, its path read back from `/proc/self/fd/N`
//! (`d_path`), the physical path `realpath` gives. Anything else (not cached, not a
//! directory, gone, an older kernel, no `/proc`) takes the blocking `canonicalize`.

#[cfg(target_os = "linux")]
mod bell;
#[cfg(target_os = "linux")]
mod memo;

use std::borrow::Cow;
use std::path::{Path, PathBuf};

#[cfg(target_os = "linux")]
pub use memo::Memo;

/// Elsewhere nothing is remembered: every path is walked.
#[cfg(not(target_os = "linux"))]
#[derive(Default)]
pub struct Memo;

/// The longest project path a request may name, in bytes.
pub const MAX_PROJECT_LEN: usize = 4096;

/// A project path as a request named it, percent-decoded with a NUL after it: the system
/// calls that walk it take it as it is. One allocation of the path's size (a buffer of the
/// longest path on the stack cost a 4 KiB fill per request, the daemon's largest single
/// cost on a project lookup, measured).
pub struct Named {
    /// The path's bytes, then a NUL.
    buf: Vec<u8>,
}

impl Named {
    /// `raw` percent-decoded (`+` is not a space here: callers leave such queries to the
    /// form decoder); `None` unless it is UTF-8, absolute, at most [`MAX_PROJECT_LEN`]
    /// bytes, and free of NUL.
    pub fn decode(raw: &str) -> Option<Named> {
        // Decoding never lengthens: the raw length bounds the path.
        let mut buf = Vec::with_capacity(raw.len().min(MAX_PROJECT_LEN) + 1);
        for b in percent_encoding::percent_decode_str(raw) {
            if b == 0 || buf.len() == MAX_PROJECT_LEN {
                return None;
            }
            buf.push(b);
        }
        let ok = std::str::from_utf8(&buf).is_ok() && buf.first() == Some(&b'/');
        buf.push(0);
        ok.then_some(Named { buf })
    }

    /// `path` as it is (no percent-decoding), under the same rules as [`Named::decode`].
    pub fn plain(path: &str) -> Option<Named> {
        let bytes = path.as_bytes();
        if bytes.len() > MAX_PROJECT_LEN || bytes.contains(&0) || !path.starts_with('/') {
            return None;
        }
        let mut buf = Vec::with_capacity(bytes.len() + 1);
        buf.extend_from_slice(bytes);
        buf.push(0);
        Some(Named { buf })
    }

    /// The path, as decoded.
    pub fn as_str(&self) -> &str {
        // Checked to be UTF-8 in `decode`, and never changed since.
        std::str::from_utf8(&self.buf[..self.buf.len() - 1]).unwrap_or_default()
    }

    /// The path with its NUL, for the kernel.
    #[cfg(target_os = "linux")]
    fn as_c_str(&self) -> &std::ffi::CStr {
        // `decode` refuses a NUL inside and puts one after the path.
        std::ffi::CStr::from_bytes_with_nul(&self.buf).unwrap_or_default()
    }
}

/// Whether `path` is absolute with no empty, `.` or `..` component and no trailing `/`:
/// such a path that leads through no symlink is its own `realpath`.
fn lexically_canonical(path: &str) -> bool {
    crate::index::canonical_depth(path.as_bytes()).is_some()
}

/// `project` resolved without any I/O, or `None` when that is not possible now and the
/// caller must take [`resolve`]. Borrowed when the path is canonical as given: known so
/// from `memo` when nothing on its way changed since it was last proven, else proven by
/// a walk (and then learned).
#[cfg(target_os = "linux")]
pub fn resolve_cached<'a>(named: &'a Named, memo: Option<&Memo>) -> Option<Cow<'a, Path>> {
    use std::sync::atomic::{AtomicBool, Ordering};

    // Set once the kernel says it has no openat2 or no RESOLVE_CACHED (before 5.12).
    static UNSUPPORTED: AtomicBool = AtomicBool::new(false);
    if UNSUPPORTED.load(Ordering::Relaxed) {
        return None;
    }
    let (project, path) = (named.as_str(), named.as_c_str());
    if lexically_canonical(project) {
        if memo.is_some_and(|m| m.knows(project)) {
            return Some(Cow::Borrowed(Path::new(project)));
        }
        match open_cached(path, libc::RESOLVE_NO_SYMLINKS) {
            Ok(fd) => {
                drop(fd);
                if let Some(memo) = memo {
                    memo.learn(project);
                }
                return Some(Cow::Borrowed(Path::new(project)));
            }
            // A symlink on the way: the kernel resolves it below.
            Err(libc::ELOOP) => {}
            Err(e) => {
                if matches!(e, libc::ENOSYS | libc::EINVAL) {
                    UNSUPPORTED.store(true, Ordering::Relaxed);
                }
                return None;
            }
        }
    }
    let fd = match open_cached(path, 0) {
        Ok(fd) => fd,
        Err(e) => {
            if matches!(e, libc::ENOSYS | libc::EINVAL) {
                UNSUPPORTED.store(true, Ordering::Relaxed);
            }
            return None;
        }
    };
    physical_path(&fd).map(Cow::Owned)
}

/// `path` opened as a directory (`O_PATH`) through the dentry cache alone, with `resolve`
/// added to `RESOLVE_CACHED`; the errno when it is not.
#[cfg(target_os = "linux")]
fn open_cached(path: &std::ffi::CStr, resolve: u64) -> Result<std::os::fd::OwnedFd, i32> {
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: open_how is plain data; all-zero is its empty value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_CACHED | resolve;
    // SAFETY: `path` is NUL-terminated and `how` a valid open_how of the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            libc::AT_FDCWD,
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO));
    }
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The path of the directory open as `fd`, as the kernel walks back up to the root
/// (`/proc/self/fd/N`); `None` for one removed since, or outside our root.
#[cfg(target_os = "linux")]
fn physical_path(fd: &std::os::fd::OwnedFd) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    let mut buf = [0u8; libc::PATH_MAX as usize];
    let mut name = [0u8; 12];
    let name = fd_name(std::os::fd::AsRawFd::as_raw_fd(fd), &mut name)?;
    let dir = proc_fds()?;
    // SAFETY: `dir` is an open directory, `name` NUL-terminated, `buf` writable for its
    // length; readlinkat writes at most that many bytes and says how many.
    let n = unsafe { libc::readlinkat(dir, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    // Negative: an error; the whole buffer: perhaps cut short.
    let n = usize::try_from(n).ok().filter(|&n| n < buf.len())?;
    let bytes = &buf[..n];
    // A directory removed since it was opened reads as "PATH (deleted)", one outside our
    // root without a leading '/': neither is a path `canonicalize` would give.
    if !bytes.starts_with(b"/") || bytes.ends_with(b" (deleted)") {
        return None;
    }
    Some(PathBuf::from(std::ffi::OsString::from_vec(bytes.to_vec())))
}

/// A descriptor's number as a NUL-terminated decimal string in `buf`.
#[cfg(target_os = "linux")]
fn fd_name(fd: i32, buf: &mut [u8; 12]) -> Option<&std::ffi::CStr> {
    let mut n = u32::try_from(fd).ok()?;
    let mut i = buf.len() - 1;
    buf[i] = 0;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::ffi::CStr::from_bytes_with_nul(&buf[i..]).ok()
}

/// `/proc/self/fd`, opened once: reading a link through it skips walking `/proc/self/fd/`
/// on every lookup (a fifth of the resolution's cost, measured).
#[cfg(target_os = "linux")]
fn proc_fds() -> Option<std::os::fd::RawFd> {
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::sync::OnceLock;
    static FDS: OnceLock<Option<OwnedFd>> = OnceLock::new();
    FDS.get_or_init(|| {
        let dir = std::fs::File::open("/proc/self/fd").ok()?;
        Some(OwnedFd::from(dir))
    })
    .as_ref()
    .map(AsRawFd::as_raw_fd)
}

/// Elsewhere there is no way to resolve a path that is sure not to block.
#[cfg(not(target_os = "linux"))]
pub fn resolve_cached<'a>(_project: &'a Named, _memo: Option<&Memo>) -> Option<Cow<'a, Path>> {
    None
}

/// `project` resolved through symlinks when it exists, as it is given when it does not:
/// inline when [`resolve_cached`] can, else on a blocking thread, as the file system may be
/// slow (NFS, a stalled FUSE mount).
pub async fn resolve(project: &str) -> PathBuf {
    let inline = Named::plain(project).and_then(|n| resolve_cached(&n, None).map(Cow::into_owned));
    if let Some(p) = inline {
        return p;
    }
    let p = PathBuf::from(project);
    let raw = p.clone();
    let resolved = tokio::task::spawn_blocking(move || std::fs::canonicalize(&p).unwrap_or(p));
    resolved.await.unwrap_or(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_as_canonicalize_does() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir_all(real.join("sub")).unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
        std::fs::write(dir.path().join("file"), b"").unwrap();
        let canon = |p: &std::path::Path| std::fs::canonicalize(p).unwrap();
        for p in [
            real.clone(),
            real.join("sub"),
            real.join("./sub"),
            real.join("sub/.."),
            dir.path().join("real//sub"),
            dir.path().join("link"),
            dir.path().join("link/sub/.."),
            dir.path().join("link/sub/"),
        ] {
            let s = p.to_str().unwrap();
            // Just made, so in the dentry cache (Linux 5.12 or later has RESOLVE_CACHED). A
            // walk that meets a rename elsewhere (other tests write files by renaming) may
            // be told "not now": asked again, as a request would take the routed path.
            let named = Named::plain(s).unwrap();
            let got = (0..20).find_map(|_| resolve_cached(&named, None).map(Cow::into_owned));
            #[cfg(target_os = "linux")]
            assert_eq!(got, Some(canon(&p)), "{s}");
            #[cfg(not(target_os = "linux"))]
            assert_eq!(got, None);
        }
        for p in [
            "/nonexistent-ckd/x",
            dir.path().join("file").to_str().unwrap(),
        ] {
            assert_eq!(resolve_cached(&Named::plain(p).unwrap(), None), None, "{p}");
        }
        // A canonical path is its own answer, not a copy of it.
        let sub = real.join("sub");
        let named = Named::plain(sub.to_str().unwrap()).unwrap();
        #[cfg(target_os = "linux")]
        assert!((0..20).any(|_| matches!(resolve_cached(&named, None), Some(Cow::Borrowed(_)))));
    }

    #[test]
    fn only_a_normal_absolute_path_is_taken_as_it_is() {
        for p in [
            "/",
            "/srv",
            "/srv/shop",
            "/srv/my shop/x.y",
            "/srv/...",
            "/srv/.a",
        ] {
            assert!(lexically_canonical(p), "{p}");
        }
        for p in [
            "",
            "srv",
            "//",
            "/srv/",
            "/srv//shop",
            "/srv/./shop",
            "/srv/..",
            "/./",
            "/srv/.",
        ] {
            assert!(!lexically_canonical(p), "{p}");
        }
    }

    #[test]
    fn named_decodes_within_the_query_rules() {
        let n = Named::decode("%2Fsrv%2Fmy%20shop").unwrap();
        assert_eq!(n.as_str(), "/srv/my shop");
        #[cfg(target_os = "linux")]
        assert_eq!(n.as_c_str().to_bytes(), b"/srv/my shop");
        assert!(Named::decode("relative").is_none());
        assert!(Named::decode("").is_none());
        assert!(Named::decode("%2Fa%00b").is_none());
        assert!(Named::decode("%2F%FF").is_none(), "not UTF-8");
        let long = format!("/{}", "a".repeat(MAX_PROJECT_LEN - 1));
        assert_eq!(Named::decode(&long).unwrap().as_str(), long);
        assert!(Named::decode(&format!("{long}a")).is_none());
        assert!(Named::plain(&format!("{long}a")).is_none());
        assert_eq!(Named::plain(&long).unwrap().as_str(), long);
    }

    #[tokio::test]
    async fn falls_back_to_the_path_given() {
        assert_eq!(
            resolve("/nonexistent-ckd/x").await,
            PathBuf::from("/nonexistent-ckd/x")
        );
    }

    /// On one kept-alive connection: a project's credential, then the same path after its
    /// directory became a symlink to another project. The second answer is the other
    /// project's, on the inline path as on the routed one (the first lookup of each
    /// credential reads the store; the later ones are answered from the cache).
    #[tokio::test]
    async fn a_directory_swapped_for_a_symlink_is_seen_by_the_next_request() {
        use crate::agent::{Agent, AgentConfig};
        use crate::credential::{CredentialType, Origin};
        use crate::index::{new_meta, Index};
        use crate::store::memory::MemoryStore;
        use crate::store::{SecretKey, Which};
        use std::sync::Arc;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let (a, b, plain) = (root.join("a"), root.join("b"), root.join("plain"));
        for p in [&a, &b, &plain] {
            std::fs::create_dir(p).unwrap();
        }
        let store = Arc::new(MemoryStore::new());
        let mut index = Index::default();
        let origin = Origin::parse("shop.example").unwrap();
        for (scope, name) in [(Some(&a), "A"), (Some(&b), "B"), (None, "ANY")] {
            let scope = scope.map(|p| p.to_str().unwrap().to_owned());
            index.upsert(new_meta(
                origin.clone(),
                scope.clone(),
                CredentialType::Bearer,
                1,
            ));
            let json = format!(r#"{{"type":"bearer","token":"SECRET-{name}"}}"#);
            let key = SecretKey::new(&origin, scope.as_deref(), Which::Current);
            store.set(&key, json.as_bytes()).unwrap();
        }
        let agent = Agent::new(
            store,
            index,
            AgentConfig {
                index_path: root.join("index.json"),
                backend_timeout: std::time::Duration::from_secs(5),
                backend_reason: "in-process tests".into(),
            },
        );
        let sock = root.join("s.sock");
        let listener = tokio::net::UnixListener::bind(&sock).unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(crate::server::run(
            listener,
            Arc::new(agent),
            crate::server::Limits::default(),
            async move {
                let _ = stopped.await;
            },
        ));
        let mut c = tokio::net::UnixStream::connect(&sock).await.unwrap();
        // The body of `GET /v1/{route}?project=PROJECT` on the one connection.
        let mut get = async |route: &str, project: &std::path::Path| -> String {
            let req = format!(
                "GET /v1/{route}?project={} HTTP/1.1\r\nHost: x\r\n\r\n",
                project.to_str().unwrap().replace('/', "%2F")
            );
            c.write_all(req.as_bytes()).await.unwrap();
            let mut buf = Vec::new();
            loop {
                let mut chunk = [0u8; 4096];
                let n = c.read(&mut chunk).await.unwrap();
                assert!(n > 0, "the server closed the connection");
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).into_owned();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap();
                    if body.len() >= len {
                        assert!(head.starts_with("HTTP/1.1 200"), "{text}");
                        return body.to_owned();
                    }
                }
            }
        };
        // The token released for PROJECT, and the scope `GET /v1/origins` lists for it.
        let mut ask = async |project: &std::path::Path| -> (String, Option<String>) {
            let body = get("credentials/shop.example", project).await;
            let token = body.split("SECRET-").nth(1).unwrap();
            let token = token.split('"').next().unwrap().to_owned();
            let list: serde_json::Value =
                serde_json::from_str(&get("origins", project).await).unwrap();
            let scope = list["origins"][0]["project"].as_str().map(str::to_owned);
            (token, scope)
        };
        let scope = |p: &std::path::Path| Some(p.to_str().unwrap().to_owned());
        // Each twice: the first reads the store, the second is the cached, inline path.
        for _ in 0..2 {
            assert_eq!(ask(&a).await, ("A".into(), scope(&a)));
            assert_eq!(ask(&b).await, ("B".into(), scope(&b)));
            assert_eq!(ask(&plain).await, ("ANY".into(), None));
        }
        std::fs::rename(&a, root.join("a.old")).unwrap();
        std::os::unix::fs::symlink(&b, &a).unwrap();
        assert_eq!(
            ask(&a).await,
            ("B".into(), scope(&b)),
            "the path now resolves to project b"
        );
        std::fs::remove_file(&a).unwrap();
        std::os::unix::fs::symlink(&plain, &a).unwrap();
        assert_eq!(
            ask(&a).await,
            ("ANY".into(), None),
            "the path now resolves to an unscoped directory"
        );
        std::fs::remove_file(&a).unwrap();
        std::fs::rename(root.join("a.old"), &a).unwrap();
        assert_eq!(
            ask(&a).await,
            ("A".into(), scope(&a)),
            "the project is back"
        );
        drop(c);
        let _ = stop.send(());
        server.await.unwrap();
    }
}
