//! The kernel's word on a process: who is at the other end of a socket, whether a pid is a
//! composer-keyd daemon of ours, and the name of a uid.

use std::io;
use std::path::Path;

/// Who is at the other end of a connected Unix socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerCred {
    /// The peer's effective uid when it connected.
    pub uid: u32,
    /// The peer's pid, where the OS tells it (Linux).
    pub pid: Option<i32>,
}

/// The peer credentials of the connected Unix socket `fd` (SO_PEERCRED).
#[cfg(target_os = "linux")]
pub fn peer_cred(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<PeerCred> {
    use std::os::fd::AsRawFd;
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: cred and len are valid for writes of the sizes given; fd is borrowed, so open.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            std::ptr::addr_of_mut!(cred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(PeerCred {
        uid: cred.uid,
        pid: Some(cred.pid).filter(|&p| p > 0),
    })
}

/// The peer credentials of the connected Unix socket `fd` (getpeereid).
#[cfg(any(target_os = "macos", target_os = "freebsd", target_os = "openbsd"))]
pub fn peer_cred(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<PeerCred> {
    use std::os::fd::AsRawFd;
    let mut uid: libc::uid_t = 0;
    let mut gid: libc::gid_t = 0;
    // SAFETY: uid and gid are valid for writes; fd is borrowed, so open.
    if unsafe { libc::getpeereid(fd.as_raw_fd(), &mut uid, &mut gid) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(PeerCred { uid, pid: None })
}

/// No peer credentials on this platform: the lstat walk is the only check.
#[cfg(not(any(
    target_os = "linux",
    target_os = "macos",
    target_os = "freebsd",
    target_os = "openbsd"
)))]
pub fn peer_cred(_fd: std::os::fd::BorrowedFd<'_>) -> io::Result<PeerCred> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Whether `pid` is a composer-keyd process of user `me`, so that it may be signalled.
/// Linux only: elsewhere nothing is verified, so nothing is signalled.
#[cfg(target_os = "linux")]
pub fn is_our_daemon(pid: i32, me: u32) -> bool {
    if pid <= 0 {
        return false;
    }
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    // Real, effective, saved and filesystem uid must all be ours.
    let uids_ours = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .is_some_and(|u| {
            let ids: Vec<_> = u.split_whitespace().collect();
            ids.len() == 4 && ids.iter().all(|id| id.parse() == Ok(me))
        });
    if !uids_ours {
        return false;
    }
    match std::fs::read_link(format!("/proc/{pid}/exe")) {
        Ok(exe) => is_keyd_exe(&exe),
        // A non-dumpable daemon (as ours is) hides its exe from a same-uid caller without
        // CAP_SYS_PTRACE; its comm, set from the executable's name at exec, is what remains.
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim_end() == "composer-keyd")
        }
        Err(_) => false,
    }
}

/// Whether `pid` is a composer-keyd process of user `me`: never verified on this platform.
#[cfg(not(target_os = "linux"))]
pub fn is_our_daemon(_pid: i32, _me: u32) -> bool {
    false
}

/// Whether `exe` (as `/proc/PID/exe` shows it) is a composer-keyd binary, also one replaced
/// by an upgrade since it started.
pub fn is_keyd_exe(exe: &Path) -> bool {
    let name = exe.file_name().map(|n| n.to_string_lossy().into_owned());
    name.as_deref()
        .map(|n| n.strip_suffix(" (deleted)").unwrap_or(n))
        .is_some_and(|n| n == "composer-keyd")
}

/// The user name of `uid`, when the password database has one.
pub fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: passwd is plain data; getpwuid_r fills it with pointers into `buf`.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for writes of the sizes given, and `buf` outlives the
    // use of the pointers stored in `pwd`.
    let rc = unsafe {
        libc::getpwuid_r(
            uid,
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: pw_name points at a NUL-terminated string inside `buf`.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    Some(name.to_string_lossy().into_owned())
}
