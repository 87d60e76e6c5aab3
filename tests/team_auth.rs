//! How the daemon reaches and logs in to a team source, against a real OpenBao: TLS verified
//! with the system roots or `--ca-cert`, JWT verified by OpenBao (and `exec -- composer
//! install` with nothing else), approle kept in the local backend, and renewal of a renewable
//! token before it expires.

use crate::support;

use composer_keyd::team::sources::{Sources, Team};
use composer_keyd::team::TeamConfig;
use std::time::Duration;
use support::bao_team::*;
use support::openbao::Bao;
use support::TestEnv;

#[test]
fn team_jwt_login_is_verified_by_openbao() {
    let bao = Bao::dev();
    bao.policy("composer-read", READER);
    let t = TestEnv::bare();
    let d = t.dir.path();
    let (key, public) = rsa_key(d, "ci");
    let (other, _) = rsa_key(d, "other");
    enable_jwt(&bao, &public, &["token_ttl=10m"]);
    put_pair(&bao, "composer/repo.magento.com", PUB);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({"iss": "https://ci.example", "aud": "composer", "sub": "ci-runner", "iat": now, "nbf": now - 5, "exp": now + 600});
    let good = jwt(d, &key, &claims);
    let forged = jwt(d, &other, &claims);
    let jf = d.join("id-token");
    std::fs::write(&jf, &good).unwrap();

    t.ok(
        &[
            "team",
            "add",
            "ci",
            "--addr",
            bao.addr(),
            "--auth",
            "jwt",
            "--jwt-file",
            jf.to_str().unwrap(),
        ],
        "",
    );
    let s = t.ok(&["team", "status", "ci"], "");
    assert!(s.contains("read yes, write no"), "{s}");
    assert!(s.contains("renewable"), "{s}");
    t.ok(
        &[
            "team",
            "add",
            "ci-env",
            "--addr",
            bao.addr(),
            "--auth",
            "jwt",
            "--jwt-env",
            "CKD_TEST_JWT",
        ],
        "",
    );
    let out = t.run_in(d, &["team", "status", "ci-env"], &[("CKD_TEST_JWT", &good)]);
    assert!(out.status.success(), "{}", text(&out));

    // The library's read path with the same login.
    let mut cfg = TeamConfig::new(vec![bao.addr().to_owned()]);
    cfg.auth = composer_keyd::team::AuthMethod::Jwt;
    cfg.jwt_file = Some(jf.clone());
    let s = Sources::new(vec![Team::new("ci", cfg.clone(), None).unwrap()]);
    let rt = rt();
    assert_eq!(
        username(&s, &rt, "repo.magento.com", None).unwrap()[0].1,
        PUB
    );

    // A JWT signed by a key OpenBao does not know is refused.
    std::fs::write(&jf, &forged).unwrap();
    let s = Sources::new(vec![Team::new("ci", cfg, None).unwrap()]);
    let e = username(&s, &rt, "repo.magento.com", None).unwrap_err();
    assert!(e.contains("the login at auth/jwt/login refused"), "{e}");
    assert!(!e.contains(&forged[..20]), "the JWT is never quoted");
    let out = t.cli(&["team", "status", "ci"], "");
    assert!(!out.status.success());
}

