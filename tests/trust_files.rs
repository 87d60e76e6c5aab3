//! Files another user could turn against `import`: planted temp-file symlinks, shared
//! directories, symlinked auth.json files, temp files left by a kill -9, and URLs whose
//! userinfo must never come back in an error. The attacker is the real user `nobody`.

use crate::support;

use serde_json::json;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;
use support::attacker::Nobody;
use support::TestEnv;

const ROOT_TEXT: &str = "root's own file, never to be changed\n";
const TOKEN: &str = "bearer_shared_dir_t0ken";

/// Plants `count` symlinks to `target` in `dir` as nobody: the temp names of the old
/// `atomic::write` for the next pids, then random-looking names in the old and new patterns.
const PLANT: &str = r#"
import os, random, string, sys
d, target, first, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
alnum = string.ascii_letters + string.digits
names = [".auth.json.tmp.%d" % p for p in range(first, first + count - 100)]
names += [".auth.json.tmp.%s" % "".join(random.choice(alnum) for _ in range(8)) for _ in range(50)]
names += [".auth.json.%s.keyd-tmp" % "".join(random.choice(alnum) for _ in range(12)) for _ in range(50)]
for n in names:
    os.symlink(target, os.path.join(d, n))
print(len(names))
"#;

/// Writes nobody's auth.json (setuid mode, as the issue's attacker made it) in its directory.
const AUTH_AS_NOBODY: &str = r#"
import json, os, sys
p = os.path.join(sys.argv[1], "auth.json")
with open(p, "w") as f:
    json.dump({"_note": "shared", "bearer": {"shared.example": sys.argv[2]}}, f)
os.chmod(p, 0o4666)
"#;

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A root-only file in a root-only directory: what the planted links point at.
fn root_file(t: &TestEnv) -> PathBuf {
    let d = t.dir.path().join("root-only");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
    let f = d.join("secret.txt");
    std::fs::write(&f, ROOT_TEXT).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    f
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

/// Every path below `dir` (symlinks not followed) with a setuid, setgid or sticky bit on a
/// regular file.
fn special_bits(dir: &Path) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    support::walk(dir, &mut |p| {
        if mode(p) & 0o7000 != 0 {
            hits.push(p.to_path_buf());
        }
    });
    hits
}

fn stored(t: &TestEnv) -> Vec<serde_json::Value> {
    serde_json::from_str(&t.ok(&["list", "--json"], "")).unwrap()
}

/// The pid the next process will get, as far as this pid namespace tells.
fn next_pid() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .expect("/proc/sys/kernel/ns_last_pid")
        .trim()
        .parse::<u32>()
        .unwrap()
        + 1
}

/// A directory of `nobody`'s holding an auth.json with a secret, and `links` symlinks under
/// the temp names an import would use, all pointing at a file of root's (returned last).
fn shared_dir_with_planted_links(t: &TestEnv, links: &str) -> (Nobody, PathBuf, PathBuf) {
    let nobody = Nobody::new(t.dir.path());
    let victim = root_file(t);
    let shared = nobody.dir(t.dir.path(), "shared");
    let d = shared.to_str().unwrap();
    nobody.python(AUTH_AS_NOBODY, &[d, TOKEN]);
    let first = next_pid().to_string();
    let out = nobody.python(PLANT, &[d, victim.to_str().unwrap(), &first, links]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), links);
    (nobody, shared, victim)
}

