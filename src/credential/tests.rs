//! Origin rules, the pinned wire JSON and field round trips of credentials.
#[test]
fn redact_userinfo_hides_every_userinfo() {
    use super::redact_userinfo as r;
    assert_eq!(r("https://user:pass@host/x"), "https://***@host/x");
    assert_eq!(r("user:pass@host:8080"), "***@host:8080");
    assert_eq!(
        r("cannot reach `git+https://tok@h.example` or 'http://a:b@c/d?e'"),
        "cannot reach `git+https://***@h.example` or 'http://***@c/d?e'"
    );
    assert_eq!(r("repo.magento.com"), "repo.magento.com");
    assert_eq!(r("x: p@ss@h"), "x: ***@h");
}

use super::*;

fn o(s: &str) -> Result<String, OriginError> {
    Origin::parse(s).map(String::from)
}

#[test]
fn origin_rules() {
    assert_eq!(o("repo.magento.com").unwrap(), "repo.magento.com");
    assert_eq!(o("Repo.Magento.COM").unwrap(), "repo.magento.com");
    assert_eq!(o("127.0.0.1:8080").unwrap(), "127.0.0.1:8080");
    assert_eq!(o("api.github.com").unwrap(), "github.com");
    assert_eq!(o("github.com").unwrap(), "github.com");
    assert_eq!(o("codeload.github.com").unwrap(), "codeload.github.com");
    assert_eq!(o("repo.packagist.org").unwrap(), "packagist.org");
    assert_eq!(o("[::1]:8443").unwrap(), "[::1]:8443");
    assert_eq!(
        o("gitlab.example.com:8443").unwrap(),
        "gitlab.example.com:8443"
    );
    // A port keeps a github subdomain from folding, as in Composer.
    assert_eq!(o("api.github.com:8443").unwrap(), "api.github.com:8443");
}

#[test]
fn origin_rejects() {
    assert_eq!(o(""), Err(OriginError::Empty));
    assert_eq!(o(&"a".repeat(254)), Err(OriginError::TooLong));
    assert!(o(&"a".repeat(253)).is_ok());
    assert_eq!(o("repo.magento.com/path"), Err(OriginError::NotAHost));
    assert_eq!(o("../../etc/passwd"), Err(OriginError::NotAHost));
    assert_eq!(o("https://repo.magento.com"), Err(OriginError::NotAHost));
    assert_eq!(o("repo magento.com"), Err(OriginError::BadCharacter));
    assert_eq!(o("repo\u{0}.com"), Err(OriginError::BadCharacter));
    assert_eq!(o("repo.com\r\nX: y"), Err(OriginError::BadCharacter));
    assert_eq!(o("host:0"), Err(OriginError::BadPort));
    assert_eq!(o("host:70000"), Err(OriginError::BadPort));
    assert_eq!(o("host:+80"), Err(OriginError::BadPort));
    assert_eq!(o("user@host"), Err(OriginError::NotAHost));
    assert_eq!(o("ex\u{e4}mple.com"), Err(OriginError::BadCharacter));
    assert_eq!(o(".example.com"), Err(OriginError::NotAHost));
}

#[test]
fn origin_from_url() {
    let f = |u: &str| Origin::from_url(u).map(String::from);
    assert_eq!(
        f("https://repo.magento.com/packages.json").unwrap(),
        "repo.magento.com"
    );
    assert_eq!(
        f("http://127.0.0.1:8080/p2/a/b.json").unwrap(),
        "127.0.0.1:8080"
    );
    assert_eq!(
        f("https://u:p@repo.example.com/").unwrap(),
        "repo.example.com"
    );
    assert_eq!(f("https://api.github.com/repos/x").unwrap(), "github.com");
}

