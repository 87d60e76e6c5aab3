use super::*;

type Row = (String, String, Vec<(&'static str, String)>);

const ALL_TYPES: &str = r#"{
    "http-basic": {
        "repo.magento.com": {"username": "pub", "password": "priv"},
        "Satis.Example.com:8443": {"username": "u", "password": "p"}
    },
    "bearer": {"packages.example.com": "bear"},
    "github-oauth": {"github.com": "ghp_x"},
    "gitlab-oauth": {"gitlab.com": "glo"},
    "gitlab-token": {"gitlab.com": "glpat", "gitlab.example.com": {"username": "me", "token": "glt"}},
    "bitbucket-oauth": {"bitbucket.org": {"consumer-key": "ck", "consumer-secret": "cs", "access-token": "at", "access-token-expiration": 1700000000}},
    "forgejo-token": {"codeberg.org": {"username": "fu", "token": "ft"}}
}"#;

fn fields(c: &Credential) -> Vec<(&'static str, String)> {
    c.fields()
        .into_iter()
        .map(|(n, v)| (n, v.expose().clone()))
        .collect()
}

#[test]
fn every_type_is_read() {
    let doc = AuthDoc::parse(ALL_TYPES.as_bytes(), "t").unwrap();
    let (entries, skipped) = doc.entries();
    assert!(skipped.is_empty(), "{skipped:?}");
    let got: Vec<Row> = entries
        .iter()
        .map(|e| {
            (
                e.kind.to_string(),
                e.origin.to_string(),
                fields(&e.credential),
            )
        })
        .collect();
    let s = |x: &str| x.to_owned();
    assert_eq!(
        got,
        vec![
            (
                s("http-basic"),
                s("repo.magento.com"),
                vec![("username", s("pub")), ("password", s("priv"))]
            ),
            (
                s("http-basic"),
                s("satis.example.com:8443"),
                vec![("username", s("u")), ("password", s("p"))]
            ),
            (
                s("bearer"),
                s("packages.example.com"),
                vec![("token", s("bear"))]
            ),
            (
                s("github-oauth"),
                s("github.com"),
                vec![("token", s("ghp_x"))]
            ),
            (
                s("gitlab-oauth"),
                s("gitlab.com"),
                vec![("token", s("glo"))]
            ),
            (
                s("gitlab-token"),
                s("gitlab.com"),
                vec![("token", s("glpat"))]
            ),
            (
                s("gitlab-token"),
                s("gitlab.example.com"),
                vec![("username", s("me")), ("token", s("glt"))]
            ),
            (
                s("bitbucket-oauth"),
                s("bitbucket.org"),
                vec![("consumer-key", s("ck")), ("consumer-secret", s("cs"))]
            ),
            (
                s("forgejo-token"),
                s("codeberg.org"),
                vec![("username", s("fu")), ("token", s("ft"))]
            ),
        ]
    );
    // The key keeps the file's spelling, for scrubbing.
    assert_eq!(entries[1].key, "Satis.Example.com:8443");
}

#[test]
fn unusable_entries_are_skipped_without_values() {
    let doc = AuthDoc::parse(
        br#"{"http-basic": {"a.com": {"username": "onlyuser-SECRET"}, "b.com": {"username": "u", "password": 12345}},
            "bearer": {"https://x.com/": "tok-SECRET", "c.com": ""},
            "custom-thing": {"d.com": "zzz-SECRET"},
            "github-oauth": {},
            "$schema": "x"}"#,
        "t",
    )
    .unwrap();
    let (entries, skipped) = doc.entries();
    assert!(entries.is_empty());
    let reasons: Vec<String> = skipped
        .iter()
        .map(|s| format!("{} {} {}", s.kind, s.key, s.reason))
        .collect();
    assert_eq!(reasons.len(), 5, "{reasons:?}");
    for r in &reasons {
        assert!(!r.contains("SECRET") && !r.contains("12345"), "{r}");
    }
    assert!(reasons[0].contains("`password` is missing"));
    assert!(reasons[1].contains("`password` is not a string"));
    assert!(reasons[2].contains("not an origin"));
    assert!(reasons[3].contains("empty"));
    assert!(reasons[4].starts_with("custom-thing d.com"));
}

