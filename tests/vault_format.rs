//! The vault's two-file format through a real daemon: the upgrade of passphrase-sealed vaults
//! (with kill -9 at each step), an older vault.age put back, the back-off across restarts,
//! and the emergency read with Debian's age.

use crate::support;

use composer_keyd::credential::Origin;
use composer_keyd::secret::Secret;
use composer_keyd::store::age_file::AgeFileStore;
use composer_keyd::store::{SecretKey, Which};
use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use support::{request, TestEnv};

const PW: &str = "format passphrase";
const TOKEN: &str = "tok-format-5e1f";

fn data(t: &TestEnv) -> PathBuf {
    PathBuf::from(&t.env["XDG_DATA_HOME"]).join("composer-keyd")
}

fn contents(t: &TestEnv, accounts: &[&str]) -> Vec<(String, Option<String>)> {
    let v = AgeFileStore::new(data(t).join("vault.age"));
    v.unlock(Some(&Secret::from(PW))).expect("the vault opens");
    accounts
        .iter()
        .map(|a| {
            let key = SecretKey::new(&Origin::parse(a).unwrap(), None, Which::Current);
            let got = v
                .get(&key)
                .unwrap()
                .map(|s| String::from_utf8(s.expose().clone()).unwrap());
            ((*a).to_owned(), got)
        })
        .collect()
}

/// A vault as composer-keyd wrote it before identity.age: the JSON sealed with the passphrase.
fn write_legacy_vault(t: &TestEnv) -> Vec<u8> {
    let plain = format!(
        "{{\"format\":1,\"credentials\":{{\"composer-keyd\":{{\n  \"one.example\":{{\"type\":\"bearer\",\"token\":\"{TOKEN}\"}},\n  \"two.example\":{{\"type\":\"http-basic\",\"username\":\"u2\",\"password\":\"p2\"}}}}}}}}\n"
    );
    let mut r = age::scrypt::Recipient::new(age::secrecy::SecretString::from(PW.to_owned()));
    r.set_work_factor(12);
    let enc = age::Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient)).unwrap();
    let mut out = Vec::new();
    let mut w = enc.wrap_output(&mut out).unwrap();
    w.write_all(plain.as_bytes()).unwrap();
    w.finish().unwrap();
    let dir = data(t);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    std::fs::write(dir.join("vault.age"), &out).unwrap();
    out
}

const LEGACY: [&str; 2] = ["one.example", "two.example"];

/// Kill -9 of the daemon at each step of an upgrade: vault.age is the old file byte for byte
/// or the new one, the credentials are all there, and the next unlock ends in the new format.
#[test]
fn kill9_at_each_upgrade_step_leaves_the_old_or_the_new_vault() {
    let stages = [
        ("identity-before-rename", false),
        ("upgrade-identity-written", false),
        ("state-before-rename", false),
        ("upgrade-backup-kept", false),
        ("vault-before-rename", false),
        ("vault-after-rename", true),
        ("state-before-rename@2", true),
        ("upgrade-written", true),
        ("upgrade-verified", true),
    ];
    for (stage, new) in stages {
        let mut t = TestEnv::fast_vault();
        let old = write_legacy_vault(&t);
        t.env
            .insert("COMPOSER_KEYD_TEST_PAUSE".into(), stage.into());
        let mut d = t.start_daemon(&[]);
        t.env.remove("COMPOSER_KEYD_TEST_PAUSE");
        let mut cli = t.spawn_cli(&["unlock"], &format!("{PW}\n"));
        let name = stage.split('@').next().unwrap();
        d.wait_log(&format!("test hook: paused at {name}"));
        d.kill9();
        let _ = cli.kill();
        let _ = cli.wait();

        let vault = std::fs::read(data(&t).join("vault.age")).unwrap();
        if new {
            assert!(
                vault.starts_with(b"age-encryption.org/v1\n-> X25519 "),
                "{stage}: not the new vault"
            );
        } else {
            assert_eq!(vault, old, "{stage}: not the old vault");
        }
        // A restarted daemon unlocks it and finishes the job: the new format, no backup left.
        let mut d = t.start_daemon(&[]);
        t.ok(&["unlock"], &format!("{PW}\n"));
        assert_eq!(t.status_json()["locked"], false);
        assert!(
            t.status_json().get("warning").is_none(),
            "{stage}: {}",
            t.status_json()
        );
        d.stop();
        let vault = std::fs::read(data(&t).join("vault.age")).unwrap();
        assert!(
            vault.starts_with(b"age-encryption.org/v1\n-> X25519 "),
            "{stage}"
        );
        assert!(!data(&t).join("vault.age.pre-identity").exists(), "{stage}");
        // Every credential is there, read by a fresh reader.
        let got = contents(&t, &LEGACY);
        assert!(got.iter().all(|(_, v)| v.is_some()), "{stage}: {got:?}");
        assert!(got[0].1.as_deref().unwrap().contains(TOKEN), "{stage}");
    }
}

