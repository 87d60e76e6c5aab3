//! Integration tests of the vault backend with no D-Bus session at all: backend choice,
//! lifecycle, no plaintext on disk, kill -9 during writes, damaged files and unlock timers.

use crate::support;

use composer_keyd::credential::Origin;
use composer_keyd::secret::Secret;
use composer_keyd::store::age_file::AgeFileStore;
use composer_keyd::store::{SecretKey, StoreError, Which};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::{request, TestEnv, BIN};

const PUB: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
const PRIV: &str = "0f9e8d7c6b5a49382716f5e4d3c2b1a0";
const TOKEN: &str = "ghp_vaulttesttoken0123456789";
const PW: &str = "correct horse battery staple";

fn vault_path(t: &TestEnv) -> PathBuf {
    PathBuf::from(&t.env["XDG_DATA_HOME"]).join("composer-keyd/vault.age")
}

fn create(t: &TestEnv) {
    let out = t.ok(&["unlock"], &format!("{PW}\n{PW}\n"));
    assert!(out.contains("Created the age file"), "{out}");
}

fn add_bearer(t: &TestEnv, origin: &str, token: &str) {
    t.ok(&["add", origin, "--type", "bearer"], &format!("{token}\n"));
}

/// Runs the CLI, again after each refusal during the back-off of a wrong passphrase (which
/// says when to retry); bounded.
fn retry(t: &TestEnv, args: &[&str], stdin: &str) -> std::process::Output {
    for _ in 0..20 {
        let out = t.cli(args, stdin);
        let err = String::from_utf8_lossy(&out.stderr);
        if !err.contains("try again in") {
            return out;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    panic!("{args:?}: the back-off never ended");
}

/// Opens the vault file with the library, as a fresh daemon would.
fn open(t: &TestEnv, pw: &str) -> Result<AgeFileStore, StoreError> {
    let v = AgeFileStore::new(vault_path(t));
    v.unlock(Some(&Secret::from(pw)))?;
    Ok(v)
}

fn has(v: &AgeFileStore, origin: &str) -> bool {
    let key = SecretKey::new(&Origin::parse(origin).unwrap(), None, Which::Current);
    v.get(&key).unwrap().is_some()
}

/// Polls status every 200 ms (bounded: 150 polls) until `locked` is `want`.
fn poll_until_locked(t: &TestEnv, want: bool) -> usize {
    for i in 0..150 {
        if t.status_json()["locked"] == want {
            return i;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("the daemon never became locked={want}");
}

#[test]
fn auto_chooses_the_vault_and_says_why() {
    let mut t = TestEnv::fast_vault();
    assert!(!t.env.contains_key("DBUS_SESSION_BUS_ADDRESS"));
    let mut d = t.start_daemon(&[]);
    let s: serde_json::Value = serde_json::from_str(&t.ok(&["status", "--json"], "")).unwrap();
    assert_eq!(s["backend"], "age-file", "{s}");
    assert_eq!(s["locked"], true);
    assert_eq!(s["age_file_exists"], false);
    let why = s["backend_reason"].as_str().unwrap();
    assert!(
        why.contains("auto") && why.contains("no keyring answered (no D-Bus session bus)"),
        "{why}"
    );
    // One short reason; the D-Bus error itself is the detail, behind `doctor -v`.
    assert!(!why.contains("zbus") && !why.contains("unix:path"), "{why}");
    let detail = s["backend_detail"].as_str().unwrap();
    assert!(detail.contains("zbus"), "{detail}");
    let text = t.ok(&["status"], "");
    assert!(text.contains("backend:     age-file (auto"), "{text}");
    assert!(!text.contains("zbus"), "{text}");
    assert!(text.contains("not created yet"), "{text}");
    let doc = String::from_utf8_lossy(&t.cli(&["doctor", "--offline"], "").stdout).into_owned();
    assert!(
        doc.contains("note     backend detail: `composer-keyd doctor -v` shows it"),
        "{doc}"
    );
    let doc =
        String::from_utf8_lossy(&t.cli(&["doctor", "--offline", "-v"], "").stdout).into_owned();
    assert!(
        doc.contains("note     backend detail: the keyring is unavailable: zbus"),
        "{doc}"
    );
    d.stop();

    // config.toml picks the backend, and status names the file.
    let cfg = PathBuf::from(&t.env["XDG_CONFIG_HOME"]).join("composer-keyd/config.toml");
    std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
    std::fs::write(&cfg, "backend = \"keyring\"\n").unwrap();
    let mut d = t.start_daemon(&[]);
    let s = t.status_json();
    assert_eq!(s["backend"], "keyring", "{s}");
    assert!(s["backend_reason"]
        .as_str()
        .unwrap()
        .contains(&cfg.display().to_string()));
    d.stop();

    // The environment wins over the file.
    // The age file's old name still works, with a note in the log.
    t.env.insert("COMPOSER_KEYD_BACKEND".into(), "vault".into());
    let mut d = t.start_daemon(&[]);
    let s = t.status_json();
    assert_eq!(s["backend"], "age-file");
    assert_eq!(s["backend_reason"], "COMPOSER_KEYD_BACKEND=age-file");
    assert!(
        d.log_text()
            .contains("the old name of the age-file backend"),
        "{}",
        d.log_text()
    );
    d.stop();
    t.env
        .insert("COMPOSER_KEYD_BACKEND".into(), "age-file".into());
    let mut d = t.start_daemon(&[]);
    assert_eq!(t.status_json()["backend"], "age-file");
    d.stop();

    // A value that names no backend stops the daemon with a clear error.
    t.env.insert("COMPOSER_KEYD_BACKEND".into(), "tpm".into());
    let out = run_bounded(&t, &["serve"]);
    assert!(!out.0, "serve accepted a bad backend");
    assert!(
        out.1
            .contains("COMPOSER_KEYD_BACKEND=\"tpm\" is not a backend"),
        "{}",
        out.1
    );
    t.env.remove("COMPOSER_KEYD_BACKEND");
    std::fs::write(&cfg, "backend = \"floppy\"\n").unwrap();
    let out = run_bounded(&t, &["serve"]);
    assert!(!out.0 && out.1.contains("config.toml"), "{}", out.1);
}

/// Runs the binary, killing it after 20 s; returns (success, stderr).
fn run_bounded(t: &TestEnv, args: &[&str]) -> (bool, String) {
    let mut c = t
        .command(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if c.try_wait().unwrap().is_some() {
            let out = c.wait_with_output().unwrap();
            return (
                out.status.success(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = c.kill();
    panic!("{args:?} did not exit");
}

/// The real work factor, as users get it.
#[test]
fn lifecycle_and_no_plaintext() {
    let t = TestEnv::bare();
    let mut d = t.start_daemon(&[]);
    let out = t.cli(&["unlock"], "one\ntwo\n");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("differ"));
    assert!(!vault_path(&t).exists());
    create(&t);
    assert_eq!(t.status_json()["locked"], false);
    assert_eq!(t.status_json()["age_file_exists"], true);

    t.ok(&["add", "repo.magento.com"], &format!("{PUB}\n{PRIV}\n"));
    t.ok(
        &["add", "github.com", "--type", "github-oauth"],
        &format!("{TOKEN}\n"),
    );
    let list: serde_json::Value = serde_json::from_str(&t.ok(&["list", "--json"], "")).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    assert_eq!(
        t.lookup("repo.magento.com", None).json()["credential"]["password"],
        PRIV
    );
    assert_eq!(
        t.lookup("github.com", None).json()["credential"]["token"],
        TOKEN
    );

    // Nothing on disk holds a secret or a public key in plaintext; the vault not even the origins.
    for needle in [PUB, PRIV, TOKEN] {
        assert_eq!(
            t.files_containing(needle),
            Vec::<PathBuf>::new(),
            "{needle}"
        );
        assert!(!d.log_text().contains(needle), "{needle} in the log");
    }
    let bytes = std::fs::read(vault_path(&t)).unwrap();
    assert!(bytes.starts_with(b"age-encryption.org/v1\n-> X25519 "));
    for needle in ["repo.magento.com", "github.com", "http-basic", "password"] {
        assert!(
            !support::contains(&bytes, needle.as_bytes()),
            "{needle} in the vault"
        );
    }

    // The passphrase seals only identity.age; the emergency read with the age CLI is
    // tests/vault_format.rs `the_emergency_read_works_with_the_age_cli`.
    let identity = std::fs::read(vault_path(&t).with_file_name("identity.age")).unwrap();
    assert!(identity.starts_with(b"age-encryption.org/v1\n-> scrypt "));

    // After a restart: locked until unlocked; a wrong passphrase is refused.
    assert!(d.stop().success());
    let _d = t.start_daemon(&[]);
    assert_eq!(t.status_json()["locked"], true);
    let r = t.lookup("repo.magento.com", None);
    assert_eq!((r.status, r.kind().as_str()), (423, "locked"));
    let out = t.cli(&["unlock"], "not it\n");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong passphrase"));
    // Over HTTP, once the back-off the CLI's try started has ended (bounded).
    let r = (0..40)
        .map(|_| {
            let r = request(
                &t.socket(),
                "POST",
                "/v1/unlock",
                Some(r#"{"passphrase":"nope"}"#),
            )
            .unwrap();
            if r.kind() == "retry-later" {
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
            r
        })
        .find(|r| r.kind() != "retry-later")
        .expect("the back-off ended");
    assert_eq!((r.status, r.kind().as_str()), (401, "wrong-passphrase"));
    assert_eq!(t.status_json()["locked"], true);
    assert!(retry(&t, &["unlock"], &format!("{PW}\n")).status.success());
    assert_eq!(
        t.lookup("repo.magento.com", None).json()["credential"]["password"],
        PRIV
    );

    // passwd: the old passphrase stops working, the new one unlocks.
    let out = retry(&t, &["passwd"], "wrong\nnew pass\nnew pass\n");
    assert!(!out.status.success());
    assert!(
        retry(&t, &["passwd"], &format!("{PW}\nnew pass\nnew pass\n"))
            .status
            .success()
    );
    t.ok(&["lock"], "");
    assert!(!retry(&t, &["unlock"], &format!("{PW}\n")).status.success());
    assert!(retry(&t, &["unlock"], "new pass\n").status.success());
    assert_eq!(
        t.lookup("github.com", None).json()["credential"]["token"],
        TOKEN
    );
}

#[test]
fn the_first_add_creates_the_vault() {
    let t = TestEnv::fast_vault();
    let mut d = t.start_daemon(&[]);
    t.ok(
        &["add", "repo.magento.com"],
        &format!("{PW}\n{PW}\n{PUB}\n{PRIV}\n"),
    );
    assert_eq!(t.status_json()["age_file_exists"], true);
    assert_eq!(t.status_json()["locked"], false);
    assert_eq!(
        t.lookup("repo.magento.com", None).json()["credential"]["username"],
        PUB
    );
    d.stop();
    // With a vault that exists, `add` does not ask for a passphrase: it says to unlock.
    let _d = t.start_daemon(&[]);
    let out = t.cli(
        &["add", "github.com", "--type", "github-oauth"],
        &format!("{TOKEN}\n"),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unlock"));
    assert!(has(&open(&t, PW).unwrap(), "repo.magento.com"));
}

#[test]
fn kill9_during_a_write_leaves_the_old_or_the_new_vault() {
    let mut t = TestEnv::fast_vault();
    let mut d = t.start_daemon(&[]);
    create(&t);
    add_bearer(&t, "first.example", "tok-first");
    d.stop();
    let stages = [
        "vault-before-write",
        "vault-temp-created",
        "vault-before-rename",
        "vault-after-rename",
        "state-before-rename",
    ];
    for (i, stage) in stages.iter().enumerate() {
        t.env
            .insert("COMPOSER_KEYD_TEST_PAUSE".into(), (*stage).into());
        let mut d = t.start_daemon(&[]);
        t.env.remove("COMPOSER_KEYD_TEST_PAUSE");
        t.ok(&["unlock"], &format!("{PW}\n"));
        let origin = format!("new{i}.example");
        let mut writer = t.spawn_cli(&["add", &origin, "--type", "bearer"], "tok-new\n");
        d.wait_log(&format!("test hook: paused at {stage}"));
        d.kill9();
        let _ = writer.kill();
        let _ = writer.wait();
        let v = open(&t, PW).unwrap_or_else(|e| panic!("{stage}: the vault does not open: {e}"));
        assert!(has(&v, "first.example"), "{stage}: the old content is gone");
        assert_eq!(
            has(&v, &origin),
            matches!(*stage, "vault-after-rename" | "state-before-rename"),
            "{stage}: the file is neither the old nor the new one"
        );
    }
    // Kills at arbitrary moments of a stream of writes.
    for round in 0..5u64 {
        let mut d = t.start_daemon(&[]);
        t.ok(&["unlock"], &format!("{PW}\n"));
        let sock = t.socket();
        let writer = std::thread::spawn(move || {
            for n in 0..200 {
                let body =
                    format!(r#"{{"credential":{{"type":"bearer","token":"t{round}-{n}"}}}}"#);
                let path = format!("/v1/credentials/r{round}-{n}.example");
                if request(&sock, "PUT", &path, Some(&body)).is_err() {
                    break;
                }
            }
        });
        std::thread::sleep(Duration::from_millis(150 + 97 * round));
        d.kill9();
        writer.join().unwrap();
        let v = open(&t, PW).unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert!(has(&v, "first.example"));
    }
    let _d = t.start_daemon(&[]);
    t.ok(&["unlock"], &format!("{PW}\n"));
    assert_eq!(
        t.lookup("first.example", None).json()["credential"]["token"],
        "tok-first"
    );
}

#[test]
fn a_damaged_vault_is_reported_and_kept_byte_for_byte() {
    let t = TestEnv::fast_vault();
    let mut d = t.start_daemon(&[]);
    create(&t);
    add_bearer(&t, "one.example", "tok-one");
    d.stop();
    let path = vault_path(&t);
    let good = std::fs::read(&path).unwrap();
    let mut flipped = good.clone();
    let mid = good.len() - 20;
    flipped[mid] ^= 0x01;
    for (what, bytes) in [
        ("truncated", good[..good.len() / 2].to_vec()),
        ("a flipped byte", flipped),
        ("empty", Vec::new()),
    ] {
        std::fs::write(&path, &bytes).unwrap();
        let mut d = t.start_daemon(&[]);
        assert_eq!(t.status_json()["age_file_exists"], true, "{what}");
        let out = t.cli(&["unlock"], &format!("{PW}\n"));
        assert!(!out.status.success(), "{what}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("cannot be read") && err.contains("left as it is"),
            "{what}: {err}"
        );
        let r = request(
            &t.socket(),
            "POST",
            "/v1/unlock",
            Some(&format!(r#"{{"passphrase":"{PW}"}}"#)),
        )
        .unwrap();
        assert_eq!(
            (r.status, r.kind().as_str()),
            (500, "age-file-corrupt"),
            "{what}"
        );
        assert!(!t
            .cli(&["add", "two.example", "--type", "bearer"], "t\n")
            .status
            .success());
        d.stop();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "{what}: the file changed"
        );
    }
    std::fs::write(&path, &good).unwrap();
    let _d = t.start_daemon(&[]);
    t.ok(&["unlock"], &format!("{PW}\n"));
    assert_eq!(
        t.lookup("one.example", None).json()["credential"]["token"],
        "tok-one"
    );
}

#[test]
fn idle_ttl_locks_and_status_polling_does_not_extend_it() {
    let t = TestEnv::fast_vault();
    let _d = t.start_daemon(&["--idle-ttl", "2s"]);
    create(&t);
    add_bearer(&t, "idle.example", "tok-idle");
    let s = t.status_json();
    assert_eq!(s["locked"], false);
    assert!(s["lock_in_secs"].as_u64().is_some_and(|n| n <= 2), "{s}");
    // Only status calls from here on: they must not keep it open.
    let polls = poll_until_locked(&t, true);
    assert!(polls > 0, "it was locked before the first poll");
    let r = t.lookup("idle.example", None);
    assert_eq!((r.status, r.kind().as_str()), (423, "locked"));
    assert!(t.status_json().get("lock_in_secs").is_none());

    // Releases restart the idle timer: releasing every 300 ms keeps it open past the TTL.
    t.ok(&["unlock"], &format!("{PW}\n"));
    let start = Instant::now();
    for _ in 0..12 {
        assert_eq!(t.lookup("idle.example", None).status, 200);
        assert_eq!(t.status_json()["locked"], false);
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        start.elapsed() > Duration::from_secs(2),
        "the loop must outlast the TTL"
    );
    poll_until_locked(&t, true);
}

#[test]
fn max_ttl_locks_whatever_the_use() {
    let t = TestEnv::fast_vault();
    let _d = t.start_daemon(&["--max-ttl", "3s"]);
    create(&t);
    add_bearer(&t, "max.example", "tok-max");
    // Bounded: 150 x (release + status + 100 ms).
    let mut locked = false;
    for _ in 0..150 {
        let r = t.lookup("max.example", None);
        if r.status == 423 {
            locked = true;
            break;
        }
        assert_eq!(r.status, 200, "{}", r.body);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(locked, "max-ttl never locked a daemon in use");
    assert_eq!(t.status_json()["locked"], true);
    t.ok(&["unlock"], &format!("{PW}\n"));
    assert_eq!(t.lookup("max.example", None).status, 200);
}