#[test]
fn scrub_keeps_order_and_other_keys() {
    let doc_text = r#"{
    "bitbucket-oauth": {},
    "http-basic": {
        "repo.magento.com": {"username": "pub", "password": "priv"},
        "other.example.com": {"username": "u", "password": "p"}
    },
    "custom-thing": {"d.com": "z"},
    "github-oauth": {"github.com": "ghp"}
}"#;
    let mut doc = AuthDoc::parse(doc_text.as_bytes(), "t").unwrap();
    let (entries, _) = doc.entries();
    let magento = entries
        .iter()
        .find(|e| e.key == "repo.magento.com")
        .unwrap();
    let gh = entries.iter().find(|e| e.key == "github.com").unwrap();
    let wrong = Credential::GithubOauth {
        token: "other".into(),
    };
    assert!(!doc.remove_if_same(CredentialType::GithubOauth, "github.com", &wrong));
    assert!(doc.remove_if_same(magento.kind, &magento.key, &magento.credential));
    assert!(doc.remove_if_same(gh.kind, &gh.key, &gh.credential));
    assert!(
        !doc.remove_if_same(gh.kind, &gh.key, &gh.credential),
        "already gone"
    );
    let out = String::from_utf8(doc.to_pretty().to_vec()).unwrap();
    assert_eq!(
        out,
        "{\n    \"bitbucket-oauth\": {},\n    \"http-basic\": {\n        \"other.example.com\": {\n            \"username\": \"u\",\n            \"password\": \"p\"\n        }\n    },\n    \"custom-thing\": {\n        \"d.com\": \"z\"\n    }\n}\n"
    );
    assert!(!doc.holds_nothing());
}

#[test]
fn template_file_holds_nothing() {
    let doc = AuthDoc::parse(
        br#"{"bitbucket-oauth": {}, "github-oauth": {}, "gitlab-oauth": {}, "gitlab-token": {}, "http-basic": {}, "bearer": {}}"#,
        "t",
    )
    .unwrap();
    assert!(doc.holds_nothing());
    assert!(doc.all_keys().is_empty());
}

#[test]
fn composer_auth_round_trips() {
    let mut doc = AuthDoc::new();
    let origin = Origin::parse("repo.magento.com").unwrap();
    let c = Credential::HttpBasic {
        username: "pub".into(),
        password: "priv/é".into(),
    };
    doc.insert(&origin, &c);
    let gl = Credential::GitlabToken {
        token: "t".into(),
        username: Some("me".into()),
    };
    doc.insert(&Origin::parse("gitlab.com").unwrap(), &gl);
    let json = String::from_utf8(doc.to_compact().to_vec()).unwrap();
    assert_eq!(
        json,
        r#"{"http-basic":{"repo.magento.com":{"username":"pub","password":"priv/é"}},"gitlab-token":{"gitlab.com":{"username":"me","token":"t"}}}"#
    );
    let back = AuthDoc::parse(json.as_bytes(), "env").unwrap();
    let (entries, skipped) = back.entries();
    assert!(skipped.is_empty());
    assert_eq!(entries[0].credential, c);
    assert_eq!(entries[1].credential, gl);
}

#[test]
fn bad_json_is_refused_without_quoting() {
    let e = AuthDoc::parse(br#"{"bearer": {"x.com": "SECRET""#, "f").unwrap_err();
    assert!(!e.to_string().contains("SECRET"));
    assert!(matches!(
        AuthDoc::parse(b"[1]", "f"),
        Err(AuthJsonError::NotObject { .. })
    ));
}

#[test]
fn scrub_on_disk() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("auth.json");
    fs::write(&p, ALL_TYPES).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
    let file = read_file(&p).unwrap().unwrap();
    let (entries, _) = file.doc.entries();
    let some: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.kind != CredentialType::HttpBasic)
        .collect();
    assert_eq!(
        scrub(&p, &some).unwrap(),
        Scrubbed::Rewritten { removed: 7 }
    );
    assert_eq!(
        fs::metadata(&p).unwrap().permissions().mode() & 0o777,
        0o640
    );
    let left = read_file(&p).unwrap().unwrap();
    assert_eq!(left.doc.all_keys().len(), 2);
    let all: Vec<&Entry> = entries.iter().collect();
    assert_eq!(scrub(&p, &all).unwrap(), Scrubbed::Removed { removed: 2 });
    assert!(!p.exists());
    assert_eq!(scrub(&p, &all).unwrap(), Scrubbed::Untouched);
    assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0);
}

#[test]
fn scrub_follows_a_symlink() {
    let d = tempfile::tempdir().unwrap();
    let real = d.path().join("dotfiles-auth.json");
    let link = d.path().join("auth.json");
    fs::write(&real, r#"{"bearer": {"a.com": "t", "b.com": "u"}}"#).unwrap();
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let file = read_file(&link).unwrap().unwrap();
    let (entries, _) = file.doc.entries();
    assert_eq!(
        scrub(&link, &[&entries[0]]).unwrap(),
        Scrubbed::Rewritten { removed: 1 }
    );
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        fs::read_to_string(&real).unwrap(),
        "{\n    \"bearer\": {\n        \"b.com\": \"u\"\n    }\n}\n"
    );
}

