//! The age-file backend behind the backend seam, with a real daemon: the call time-out asked
//! on every call (after `migrate`), the wrong-passphrase back-off that holds no lock, and a
//! rollback of the file with its sidecar noticed by the daemon's memory.

use crate::support;

use std::path::PathBuf;
use std::time::{Duration, Instant};
use support::{request, Reply, TestEnv};

const PW: &str = "age file passphrase";
const WRONG: &str = "not the passphrase";

fn unlock(t: &TestEnv, pass: &str) -> Reply {
    let body = serde_json::json!({ "passphrase": pass }).to_string();
    request(&t.socket(), "POST", "/v1/unlock", Some(&body)).expect("the daemon answers")
}

/// The seconds a `retry-later` refusal names ("... try again in N s ...").
fn retry_secs(r: &Reply) -> Option<u64> {
    let msg = r.json()["error"]["message"].as_str()?.to_owned();
    let at = msg.find("try again in ")? + "try again in ".len();
    msg[at..].split(' ').next()?.parse().ok()
}

/// A wrong passphrase, tried until the daemon answers it (waiting out a back-off it names).
/// Returns the answer.
fn wrong_unlock(t: &TestEnv) -> Reply {
    for _ in 0..40 {
        let r = unlock(t, WRONG);
        if r.kind() != "retry-later" {
            return r;
        }
        let secs = retry_secs(&r).unwrap_or_else(|| panic!("no retry time: {}", r.body));
        std::thread::sleep(Duration::from_secs(secs.max(1)));
    }
    panic!("the back-off never ended");
}

fn data_dir(t: &TestEnv) -> PathBuf {
    PathBuf::from(&t.env["XDG_DATA_HOME"]).join("composer-keyd")
}

/// The bug of issue 27: the call time-out was chosen at start by the backend kind, so after
/// `migrate` from the keyring to the age file the keyring's 5 s held for the age file, whose
/// back-off slept longer: from the 4th wrong passphrase on, `unlock` answered "did not answer
/// in time" while the blocking thread slept on. Each wrong try must answer as such.
#[test]
fn wrong_unlocks_after_migrating_to_the_age_file_answer_wrong_passphrase() {
    let mut t = TestEnv::with_keyring(true);
    t.env
        .insert("COMPOSER_KEYD_TEST_SCRYPT_LOG_N".into(), "12".into());
    let mut d = t.start_daemon(&[]);
    assert_eq!(t.status_json()["backend"], "keyring");
    t.ok(&["add", "github.com", "--type", "github-oauth"], "ghp_x\n");
    // The old name on the command line still works (with a note, checked below).
    let moved = t.cli(&["migrate", "--to", "vault"], &format!("{PW}\n{PW}\n"));
    assert!(moved.status.success(), "{moved:?}");
    let s = t.status_json();
    assert!(s["backend"] == "age-file" || s["backend"] == "vault", "{s}");
    t.ok(&["lock"], "");
    for n in 1..=5 {
        let r = wrong_unlock(&t);
        assert_eq!(
            r.kind(),
            "wrong-passphrase",
            "wrong passphrase #{n}: {}",
            r.body
        );
    }
    let r = loop {
        let r = unlock(&t, PW);
        if r.kind() != "retry-later" {
            break r;
        }
        std::thread::sleep(Duration::from_secs(retry_secs(&r).unwrap_or(1).max(1)));
    };
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(t.credential("github.com", None)["token"], "ghp_x");
    let note = String::from_utf8_lossy(&moved.stderr);
    assert!(
        note.contains("\"vault\" is the old name of the age-file backend"),
        "{note}"
    );
    assert!(d.stop().success());
}

/// Issue 22: a wrong passphrase costs a back-off, but the back-off holds no lock: a write goes
/// through while it runs, and a further try during it is refused at once, saying when to
/// retry (also through the CLI).
#[test]
fn the_back_off_holds_no_lock_and_refuses_further_tries_at_once() {
    let mut t = TestEnv::fast_vault();
    t.env
        .insert("COMPOSER_KEYD_BACKEND".into(), "age-file".into());
    let mut d = t.start_daemon(&[]);
    t.ok(&["unlock"], &format!("{PW}\n{PW}\n"));
    t.ok(&["add", "github.com", "--type", "github-oauth"], "ghp_1\n");
    // Wrong passphrases, each waited out, until one's back-off is 4 s or more. Within it, a
    // write of the unlocked daemon (which takes the writer lock) proceeds, and a further try
    // is refused without trying the passphrase, saying when to retry. A run too slow to fit
    // in the back-off tries again with the next, longer one; none is asserted to be fast.
    for _ in 0..2 {
        assert_eq!(wrong_unlock(&t).kind(), "wrong-passphrase");
    }
    let mut seen = false;
    for round in 0..3 {
        assert_eq!(wrong_unlock(&t).kind(), "wrong-passphrase");
        let started = Instant::now();
        let origin = format!("git{round}.example.com");
        t.ok(&["add", &origin, "--type", "bearer"], "tok\n");
        let r = unlock(&t, PW);
        if started.elapsed() >= Duration::from_secs(4) {
            continue;
        }
        assert_eq!(r.kind(), "retry-later", "{}", r.body);
        assert_eq!(r.status, 429, "{}", r.body);
        assert!(retry_secs(&r).is_some_and(|s| s <= 16), "{}", r.body);
        // The CLI prints it.
        let out = t.cli(&["unlock"], &format!("{PW}\n"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(err.contains("try again in"), "{err}");
        assert_eq!(t.credential(&origin, None)["token"], "tok");
        seen = true;
        break;
    }
    assert!(seen, "no round fitted in its back-off");
    // The daemon stayed unlocked throughout and holds both writes.
    assert_eq!(t.credential("github.com", None)["token"], "ghp_1");
    assert!(d.stop().success());
}

/// Issue 22: the age file copied away with its sidecar, written to, and both put back is an
/// old copy the sidecar cannot tell; the daemon's memory of the generation can.
#[test]
fn a_rollback_with_its_sidecar_is_refused_by_the_daemons_memory() {
    let mut t = TestEnv::fast_vault();
    t.env
        .insert("COMPOSER_KEYD_BACKEND".into(), "age-file".into());
    let mut d = t.start_daemon(&[]);
    t.ok(&["unlock"], &format!("{PW}\n{PW}\n"));
    t.ok(
        &["add", "github.com", "--type", "github-oauth"],
        "ghp_old\n",
    );
    let dir = data_dir(&t);
    let names = ["vault.age", "vault-state.json"];
    let saved: Vec<Vec<u8>> = names
        .iter()
        .map(|n| std::fs::read(dir.join(n)).unwrap())
        .collect();
    t.ok(&["rotate", "github.com"], "ghp_new\n");
    t.ok(&["lock"], "");
    for (n, bytes) in names.iter().zip(&saved) {
        std::fs::write(dir.join(n), bytes).unwrap();
    }
    let r = unlock(&t, PW);
    assert_eq!(r.kind(), "age-file-rolled-back", "{}", r.body);
    assert_eq!(t.status_json()["locked"], true);
    let out = t.cli(&["unlock"], &format!("{PW}\n"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("older copy"), "{err}");
    // A restarted daemon has no memory of it: that is the documented limit (the sidecar was
    // rolled back too), and the user's way to accept a copy put back on purpose.
    assert!(d.stop().success());
    let mut d = t.start_daemon(&[]);
    let r = unlock(&t, PW);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(t.credential("github.com", None)["token"], "ghp_old");
    assert!(d.stop().success());
}
