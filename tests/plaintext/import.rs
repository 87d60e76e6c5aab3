//! `import`: every type, scopes, scrubbed files, dry run, conflicts, COMPOSER_AUTH, kill -9.

use super::*;
use crate::support::TestEnv;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Every secret seeded, for leak checks (including Bitbucket's cached access token, which is dropped).
const SECRETS: &[&str] = &[
    PUB,
    PRIV,
    PUB2,
    PRIV2,
    "bb-key-1",
    "bb-secret-1",
    "bb-access-1",
    "ghp_global_token_1",
    "glo_global_1",
    "deploy-user-x1",
    "glt_global_1",
    "glpat_global_1",
    "bearer_global_1",
    "fj-user-x1",
    "fj_token_1",
    "bearer_project_1",
    "ghp_magento_home_1",
];

struct Seeded {
    global: PathBuf,
    local: PathBuf,
    magento: PathBuf,
    project: PathBuf,
}

fn seed(t: &TestEnv) -> Seeded {
    let home = composer_home(t);
    let project = project(t, "shop");
    let global = home.join("auth.json");
    write_mode(
        &global,
        &json!({
            "bitbucket-oauth": {"bitbucket.org": {"consumer-key": "bb-key-1", "consumer-secret": "bb-secret-1", "access-token": "bb-access-1", "access-token-expiration": 1700000000}},
            "github-oauth": {"github.com": "ghp_global_token_1"},
            "gitlab-oauth": {"gitlab.com": "glo_global_1"},
            "gitlab-token": {"gitlab.example.com": {"username": "deploy-user-x1", "token": "glt_global_1"}, "gitlab.com:8443": "glpat_global_1"},
            "http-basic": {"repo.magento.com": {"username": PUB, "password": PRIV}},
            "bearer": {"packages.example.com": "bearer_global_1"},
            "forgejo-token": {"codeberg.org": {"username": "fj-user-x1", "token": "fj_token_1"}}
        })
        .to_string(),
        0o600,
    );
    let local = project.join("auth.json");
    write_mode(
        &local,
        &json!({
            "_note": "shop credentials",
            "http-basic": {"repo.magento.com": {"username": PUB2, "password": PRIV2}},
            "bearer": {"satis.shop.example:8080": "bearer_project_1"}
        })
        .to_string(),
        0o640,
    );
    let magento = project.join("var/composer_home/auth.json");
    write_mode(
        &magento,
        r#"{"github-oauth": {"github.com": "ghp_magento_home_1"}, "http-basic": {}}"#,
        0o600,
    );
    Seeded {
        global,
        local,
        magento,
        project,
    }
}

/// `(origin, scoped to the project?, credential JSON)` for everything seeded.
fn expected() -> Vec<(&'static str, bool, Value)> {
    vec![
        (
            "bitbucket.org",
            false,
            json!({"type": "bitbucket-oauth", "consumer-key": "bb-key-1", "consumer-secret": "bb-secret-1"}),
        ),
        (
            "github.com",
            false,
            json!({"type": "github-oauth", "token": "ghp_global_token_1"}),
        ),
        (
            "gitlab.com",
            false,
            json!({"type": "gitlab-oauth", "token": "glo_global_1"}),
        ),
        (
            "gitlab.example.com",
            false,
            json!({"type": "gitlab-token", "username": "deploy-user-x1", "token": "glt_global_1"}),
        ),
        (
            "gitlab.com:8443",
            false,
            json!({"type": "gitlab-token", "token": "glpat_global_1"}),
        ),
        (
            "repo.magento.com",
            false,
            json!({"type": "http-basic", "username": PUB, "password": PRIV}),
        ),
        (
            "packages.example.com",
            false,
            json!({"type": "bearer", "token": "bearer_global_1"}),
        ),
        (
            "codeberg.org",
            false,
            json!({"type": "forgejo-token", "username": "fj-user-x1", "token": "fj_token_1"}),
        ),
        (
            "repo.magento.com",
            true,
            json!({"type": "http-basic", "username": PUB2, "password": PRIV2}),
        ),
        (
            "satis.shop.example:8080",
            true,
            json!({"type": "bearer", "token": "bearer_project_1"}),
        ),
        (
            "github.com",
            true,
            json!({"type": "github-oauth", "token": "ghp_magento_home_1"}),
        ),
    ]
}

/// Asserts the store holds exactly what was seeded, each in its scope, and the files are scrubbed.
fn assert_imported(t: &TestEnv, s: &Seeded) {
    let exp = expected();
    let proj = s.project.to_string_lossy().into_owned();
    let mut want: Vec<(String, String, Value)> = exp
        .iter()
        .map(|(o, scoped, c)| {
            let p = if *scoped { json!(proj) } else { Value::Null };
            (o.to_string(), c["type"].as_str().unwrap().to_owned(), p)
        })
        .collect();
    want.sort_by_key(|w| (format!("{:?}", w.0), w.2.to_string()));
    let mut got: Vec<(String, String, Value)> = list(t)
        .iter()
        .map(|e| {
            (
                e["origin"].as_str().unwrap().to_owned(),
                e["type"].as_str().unwrap().to_owned(),
                e["project"].clone(),
            )
        })
        .collect();
    got.sort_by_key(|w| (format!("{:?}", w.0), w.2.to_string()));
    assert_eq!(got, want, "stored entries, no duplicates");
    let elsewhere = t.dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    for (origin, scoped, cred) in &exp {
        let from = if *scoped { &s.project } else { &elsewhere };
        assert_eq!(
            &credential(t, origin, Some(from)),
            cred,
            "{origin} scoped={scoped}"
        );
    }
    // The project's pair wins inside the project, also from a subdirectory.
    assert_eq!(
        credential(t, "repo.magento.com", Some(&s.project.join("app/code")))["username"],
        PUB2
    );
    assert_eq!(credential(t, "repo.magento.com", None)["username"], PUB);

    assert!(!s.global.exists(), "the global auth.json held only secrets");
    assert!(
        !s.magento.exists(),
        "var/composer_home/auth.json held only secrets and an empty group"
    );
    assert_eq!(
        std::fs::read_to_string(&s.local).unwrap(),
        "{\n    \"_note\": \"shop credentials\"\n}\n"
    );
    assert_eq!(
        std::fs::metadata(&s.local).unwrap().permissions().mode() & 0o777,
        0o640
    );
    for secret in SECRETS {
        assert_eq!(
            t.files_containing(secret),
            Vec::<PathBuf>::new(),
            "{secret} left on disk"
        );
    }
}

#[test]
fn import_moves_every_type_scopes_the_project_and_scrubs() {
    let t = TestEnv::with_keyring(true);
    let s = seed(&t);
    let _d = t.start_daemon(&[]);
    let out = t.run_in(&s.project.join("app/code"), &["import"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let shown = text(&out);
    assert_no_secret(&shown, SECRETS);
    assert!(
        shown.contains("Imported 11 credential(s): 11 new"),
        "{shown}"
    );
    assert_imported(&t, &s);
    // A second run finds nothing left and changes nothing.
    let again = t.run_in(&s.project, &["import"], &[]);
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        text(&again).contains("Nothing to import"),
        "{}",
        text(&again)
    );
    assert_imported(&t, &s);
}

#[test]
fn dry_run_changes_nothing() {
    let t = TestEnv::with_keyring(true);
    let s = seed(&t);
    let files = [&s.global, &s.local, &s.magento];
    let before: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    // No daemon runs: a dry run must not need one.
    let out = t.run_in(&s.project, &["import", "--dry-run"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let shown = text(&out);
    assert_no_secret(&shown, SECRETS);
    for (origin, _, _) in expected() {
        assert!(shown.contains(origin), "plan names {origin}: {shown}");
    }
    assert!(
        shown.contains(&format!("for project {}", s.project.display())),
        "{shown}"
    );
    let after: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    assert_eq!(before, after, "byte-identical");
    let _d = t.start_daemon(&[]);
    assert!(list(&t).is_empty());
}

#[test]
fn conflicts_are_reported_and_replace_overwrites() {
    let t = TestEnv::with_keyring(true);
    let _d = t.start_daemon(&[]);
    t.ok(&["add", "repo.magento.com"], &format!("{PUB}\n{PRIV}\n"));
    let home = composer_home(&t);
    let file = home.join("auth.json");
    let text_before = json!({
        "http-basic": {"repo.magento.com": {"username": PUB2, "password": PRIV2}},
        "bearer": {"b.example.com": "bearer_x1"}
    })
    .to_string();
    write_mode(&file, &text_before, 0o600);
    let out = t.run_in(t.dir.path(), &["import"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let shown = text(&out);
    assert!(
        shown.contains("a different secret is already stored"),
        "{shown}"
    );
    assert!(shown.contains("--replace"), "{shown}");
    assert_no_secret(&shown, &[PUB, PRIV, PUB2, PRIV2, "bearer_x1"]);
    assert_eq!(
        credential(&t, "repo.magento.com", None)["username"],
        PUB,
        "not overwritten"
    );
    assert_eq!(credential(&t, "b.example.com", None)["token"], "bearer_x1");
    let left: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(
        left,
        json!({"http-basic": {"repo.magento.com": {"username": PUB2, "password": PRIV2}}})
    );

    let out = t.run_in(t.dir.path(), &["import", "--replace"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(credential(&t, "repo.magento.com", None)["username"], PUB2);
    assert!(!file.exists());
    assert_eq!(list(&t).len(), 2);
}

#[test]
fn from_env_imports_and_says_where_to_remove_it() {
    let t = TestEnv::with_keyring(true);
    let _d = t.start_daemon(&[]);
    let value = json!({"github-oauth": {"github.com": "ghp_env_1"}, "http-basic": {"repo.magento.com": {"username": PUB, "password": PRIV}}}).to_string();
    std::fs::write(
        t.home().join(".bashrc"),
        format!("alias ll='ls -l'\nexport COMPOSER_AUTH='{value}'\n"),
    )
    .unwrap();
    let out = t.run_in(
        t.dir.path(),
        &["import", "--from-env"],
        &[("COMPOSER_AUTH", &value)],
    );
    assert!(out.status.success(), "{}", text(&out));
    let shown = text(&out);
    assert_no_secret(&shown, &[PUB, PRIV, "ghp_env_1"]);
    assert!(
        shown.contains(&format!("{}:2", t.home().join(".bashrc").display())),
        "{shown}"
    );
    assert!(shown.contains("unset COMPOSER_AUTH"), "{shown}");
    assert_eq!(credential(&t, "github.com", None)["token"], "ghp_env_1");
    assert_eq!(credential(&t, "repo.magento.com", None)["password"], PRIV);
    assert_eq!(list(&t).len(), 2);
}

/// True when the daemon holds `cred` for `origin` in its scope, or `file` still holds the entry.
fn held(t: &TestEnv, s: &Seeded, origin: &str, scoped: bool, cred: &Value, file: &Path) -> bool {
    let scope = if scoped {
        format!("?project={}", s.project.display())
    } else {
        String::new()
    };
    let r = request(
        &t.socket(),
        "GET",
        &format!("/v1/credentials/{origin}{scope}"),
        None,
    )
    .unwrap();
    if r.status == 200 && r.json()["credential"] == *cred && r.json()["project"].is_null() != scoped
    {
        return true;
    }
    let Ok(bytes) = std::fs::read(file) else {
        return false;
    };
    let doc: Value = serde_json::from_slice(&bytes).unwrap();
    !doc[cred["type"].as_str().unwrap()][origin].is_null()
}

#[test]
fn kill9_at_any_point_loses_nothing_and_a_rerun_finishes() {
    for point in [
        "import-after-first-store",
        "import-after-store",
        "import-after-first-scrub",
    ] {
        let t = TestEnv::with_keyring(true);
        let s = seed(&t);
        let _d = t.start_daemon(&[]);
        let mut child = t.import_paused_at(&s.project, point);
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success(), "{point}: killed");

        // Nothing lost: every secret is in the keyring or still in its file.
        for (origin, scoped, cred) in expected() {
            let file = match (scoped, origin) {
                (false, _) => &s.global,
                (true, "github.com") => &s.magento,
                (true, _) => &s.local,
            };
            assert!(
                held(&t, &s, origin, scoped, &cred, file),
                "{point}: {origin} lost"
            );
        }
        let out = t.run_in(&s.project, &["import"], &[]);
        assert!(out.status.success(), "{point}: {}", text(&out));
        assert_imported(&t, &s);
    }
}

#[test]
fn on_the_vault_import_names_the_vault() {
    let mut t = TestEnv::bare();
    t.env
        .insert("COMPOSER_KEYD_TEST_SCRYPT_LOG_N".into(), "12".into());
    t.env.insert("COMPOSER_KEYD_BACKEND".into(), "vault".into());
    let _d = t.start_daemon(&[]);
    t.ok(&["unlock"], "vault-pw-1\nvault-pw-1\n");
    let home = composer_home(&t);
    let global = home.join("auth.json");
    write_mode(
        &global,
        &json!({"bearer": {"packages.example.com": "bearer_vault_1"}}).to_string(),
        0o600,
    );
    let out = t.run_in(t.dir.path(), &["import"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("packages.example.com  -> age file"), "{said}");
    assert!(said.contains("secret(s) are in the age file"), "{said}");
    assert!(!said.contains("keyring"), "{said}");
    assert_no_secret(&said, &["bearer_vault_1"]);
}
