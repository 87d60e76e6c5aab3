//! Unit tests of the trust walk on real directories this user can make (no root needed).

use super::*;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A private dir under /tmp (a root-owned sticky dir: the intermediate step to test).
fn base() -> tempfile::TempDir {
    let t = tempfile::Builder::new()
        .prefix("ckd-trust-")
        .tempdir_in("/tmp")
        .unwrap();
    chmod(t.path(), 0o755);
    t
}

/// `dir` (created with `mode`) holding a live socket; the listener keeps it bound.
fn socket_in(dir: &Path, mode: u32) -> (PathBuf, UnixListener) {
    std::fs::create_dir_all(dir).unwrap();
    chmod(dir, mode);
    let sock = dir.join("agent.sock");
    let l = UnixListener::bind(&sock).unwrap();
    (sock, l)
}

fn problem(r: Result<Checked, CheckError>) -> Problem {
    match r {
        Err(CheckError::Untrusted(u)) => u.problem,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn own_private_dir_below_sticky_tmp_is_trusted() {
    let meta = std::fs::metadata("/tmp").unwrap();
    assert!(
        meta.uid() == 0 && meta.mode() & 0o1000 != 0,
        "this test needs /tmp to be root's sticky directory"
    );
    let t = base();
    let (sock, _l) = socket_in(&t.path().join("composer-keyd-x"), 0o700);
    let me = euid();
    assert_eq!(
        check_socket(&sock, Placement::Default).unwrap(),
        Checked::Trusted(TrustedSocket {
            owner: me,
            via_root_dir: false
        })
    );
}

#[test]
fn sticky_dir_cannot_be_the_parent() {
    let sock = PathBuf::from(format!("/tmp/ckd-trust-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&sock);
    let _l = UnixListener::bind(&sock).unwrap();
    let p = problem(check_socket(&sock, Placement::Explicit));
    std::fs::remove_file(&sock).unwrap();
    assert!(
        matches!(p, Problem::Sticky { ref path, .. } if path == Path::new("/tmp")),
        "{p:?}"
    );
}

#[test]
fn missing_socket_or_directory_is_missing() {
    let t = base();
    let dir = t.path().join("d");
    assert_eq!(
        check_socket(&dir.join("agent.sock"), Placement::Default).unwrap(),
        Checked::Missing
    );
    std::fs::create_dir(&dir).unwrap();
    chmod(&dir, 0o700);
    assert_eq!(
        check_socket(&dir.join("agent.sock"), Placement::Default).unwrap(),
        Checked::Missing
    );
}

#[test]
fn default_dir_must_be_0700_explicit_must_not_be_writable() {
    let t = base();
    let (sock, _l) = socket_in(&t.path().join("open"), 0o755);
    assert!(matches!(
        problem(check_socket(&sock, Placement::Default)),
        Problem::Mode { mode: 0o755, .. }
    ));
    assert!(matches!(
        check_socket(&sock, Placement::Explicit),
        Ok(Checked::Trusted(_))
    ));
    chmod(sock.parent().unwrap(), 0o770);
    assert!(matches!(
        problem(check_socket(&sock, Placement::Explicit)),
        Problem::Writable { mode: 0o770, .. }
    ));
}

#[test]
fn writable_intermediate_is_refused() {
    let t = base();
    let mid = t.path().join("mid");
    let (sock, _l) = socket_in(&mid.join("composer-keyd"), 0o700);
    chmod(&mid, 0o777);
    match problem(check_socket(&sock, Placement::Default)) {
        Problem::Writable { path, mode } => assert_eq!((path, mode), (mid, 0o777)),
        p => panic!("{p:?}"),
    }
}

#[test]
fn own_symlinks_are_followed_but_never_as_the_default_dir() {
    let t = base();
    let (sock, _l) = socket_in(&t.path().join("real"), 0o700);
    let link = t.path().join("link");
    std::os::unix::fs::symlink("real", &link).unwrap();
    assert!(matches!(
        problem(check_socket(&link.join("agent.sock"), Placement::Default)),
        Problem::Symlink { .. }
    ));
    assert!(matches!(
        check_socket(&link.join("agent.sock"), Placement::Explicit),
        Ok(Checked::Trusted(_))
    ));
    // A link in the middle of the path, to an absolute target.
    let via = t.path().join("via");
    std::os::unix::fs::symlink(t.path(), &via).unwrap();
    assert!(matches!(
        check_socket(&via.join("real/agent.sock"), Placement::Default),
        Ok(Checked::Trusted(_))
    ));
    let dotdot = t.path().join("real/../real/agent.sock");
    assert!(matches!(
        check_socket(&dotdot, Placement::Default),
        Ok(Checked::Trusted(_))
    ));
    assert_eq!(sock, t.path().join("real/agent.sock"));
}

#[test]
fn a_symlink_loop_ends() {
    let t = base();
    std::os::unix::fs::symlink("b", t.path().join("a")).unwrap();
    std::os::unix::fs::symlink("a", t.path().join("b")).unwrap();
    assert!(matches!(
        problem(check_socket(
            &t.path().join("a/x/agent.sock"),
            Placement::Explicit
        )),
        Problem::TooManyLinks { .. }
    ));
}

#[test]
fn the_socket_must_be_a_socket_not_a_link() {
    let t = base();
    let (sock, _l) = socket_in(&t.path().join("d"), 0o700);
    let file = t.path().join("d/file");
    std::fs::write(&file, b"").unwrap();
    assert!(matches!(
        problem(check_socket(&file, Placement::Default)),
        Problem::NotASocket { .. }
    ));
    let link = t.path().join("d/link.sock");
    std::os::unix::fs::symlink(&sock, &link).unwrap();
    assert!(matches!(
        problem(check_socket(&link, Placement::Default)),
        Problem::NotASocket { .. }
    ));
}

#[test]
fn another_caller_is_refused_our_directory_in_one_line() {
    let t = base();
    let (sock, _l) = socket_in(&t.path().join("composer-keyd-x"), 0o700);
    let me = euid();
    let other = if me == 4242 { 4243 } else { 4242 };
    let err = match check_socket_as(&sock, Placement::Default, other) {
        Err(CheckError::Untrusted(u)) => u,
        r => panic!("{r:?}"),
    };
    let Problem::Owner { path, owner, .. } = &err.problem else {
        panic!("{err:?}");
    };
    assert_eq!(owner.0, me);
    let line = err.to_string();
    assert!(!line.contains('\n'), "{line}");
    assert!(
        line.starts_with(&format!(
            "refusing to use {}: {}",
            sock.display(),
            path.display()
        )),
        "{line}"
    );
    assert!(line.contains(&format!("owned by uid {me}")), "{line}");
    assert!(
        line.contains(&format!("not by you (uid {other})")),
        "{line}"
    );
    assert!(
        line.ends_with("set XDG_RUNTIME_DIR or COMPOSER_KEYD_SOCK to a private directory"),
        "{line}"
    );
}

#[test]
fn private_dirs() {
    let t = base();
    let d = t.path().join("data");
    assert!(!check_private_dir(&d).unwrap());
    std::fs::create_dir(&d).unwrap();
    chmod(&d, 0o755);
    assert!(check_private_dir(&d).unwrap());
    chmod(&d, 0o775);
    assert!(matches!(
        check_private_dir(&d),
        Err(CheckError::Untrusted(Untrusted {
            problem: Problem::Writable { .. },
            ..
        }))
    ));
    let link = t.path().join("link");
    std::os::unix::fs::symlink(&d, &link).unwrap();
    assert!(matches!(
        check_private_dir(&link),
        Err(CheckError::Untrusted(Untrusted {
            problem: Problem::Symlink { .. },
            ..
        }))
    ));
}

#[test]
fn placement_of_default_dirs() {
    let dirs = [PathBuf::from("/run/user/1/composer-keyd")];
    assert_eq!(
        Placement::of(Path::new("/run/user/1/composer-keyd/agent.sock"), &dirs),
        Placement::Default
    );
    assert_eq!(
        Placement::of(Path::new("/run/composer-keyd.sock"), &dirs),
        Placement::Explicit
    );
}

#[test]
fn peer_of_a_socketpair_is_us() {
    use std::os::fd::AsFd;
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let p = peer_cred(a.as_fd()).unwrap();
    assert_eq!(p.uid, euid());
    #[cfg(target_os = "linux")]
    assert_eq!(p.pid, Some(std::process::id() as i32));
}

#[test]
fn keyd_exe_names() {
    assert!(is_keyd_exe(Path::new("/usr/bin/composer-keyd")));
    assert!(is_keyd_exe(Path::new("/usr/bin/composer-keyd (deleted)")));
    assert!(!is_keyd_exe(Path::new("/usr/bin/python3")));
    assert!(!is_keyd_exe(Path::new("/usr/bin/composer-keyd-evil")));
}

#[cfg(target_os = "linux")]
#[test]
fn a_test_binary_is_not_our_daemon() {
    let me = std::process::id() as i32;
    assert!(!is_our_daemon(me, euid()));
    assert!(!is_our_daemon(0, euid()));
}