#[test]
fn credential_json_is_pinned() {
    let c = Credential::from_fields(CredentialType::HttpBasic, vec!["pub".into(), "priv".into()])
        .unwrap();
    assert_eq!(
        serde_json::to_string(&c).unwrap(),
        r#"{"type":"http-basic","username":"pub","password":"priv"}"#
    );
    let b: Credential = serde_json::from_str(
        r#"{"type":"bitbucket-oauth","consumer-key":"k","consumer-secret":"s"}"#,
    )
    .unwrap();
    assert_eq!(b.kind(), CredentialType::BitbucketOauth);
    let g: Credential = serde_json::from_str(r#"{"type":"gitlab-token","token":"t"}"#).unwrap();
    assert_eq!(
        serde_json::to_string(&g).unwrap(),
        r#"{"type":"gitlab-token","token":"t"}"#
    );
    assert!(serde_json::from_str::<Credential>(r#"{"type":"ftp","token":"t"}"#).is_err());
}

#[test]
fn as_typed_quotes_only_what_needs_it() {
    let o = Origin::parse("repo.magento.com").unwrap();
    assert_eq!(o.as_typed(None), "repo.magento.com");
    assert_eq!(
        o.as_typed(Some("/srv/shop")),
        "repo.magento.com --project /srv/shop"
    );
    assert_eq!(
        o.as_typed(Some("/srv/Bob's shop")),
        "repo.magento.com --project '/srv/Bob'\\''s shop'"
    );
}

#[test]
fn fields_round_trip_and_validate() {
    for kind in CredentialType::ALL {
        if kind == CredentialType::ClientCertificate {
            continue;
        }
        let n = kind.fields(false).len();
        let fields = (0..n).map(|i| Secret::from(format!("v{i}: x"))).collect();
        let c = Credential::from_fields(kind, fields).unwrap();
        assert_eq!(c.kind(), kind);
        assert_eq!(c.fields().len(), n);
    }
    assert_eq!(
        Credential::from_fields(CredentialType::Bearer, vec![" ".into()]),
        Err(CredentialError::EmptyField("token"))
    );
    let gl = Credential::from_fields(CredentialType::GitlabToken, vec!["u".into(), "t".into()]);
    assert!(matches!(
        gl,
        Ok(Credential::GitlabToken {
            username: Some(_),
            ..
        })
    ));
    assert_eq!(CredentialType::parse("nope"), None);
}

#[test]
fn custom_headers_refuse_what_could_inject_or_is_empty() {
    let h = |v: &[&str]| {
        Credential::from_fields(
            CredentialType::CustomHeaders,
            v.iter().map(|s| Secret::from(*s)).collect(),
        )
    };
    assert!(h(&["X-Api-Key: abc", "X-T: a\tb"]).is_ok());
    assert_eq!(h(&[]), Err(CredentialError::NoHeaders));
    assert_eq!(h(&["X-Api-Key abc"]), Err(CredentialError::BadHeader(1)));
    assert_eq!(
        h(&["X-A: 1", "X-B: 1\r\nHost: evil"]),
        Err(CredentialError::BadHeader(2))
    );
    assert_eq!(h(&["Bad Name: v"]), Err(CredentialError::BadHeader(1)));
    assert_eq!(h(&["X-Empty:  "]), Err(CredentialError::BadHeader(1)));
    assert_eq!(h(&[" "]), Err(CredentialError::EmptyField("header")));
    let msg = h(&["X-K: secretvalue\n"]).unwrap_err().to_string();
    assert!(!msg.contains("secretvalue"), "{msg}");
}

#[test]
fn client_certificate_paths_are_metadata_and_checked() {
    let c = Credential::client_certificate("/c.pem".into(), None, Some("pp".into())).unwrap();
    assert_eq!(c.fields().len(), 1);
    assert_eq!(
        serde_json::to_string(&c).unwrap(),
        r#"{"type":"client-certificate","local-cert":"/c.pem","passphrase":"pp"}"#
    );
    let none = Credential::client_certificate("/c.pem".into(), None, None).unwrap();
    assert!(none.fields().is_empty());
    assert_eq!(
        Credential::client_certificate(" ".into(), None, None),
        Err(CredentialError::BadPath("local-cert"))
    );
    assert_eq!(
        Credential::client_certificate("/c".into(), Some("/k\n".into()), None),
        Err(CredentialError::BadPath("local-pk"))
    );
    assert_eq!(
        Credential::client_certificate("/c".into(), None, Some("".into())),
        Err(CredentialError::EmptyField("passphrase"))
    );
    assert_eq!(
        Credential::from_fields(CredentialType::ClientCertificate, vec!["p".into()]),
        Err(CredentialError::NeedsMetadata(
            CredentialType::ClientCertificate
        ))
    );
}

#[test]
fn the_plain_host_fast_path_agrees_with_the_general_rules() {
    for input in [
        "repo.magento.com",
        "gitlab.example.com",
        "api.github.com",
        "codeload.github.com",
        "repo.packagist.org",
        "a",
        "a_b-c.d",
        "0.0",
        ".lead",
        "-lead",
        "trail.",
        "two..dots",
        "x-.y",
        "_",
    ] {
        assert_eq!(
            Origin::parse(input).map(String::from),
            Origin::parse_any(input).map(String::from),
            "{input}"
        );
    }
}

#[test]
fn canonical_is_exactly_an_origin_parse_returns_unchanged() {
    let long = "a".repeat(254);
    let samples = [
        "repo.magento.com",
        "repo-magento_01.example",
        "Repo.Magento.com",
        "api.github.com",
        "github.com",
        "codeload.github.com",
        "repo.packagist.org",
        "packagist.org",
        "127.0.0.1",
        "127.0.0.1:8080",
        "[::1]",
        "host.",
        ".host",
        "-host",
        "a..b",
        "",
        "a b",
        "é.example",
        long.as_str(),
        &long[..253],
    ];
    for s in samples {
        let unchanged = Origin::parse(s).is_ok_and(|o| o.as_str() == s);
        match Origin::canonical(s) {
            Some(c) => {
                assert_eq!(c, s);
                assert!(unchanged, "{s:?} is canonical but parses to something else");
            }
            // Only plain names take the short cut; the others are parsed, never refused.
            None => assert!(
                !unchanged
                    || !s.bytes().all(|b| b.is_ascii_lowercase()
                        || b.is_ascii_digit()
                        || matches!(b, b'.' | b'-' | b'_')),
                "{s:?}: a plain name that parsing leaves alone takes the short cut"
            ),
        }
    }
    assert_eq!(
        Origin::canonical("repo.magento.com"),
        Some("repo.magento.com")
    );
    assert_eq!(
        Origin::canonical("api.github.com"),
        None,
        "folded into github.com"
    );
}

#[test]
fn the_unknown_type_error_names_every_type_of_all() {
    let e = CredentialError::UnknownType("ssh-key".into()).to_string();
    for t in CredentialType::ALL {
        assert!(e.contains(t.as_str()), "{e}");
        assert_eq!(CredentialType::parse(t.as_str()), Some(t));
        assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
    }
    let unknown: CredentialType = serde_json::from_value("ssh-key".into()).unwrap();
    assert_eq!(unknown, CredentialType::Unknown);
    assert_eq!(CredentialType::parse("unknown"), None);
}

#[test]
fn an_origin_from_a_path_segment_is_percent_decoded_and_checked() {
    let o = |s: &str| Origin::from_segment(s).map(String::from);
    assert_eq!(o("repo.magento.com").unwrap(), "repo.magento.com");
    assert_eq!(
        o("repo.magento.com%3A8443").unwrap(),
        "repo.magento.com:8443"
    );
    assert_eq!(o("%FF.example"), Err(OriginError::BadCharacter));
    assert_eq!(o("a%2Fb"), Err(OriginError::NotAHost));
}