/// An older vault.age put back is served, but the unlock reply, `status`, the log and the
/// audit log all say so; the next change makes it current.
#[test]
fn an_older_vault_put_back_is_reported_not_served_silently() {
    let t = TestEnv::fast_vault();
    let mut d = t.start_daemon(&[]);
    t.ok(&["unlock"], &format!("{PW}\n{PW}\n"));
    t.ok(&["add", "a.example", "--type", "bearer"], "tok-a\n");
    let vault = data(&t).join("vault.age");
    let old = std::fs::read(&vault).unwrap();
    t.ok(&["add", "b.example", "--type", "bearer"], "tok-b\n");
    d.stop();
    std::fs::write(&vault, &old).unwrap();

    let d = t.start_daemon(&[]);
    let out = t.cli(&["unlock"], &format!("{PW}\n"));
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning") && err.contains("older copy"),
        "unlock said: {err}"
    );
    let s = t.status_json();
    assert!(
        s["warning"]
            .as_str()
            .is_some_and(|w| w.contains("older copy")),
        "{s}"
    );
    let text = t.ok(&["status"], "");
    assert!(
        text.contains("WARNING:") && text.contains("older copy"),
        "{text}"
    );
    assert!(d.log_text().contains("older copy"), "{}", d.log_text());
    let audit = std::fs::read_to_string(t.home().join(".local/state/composer-keyd/audit.log"))
        .unwrap_or_default();
    assert!(
        audit
            .lines()
            .any(|l| l.contains("\"unlock\"") && l.contains("older copy")),
        "{audit}"
    );
    // Served as it is: what the copy holds, not what came after it.
    assert_eq!(t.credential("a.example", None)["token"], "tok-a");
    assert_eq!(t.lookup("b.example", None).status, 404);

    // A change makes the copy current, and the warning goes.
    t.ok(&["add", "c.example", "--type", "bearer"], "tok-c\n");
    assert!(
        t.status_json().get("warning").is_none(),
        "{}",
        t.status_json()
    );
    t.ok(&["lock"], "");
    let out = t.cli(&["unlock"], &format!("{PW}\n"));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("older copy"));
}

/// The back-off of a wrong passphrase is kept on disk: a daemon killed during it and
/// started again still refuses tries until it ends, and the count goes on doubling.
#[test]
fn the_wrong_passphrase_back_off_survives_a_restart() {
    let t = TestEnv::fast_vault();
    let mut d = t.start_daemon(&[]);
    t.ok(&["unlock"], &format!("{PW}\n{PW}\n"));
    t.ok(&["lock"], "");
    let wrong = r#"{"passphrase":"not the passphrase"}"#;
    let unlock = |body: &str| request(&t.socket(), "POST", "/v1/unlock", Some(body)).unwrap();
    // Tries until one is checked, waiting out the back-off each refusal names (bounded).
    let checked = |body: &str| {
        for _ in 0..40 {
            let r = unlock(body);
            if r.kind() != "retry-later" {
                return r;
            }
            assert_eq!(r.status, 429, "{}", r.body);
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!("the back-off never ended");
    };
    let r = checked(wrong);
    assert_eq!(r.status, 401);
    d.wait_log("failures=1");
    let r = checked(wrong);
    assert_eq!(r.status, 401);
    d.wait_log("failures=2");
    // Killed during the second one's 2 s back-off.
    d.kill9();

    let d = t.start_daemon(&[]);
    let r = unlock(wrong);
    let refused = r.kind() == "retry-later";
    // Unless the restart outlasted the back-off, the new daemon refuses at once, unchecked.
    if refused {
        assert!(
            r.body.contains("try again in"),
            "the refusal says when: {}",
            r.body
        );
    }
    let r = if refused { checked(wrong) } else { r };
    assert_eq!((r.status, r.kind().as_str()), (401, "wrong-passphrase"));
    assert!(
        d.log_text().contains("failures=3"),
        "the count restarted: {}",
        d.log_text()
    );
    let sidecar: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data(&t).join("vault-state.json")).unwrap()).unwrap();
    assert_eq!(sidecar["failures"], 3, "{sidecar}");
    let r = checked(&format!(r#"{{"passphrase":"{PW}"}}"#));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(t.status_json()["locked"], false);
    let sidecar: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data(&t).join("vault-state.json")).unwrap()).unwrap();
    assert_eq!(sidecar["failures"], 0, "{sidecar}");
}

/// The README's emergency read, `age -d -i <(age -d identity.age) vault.age`, with Debian's
/// age at the real work factor, typing the passphrase on a pty.
#[test]
fn the_emergency_read_works_with_the_age_cli() {
    support::require("age", "age");
    support::require("script", "bsdutils");
    support::require("bash", "bash");
    let t = TestEnv::bare();
    let _d = t.start_daemon(&[]);
    t.ok(&["unlock"], &format!("{PW}\n{PW}\n"));
    t.ok(
        &["add", "repo.magento.com"],
        "pub-emergency\npriv-emergency\n",
    );
    t.ok(
        &["add", "github.com", "--type", "github-oauth"],
        &format!("{TOKEN}\n"),
    );
    let dir = data(&t);
    let identity = std::fs::read(dir.join("identity.age")).unwrap();
    assert!(identity.starts_with(b"age-encryption.org/v1\n-> scrypt "));
    let plain = t.dir.path().join("emergency.json");
    let cmd = format!(
        "cd '{}' && age -d -i <(age -d identity.age) vault.age > '{}'",
        dir.display(),
        plain.display()
    );
    let mut age = t
        .command("script")
        .args(["-qec"])
        .arg(format!("bash -c \"{cmd}\""))
        .arg("/dev/null")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    {
        let mut stdin = age.stdin.take().unwrap();
        // age opens the terminal before it reads; give it a moment, then type.
        std::thread::sleep(Duration::from_millis(800));
        stdin.write_all(format!("{PW}\n").as_bytes()).unwrap();
        // Keep the pty open until age has finished (bounded: 300 x 100 ms).
        for _ in 0..300 {
            if age.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let _ = age.kill();
    assert!(
        age.wait().unwrap().success(),
        "the emergency command failed"
    );
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&plain).unwrap()).unwrap();
    let creds = &json["credentials"]["composer-keyd"];
    assert_eq!(creds["repo.magento.com"]["username"], "pub-emergency");
    assert_eq!(creds["repo.magento.com"]["password"], "priv-emergency");
    assert_eq!(creds["github.com"]["token"], TOKEN);
    std::fs::remove_file(&plain).unwrap();
}
