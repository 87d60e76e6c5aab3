//! `migrate` between a real gnome-keyring and the vault, crashes in the middle of it, and
//! unlock timers on the keyring backend.

use crate::support;

use composer_keyd::credential::Origin;
use composer_keyd::secret::Secret;
use composer_keyd::store::age_file::AgeFileStore;
use composer_keyd::store::{SecretKey, Which};
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::{request, Daemon, TestEnv};

const PUB: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
const PRIV: &str = "0f9e8d7c6b5a49382716f5e4d3c2b1a0";
const PW: &str = "migration passphrase";

fn env() -> TestEnv {
    let mut t = TestEnv::with_keyring(true);
    t.env
        .insert("COMPOSER_KEYD_TEST_SCRYPT_LOG_N".into(), "12".into());
    t
}

fn vault_path(t: &TestEnv) -> PathBuf {
    PathBuf::from(&t.env["XDG_DATA_HOME"]).join("composer-keyd/vault.age")
}

fn config(t: &TestEnv) -> String {
    let p = PathBuf::from(&t.env["XDG_CONFIG_HOME"]).join("composer-keyd/config.toml");
    std::fs::read_to_string(p).unwrap_or_default()
}

fn status(t: &TestEnv) -> serde_json::Value {
    request(&t.socket(), "GET", "/v1/status", None)
        .unwrap()
        .json()
}

