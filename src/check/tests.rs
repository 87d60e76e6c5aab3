use super::*;

#[test]
fn base64_matches_rfc4648() {
    for (i, o) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(&*base64(i.as_bytes()), o);
    }
}

#[test]
fn probes_per_type() {
    let o = |s| Origin::parse(s).unwrap();
    let p = probe_for(
        &o("repo.magento.com"),
        &Credential::HttpBasic {
            username: "Aladdin".into(),
            password: "open sesame".into(),
        },
    );
    assert_eq!(
        (p.authority.as_str(), p.path),
        ("repo.magento.com", "/packages.json")
    );
    assert_eq!(
        p.headers[0].1.expose(),
        "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
    );
    assert!(!format!("{p:?}").contains("sesame"));
    let p = probe_for(
        &o("github.com"),
        &Credential::GithubOauth { token: "t".into() },
    );
    assert_eq!((p.authority.as_str(), p.path), ("api.github.com", "/user"));
    assert_eq!(p.headers[0].1.expose(), "token t");
    let p = probe_for(
        &o("gitlab.example.com:8443"),
        &Credential::GitlabToken {
            token: "t".into(),
            username: None,
        },
    );
    assert_eq!(p.headers[0].0.as_str(), "private-token");
    assert_eq!(p.authority, "gitlab.example.com:8443");
    let p = probe_for(
        &o("bitbucket.org"),
        &Credential::BitbucketOauth {
            consumer_key: "k".into(),
            consumer_secret: "s".into(),
        },
    );
    assert_eq!(p.method, Method::POST);
}

#[test]
fn authority_and_connect_to() {
    assert_eq!(
        split_authority("h.com", Scheme::Https),
        ("h.com".into(), 443)
    );
    assert_eq!(
        split_authority("h.com:8080", Scheme::Http),
        ("h.com".into(), 8080)
    );
    assert_eq!(split_authority("[::1]", Scheme::Http), ("[::1]".into(), 80));
    assert_eq!(
        split_authority("[::1]:81", Scheme::Http),
        ("[::1]".into(), 81)
    );
    let c = CheckConfig::new(
        Scheme::Http,
        &["Repo.Magento.com=127.0.0.1:9,a.com=127.0.0.1:10".into()],
        Duration::from_secs(1),
        &[],
    )
    .unwrap();
    assert_eq!(c.connect_to["repo.magento.com"], "127.0.0.1:9");
    assert!(CheckConfig::new(Scheme::Http, &["nope".into()], Duration::from_secs(1), &[]).is_err());
}

#[test]
fn magento_advice_names_the_access_keys_page() {
    let o = Origin::parse("repo.magento.com").unwrap();
    let a = advice(&o, None, &Verdict::Rejected { status: 401 }).unwrap();
    assert!(a.contains("Access Keys") && a.contains("composer-keyd rotate repo.magento.com"));
    assert!(advice(&o, None, &Verdict::Ok { status: 200 }).is_none());
}

#[test]
fn custom_headers_probe_sends_each_header() {
    let o = Origin::parse("repo.example.com").unwrap();
    let c = Credential::from_fields(
        crate::credential::CredentialType::CustomHeaders,
        vec!["X-Api-Key: k1".into(), "X-Tenant:acme".into()],
    )
    .unwrap();
    let p = probe_for(&o, &c);
    assert_eq!(p.path, "/packages.json");
    let got: Vec<(&str, &str)> = p
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.expose().as_str()))
        .collect();
    assert_eq!(got, vec![("x-api-key", "k1"), ("x-tenant", "acme")]);
    assert!(!format!("{p:?}").contains("k1"));
}

#[test]
fn a_client_certificate_is_not_probed_without_it() {
    let c = Credential::client_certificate("/nonexistent/c.pem".into(), None, None).unwrap();
    // Port 9 on loopback: were a probe sent, the verdict would name the refused connection.
    let cfg = CheckConfig::new(
        Scheme::Http,
        &["certs.example=127.0.0.1:9".to_owned()],
        Duration::from_secs(5),
        &[],
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let v = rt.block_on(check(&Origin::parse("certs.example").unwrap(), &c, &cfg));
    match v {
        Verdict::Unreachable { reason } => {
            assert!(
                reason.contains("cannot present a client certificate"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
}
