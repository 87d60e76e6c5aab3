use super::*;

fn hits(kind: FileKind, text: &str) -> Vec<(String, String, String)> {
    analyze(kind, text.as_bytes())
}

#[test]
fn auth_json_reports_every_key_never_values() {
    let h = hits(
        FileKind::Auth,
        r#"{"http-basic": {"repo.magento.com": {"username": "pub-SECRET", "password": "p-SECRET"}},
            "github-oauth": {}, "custom-thing": {"x.com": "z-SECRET"}, "bearer": {"y.com": ""}}"#,
    );
    assert_eq!(
        h,
        vec![
            (
                "repo.magento.com".into(),
                "http-basic".into(),
                "http-basic".into()
            ),
            ("x.com".into(), "custom-thing".into(), "custom-thing".into()),
        ]
    );
    assert_eq!(
        hits(FileKind::Auth, "{\"bearer\": {\"x\": \"SECRET"),
        vec![("-".into(), "unreadable".into(), "(not valid JSON)".into())]
    );
    assert!(hits(FileKind::Auth, "  \n").is_empty());
}

#[test]
fn composer_json_config_urls_and_headers() {
    let h = hits(
        FileKind::Composer,
        r#"{"name": "a/b",
            "config": {"http-basic": {"repo.magento.com": {"username": "u", "password": "p"}}, "github-oauth": {}, "sort-packages": true},
            "repositories": [
                {"type": "composer", "url": "https://user:pass@satis.example.com/"},
                {"type": "vcs", "url": "git@github.com:a/b.git"},
                {"type": "composer", "url": "https://${TOKEN}@env.example.com"},
                {"type": "composer", "url": "https://repo.example.org", "options": {"http": {"header": ["Authorization: Bearer abc"]}}}
            ],
            "scripts": {"x": "curl -s https://tok@gitlab.example.com:8443/api"}}"#,
    );
    assert_eq!(
        h,
        vec![
            (
                "repo.magento.com".into(),
                "http-basic".into(),
                "config.http-basic".into()
            ),
            (
                "repo.example.org".into(),
                "auth-header".into(),
                "repositories[3].options.http.header".into()
            ),
            (
                "satis.example.com".into(),
                "url-credentials".into(),
                "repositories[0].url".into()
            ),
            (
                "gitlab.example.com:8443".into(),
                "url-credentials".into(),
                "scripts.x".into()
            ),
        ]
    );
    assert!(hits(FileKind::Composer, r#"{"config": {"http-basic": {}}}"#).is_empty());
    assert!(hits(FileKind::Composer, "not json").is_empty());
}

#[test]
fn url_rules() {
    assert_eq!(urls_with_credentials("https://a:b@h.com/x"), vec!["h.com"]);
    assert_eq!(urls_with_credentials("HTTP://a@H.com"), vec!["h.com"]);
    assert!(urls_with_credentials("ssh://git@h.com/x").is_empty());
    assert!(urls_with_credentials("https://h.com/@user").is_empty());
    assert!(urls_with_credentials("https://%USER%:%PASS%@h.com").is_empty());
    assert_eq!(
        urls_with_credentials("x https://a:b@one.com y git+https://t@two.com"),
        vec!["one.com", "two.com"]
    );
}

#[test]
fn tree_walk_finds_nested_and_skips_git() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    std::fs::create_dir_all(root.join("a/b/c")).unwrap();
    std::fs::create_dir_all(root.join(".git/x")).unwrap();
    std::fs::write(
        root.join("a/b/c/auth.json"),
        r#"{"bearer": {"x.com": "t"}}"#,
    )
    .unwrap();
    std::fs::write(
        root.join(".git/x/auth.json"),
        r#"{"bearer": {"y.com": "t"}}"#,
    )
    .unwrap();
    std::fs::write(
        root.join("a/config.json"),
        r#"{"config": {"bearer": {"z.com": "t"}}}"#,
    )
    .unwrap();
    let (found, problems) = scan_paths(&[root.to_path_buf()], None);
    assert!(problems.is_empty());
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].origin, "x.com");
    assert!(found[0].file.ends_with("a/b/c/auth.json"));
    // config.json counts only in COMPOSER_HOME.
    let (found, _) = scan_paths(&[root.to_path_buf()], Some(&root.join("a")));
    assert_eq!(found.len(), 2, "{found:?}");
    let env = scan_env(r#"{"github-oauth": {"github.com": "ghp"}}"#);
    assert_eq!(env[0].file, "$COMPOSER_AUTH");
    assert_eq!(
        env[0].line(),
        "$COMPOSER_AUTH: github-oauth for github.com at environment"
    );
}

#[test]
fn userinfo_in_keys_and_paths_is_never_shown() {
    let text =
        r#"{"http-basic": {"https://u:hunter2@h.example": {"username": "u", "password": "p"}}}"#;
    let h = hits(FileKind::Auth, text);
    assert_eq!(h[0].0, "https://***@h.example");
    let text = r#"{"repositories": {"https://u:hunter2@h.example": {"url": "https://x:hunter2@h.example"}}}"#;
    for (origin, _, at) in hits(FileKind::Composer, text) {
        assert!(
            !origin.contains("hunter2") && !at.contains("hunter2"),
            "{origin} {at}"
        );
    }
}

#[test]
fn leftover_temp_files_are_reported_symlinks_are_not() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join(".auth.json.tmp.99"), "{}").unwrap();
    std::fs::write(d.path().join(".config.json.AbCdEf012345.keyd-tmp"), "{}").unwrap();
    std::os::unix::fs::symlink("/etc/hostname", d.path().join(".auth.json.tmp.98")).unwrap();
    let (found, _) = scan_paths(&[d.path().to_path_buf()], None);
    let mut names: Vec<&str> = found
        .iter()
        .filter(|f| f.kind == LEFTOVER_TEMP)
        .map(|f| f.file.rsplit('/').next().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [".auth.json.tmp.99", ".config.json.AbCdEf012345.keyd-tmp"]
    );
}
