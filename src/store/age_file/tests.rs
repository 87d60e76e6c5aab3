//! Unit tests of the vault file: round trips, locking, damage, and what lands on disk.

use super::*;
use crate::credential::Origin;
use crate::store::Which;
use std::time::Duration;

const SECRET: &str = r#"{"type":"http-basic","username":"pub-5f1e","password":"priv-9c2d"}"#;

fn vault(dir: &Path) -> AgeFileStore {
    // A low work factor keeps the tests fast; the format is the same.
    AgeFileStore {
        log_n: 10,
        ..AgeFileStore::new(dir.join("data/vault.age"))
    }
}

fn key(origin: &str, which: Which) -> SecretKey {
    SecretKey::new(&Origin::parse(origin).unwrap(), None, which)
}

fn pass(s: &str) -> Secret<String> {
    Secret::from(s)
}

fn sidecar(v: &AgeFileStore) -> state::State {
    match state::read(&v.state_path()) {
        state::Found::Ok(s) => s,
        _ => panic!("no readable sidecar"),
    }
}

/// Ends the back-off a wrong passphrase started, as time passing would; the count stays.
fn wait_out(v: &AgeFileStore) {
    let mut s = sidecar(v);
    s.not_before = 0;
    state::write(&v.state_path(), &s, &mut |_| {}).unwrap();
}

#[test]
fn create_write_reopen() {
    let d = tempfile::tempdir().unwrap();
    let v = vault(d.path());
    assert!(!v.exists() && v.needs_passphrase());
    assert!(matches!(
        v.get(&key("a.example", Which::Current)),
        Err(StoreError::Locked)
    ));
    v.unlock(Some(&pass("pw"))).unwrap();
    assert!(v.exists() && !v.needs_passphrase());
    let k = key("repo.magento.com", Which::Current);
    let p = key("repo.magento.com", Which::Previous);
    v.set(&k, SECRET.as_bytes()).unwrap();
    v.set(&p, br#"{"type":"bearer","token":"old"}"#).unwrap();
    assert_eq!(v.get(&k).unwrap().unwrap().expose(), SECRET.as_bytes());

    let bytes = std::fs::read(v.path()).unwrap();
    assert!(bytes.starts_with(b"age-encryption.org/v1\n-> X25519 "));
    let id = std::fs::read(v.identity_path()).unwrap();
    assert!(id.starts_with(b"age-encryption.org/v1\n-> scrypt "));
    for needle in ["pub-5f1e", "priv-9c2d", "repo.magento.com", "http-basic"] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "{needle} in the file"
        );
    }
    for f in [v.path().to_path_buf(), v.identity_path(), v.state_path()] {
        let mode = std::fs::metadata(&f).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", f.display());
    }

    v.lock();
    assert!(matches!(v.get(&k), Err(StoreError::Locked)));
    let again = vault(d.path());
    again.unlock(Some(&pass("pw"))).unwrap();
    assert_eq!(again.get(&k).unwrap().unwrap().expose(), SECRET.as_bytes());
    again.delete(&k).unwrap();
    again.delete(&k).unwrap();
    assert!(again.get(&k).unwrap().is_none());
    assert!(again.get(&p).unwrap().is_some());
}

#[test]
fn plaintext_is_readable_json() {
    let mut e = Entries::new();
    e.entry("composer-keyd".into()).or_default().insert(
        "github.com@/p/x \"q\"".into(),
        Secret::new(SECRET.as_bytes().to_vec()),
    );
    let text = serialize(7, &e);
    let v: serde_json::Value = serde_json::from_slice(&text).unwrap();
    assert_eq!(v["format"], 2);
    assert_eq!(v["generation"], 7);
    assert_eq!(
        v["credentials"]["composer-keyd"]["github.com@/p/x \"q\""]["password"],
        "priv-9c2d"
    );
    let back = parse(&text).ok().unwrap();
    assert_eq!(back.generation, 7);
    let back = back.entries;
    assert_eq!(
        back["composer-keyd"]["github.com@/p/x \"q\""].expose(),
        SECRET.as_bytes()
    );
    assert!(serialize(1, &Entries::new())
        .starts_with(b"{\"format\":2,\"generation\":1,\"credentials\":{}}"));
}

