//! The client's socket trust rule on real directories and links owned by other uids
//! (made with chown as root): what a non-root caller admits and refuses.

use crate::support;

use composer_keyd::trust::{self, CheckError, Checked, Placement, Problem, TrustedSocket};
use std::os::unix::fs::{lchown, symlink};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use support::impostor::{chmod, Sandbox, NOBODY};

fn refusal(r: Result<Checked, CheckError>) -> Problem {
    match r {
        Err(CheckError::Untrusted(u)) => u.problem,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// A root-owned 0755 directory under a fresh sandbox.
fn root_dir(s: &Sandbox, name: &str) -> PathBuf {
    let d = s.dir.path().join(name);
    std::fs::create_dir(&d).unwrap();
    chmod(&d, 0o755);
    d
}

#[test]
fn a_socket_root_put_in_a_root_owned_dir_is_admitted_for_its_owner() {
    let s = Sandbox::new();
    // Like a container's /run, where root bind-mounted the host user's socket.
    let run_dir = root_dir(&s, "run");
    let sock = run_dir.join("composer-keyd.sock");
    let _l = UnixListener::bind(&sock).unwrap();
    lchown(&sock, Some(1234), Some(1234)).unwrap();
    let t = match trust::check_socket_as(&sock, Placement::Explicit, NOBODY).unwrap() {
        Checked::Trusted(t) => t,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        t,
        TrustedSocket {
            owner: 1234,
            via_root_dir: true
        }
    );
    assert!(t.admits_peer(1234, NOBODY));
    assert!(t.admits_peer(NOBODY, NOBODY));
    assert!(!t.admits_peer(4321, NOBODY));

    // The same socket in a directory of another (non-root) user is refused.
    std::os::unix::fs::chown(&run_dir, Some(1234), Some(1234)).unwrap();
    assert!(matches!(
        refusal(trust::check_socket_as(&sock, Placement::Explicit, NOBODY)),
        Problem::Owner { ref path, .. } if path == &run_dir
    ));
}

#[test]
fn sticky_root_dir_is_a_step_never_the_parent() {
    let s = Sandbox::new();
    let sticky = root_dir(&s, "sticky");
    chmod(&sticky, 0o1777);
    let mine = sticky.join("mine");
    std::fs::create_dir(&mine).unwrap();
    chmod(&mine, 0o700);
    let _a = UnixListener::bind(mine.join("agent.sock")).unwrap();
    let _b = UnixListener::bind(sticky.join("agent.sock")).unwrap();
    assert!(matches!(
        trust::check_socket_as(&mine.join("agent.sock"), Placement::Explicit, 0),
        Ok(Checked::Trusted(_))
    ));
    assert!(matches!(
        refusal(trust::check_socket_as(
            &sticky.join("agent.sock"),
            Placement::Explicit,
            0
        )),
        Problem::Sticky { .. }
    ));
    // A sticky directory of another user is no safe step.
    std::os::unix::fs::chown(&sticky, Some(NOBODY), Some(NOBODY)).unwrap();
    assert!(matches!(
        refusal(trust::check_socket_as(&mine.join("agent.sock"), Placement::Explicit, 0)),
        Problem::Owner { ref path, .. } if path == &sticky
    ));
}

#[test]
fn a_symlink_planted_by_another_uid_is_refused_roots_is_followed() {
    let s = Sandbox::new();
    let real = root_dir(&s, "real");
    let _l = UnixListener::bind(real.join("agent.sock")).unwrap();
    let links = root_dir(&s, "links");
    let link = links.join("to-real");
    symlink(&real, &link).unwrap();
    let via = link.join("agent.sock");
    assert!(matches!(
        trust::check_socket_as(&via, Placement::Explicit, 0),
        Ok(Checked::Trusted(_))
    ));
    lchown(&link, Some(NOBODY), Some(NOBODY)).unwrap();
    match refusal(trust::check_socket_as(&via, Placement::Explicit, 0)) {
        Problem::LinkOwner { path, owner } => {
            assert_eq!(path, link);
            assert_eq!(owner.0, NOBODY);
        }
        p => panic!("{p:?}"),
    }
}