#[test]
fn team_jwt_exec_composer_install_with_no_other_secret() {
    use crate::composer_fixture::{
        basic, composer_bin, isolate_composer, project, require_tools, RepoServer,
    };
    use crate::plugin_e2e::{composer_repo, packages};
    require_tools();
    let bao = Bao::dev();
    bao.policy("composer-read", READER);
    let mut t = TestEnv::with_keyring(true);
    isolate_composer(&mut t);
    let d = t.dir.path().to_owned();
    let (key, public) = rsa_key(&d, "ci");
    enable_jwt(&bao, &public, &[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({"iss": "https://ci.example", "aud": "composer", "sub": "ci", "iat": now, "nbf": now - 5, "exp": now + 600});
    let jf = d.join("id-token");
    std::fs::write(&jf, jwt(&d, &key, &claims)).unwrap();
    let server = RepoServer::start(
        serde_json::json!([{"host": "127.0.0.1", "port": 0, "basic": [basic(PUB, PRIV, "ci-pair")], "packages": ["acme/alpha"]}]),
        packages(),
        None,
    );
    let origin = format!("127.0.0.1:{}", server.ports[0]);
    put_pair(&bao, &format!("composer/{origin}"), PUB);
    t.ok(
        &[
            "team",
            "add",
            "ci",
            "--addr",
            bao.addr(),
            "--auth",
            "jwt",
            "--jwt-file",
            jf.to_str().unwrap(),
        ],
        "",
    );
    let _daemon = t.start_daemon(&[]);
    let dir = project(
        &t,
        "shop",
        vec![composer_repo(server.ports[0])],
        serde_json::json!({"acme/alpha": "^1.0"}),
    );
    // No plugin and no ~/.vault-token: exec alone, with the JWT.
    assert!(!t.home().join(".vault-token").exists());
    let out = t
        .command(support::BIN)
        .args(["exec", "--", &composer_bin(), "install"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(dir.join("vendor/acme/alpha/src/Alpha.php").is_file());
    let seen = server.accepted(0, "/dists/");
    assert!(
        !seen.is_empty() && seen.iter().all(|l| l == "ci-pair"),
        "{seen:?}"
    );
    assert!(files_holding(t.dir.path(), PRIV).is_empty());
}

#[test]
fn team_approle_login_kept_in_the_local_backend() {
    let bao = Bao::dev();
    bao.policy("composer-read", READER);
    bao.ok(&["auth", "enable", "approle"]);
    bao.ok(&[
        "write",
        "auth/approle/role/ci",
        "token_policies=composer-read",
        "token_ttl=10m",
    ]);
    let role: serde_json::Value =
        serde_json::from_str(&bao.ok(&["read", "-format=json", "auth/approle/role/ci/role-id"]))
            .unwrap();
    let role_id = role["data"]["role_id"].as_str().unwrap().to_owned();
    let sid: serde_json::Value = serde_json::from_str(&bao.ok(&[
        "write",
        "-format=json",
        "-f",
        "auth/approle/role/ci/secret-id",
    ]))
    .unwrap();
    let secret_id = sid["data"]["secret_id"].as_str().unwrap().to_owned();
    put_pair(&bao, "composer/repo.magento.com", PUB);
    let t = TestEnv::with_keyring(true);
    t.ok(
        &[
            "team",
            "add",
            "srv",
            "--addr",
            bao.addr(),
            "--auth",
            "approle",
        ],
        "",
    );
    let _d = t.start_daemon(&[]);
    // Before the login, the team cannot answer: a typed error.
    let r = t.lookup("repo.magento.com", None);
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(
        r.body.contains("no approle role_id and secret_id"),
        "{}",
        r.body
    );
    t.ok(
        &["team", "login", "srv"],
        &format!("{role_id}\n{secret_id}\n"),
    );
    assert_eq!(t.credential("repo.magento.com", None)["username"], PUB);
    // Kept in the keyring, encrypted: no file under the test dir holds the secret_id.
    assert!(
        files_holding(t.dir.path(), &secret_id).is_empty(),
        "{:?}",
        files_holding(t.dir.path(), &secret_id)
    );
    let out = t.cli(&["team", "login", "nope"], "a\nb\n");
    assert!(!out.status.success());
}

#[test]
fn team_renews_a_renewable_token_before_it_expires() {
    let bao = Bao::dev();
    bao.policy("composer-read", READER);
    let d = tempfile::tempdir().unwrap();
    let tf = d.path().join("token");
    let token = bao.token(&["composer-read"], "6s");
    write_token(&tf, &token);
    put_pair(&bao, "composer/repo.magento.com", PUB);
    let rt = rt();
    // No cache, so every lookup reads with the token.
    let s = sources("acme", vec![bao.addr().to_owned()], &tf, |c| {
        c.cache_ttl = Some(Duration::ZERO)
    });
    assert_eq!(
        username(&s, &rt, "repo.magento.com", None).unwrap()[0].1,
        PUB
    );
    std::thread::sleep(Duration::from_millis(4500));
    assert_eq!(
        username(&s, &rt, "repo.magento.com", None).unwrap()[0].1,
        PUB,
        "past 2/3 of the TTL: renewed"
    );
    std::thread::sleep(Duration::from_millis(3000));
    // 7.5 s after a 6 s token was made: alive only because it was renewed.
    assert_eq!(
        username(&s, &rt, "repo.magento.com", None).unwrap()[0].1,
        PUB
    );
    let out = bao.run_as("root", &["token", "lookup", "-format=json", &token]);
    assert!(out.status.success(), "the token is still valid");
    let (ttl, renewable) = rt.block_on(s.teams()[0].token_state()).unwrap();
    assert!(
        renewable && ttl.is_some_and(|t| t > Duration::from_secs(1)),
        "{ttl:?}"
    );
}

#[test]
fn team_tls_is_verified_with_the_ca_file_and_refused_without_it() {
    let d = tempfile::tempdir().unwrap();
    let certs = d.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let bao = Bao::dev_https(&certs);
    bao.policy("composer-read", READER);
    put_pair(&bao, "composer/repo.magento.com", PUB);
    let tf = d.path().join("token");
    write_token(&tf, &bao.token(&["composer-read"], "1h"));
    let https = format!("https://127.0.0.1:{}", bao.port);
    let rt = rt();
    let ca = certs.join("vault-ca.pem");
    let s = sources("acme", vec![https.clone()], &tf, |c| {
        c.ca_cert = Some(ca.clone())
    });
    assert_eq!(
        username(&s, &rt, "repo.magento.com", None).unwrap()[0].1,
        PUB
    );
    let s = sources("acme", vec![https.clone()], &tf, |_| {});
    let e = username(&s, &rt, "repo.magento.com", None).unwrap_err();
    assert!(
        e.contains("TLS failed"),
        "a certificate the system does not trust is refused: {e}"
    );

    let t = TestEnv::bare();
    write_token(
        &t.home().join(".vault-token"),
        &bao.token(&["composer-read"], "1h"),
    );
    t.ok(
        &[
            "team",
            "add",
            "acme",
            "--addr",
            &https,
            "--ca-cert",
            ca.to_str().unwrap(),
        ],
        "",
    );
    let s = t.ok(&["team", "status", "acme"], "");
    assert!(s.contains(&format!("{https}  active")), "{s}");
    let out = t.cli(
        &[
            "team",
            "add",
            "bad",
            "--addr",
            &https,
            "--ca-cert",
            d.path().join("token").to_str().unwrap(),
        ],
        "",
    );
    assert!(
        out.status.success(),
        "the CA file is read when the daemon connects"
    );
    let out = t.cli(&["team", "status", "bad"], "");
    assert!(!out.status.success());
    assert!(
        text(&out).contains("holds no PEM certificate"),
        "{}",
        text(&out)
    );
}