#[test]
fn wrong_passphrase_then_right() {
    let d = tempfile::tempdir().unwrap();
    let v = vault(d.path());
    v.unlock(Some(&pass("right"))).unwrap();
    v.lock();
    assert!(matches!(
        v.unlock(Some(&pass("wrong"))),
        Err(StoreError::WrongPassphrase)
    ));
    assert_eq!(sidecar(&v).failures, 1);
    assert!(sidecar(&v).not_before > 0);
    assert!(v.needs_passphrase());
    // While the back-off runs, even the right passphrase is refused unchecked, with the
    // time left, and the refusal does not count.
    assert!(matches!(
        v.unlock(Some(&pass("right"))),
        Err(StoreError::Backoff(d)) if d <= state::MAX_DELAY
    ));
    assert_eq!(sidecar(&v).failures, 1);
    wait_out(&v);
    v.unlock(Some(&pass("right"))).unwrap();
    assert_eq!(sidecar(&v).failures, 0, "success resets the delay");
    assert_eq!(sidecar(&v).not_before, 0);
}

#[test]
fn damaged_files_are_reported_and_kept() {
    let d = tempfile::tempdir().unwrap();
    let v = vault(d.path());
    v.unlock(Some(&pass("pw"))).unwrap();
    v.set(&key("a.example", Which::Current), SECRET.as_bytes())
        .unwrap();
    v.lock();
    let good = std::fs::read(v.path()).unwrap();
    let mut flipped = good.clone();
    let last = flipped.len() - 5;
    flipped[last] ^= 0x40;
    let damaged: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("truncated header", good[..20].to_vec()),
        ("truncated payload", good[..good.len() - 10].to_vec()),
        ("flipped payload byte", flipped),
        ("not age", b"{\"format\":1}".to_vec()),
    ];
    for (what, bytes) in damaged {
        std::fs::write(v.path(), &bytes).unwrap();
        match v.unlock(Some(&pass("pw"))) {
            Err(StoreError::Corrupt(msg)) => {
                assert!(msg.contains("left as it is"), "{what}: {msg}");
            }
            other => panic!("{what}: {other:?}"),
        }
        assert!(v.needs_passphrase(), "{what}");
        assert_eq!(std::fs::read(v.path()).unwrap(), bytes, "{what}: file kept");
    }
}

#[test]
fn a_file_changed_by_someone_else_is_not_overwritten() {
    let d = tempfile::tempdir().unwrap();
    let a = vault(d.path());
    a.unlock(Some(&pass("pw"))).unwrap();
    let b = vault(d.path());
    b.unlock(Some(&pass("pw"))).unwrap();
    b.set(&key("b.example", Which::Current), SECRET.as_bytes())
        .unwrap();
    let after_b = std::fs::read(a.path()).unwrap();
    assert!(matches!(
        a.set(&key("a.example", Which::Current), SECRET.as_bytes()),
        Err(StoreError::Unavailable { .. })
    ));
    assert_eq!(std::fs::read(a.path()).unwrap(), after_b);
}

#[test]
fn passwd_reencrypts() {
    let d = tempfile::tempdir().unwrap();
    let v = vault(d.path());
    v.unlock(Some(&pass("one"))).unwrap();
    let k = key("a.example", Which::Current);
    v.set(&k, SECRET.as_bytes()).unwrap();
    assert!(matches!(
        v.change_passphrase(&pass("nope"), &pass("two")),
        Err(StoreError::WrongPassphrase)
    ));
    wait_out(&v);
    let vault_before = std::fs::read(v.path()).unwrap();
    let identity_before = std::fs::read(v.identity_path()).unwrap();
    v.change_passphrase(&pass("one"), &pass("two")).unwrap();
    assert_eq!(
        std::fs::read(v.path()).unwrap(),
        vault_before,
        "passwd reseals identity.age only"
    );
    assert_ne!(std::fs::read(v.identity_path()).unwrap(), identity_before);
    // Still unlocked, and later writes use the new passphrase.
    v.set(&key("b.example", Which::Current), SECRET.as_bytes())
        .unwrap();
    let w = vault(d.path());
    assert!(matches!(
        w.unlock(Some(&pass("one"))),
        Err(StoreError::WrongPassphrase)
    ));
    wait_out(&w);
    w.unlock(Some(&pass("two"))).unwrap();
    assert!(w.get(&k).unwrap().is_some());
    assert!(w.get(&key("b.example", Which::Current)).unwrap().is_some());
}

#[test]
fn refuses_non_json_and_blank_passphrases() {
    let d = tempfile::tempdir().unwrap();
    let v = vault(d.path());
    assert!(matches!(
        v.unlock(Some(&pass("  "))),
        Err(StoreError::Invalid(_))
    ));
    assert!(!v.exists());
    v.unlock(Some(&pass("pw"))).unwrap();
    assert!(matches!(
        v.set(&key("a.example", Which::Current), b"not json"),
        Err(StoreError::Invalid(_))
    ));
}

