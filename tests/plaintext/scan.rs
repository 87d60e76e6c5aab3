//! `scan`: nested finds, no secret printed, exit codes, COMPOSER_AUTH, git history.

use super::*;
use crate::support::TestEnv;
use serde_json::{json, Value};

const SECRETS: &[&str] = &[
    PUB,
    PRIV,
    "satis-user-x1",
    "satis-pass-x1",
    "deep_token_x1",
    "ghp_vendor_x1",
    "hdr_token_x1",
    "ghp_home_x1",
    "ghp_env_x1",
];

fn seed_tree(t: &TestEnv) -> std::path::PathBuf {
    let root = project(t, "site");
    std::fs::write(
        root.join("composer.json"),
        json!({
            "name": "shop/site",
            "config": {"http-basic": {"repo.magento.com": {"username": PUB, "password": PRIV}}, "sort-packages": true},
            "repositories": [{"type": "composer", "url": "https://satis-user-x1:satis-pass-x1@satis.example.com/"}]
        })
        .to_string(),
    )
    .unwrap();
    write_mode(
        &root.join("deep/a/b/c/auth.json"),
        r#"{"bearer": {"deep.example.com": "deep_token_x1"}}"#,
        0o600,
    );
    write_mode(
        &root.join("vendor/acme/lib/auth.json"),
        r#"{"github-oauth": {"github.com": "ghp_vendor_x1"}}"#,
        0o644,
    );
    write_mode(
        &root.join("modules/x/composer.json"),
        r#"{"repositories": {"private": {"type": "composer", "url": "https://pkg.example.org", "options": {"http": {"header": ["Authorization: Bearer hdr_token_x1"]}}}}}"#,
        0o644,
    );
    root
}

#[test]
fn scan_finds_nested_secrets_prints_none_and_passes_a_clean_tree() {
    let t = TestEnv::bare();
    let root = seed_tree(&t);
    let r = root.to_str().unwrap();
    let out = t.run_in(t.dir.path(), &["scan", r], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let shown = text(&out);
    assert_no_secret(&shown, SECRETS);
    for needle in [
        "deep/a/b/c/auth.json: bearer for deep.example.com",
        "vendor/acme/lib/auth.json: github-oauth for github.com",
        "composer.json: http-basic for repo.magento.com at config.http-basic",
        "composer.json: url-credentials for satis.example.com at repositories[0].url",
        "modules/x/composer.json: auth-header for pkg.example.org",
        "fix: composer-keyd import",
    ] {
        assert!(shown.contains(needle), "missing {needle:?} in {shown}");
    }

    let out = t.run_in(t.dir.path(), &["scan", "--json", r], &[]);
    assert_eq!(out.status.code(), Some(1));
    let found: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut got: Vec<(String, String)> = found
        .iter()
        .map(|f| {
            (
                f["origin"].as_str().unwrap().into(),
                f["type"].as_str().unwrap().into(),
            )
        })
        .collect();
    got.sort();
    let s = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    assert_eq!(
        got,
        vec![
            s("deep.example.com", "bearer"),
            s("github.com", "github-oauth"),
            s("pkg.example.org", "auth-header"),
            s("repo.magento.com", "http-basic"),
            s("satis.example.com", "url-credentials"),
        ]
    );
    assert_no_secret(&String::from_utf8_lossy(&out.stdout), SECRETS);

    // A clean tree, with Composer's empty auth.json template, passes.
    let clean = project(&t, "clean");
    write_mode(
        &clean.join("auth.json"),
        r#"{"http-basic": {}, "github-oauth": {}}"#,
        0o600,
    );
    let out = t.run_in(t.dir.path(), &["scan", clean.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("No plaintext Composer credentials found"));
    let out = t.run_in(
        t.dir.path(),
        &["scan", "--json", clean.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");

    // COMPOSER_AUTH in the environment is a finding, unless --no-env.
    let env = [(
        "COMPOSER_AUTH",
        r#"{"github-oauth": {"github.com": "ghp_env_x1"}}"#,
    )];
    let out = t.run_in(t.dir.path(), &["scan", clean.to_str().unwrap()], &env);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("$COMPOSER_AUTH: github-oauth for github.com"));
    assert!(text(&out).contains("composer-keyd import --from-env"));
    assert_no_secret(&text(&out), SECRETS);
    let out = t.run_in(
        t.dir.path(),
        &["scan", "--no-env", clean.to_str().unwrap()],
        &env,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn scan_defaults_to_the_project_and_composer_home() {
    let t = TestEnv::bare();
    let root = seed_tree(&t);
    write_mode(
        &composer_home(&t).join("auth.json"),
        r#"{"github-oauth": {"github.com": "ghp_home_x1"}}"#,
        0o600,
    );
    // From a subdirectory: the project root is found upward.
    let out = t.run_in(&root.join("deep/a"), &["scan", "--json"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let found: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(found.len(), 6, "{found:?}");
    let home_file = composer_home(&t).join("auth.json");
    assert!(found
        .iter()
        .any(|f| f["file"] == home_file.to_str().unwrap() && f["origin"] == "github.com"));
}

#[test]
fn scan_git_history_finds_a_secret_deleted_from_the_tree() {
    crate::support::require("git", "git");
    let t = TestEnv::bare();
    let repo = project(&t, "repo");
    let git = |args: &[&str]| {
        let out = t
            .command("git")
            .args(["-c", "user.email=t@example.com", "-c", "user.name=t"])
            .args(args)
            .current_dir(&repo)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", text(&out));
    };
    git(&["init", "-q", "."]);
    write_mode(
        &repo.join("app/etc/auth.json"),
        &json!({"http-basic": {"repo.magento.com": {"username": PUB, "password": PRIV}}})
            .to_string(),
        0o600,
    );
    git(&["add", "."]);
    git(&["commit", "-qm", "add keys"]);
    git(&["rm", "-q", "app/etc/auth.json"]);
    git(&["commit", "-qm", "oops"]);
    let r = repo.to_str().unwrap();
    let out = t.run_in(&repo, &["scan", r], &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the tree is clean: {}",
        text(&out)
    );
    let out = t.run_in(&repo, &["scan", "--git-history", r], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let shown = text(&out);
    assert_no_secret(&shown, SECRETS);
    assert!(shown.contains("app/etc/auth.json (commit "), "{shown}");
    assert!(shown.contains("http-basic for repo.magento.com"), "{shown}");
    assert!(shown.contains("revoke it"), "{shown}");
    let out = t.run_in(&repo, &["scan", "--json", "--git-history", r], &[]);
    let found: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["commit"].as_str().unwrap().len(), 12);
    // Outside a repository, --git-history says so.
    let out = t.run_in(
        t.dir.path(),
        &["scan", "--git-history", t.dir.path().to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("not inside a git repository"),
        "{}",
        text(&out)
    );
}
