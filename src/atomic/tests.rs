use super::*;
use std::os::unix::fs::{symlink, PermissionsExt};

fn mode_of(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn replaces_with_mode() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("f.json");
    write(&p, b"one", 0o600).unwrap();
    write(&p, b"two", 0o640).unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"two");
    assert_eq!(mode_of(&p), 0o640);
    assert_eq!(
        fs::read_dir(d.path()).unwrap().count(),
        1,
        "no temp file left"
    );
}

#[test]
fn never_sets_setuid_setgid_or_sticky() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("f.json");
    write(&p, b"x", 0o7777).unwrap();
    assert_eq!(mode_of(&p), 0o777);
}

#[test]
fn a_planted_link_with_the_old_temp_name_is_not_followed() {
    let d = tempfile::tempdir().unwrap();
    let victim = d.path().join("victim");
    fs::write(&victim, b"keep").unwrap();
    fs::set_permissions(&victim, Permissions::from_mode(0o600)).unwrap();
    let planted = d.path().join(format!(".f.json.tmp.{}", std::process::id()));
    symlink(&victim, &planted).unwrap();
    let p = d.path().join("f.json");
    write(&p, b"new", 0o4666).unwrap();
    assert_eq!(fs::read(&victim).unwrap(), b"keep");
    assert_eq!(mode_of(&victim), 0o600);
    assert_eq!(fs::read(&p).unwrap(), b"new");
    assert!(fs::symlink_metadata(&planted)
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn the_temp_file_is_random_ours_and_recognisable() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("auth.json");
    let mut seen = Vec::new();
    write_with(&p, b"{}", 0o640, &mut |s| {
        if s == Stage::BeforeRename {
            seen = find_leftovers(d.path(), Some("auth.json"))
                .iter()
                .map(|p| mode_of(p))
                .collect();
        }
    })
    .unwrap();
    assert_eq!(seen, vec![0o640], "one temp file, mode set on it");
    assert!(find_leftovers(d.path(), None).is_empty());
}

#[test]
fn refuses_a_directory_others_can_write_unless_allowed() {
    let d = tempfile::tempdir().unwrap();
    let shared = d.path().join("shared");
    fs::create_dir(&shared).unwrap();
    for mode in [0o777, 0o1777, 0o775, 0o757] {
        fs::set_permissions(&shared, Permissions::from_mode(mode)).unwrap();
        let p = shared.join("auth.json");
        let e = write(&p, b"x", 0o600).unwrap_err();
        let u = Untrusted::from_io(&e).expect("an Untrusted error");
        assert!(
            matches!(&u.reason, UntrustedReason::WritableByOthers { path, .. } if path == &fs::canonicalize(&shared).unwrap()),
            "{u}"
        );
        assert!(e.to_string().contains("chmod go-w"), "{e}");
        assert!(!p.exists());
        write_opts(&p, b"x", 0o600, Shared::Allow, &mut |_| {}).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"x");
        fs::remove_file(&p).unwrap();
    }
}

#[test]
fn a_writable_directory_above_is_refused_but_a_root_sticky_one_is_not() {
    let d = tempfile::tempdir().unwrap();
    let upper = d.path().join("upper");
    fs::create_dir_all(upper.join("mine")).unwrap();
    fs::set_permissions(&upper, Permissions::from_mode(0o777)).unwrap();
    let e = write(&upper.join("mine/f"), b"x", 0o600).unwrap_err();
    assert!(Untrusted::from_io(&e).is_some(), "{e}");
    // tempdir() is below the root-owned sticky /tmp (or TMPDIR): admitted above the file.
    write(&d.path().join("f"), b"x", 0o600).unwrap();
}

#[test]
fn leftover_names() {
    assert_eq!(leftover_base(".auth.json.tmp.4242"), Some("auth.json"));
    assert_eq!(
        leftover_base(".auth.json.AbCdEf012345.keyd-tmp"),
        Some("auth.json")
    );
    for not in [
        "auth.json",
        ".auth.json.tmp.",
        ".auth.json.tmp.12a",
        ".auth.json.short.keyd-tmp",
        "..tmp.1",
        ".auth.json.bak",
    ] {
        assert_eq!(leftover_base(not), None, "{not}");
    }
}

#[test]
fn removes_only_our_regular_leftovers() {
    let d = tempfile::tempdir().unwrap();
    let ours = d.path().join(".auth.json.tmp.77");
    fs::write(&ours, b"{\"secret\":1}").unwrap();
    let other = d.path().join(".config.toml.AbCdEf012345.keyd-tmp");
    fs::write(&other, b"x").unwrap();
    let link = d.path().join(".auth.json.tmp.78");
    symlink(&other, &link).unwrap();
    assert_eq!(remove_leftovers(d.path(), "auth.json"), vec![ours.clone()]);
    assert!(!ours.exists());
    assert!(other.exists() && fs::symlink_metadata(&link).is_ok());
    assert_eq!(find_leftovers(d.path(), None), vec![other]);
}