#[test]
fn stale_temp_files_are_removed_on_unlock() {
    let d = tempfile::tempdir().unwrap();
    let v = vault(d.path());
    v.unlock(Some(&pass("pw"))).unwrap();
    let stale = d.path().join("data/.vault.age.tmp.1");
    std::fs::write(&stale, b"ciphertext").unwrap();
    v.lock();
    v.unlock(Some(&pass("pw"))).unwrap();
    assert!(!stale.exists());
}

#[test]
fn writes_leave_identity_alone_and_raise_the_generation() {
    let d = tempfile::tempdir().unwrap();
    let v = vault(d.path());
    v.unlock(Some(&pass("pw"))).unwrap();
    let identity = std::fs::read(v.identity_path()).unwrap();
    assert_eq!(sidecar(&v).generation, 1);
    for (i, origin) in ["a.example", "b.example", "c.example"].iter().enumerate() {
        v.set(&key(origin, Which::Current), SECRET.as_bytes())
            .unwrap();
        assert_eq!(sidecar(&v).generation, 2 + i as u64);
    }
    v.delete(&key("a.example", Which::Current)).unwrap();
    assert_eq!(sidecar(&v).generation, 5);
    assert_eq!(std::fs::read(v.identity_path()).unwrap(), identity);
    // The generation is inside the encryption too.
    let w = vault(d.path());
    w.unlock(Some(&pass("pw"))).unwrap();
    assert_eq!(w.state().as_ref().unwrap().generation, 5);
    assert!(w.warning().is_none());
}

/// Writes a vault as composer-keyd wrote it before identity.age: sealed with the passphrase.
fn legacy(v: &AgeFileStore, pw: &str) -> Vec<u8> {
    std::fs::create_dir_all(v.path().parent().unwrap()).unwrap();
    let plain = format!(
        "{{\"format\":1,\"credentials\":{{\"composer-keyd\":{{\n  \"a.example\":{SECRET},\n  \"b.example@/p\":{{\"type\":\"bearer\",\"token\":\"t\"}}}},\n\"composer-keyd.previous\":{{\n  \"a.example\":{{\"type\":\"bearer\",\"token\":\"old\"}}}}}}}}\n"
    );
    let bytes = file::seal_passphrase(plain.as_bytes(), &pass(pw), 10).unwrap();
    std::fs::write(v.path(), &bytes).unwrap();
    bytes
}

fn legacy_entries(v: &AgeFileStore) -> Entries {
    let bytes = std::fs::read(v.path()).unwrap();
    parse(&file::open_passphrase(&bytes, &pass("pw")).unwrap())
        .unwrap()
        .entries
}

#[test]
fn an_old_vault_is_upgraded_on_unlock_and_loses_nothing() {
    let d = tempfile::tempdir().unwrap();
    let v = vault(d.path());
    legacy(&v, "pw");
    let before = legacy_entries(&v);
    assert_eq!(before.values().map(|m| m.len()).sum::<usize>(), 3);
    assert!(matches!(
        v.unlock(Some(&pass("nope"))),
        Err(StoreError::WrongPassphrase)
    ));
    assert!(
        !v.identity_path().exists(),
        "a wrong passphrase upgrades nothing"
    );
    wait_out(&v);
    v.unlock(Some(&pass("pw"))).unwrap();
    assert_eq!(v.state().as_ref().unwrap().entries, before);
    assert!(std::fs::read(v.path())
        .unwrap()
        .starts_with(b"age-encryption.org/v1\n-> X25519 "));
    assert!(v.identity_path().exists());
    assert!(
        !v.backup_path().exists(),
        "the old file is removed once verified"
    );
    assert_eq!(sidecar(&v).generation, 1);
    assert!(v.warning().is_none());
    // A fresh reader opens the new pair with the same passphrase, and sees the same.
    let w = vault(d.path());
    w.unlock(Some(&pass("pw"))).unwrap();
    assert_eq!(w.state().as_ref().unwrap().entries, before);
    let scoped = SecretKey::new(
        &Origin::parse("b.example").unwrap(),
        Some("/p"),
        Which::Current,
    );
    assert!(w.get(&scoped).unwrap().is_some());
    assert!(w.get(&key("a.example", Which::Previous)).unwrap().is_some());
}