#[test]
fn a_key_with_userinfo_is_skipped_without_echoing_it() {
    let doc = AuthDoc::parse(
        br#"{"bearer": {"https://deploy:hunter2@repo.example.com": "tok"}}"#,
        "t",
    )
    .unwrap();
    let (entries, skipped) = doc.entries();
    assert!(entries.is_empty());
    assert_eq!(skipped[0].key, "https://***@repo.example.com");
    assert!(!format!("{skipped:?}").contains("hunter2"));
}

#[test]
fn scrub_refuses_a_directory_others_can_write_and_keeps_the_file() {
    let d = tempfile::tempdir().unwrap();
    let shared = d.path().join("shared");
    fs::create_dir(&shared).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
    let p = shared.join("auth.json");
    let text = r#"{"_note": "x", "bearer": {"a.example": "tok"}}"#;
    fs::write(&p, text).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o4640)).unwrap();
    let doc = AuthDoc::parse(text.as_bytes(), "t").unwrap();
    let (entries, _) = doc.entries();
    let moved: Vec<&Entry> = entries.iter().collect();
    match scrub(&p, &moved) {
        Err(AuthJsonError::Untrusted(u)) => assert_eq!(u.target, fs::canonicalize(&p).unwrap()),
        other => panic!("{other:?}"),
    }
    assert_eq!(fs::read_to_string(&p).unwrap(), text);
    // Allowed explicitly: rewritten, and the setuid bit is not carried over.
    let done = scrub_with(&p, &moved, Shared::Allow, &mut |_| {}).unwrap();
    assert_eq!(done, Scrubbed::Rewritten { removed: 1 });
    assert_eq!(
        fs::metadata(&p).unwrap().permissions().mode() & 0o7777,
        0o640
    );
}

const NEWER_TYPES: &str = r#"{
    "custom-headers": {"repo.example.com": ["X-Api-Key: k1", "X-Tenant: acme"]},
    "client-certificate": {
        "certs.example.com": {"local_cert": "/c/client.pem", "local_pk": "/c/client.key", "passphrase": "pp"},
        "plain.example.com": {"local_cert": "/c/both.pem"}
    }
}"#;

#[test]
fn composer_29_types_read_and_write_back_the_same() {
    let doc = AuthDoc::parse(NEWER_TYPES.as_bytes(), "t").unwrap();
    let (entries, skipped) = doc.entries();
    assert!(skipped.is_empty(), "{skipped:?}");
    assert_eq!(entries.len(), 3);
    assert_eq!(
        fields(&entries[0].credential),
        vec![
            ("header", "X-Api-Key: k1".to_owned()),
            ("header", "X-Tenant: acme".to_owned())
        ]
    );
    assert_eq!(
        entries[1].credential,
        Credential::client_certificate(
            "/c/client.pem".into(),
            Some("/c/client.key".into()),
            Some("pp".into())
        )
        .unwrap()
    );
    assert!(matches!(
        &entries[2].credential,
        Credential::ClientCertificate {
            local_pk: None,
            passphrase: None,
            ..
        }
    ));
    let mut out = AuthDoc::new();
    for e in &entries {
        out.insert(&e.origin, &e.credential);
    }
    let again: Value = serde_json::from_slice(&out.to_compact()).unwrap();
    let orig: Value = serde_json::from_str(NEWER_TYPES).unwrap();
    assert_eq!(again, orig);
}

#[test]
fn bad_composer_29_entries_are_skipped_without_values() {
    let text = r#"{
        "custom-headers": {"a.example": ["no colon secretvalue"], "b.example": "X-K: v", "c.example": ["X-A: 1\r\nX-B: smuggled"]},
        "client-certificate": {"d.example": {"local_pk": "/k"}, "e.example": {"local_cert": "/c", "passphrase": 7}}
    }"#;
    let doc = AuthDoc::parse(text.as_bytes(), "t").unwrap();
    let (entries, skipped) = doc.entries();
    assert!(entries.is_empty());
    assert_eq!(skipped.len(), 5, "{skipped:?}");
    for s in &skipped {
        assert!(!s.reason.contains("secretvalue") && !s.reason.contains("smuggled"));
    }
    assert!(
        skipped[2].reason.contains("custom header 1"),
        "{}",
        skipped[2].reason
    );
    assert!(
        skipped[3].reason.contains("local_cert"),
        "{}",
        skipped[3].reason
    );
}
