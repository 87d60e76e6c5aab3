//! Unit tests of the vault file: round trips, locking, damage, and what lands on disk.

use super::*;
use crate::credential::Origin;
use crate::store::Slot;

const SECRET: &str = r#"{"type":"http-basic","username":"pub-5f1e","password":"priv-9c2d"}"#;

fn vault(dir: &Path) -> VaultStore {
    // A low work factor keeps the tests fast; the format is the same.
    VaultStore {
        log_n: 10,
        ..VaultStore::new(dir.join("data/vault.age"))
    }
}

fn key(origin: &str, slot: Slot) -> SlotKey {
    SlotKey::new(&Origin::parse(origin).unwrap(), None, slot)
}

fn pass(s: &str) -> Secret<String> {
    Secret::from(s)
}

#[test]
fn create_write_reopen() {
    let d = tempfile::tempdir().unwrap();
    let v = vault(d.path());
    assert!(!v.exists() && v.needs_passphrase());
    assert!(matches!(
        v.get(&key("a.example", Slot::Current)),
        Err(StoreError::Locked)
    ));
    v.unlock(Some(&pass("pw"))).unwrap();
    assert!(v.exists() && !v.needs_passphrase());
    let k = key("repo.magento.com", Slot::Current);
    let p = key("repo.magento.com", Slot::Previous);
    v.set(&k, SECRET.as_bytes()).unwrap();
    v.set(&p, br#"{"type":"bearer","token":"old"}"#).unwrap();
    assert_eq!(v.get(&k).unwrap().unwrap().expose(), SECRET.as_bytes());

    let bytes = std::fs::read(v.path()).unwrap();
    for needle in ["pub-5f1e", "priv-9c2d", "repo.magento.com", "http-basic"] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "{needle} in the file"
        );
    }
    let mode = std::fs::metadata(v.path()).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o600);

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
    let text = serialize(&e);
    let v: serde_json::Value = serde_json::from_slice(&text).unwrap();
    assert_eq!(v["format"], 1);
    assert_eq!(
        v["credentials"]["composer-keyd"]["github.com@/p/x \"q\""]["password"],
        "priv-9c2d"
    );
    let back = parse(&text).ok().unwrap();
    assert_eq!(
        back["composer-keyd"]["github.com@/p/x \"q\""].expose(),
        SECRET.as_bytes()
    );
    assert!(serialize(&Entries::new()).starts_with(b"{\"format\":1,\"credentials\":{}}"));
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
    assert_eq!(v.io().failures, 1);
    assert!(v.needs_passphrase());
    v.unlock(Some(&pass("right"))).unwrap();
    assert_eq!(v.io().failures, 0, "success resets the delay");
}

#[test]
fn damaged_files_are_reported_and_kept() {
    let d = tempfile::tempdir().unwrap();
    let v = vault(d.path());
    v.unlock(Some(&pass("pw"))).unwrap();
    v.set(&key("a.example", Slot::Current), SECRET.as_bytes())
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
    b.set(&key("b.example", Slot::Current), SECRET.as_bytes())
        .unwrap();
    let after_b = std::fs::read(a.path()).unwrap();
    assert!(matches!(
        a.set(&key("a.example", Slot::Current), SECRET.as_bytes()),
        Err(StoreError::Unavailable { .. })
    ));
    assert_eq!(std::fs::read(a.path()).unwrap(), after_b);
}

#[test]
fn passwd_reencrypts() {
    let d = tempfile::tempdir().unwrap();
    let v = vault(d.path());
    v.unlock(Some(&pass("one"))).unwrap();
    let k = key("a.example", Slot::Current);
    v.set(&k, SECRET.as_bytes()).unwrap();
    assert!(matches!(
        v.change_passphrase(&pass("nope"), &pass("two")),
        Err(StoreError::WrongPassphrase)
    ));
    v.change_passphrase(&pass("one"), &pass("two")).unwrap();
    // Still unlocked, and later writes use the new passphrase.
    v.set(&key("b.example", Slot::Current), SECRET.as_bytes())
        .unwrap();
    let w = vault(d.path());
    assert!(matches!(
        w.unlock(Some(&pass("one"))),
        Err(StoreError::WrongPassphrase)
    ));
    w.unlock(Some(&pass("two"))).unwrap();
    assert!(w.get(&k).unwrap().is_some());
    assert!(w.get(&key("b.example", Slot::Current)).unwrap().is_some());
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
        v.set(&key("a.example", Slot::Current), b"not json"),
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