/// The states a kill -9 can leave during an upgrade, rebuilt on disk: each unlocks to the
/// same credentials and ends in the new format with no backup left.
#[test]
fn every_interrupted_upgrade_state_completes() {
    for stage in ["identity written", "backup kept", "new vault in place"] {
        let d = tempfile::tempdir().unwrap();
        let v = vault(d.path());
        let old = legacy(&v, "pw");
        let before = legacy_entries(&v);
        let id = age::x25519::Identity::generate();
        v.write_identity(&id, &pass("pw")).unwrap();
        if stage != "identity written" {
            std::fs::hard_link(v.path(), v.backup_path()).unwrap();
        }
        if stage == "new vault in place" {
            v.write_vault(&id.to_public(), 1, &before).unwrap();
        }
        let identity_file = std::fs::read(v.identity_path()).unwrap();
        let w = vault(d.path());
        w.unlock(Some(&pass("pw")))
            .unwrap_or_else(|e| panic!("{stage}: {e}"));
        assert_eq!(w.state().as_ref().unwrap().entries, before, "{stage}");
        assert!(!w.backup_path().exists(), "{stage}: backup left");
        assert_eq!(
            std::fs::read(w.identity_path()).unwrap(),
            identity_file,
            "{stage}: the identity written first is reused"
        );
        assert_ne!(std::fs::read(w.path()).unwrap(), old, "{stage}");
    }
}