/// The keyring entry for an account, via libsecret's own tool.
fn in_keyring(t: &TestEnv, service: &str, account: &str) -> Option<String> {
    support::require("secret-tool", "libsecret-tools");
    let out = t
        .command("secret-tool")
        .args(["lookup", "service", service, "username", account])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn vault_has(t: &TestEnv, account: &str) -> bool {
    let v = AgeFileStore::new(vault_path(t));
    v.unlock(Some(&Secret::from(PW))).expect("the vault opens");
    let key = SecretKey::new(&Origin::parse(account).unwrap(), None, Which::Current);
    v.get(&key).unwrap().is_some()
}

/// Every credential the test stored, read through the daemon.
fn check_all(t: &TestEnv, project: &Path) {
    assert_eq!(t.credential("repo.magento.com", None)["password"], PRIV);
    assert_eq!(
        t.credential("repo.magento.com", Some(project))["username"],
        "acme-pub"
    );
    assert_eq!(t.credential("github.com", None)["token"], "ghp_second");
    assert_eq!(t.credential("127.0.0.1:8080", None)["token"], "tok-port");
}

fn wait_log(d: &Daemon, needle: &str) {
    // Bounded: 400 x 50 ms.
    for _ in 0..400 {
        if d.log_text().contains(needle) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{needle:?} never appeared in the log: {}", d.log_text());
}

#[test]
fn migrate_keyring_to_vault_and_back_keeps_everything() {
    let t = env();
    let project = t.dir.path().join("acme");
    std::fs::create_dir_all(&project).unwrap();
    let project = project.canonicalize().unwrap();
    let mut d = t.start_daemon(&[]);
    assert_eq!(status(&t)["backend"], "keyring");
    t.ok(&["add", "repo.magento.com"], &format!("{PUB}\n{PRIV}\n"));
    let p = project.to_str().unwrap();
    t.ok(
        &["add", "repo.magento.com", "--project", p],
        "acme-pub\nacme-priv\n",
    );
    t.ok(
        &["add", "github.com", "--type", "github-oauth"],
        "ghp_first\n",
    );
    t.ok(&["rotate", "github.com"], "ghp_second\n");
    t.ok(&["add", "127.0.0.1:8080", "--type", "bearer"], "tok-port\n");
    check_all(&t, &project);
    assert!(in_keyring(&t, "composer-keyd", "github.com").is_some());

    // keyring -> age file: creating it asks for the passphrase twice.
    let out = t.ok(&["migrate", "--to", "age-file"], &format!("{PW}\n{PW}\n"));
    assert!(
        out.contains("Copied 5 secret(s) from the keyring to the age file"),
        "{out}"
    );
    assert!(
        out.contains("Removed 5 secret(s) from the keyring"),
        "{out}"
    );
    assert_eq!(status(&t)["backend"], "age-file");
    assert_eq!(status(&t)["locked"], false);
    assert!(
        config(&t).contains("backend = \"age-file\""),
        "{}",
        config(&t)
    );
    check_all(&t, &project);
    assert_eq!(in_keyring(&t, "composer-keyd", "github.com"), None);
    assert_eq!(in_keyring(&t, "composer-keyd.previous", "github.com"), None);
    assert!(vault_has(&t, "github.com"));

    // The vault is what a restarted daemon uses, locked until unlock.
    assert!(d.stop().success());
    let mut d = t.start_daemon(&[]);
    assert_eq!(status(&t)["backend"], "age-file");
    assert_eq!(status(&t)["locked"], true);
    t.ok(&["unlock"], &format!("{PW}\n"));
    check_all(&t, &project);
    t.ok(&["rotate", "--rollback", "github.com"], "");
    assert_eq!(t.credential("github.com", None)["token"], "ghp_first");
    t.ok(&["rotate", "--rollback", "github.com"], "");

    // vault -> keyring, from a locked daemon: it unlocks first (one line).
    t.ok(&["lock"], "");
    let out = t.ok(&["migrate", "--to", "keyring"], &format!("{PW}\n"));
    assert!(
        out.contains("Copied 5 secret(s) from the age file to the keyring"),
        "{out}"
    );
    assert_eq!(status(&t)["backend"], "keyring");
    assert!(config(&t).contains("backend = \"keyring\""));
    check_all(&t, &project);
    assert!(!vault_has(&t, "github.com"), "the vault still holds it");
    assert!(in_keyring(&t, "composer-keyd.previous", "github.com").is_some());
    assert!(d.stop().success());
    let _d = t.start_daemon(&[]);
    assert_eq!(status(&t)["backend"], "keyring");
    check_all(&t, &project);
}

/// A kill -9 in the copy step (before the switch) and in the clean-up step (after it):
/// nothing is lost, and a rerun finishes the job.
#[test]
fn an_interrupted_migration_loses_nothing_and_a_rerun_completes_it() {
    let mut t = env();
    let project = t.dir.path().join("p");
    std::fs::create_dir_all(&project).unwrap();
    let project = project.canonicalize().unwrap();
    let d = t.start_daemon(&[]);
    t.ok(&["add", "repo.magento.com"], &format!("{PUB}\n{PRIV}\n"));
    let p = project.to_str().unwrap();
    t.ok(
        &["add", "repo.magento.com", "--project", p],
        "acme-pub\nacme-priv\n",
    );
    t.ok(
        &["add", "github.com", "--type", "github-oauth"],
        "ghp_first\n",
    );
    t.ok(&["rotate", "github.com"], "ghp_second\n");
    t.ok(&["add", "127.0.0.1:8080", "--type", "bearer"], "tok-port\n");
    drop(d);

    // Crash while the vault is being written with the copies (its second write, after
    // the one that created it): the keyring stays in use.
    let mut d = start_paused(&mut t, "vault-before-rename@2");
    let mut cli = t.spawn_cli(&["migrate", "--to", "vault"], &format!("{PW}\n{PW}\n"));
    wait_log(&d, "test hook: paused at vault-before-rename");
    d.kill9();
    let _ = cli.kill();
    let _ = cli.wait();
    let mut d = t.start_daemon(&[]);
    assert_eq!(status(&t)["backend"], "keyring");
    check_all(&t, &project);
    let out = t.ok(&["migrate", "--to", "vault"], &format!("{PW}\n"));
    assert!(
        out.contains("Removed 5 secret(s) from the keyring"),
        "{out}"
    );
    check_all(&t, &project);
    d.stop();

    // Back to the keyring, crashing while the vault is being emptied after the switch.
    let mut d = start_paused(&mut t, "vault-before-rename");
    t.ok(&["unlock"], &format!("{PW}\n"));
    let mut cli = t.spawn_cli(&["migrate", "--to", "keyring"], "");
    wait_log(&d, "test hook: paused at vault-before-rename");
    d.kill9();
    let _ = cli.kill();
    let _ = cli.wait();
    assert!(config(&t).contains("backend = \"keyring\""));
    assert!(
        vault_has(&t, "github.com"),
        "the source was emptied before the crash"
    );
    let _d = t.start_daemon(&[]);
    assert_eq!(status(&t)["backend"], "keyring");
    check_all(&t, &project);
    // The rerun only cleans up the vault.
    let out = t.ok(&["migrate", "--to", "keyring"], &format!("{PW}\n"));
    assert!(
        out.contains("Removed 5 secret(s) from the age file"),
        "{out}"
    );
    assert!(!vault_has(&t, "github.com"));
    check_all(&t, &project);
}

fn start_paused(t: &mut TestEnv, stage: &str) -> Daemon {
    t.env
        .insert("COMPOSER_KEYD_TEST_PAUSE".into(), stage.into());
    let d = t.start_daemon(&[]);
    t.env.remove("COMPOSER_KEYD_TEST_PAUSE");
    d
}

#[test]
fn keyring_timer_wipes_the_cache_and_refuses_until_unlock() {
    let t = TestEnv::with_keyring(true);
    let _d = t.start_daemon(&["--idle-ttl", "2s"]);
    t.ok(&["add", "bearer.example", "--type", "bearer"], "tok-k\n");
    assert_eq!(t.credential("bearer.example", None)["token"], "tok-k");
    // Bounded: 150 x 200 ms, status calls only.
    let locked = (0..150).any(|_| {
        let l = status(&t)["locked"] == true;
        if !l {
            std::thread::sleep(Duration::from_millis(200));
        }
        l
    });
    assert!(locked, "the idle timer never locked the keyring backend");
    let r = request(&t.socket(), "GET", "/v1/credentials/bearer.example", None).unwrap();
    assert_eq!((r.status, r.kind().as_str()), (423, "locked"));
    t.ok(&["unlock"], "");
    assert_eq!(t.credential("bearer.example", None)["token"], "tok-k");
}
