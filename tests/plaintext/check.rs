//! `check` against a loopback repository demanding basic auth: ok, rejected (with the
//! Marketplace hint), unreachable, and TLS through SSL_CERT_FILE and Composer's cafile.

use super::server::{closed_port, make_ca, RepoServer};
use super::*;
use crate::support::TestEnv;
use serde_json::Value;

#[test]
fn check_gives_ok_rejected_and_unreachable() {
    let t = TestEnv::with_keyring(true);
    let _d = t.start_daemon(&[]);
    let server = RepoServer::start(t.dir.path(), PUB, PRIV, None);
    let good = format!("127.0.0.1:{}", server.port);
    let to_server = format!("repo.magento.com=127.0.0.1:{}", server.port);
    let dead = format!("127.0.0.1:{}", closed_port());
    let proj = project(&t, "shop");
    t.ok(&["add", &good], &format!("{PUB}\n{PRIV}\n"));
    // A pair the Marketplace no longer accepts, bound to a project.
    t.ok(
        &[
            "add",
            "repo.magento.com",
            "--project",
            proj.to_str().unwrap(),
        ],
        &format!("{PUB2}\n{PRIV2}\n"),
    );
    t.ok(&["add", &dead, "--type", "bearer"], "tok_dead_x1\n");
    let secrets = [PUB, PRIV, PUB2, PRIV2, "tok_dead_x1"];
    let here = t.dir.path();

    let out = t.run_in(here, &["check", &good, "--scheme", "http"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).starts_with(&format!(
            "ok          {good}: HTTP 200 from http://{good}/packages.json"
        )),
        "{}",
        text(&out)
    );

    let out = t.run_in(
        here,
        &[
            "check",
            "repo.magento.com",
            "--scheme",
            "http",
            "--connect-to",
            &to_server,
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let shown = text(&out);
    assert!(
        shown.starts_with("rejected    repo.magento.com (project "),
        "{shown}"
    );
    assert!(shown.contains("HTTP 401"), "{shown}");
    assert!(
        shown.contains("disabled, deleted or regenerated on the Marketplace's Access Keys page"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!(
            "composer-keyd rotate repo.magento.com --project {}",
            proj.display()
        )),
        "{shown}"
    );
    assert_no_secret(&shown, &secrets);

    let out = t.run_in(here, &["check", &dead, "--scheme", "http"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).starts_with(&format!("unreachable {dead}: cannot connect")),
        "{}",
        text(&out)
    );

    // All at once, configured through the environment (as doctor is), in JSON.
    let env = [
        ("COMPOSER_KEYD_CHECK_SCHEME", "http"),
        ("COMPOSER_KEYD_CHECK_CONNECT_TO", to_server.as_str()),
    ];
    let out = t.run_in(here, &["check", "--json"], &env);
    assert_eq!(out.status.code(), Some(1));
    let v: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut verdicts: Vec<(String, String)> = v
        .iter()
        .map(|o| {
            (
                o["origin"].as_str().unwrap().into(),
                o["verdict"].as_str().unwrap().into(),
            )
        })
        .collect();
    verdicts.sort();
    let mut want = vec![
        (good.clone(), "ok".to_owned()),
        ("repo.magento.com".to_owned(), "rejected".to_owned()),
        (dead.clone(), "unreachable".to_owned()),
    ];
    want.sort();
    assert_eq!(verdicts, want);
    assert_no_secret(&String::from_utf8_lossy(&out.stdout), &secrets);

    // --project picks what applies there; after a rotation to the current pair it passes.
    t.ok(
        &[
            "rotate",
            "repo.magento.com",
            "--project",
            proj.to_str().unwrap(),
        ],
        &format!("{PUB}\n{PRIV}\n"),
    );
    let out = t.run_in(
        here,
        &[
            "check",
            "repo.magento.com",
            "--project",
            proj.to_str().unwrap(),
        ],
        &env,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).starts_with("ok          repo.magento.com (project "),
        "{}",
        text(&out)
    );

    let log = server.log();
    assert!(log.contains("accepted GET /packages.json"), "{log}");
    assert!(log.contains("refused GET /packages.json"), "{log}");
}

#[test]
fn check_over_tls_trusts_ssl_cert_file_and_composer_cafile() {
    let t = TestEnv::with_keyring(true);
    let _d = t.start_daemon(&[]);
    let (ca, cert, key) = make_ca(t.dir.path());
    let server = RepoServer::start(t.dir.path(), PUB, PRIV, Some((&cert, &key)));
    let to_server = format!("repo.magento.com=127.0.0.1:{}", server.port);
    t.ok(&["add", "repo.magento.com"], &format!("{PUB}\n{PRIV}\n"));
    let here = t.dir.path();
    let args = ["check", "repo.magento.com", "--connect-to", &to_server];

    let out = t.run_in(here, &args, &[("SSL_CERT_FILE", ca.to_str().unwrap())]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("HTTP 200 from https://repo.magento.com/packages.json"),
        "{}",
        text(&out)
    );

    // Without the CA the certificate is not trusted.
    let out = t.run_in(here, &args, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).starts_with("unreachable repo.magento.com: TLS"),
        "{}",
        text(&out)
    );

    // Composer's cafile, from the global config.json.
    std::fs::write(
        composer_home(&t).join("config.json"),
        serde_json::json!({"config": {"cafile": ca}}).to_string(),
    )
    .unwrap();
    let out = t.run_in(here, &args, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(server.log().contains("accepted GET /packages.json"));
}