#[test]
fn a_backup_that_differs_is_kept_and_reported() {
    let d = tempfile::tempdir().unwrap();
    let v = vault(d.path());
    v.unlock(Some(&pass("pw"))).unwrap();
    v.set(&key("a.example", Which::Current), SECRET.as_bytes())
        .unwrap();
    v.lock();
    let other =
        file::seal_passphrase(b"{\"format\":1,\"credentials\":{}}", &pass("pw"), 10).unwrap();
    std::fs::write(v.backup_path(), &other).unwrap();
    match v.unlock(Some(&pass("pw"))) {
        Err(StoreError::Corrupt(m)) => assert!(m.contains("different credentials"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read(v.backup_path()).unwrap(), other);
}

#[test]
fn an_older_copy_put_back_is_served_with_a_warning() {
    let d = tempfile::tempdir().unwrap();
    let v = vault(d.path());
    v.unlock(Some(&pass("pw"))).unwrap();
    v.set(&key("a.example", Which::Current), SECRET.as_bytes())
        .unwrap();
    let old = std::fs::read(v.path()).unwrap();
    let old_sidecar = std::fs::read(v.state_path()).unwrap();
    v.set(&key("b.example", Which::Current), SECRET.as_bytes())
        .unwrap();
    v.lock();
    std::fs::write(v.path(), &old).unwrap();
    // The store that saw generation 3 refuses the copy, with or without its sidecar.
    for with_sidecar in [false, true] {
        if with_sidecar {
            std::fs::write(v.state_path(), &old_sidecar).unwrap();
        }
        match v.unlock(Some(&pass("pw"))) {
            Err(StoreError::RolledBack(m)) => assert!(
                m.contains("older copy") && m.contains("generation 2") && m.contains("3"),
                "{m}"
            ),
            other => panic!("not refused: {other:?}"),
        }
        assert!(v.needs_passphrase());
    }
    let mut s = sidecar(&v);
    s.generation = 3;
    state::write(&v.state_path(), &s, &mut |_| {}).unwrap();
    // A new process (a restarted daemon) has only the sidecar to go by: a warning.
    let v = vault(d.path());
    v.unlock(Some(&pass("pw"))).unwrap();
    let w = v.warning().expect("a rollback warning");
    assert!(
        w.contains("older copy") && w.contains("generation 2"),
        "{w}"
    );
    assert!(w.contains("generation 3"), "{w}");
    assert!(v.get(&key("b.example", Which::Current)).unwrap().is_none());
    assert_eq!(sidecar(&v).generation, 3, "unlock does not bless the copy");
    // Locking and unlocking again still warns; a change makes the copy current.
    v.lock();
    v.unlock(Some(&pass("pw"))).unwrap();
    assert!(v.warning().is_some());
    v.set(&key("c.example", Which::Current), SECRET.as_bytes())
        .unwrap();
    assert!(v.warning().is_none());
    assert_eq!(sidecar(&v).generation, 4);
    v.lock();
    v.unlock(Some(&pass("pw"))).unwrap();
    assert!(v.warning().is_none());
}

#[test]
fn a_sidecar_behind_is_repaired_and_a_missing_one_reported() {
    let d = tempfile::tempdir().unwrap();
    let v = vault(d.path());
    v.unlock(Some(&pass("pw"))).unwrap();
    v.set(&key("a.example", Which::Current), SECRET.as_bytes())
        .unwrap();
    v.lock();
    // A crash between the vault's rename and the sidecar's: the sidecar lags by one.
    let mut s = sidecar(&v);
    s.generation = 1;
    state::write(&v.state_path(), &s, &mut |_| {}).unwrap();
    v.unlock(Some(&pass("pw"))).unwrap();
    assert!(v.warning().is_none(), "{:?}", v.warning());
    assert_eq!(sidecar(&v).generation, 2);
    v.lock();
    std::fs::remove_file(v.state_path()).unwrap();
    v.unlock(Some(&pass("pw"))).unwrap();
    assert!(v.warning().unwrap().contains("cannot be checked"));
    assert_eq!(sidecar(&v).generation, 2);
    v.lock();
    std::fs::write(v.state_path(), b"{not json").unwrap();
    v.unlock(Some(&pass("pw"))).unwrap();
    assert!(v.warning().unwrap().contains("cannot be checked"));
    assert_eq!(sidecar(&v).generation, 2);
}

#[test]
fn the_back_off_is_kept_on_disk_for_the_next_process() {
    let d = tempfile::tempdir().unwrap();
    let v = vault(d.path());
    v.unlock(Some(&pass("right"))).unwrap();
    v.lock();
    assert!(v.unlock(Some(&pass("wrong"))).is_err());
    drop(v);
    // A new process: the count goes on from where it was.
    let w = vault(d.path());
    assert_eq!(sidecar(&w).failures, 1);
    assert!(
        matches!(
            w.unlock(Some(&pass("wrong again"))),
            Err(StoreError::Backoff(_))
        ),
        "the back-off goes on in the next process"
    );
    wait_out(&w);
    assert!(matches!(
        w.unlock(Some(&pass("wrong again"))),
        Err(StoreError::WrongPassphrase)
    ));
    let s = sidecar(&w);
    assert_eq!(s.failures, 2);
    assert_eq!(state::delay(s.failures), Duration::from_secs(2));
    wait_out(&w);
    w.unlock(Some(&pass("right"))).unwrap();
    assert_eq!(sidecar(&w).failures, 0);
}

#[test]
fn the_back_off_delays_double_up_to_a_limit() {
    let got: Vec<u64> = (1..=7).map(|n| state::delay(n).as_secs()).collect();
    assert_eq!(got, [1, 2, 4, 8, 16, 16, 16]);
    let far = state::State {
        not_before: u64::MAX,
        ..Default::default()
    };
    assert_eq!(
        far.wait(),
        state::MAX_DELAY,
        "a clock set back waits no longer"
    );
}

#[test]
fn a_damaged_or_missing_identity_is_reported_and_kept() {
    let d = tempfile::tempdir().unwrap();
    let v = vault(d.path());
    v.unlock(Some(&pass("pw"))).unwrap();
    v.set(&key("a.example", Which::Current), SECRET.as_bytes())
        .unwrap();
    v.lock();
    let vault_bytes = std::fs::read(v.path()).unwrap();
    let good = std::fs::read(v.identity_path()).unwrap();
    std::fs::write(v.identity_path(), &good[..good.len() - 7]).unwrap();
    assert!(matches!(
        v.unlock(Some(&pass("pw"))),
        Err(StoreError::Corrupt(_))
    ));
    std::fs::remove_file(v.identity_path()).unwrap();
    match v.unlock(Some(&pass("pw"))) {
        Err(StoreError::Corrupt(m)) => assert!(m.contains("missing"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Another identity: vault.age does not open with it.
    let other = age::x25519::Identity::generate();
    v.write_identity(&other, &pass("pw")).unwrap();
    match v.unlock(Some(&pass("pw"))) {
        Err(StoreError::Corrupt(m)) => assert!(m.contains("identity.age"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read(v.path()).unwrap(), vault_bytes);
    std::fs::write(v.identity_path(), &good).unwrap();
    v.unlock(Some(&pass("pw"))).unwrap();
}

#[test]
fn a_leftover_identity_is_reused_or_refused_never_overwritten() {
    let d = tempfile::tempdir().unwrap();
    let v = vault(d.path());
    std::fs::create_dir_all(d.path().join("data")).unwrap();
    let id = age::x25519::Identity::generate();
    v.write_identity(&id, &pass("first")).unwrap();
    let leftover = std::fs::read(v.identity_path()).unwrap();
    match v.unlock(Some(&pass("second"))) {
        Err(StoreError::Invalid(m)) => assert!(m.contains("move it away"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read(v.identity_path()).unwrap(), leftover);
    assert!(!v.exists());
    v.unlock(Some(&pass("first"))).unwrap();
    assert_eq!(std::fs::read(v.identity_path()).unwrap(), leftover);
    assert_eq!(
        v.state().as_ref().unwrap().recipient.to_string(),
        id.to_public().to_string()
    );
}