#[test]
fn planted_temp_symlinks_never_redirect_a_root_import() {
    let t = TestEnv::with_keyring(true);
    let _d = t.start_daemon(&[]);
    let (_nobody, shared, victim) = shared_dir_with_planted_links(&t, "3000");

    let auth = shared.join("auth.json");
    let out = t.run_in(
        t.dir.path(),
        &["import", auth.to_str().unwrap(), "--allow-shared-dir"],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));

    assert_eq!(std::fs::read_to_string(&victim).unwrap(), ROOT_TEXT);
    assert_eq!(mode(&victim), 0o600, "the root file's mode");
    assert_eq!(std::fs::metadata(&victim).unwrap().uid(), 0);
    assert_eq!(special_bits(t.dir.path()), Vec::<PathBuf>::new());
    // The import did its job, in a fresh file of root's own.
    assert_eq!(
        std::fs::read_to_string(&auth).unwrap(),
        "{\n    \"_note\": \"shared\"\n}\n"
    );
    assert_eq!(mode(&auth), 0o666, "the mode kept, without setuid");
    assert_eq!(t.credential("shared.example", None)["token"], TOKEN);
    // Nobody's links are still links, and nothing else appeared beside them.
    let names: Vec<_> = std::fs::read_dir(&shared).unwrap().flatten().collect();
    assert_eq!(names.len(), 3001, "auth.json and the planted links only");
    for e in names {
        let is_auth = e.file_name() == "auth.json";
        assert_eq!(
            e.file_type().unwrap().is_symlink(),
            !is_auth,
            "{:?}",
            e.path()
        );
    }
}

#[test]
fn a_shared_dir_is_refused_without_the_flag() {
    let t = TestEnv::with_keyring(true);
    let _d = t.start_daemon(&[]);
    let (_nobody, shared, victim) = shared_dir_with_planted_links(&t, "300");
    let auth = shared.join("auth.json");
    let before = std::fs::read(&auth).unwrap();

    let out = t.run_in(t.dir.path(), &["import", auth.to_str().unwrap()], &[]);
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let reason: Vec<&str> = err.lines().filter(|l| l.contains("refusing")).collect();
    assert_eq!(reason.len(), 1, "one line: {err}");
    for word in ["auth.json", "nobody", "--allow-shared-dir"] {
        assert!(reason[0].contains(word), "{word} in {}", reason[0]);
    }
    assert_eq!(std::fs::read(&auth).unwrap(), before, "auth.json untouched");
    assert_eq!(mode(&auth), 0o4666, "its mode untouched");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), ROOT_TEXT);
    assert_eq!(
        stored(&t),
        Vec::<serde_json::Value>::new(),
        "nothing stored"
    );
}

