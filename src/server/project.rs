//! The project directory a lookup names, resolved through symlinks: on the async thread when the kernel can do it from its caches alone, else on a blocking thread.
//!
//! Every request resolves its project afresh; nothing is remembered between requests, so
//! a project directory replaced by a symlink is seen by the next request that names it.
//! What makes that cheap is where it runs, not fewer checks: `openat2` with
//! `RESOLVE_CACHED` walks the path only through the kernel's dentry cache and fails with
//! `EAGAIN` when any component would need I/O or a revalidation that may sleep (NFS, a
//! FUSE mount), so it can run on the daemon's single async thread; the directory's path is
//! then the kernel's own (`/proc/self/fd/N`, `d_path`), the physical path `realpath(3)`
//! gives. Three system calls and no lock, against `realpath`'s one system call per path
//! component on a blocking thread. Anything else (not cached, not a directory, gone, an
//! older kernel, no `/proc`) takes the blocking `canonicalize`, as before.

use std::path::PathBuf;

/// `project` resolved without any I/O, or `None` when that is not possible now and the
/// caller must take [`resolve`].
#[cfg(target_os = "linux")]
pub fn resolve_cached(project: &str) -> Option<PathBuf> {
    use std::ffi::CString;
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStringExt;
    use std::sync::atomic::{AtomicBool, Ordering};

    // Set once the kernel says it has no openat2 or no RESOLVE_CACHED (before 5.12).
    static UNSUPPORTED: AtomicBool = AtomicBool::new(false);
    if UNSUPPORTED.load(Ordering::Relaxed) {
        return None;
    }
    let path = CString::new(project).ok()?;
    // SAFETY: open_how is plain data; all-zero is its empty value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_CACHED;
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
        let err = std::io::Error::last_os_error().raw_os_error();
        if matches!(err, Some(libc::ENOSYS) | Some(libc::EINVAL)) {
            UNSUPPORTED.store(true, Ordering::Relaxed);
        }
        return None;
    }
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let mut buf = [0u8; libc::PATH_MAX as usize];
    let name = CString::new(std::os::fd::AsRawFd::as_raw_fd(&fd).to_string()).ok()?;
    let dir = proc_fds()?;
    // SAFETY: `dir` is an open directory, `name` NUL-terminated, `buf` writable for its
    // length; readlinkat writes at most that many bytes and says how many.
    let n = unsafe { libc::readlinkat(dir, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    drop(fd);
    // Negative: an error; the whole buffer: perhaps cut short.
    let n = usize::try_from(n).ok().filter(|&n| n < buf.len())?;
    let bytes = buf[..n].to_vec();
    // A directory removed since it was opened reads as "PATH (deleted)", one outside our
    // root without a leading '/': neither is a path `canonicalize` would give.
    if !bytes.starts_with(b"/") || bytes.ends_with(b" (deleted)") {
        return None;
    }
    Some(PathBuf::from(std::ffi::OsString::from_vec(bytes)))
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
pub fn resolve_cached(_project: &str) -> Option<PathBuf> {
    None
}

/// `project` resolved through symlinks when it exists, as it is given when it does not:
/// inline when [`resolve_cached`] can, else on a blocking thread, as the file system may be
/// slow (NFS, a stalled FUSE mount).
pub async fn resolve(project: &str) -> PathBuf {
    if let Some(p) = resolve_cached(project) {
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
            dir.path().join("link"),
            dir.path().join("link/sub/.."),
            dir.path().join("link/sub/"),
        ] {
            let s = p.to_str().unwrap();
            // Just made, so in the dentry cache (Linux 5.12 or later has RESOLVE_CACHED).
            let got = resolve_cached(s);
            #[cfg(target_os = "linux")]
            assert_eq!(got, Some(canon(&p)), "{s}");
            #[cfg(not(target_os = "linux"))]
            assert_eq!(got, None);
        }
        for p in [
            "/nonexistent-ckd/x",
            dir.path().join("file").to_str().unwrap(),
        ] {
            assert_eq!(resolve_cached(p), None, "{p}");
        }
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
        let mut ask = async |project: &std::path::Path| -> String {
            let req = format!(
                "GET /v1/credentials/shop.example?project={} HTTP/1.1\r\nHost: x\r\n\r\n",
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
                        let token = body.split("SECRET-").nth(1).unwrap();
                        return token.split('"').next().unwrap().to_owned();
                    }
                }
            }
        };
        // Each twice: the first reads the store, the second is the cached, inline path.
        for _ in 0..2 {
            assert_eq!(ask(&a).await, "A");
            assert_eq!(ask(&b).await, "B");
            assert_eq!(ask(&plain).await, "ANY");
        }
        std::fs::rename(&a, root.join("a.old")).unwrap();
        std::os::unix::fs::symlink(&b, &a).unwrap();
        assert_eq!(ask(&a).await, "B", "the path now resolves to project b");
        std::fs::remove_file(&a).unwrap();
        std::os::unix::fs::symlink(&plain, &a).unwrap();
        assert_eq!(
            ask(&a).await,
            "ANY",
            "the path now resolves to an unscoped directory"
        );
        std::fs::remove_file(&a).unwrap();
        std::fs::rename(root.join("a.old"), &a).unwrap();
        assert_eq!(ask(&a).await, "A", "the project is back");
        drop(c);
        let _ = stop.send(());
        server.await.unwrap();
    }
}