#[test]
fn a_symlinked_auth_json_in_a_shared_dir_is_not_followed() {
    let t = TestEnv::with_keyring(true);
    let _d = t.start_daemon(&[]);
    let nobody = Nobody::new(t.dir.path());
    // Root's own auth.json in root's own directory; nobody links it into its directory.
    let mine = t.dir.path().join("mine");
    std::fs::create_dir_all(&mine).unwrap();
    let real = mine.join("auth.json");
    let body = json!({"bearer": {"mine.example": TOKEN}}).to_string();
    std::fs::write(&real, &body).unwrap();
    let shared = nobody.dir(t.dir.path(), "shared");
    nobody.python(
        "import os, sys; os.symlink(sys.argv[1], sys.argv[2])",
        &[
            real.to_str().unwrap(),
            shared.join("auth.json").to_str().unwrap(),
        ],
    );
    for extra in [&[][..], &["--allow-shared-dir"][..]] {
        let link = shared.join("auth.json");
        let mut args = vec!["import", link.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = t.run_in(t.dir.path(), &args, &[]);
        assert!(!out.status.success(), "{extra:?}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("not following"), "{err}");
        assert!(
            err.contains(real.to_str().unwrap()),
            "names the target: {err}"
        );
        assert_eq!(std::fs::read_to_string(&real).unwrap(), body);
        assert_eq!(stored(&t), Vec::<serde_json::Value>::new());
    }
}

/// A project and, outside it, a directory without composer.json holding the real file.
fn linked_project(t: &TestEnv) -> (PathBuf, PathBuf) {
    let project = t.dir.path().join("shop");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(project.join("composer.json"), r#"{"name": "shop/site"}"#).unwrap();
    let project = std::fs::canonicalize(project).unwrap();
    let secrets = t.dir.path().join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    let real = std::fs::canonicalize(&secrets).unwrap().join("auth.json");
    std::fs::write(
        &real,
        json!({"_note": "kept", "bearer": {"satis.shop.example": TOKEN}}).to_string(),
    )
    .unwrap();
    (project, real)
}

#[test]
fn a_linked_project_auth_json_keeps_the_project_scope_and_shows_the_target() {
    let t = TestEnv::with_keyring(true);
    let _d = t.start_daemon(&[]);
    let (project, real) = linked_project(&t);
    std::os::unix::fs::symlink(&real, project.join("auth.json")).unwrap();

    let out = t.run_in(&project, &["import"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let shown = format!(
        "{} -> {}",
        project.join("auth.json").display(),
        real.display()
    );
    assert!(text(&out).contains(&shown), "{}", text(&out));
    let list = stored(&t);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["project"], project.to_str().unwrap(), "{list:?}");
    let elsewhere = t.dir.path().join("secrets");
    assert_eq!(t.lookup("satis.shop.example", Some(&elsewhere)).status, 404);
    assert_eq!(
        std::fs::read_to_string(&real).unwrap(),
        "{\n    \"_note\": \"kept\"\n}\n",
        "scrubbed at the target"
    );
    assert!(std::fs::symlink_metadata(project.join("auth.json"))
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn a_link_outside_any_project_is_refused_rather_than_made_global() {
    let t = TestEnv::with_keyring(true);
    let _d = t.start_daemon(&[]);
    let (_, real) = linked_project(&t);
    let loose = t.dir.path().join("loose");
    std::fs::create_dir_all(&loose).unwrap();
    std::os::unix::fs::symlink(&real, loose.join("auth.json")).unwrap();
    let before = std::fs::read(&real).unwrap();

    let link = loose.join("auth.json");
    let out = t.run_in(&loose, &["import", link.to_str().unwrap()], &[]);
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("all projects"), "{err}");
    assert!(err.contains(real.to_str().unwrap()), "{err}");
    assert_eq!(stored(&t), Vec::<serde_json::Value>::new());
    assert_eq!(std::fs::read(&real).unwrap(), before);
}

/// Our temp files of `auth.json` in `dir`: the old `.auth.json.tmp.PID` and today's names.
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(".auth.json.") && (n.ends_with(".keyd-tmp") || n.contains(".tmp."))
        })
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

#[test]
fn a_temp_file_left_by_kill9_is_reported_by_scan_and_removed_by_import() {
    let t = TestEnv::with_keyring(true);
    let _d = t.start_daemon(&[]);
    let (project, _) = linked_project(&t);
    let auth = project.join("auth.json");
    std::fs::write(
        &auth,
        json!({"_note": "kept", "bearer": {"satis.shop.example": TOKEN}}).to_string(),
    )
    .unwrap();
    // What a kill -9 of an older version left: a whole auth.json under the old temp name.
    let old = project.join(".auth.json.tmp.4242");
    std::fs::write(
        &old,
        json!({"bearer": {"old.example": "old_plain_t0ken"}}).to_string(),
    )
    .unwrap();

    let mut child = t.import_paused_at(&project, "import-scrub-before-rename");
    child.kill().unwrap();
    child.wait().unwrap();
    let left = leftovers(&project);
    assert_eq!(left.len(), 1, "one temp file from the kill: {left:?}");
    assert!(!left.contains(&old), "the old one was removed at the start");
    let fresh = left[0].clone();

    // Plant the old-style one again, then scan: both reported, exit 1.
    std::fs::write(&old, "{\"bearer\": {\"old.example\": \"old_plain_t0ken\"}}").unwrap();
    let out = t.run_in(&project, &["scan"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    for p in [&old, &fresh] {
        assert!(
            said.lines()
                .any(|l| l.contains(p.to_str().unwrap()) && l.contains("leftover-temp-file")),
            "{} not reported: {said}",
            p.display()
        );
    }
    let out = t.run_in(&project, &["scan", "--json"], &[]);
    let found: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        found
            .iter()
            .filter(|f| f["type"] == "leftover-temp-file")
            .count(),
        2,
        "{found:?}"
    );

    // The next import removes both, says so, and finishes the job.
    let out = t.run_in(&project, &["import"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    for p in [&old, &fresh] {
        assert!(
            text(&out).contains(&format!("Removed {}", p.display())),
            "{}",
            text(&out)
        );
    }
    assert_eq!(leftovers(&project), Vec::<PathBuf>::new());
    assert_eq!(
        std::fs::read_to_string(&auth).unwrap(),
        "{\n    \"_note\": \"kept\"\n}\n"
    );
    assert_eq!(
        t.credential("satis.shop.example", Some(&project))["token"],
        TOKEN
    );
    let out = t.run_in(&project, &["scan"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn no_error_echoes_a_urls_userinfo() {
    const PW: &str = "pa55w0rd-in-url";
    let t = TestEnv::with_keyring(true);
    let _d = t.start_daemon(&[]);
    let url = format!("https://deploy:{PW}@repo.example.com");
    let bare = format!("deploy:{PW}@repo.example.com:8443");
    let mut said = Vec::new();
    for origin in [&url, &bare] {
        let out = t.cli(&["add", origin, "--type", "bearer"], "tok\n");
        assert!(!out.status.success());
        assert!(text(&out).contains("is not an origin"), "{}", text(&out));
        said.push(text(&out));
        said.push(text(&t.cli(&["check", origin], "")));
    }
    // A key of that shape in an auth.json, and in a composer.json's repositories.
    let dir = t.dir.path().join("urls");
    std::fs::create_dir_all(&dir).unwrap();
    let auth = dir.join("auth.json");
    std::fs::write(
        &auth,
        json!({"http-basic": {url.clone(): {"username": "u", "password": "p"}}}).to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.join("composer.json"),
        json!({"repositories": {url.clone(): {"type": "composer", "url": "https://repo.example.com"}}})
            .to_string(),
    )
    .unwrap();
    let out = t.run_in(&dir, &["import", "--dry-run", auth.to_str().unwrap()], &[]);
    assert!(text(&out).contains("left in place"), "{}", text(&out));
    said.push(text(&out));
    for args in [
        &["scan", "--no-env"][..],
        &["scan", "--json", "--no-env"][..],
    ] {
        let mut a = args.to_vec();
        a.push(dir.to_str().unwrap());
        let out = t.run_in(&dir, &a, &[]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        said.push(text(&out));
    }
    for s in &said {
        assert!(!s.contains(PW), "the userinfo came back: {s}");
    }
    assert!(
        said.iter().any(|s| s.contains("***@repo.example.com")),
        "{said:?}"
    );
}

#[test]
fn other_atomic_writes_refuse_a_directory_others_can_write() {
    let t = TestEnv::with_keyring(true);
    // `shim install`'s global composer.json, in a COMPOSER_HOME that others can write.
    let home = t.dir.path().join("composer-home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = t.cli(
        &[
            "shim",
            "install",
            "--composer-home",
            home.to_str().unwrap(),
            "--composer",
            "/bin/false",
        ],
        "",
    );
    assert!(!out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("refusing to change") && said.contains("chmod go-w"),
        "{said}"
    );
    assert!(!home.join("composer.json").exists());

    // The daemon's index, in a data directory that its group can write.
    let _d = t.start_daemon(&[]);
    t.ok(&["add", "one.example", "--type", "bearer"], "tok-1\n");
    let data = PathBuf::from(&t.env["XDG_DATA_HOME"]).join("composer-keyd");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o770)).unwrap();
    let out = t.cli(&["add", "two.example", "--type", "bearer"], "tok-2\n");
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("refusing to change"), "{said}");
    assert_eq!(
        leftovers_any(&data),
        Vec::<PathBuf>::new(),
        "no temp file left behind"
    );
}

/// Every temp file of ours in `dir`, whatever file it was for.
fn leftovers_any(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".keyd-tmp"))
        .collect()
}
