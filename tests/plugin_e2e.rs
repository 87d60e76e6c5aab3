//! End to end: real PHP, real Composer, the real daemon on a real gnome-keyring, and a
//! loopback repository that demands credentials; the server's log proves what crossed the wire.

#[path = "plugin_e2e/authtypes.rs"]
mod authtypes;
use crate::composer_fixture;
use crate::support;

use composer_fixture::*;
use serde_json::json;

const PUB_A: &str = "5f0e7a1c9b2d48e6a3c1f09d7e8b6a54";
const PRIV_A: &str = "b7c3e9f1a2d4065c8e1f3a7b9d2c4e60";
const PUB_B: &str = "0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f";
const PRIV_B: &str = "e1d2c3b4a5968778695a4b3c2d1e0f9a";
const TOKEN: &str = "tok-8d3f1b7e6c2a4905b1e7d3c9f2a6b8e4";

pub(crate) fn packages() -> serde_json::Value {
    json!({
        "acme/alpha": [package("1.0.0", "Alpha")],
        "acme/beta": [package("2.1.0", "Beta")],
        "acme/gamma": [package("0.3.0", "Gamma")],
    })
}

pub(crate) fn composer_repo(port: u16) -> serde_json::Value {
    json!({"type": "composer", "url": format!("http://127.0.0.1:{port}")})
}

#[test]
fn installs_with_http_basic_and_bearer_from_the_daemon() {
    let (t, _d) = composer_env();
    let server = RepoServer::start(
        json!([
            {"host": "127.0.0.1", "port": 0, "basic": [basic(PUB_A, PRIV_A, "pair-a")], "packages": ["acme/alpha"]},
            {"host": "127.0.0.1", "port": 0, "bearer": [bearer(TOKEN, "token")], "packages": ["acme/beta"]},
        ]),
        packages(),
        None,
    );
    let (p0, p1) = (server.ports[0], server.ports[1]);
    add(
        &t,
        &format!("127.0.0.1:{p0}"),
        "http-basic",
        None,
        &[PUB_A, PRIV_A],
    );
    add(&t, &format!("127.0.0.1:{p1}"), "bearer", None, &[TOKEN]);
    let dir = project(
        &t,
        "shop",
        vec![composer_repo(p0), composer_repo(p1)],
        json!({"acme/alpha": "^1.0", "acme/beta": "^2.0"}),
    );

    let out = composer(&t, &dir, &["install", "-vvv"]);
    assert!(
        out.status.success(),
        "composer install failed: {}",
        text(&out)
    );
    assert!(dir.join("vendor/acme/alpha/src/Alpha.php").is_file());
    assert!(dir.join("vendor/acme/beta/src/Beta.php").is_file());

    // Proven on the wire, not by Composer's wording (2.2 prints no "Using HTTP basic
    // authentication" line, 2.10 masks the username): the right credentials crossed it for metadata and dists, and nothing was served without them.
    for (listener, label) in [(0, "pair-a"), (1, "token")] {
        for prefix in ["/packages.json", "/p2/", "/dists/"] {
            let seen = server.accepted(listener, prefix);
            assert!(
                !seen.is_empty() && seen.iter().all(|l| l == label),
                "listener {listener} {prefix}: {seen:?}"
            );
        }
    }
    assert!(
        server.requests().iter().all(|r| r["status"] != 401),
        "{:?}",
        server.requests()
    );

    assert!(!composer_home(&t).join("auth.json").exists());
    assert!(!dir.join("auth.json").exists());
    for secret in [PUB_A, PRIV_A, TOKEN] {
        assert_no_plaintext(&t, secret);
    }
}

/// One listener demanding pair A, a credential for it in the daemon, and a project using it.
fn one_repo(
    t: &support::TestEnv,
    accepted: serde_json::Value,
) -> (RepoServer, String, std::path::PathBuf) {
    let server = RepoServer::start(
        json!([{"host": "127.0.0.1", "port": 0, "basic": accepted, "packages": ["acme/alpha"]}]),
        packages(),
        None,
    );
    let origin = format!("127.0.0.1:{}", server.ports[0]);
    let dir = project(
        t,
        "shop",
        vec![composer_repo(server.ports[0])],
        json!({"acme/alpha": "^1.0"}),
    );
    (server, origin, dir)
}

#[test]
fn an_origin_without_a_port() {
    let (t, _d) = composer_env();
    // Port 80 makes a URL whose origin has no port; binding it needs root, as the tests run.
    let server = RepoServer::start(
        json!([{"host": "127.0.0.2", "port": 80, "basic": [basic(PUB_A, PRIV_A, "pair-a")], "packages": ["acme/gamma"]}]),
        packages(),
        None,
    );
    add(&t, "127.0.0.2", "http-basic", None, &[PUB_A, PRIV_A]);
    let repo = json!({"type": "composer", "url": "http://127.0.0.2"});
    let dir = project(&t, "portless", vec![repo], json!({"acme/gamma": "*"}));
    let out = composer(&t, &dir, &["install"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(dir.join("vendor/acme/gamma/src/Gamma.php").is_file());
    for prefix in ["/packages.json", "/p2/", "/dists/"] {
        assert_eq!(
            server.accepted(0, prefix).first().map(String::as_str),
            Some("pair-a"),
            "{prefix}"
        );
    }
    assert!(
        server.requests().iter().all(|r| r["host"] == "127.0.0.2"),
        "{:?}",
        server.requests()
    );
    assert_no_plaintext(&t, PRIV_A);
}

#[test]
fn an_origin_seen_only_at_download_is_served_then() {
    let (t, _d) = composer_env();
    // Dists live on `LOCALHOST:PORT`: Composer keys that origin as spelled, so the credential
    // the daemon lists (lower-cased) does not match it and pre-file-download must fetch it.
    let server = RepoServer::start(
        json!([{"host": "127.0.0.1", "port": 0, "basic": [basic(PUB_A, PRIV_A, "pair-a")],
                "packages": ["acme/alpha"], "dist_host": "LOCALHOST:{port}"}]),
        packages(),
        None,
    );
    let port = server.ports[0];
    add(
        &t,
        &format!("127.0.0.1:{port}"),
        "http-basic",
        None,
        &[PUB_A, PRIV_A],
    );
    add(
        &t,
        &format!("localhost:{port}"),
        "http-basic",
        None,
        &[PUB_A, PRIV_A],
    );
    let dir = project(
        &t,
        "cdn",
        vec![composer_repo(port)],
        json!({"acme/alpha": "^1.0"}),
    );
    let out = composer(&t, &dir, &["install", "-v"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "composer-keyd: using the http-basic credential for LOCALHOST:{port}"
        )),
        "{}",
        text(&out)
    );
    let dists: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r["path"].as_str().unwrap().starts_with("/dists/"))
        .collect();
    assert!(
        !dists.is_empty()
            && dists
                .iter()
                .all(|r| r["accepted"] == "pair-a" && r["host"] == format!("LOCALHOST:{port}")),
        "{dists:?}"
    );
}

#[test]
fn a_git_repository_behind_basic_auth_installs() {
    let (t, _d) = composer_env();
    let git_root = tempfile::Builder::new()
        .prefix("ckd-git-")
        .tempdir()
        .unwrap();
    git_repo(git_root.path(), "widget", "acme/widget", "1.0.0");
    let server = RepoServer::start(
        json!([{"host": "127.0.0.1", "port": 0, "basic": [basic(PUB_A, PRIV_A, "pair-a")], "packages": []}]),
        packages(),
        Some(git_root.path()),
    );
    let port = server.ports[0];
    add(
        &t,
        &format!("127.0.0.1:{port}"),
        "http-basic",
        None,
        &[PUB_A, PRIV_A],
    );
    let repo = json!({"type": "vcs", "url": format!("http://127.0.0.1:{port}/git/widget.git")});
    let dir = project(&t, "vcs", vec![repo], json!({"acme/widget": "^1.0"}));
    let out = composer(&t, &dir, &["install"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(dir.join("vendor/acme/widget/src/Widget.php").is_file());
    // git asks without credentials first (401), then the git helper the plugin configured
    // answers with the daemon's pair. Composer never builds a URL with the secret in it, so
    // no Composer (2.2 included) can leave it in its vcs cache's git config.
    let git = server.accepted(0, "/git/");
    assert!(
        !git.is_empty() && git.iter().all(|l| l == "pair-a"),
        "{:?}",
        server.requests()
    );
    assert_no_plaintext(&t, PRIV_A);
}

#[test]
fn each_project_sends_its_own_key_pair() {
    let (t, _d) = composer_env();
    let server = RepoServer::start(
        json!([{"host": "127.0.0.1", "port": 0, "packages": ["acme/alpha"],
                "basic": [basic(PUB_A, PRIV_A, "pair-a"), basic(PUB_B, PRIV_B, "pair-b")]}]),
        packages(),
        None,
    );
    let origin = format!("127.0.0.1:{}", server.ports[0]);
    let repo = composer_repo(server.ports[0]);
    let shop_a = project(
        &t,
        "client-a",
        vec![repo.clone()],
        json!({"acme/alpha": "^1.0"}),
    );
    let shop_b = project(&t, "client-b", vec![repo], json!({"acme/alpha": "^1.0"}));
    add(&t, &origin, "http-basic", Some(&shop_a), &[PUB_A, PRIV_A]);
    add(&t, &origin, "http-basic", Some(&shop_b), &[PUB_B, PRIV_B]);
    for (dir, label) in [(&shop_a, "pair-a"), (&shop_b, "pair-b")] {
        server.clear();
        // A cold cache each time, so the dists are fetched again too.
        let _ = std::fs::remove_dir_all(&t.env["COMPOSER_CACHE_DIR"]);
        let out = composer(&t, dir, &["install"]);
        assert!(out.status.success(), "{}", text(&out));
        for prefix in ["/packages.json", "/p2/", "/dists/"] {
            let seen = server.accepted(0, prefix);
            assert!(
                !seen.is_empty() && seen.iter().all(|l| l == label),
                "{label} {prefix}: {seen:?}"
            );
        }
    }
    for secret in [PRIV_A, PRIV_B] {
        assert_no_plaintext(&t, secret);
    }
}

#[test]
fn a_refused_key_pair_names_composer_keyd_and_the_fix() {
    let (t, _d) = composer_env();
    // The Marketplace regenerated the keys: the server takes only pair B, the daemon has pair A.
    let (server, origin, dir) = one_repo(&t, json!([basic(PUB_B, PRIV_B, "pair-b")]));
    add(&t, &origin, "http-basic", None, &[PUB_A, PRIV_A]);
    let out = composer(&t, &dir, &["install"]);
    assert!(!out.status.success(), "{}", text(&out));
    let log = text(&out);
    for needle in [
        format!("composer-keyd supplied the credentials for {origin}"),
        format!("`composer-keyd check {origin}`"),
        format!("`composer-keyd rotate {origin}`"),
    ] {
        assert!(log.contains(&needle), "missing {needle:?} in {log}");
    }
    assert!(server
        .requests()
        .iter()
        .any(|r| r["refused"] == "wrong basic"));
    assert!(
        !log.contains(PRIV_A) && !log.contains("Stack trace"),
        "{log}"
    );

    // The fix the message names works.
    t.ok(&["rotate", &origin], &format!("{PUB_B}\n{PRIV_B}\n"));
    let out = composer(&t, &dir, &["install"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("composer-keyd"), "{}", text(&out));
    assert_no_plaintext(&t, PRIV_B);
}

#[test]
fn stopped_locked_and_disabled_daemons() {
    let (t, mut d) = composer_env();
    let (server, origin, dir) = one_repo(&t, json!([basic(PUB_A, PRIV_A, "pair-a")]));
    add(&t, &origin, "http-basic", None, &[PUB_A, PRIV_A]);

    // Stopped: the same failure as without the plugin, and one line at -v.
    d.stop();
    server.clear();
    let with = composer(&t, &dir, &["install"]);
    let sent_with = server.requests();
    server.clear();
    let without = composer(&t, &dir, &["install", "--no-plugins"]);
    assert!(!with.status.success());
    assert_eq!(with.status.code(), without.status.code());
    // Composer >= 2.7, as root, adds this line because of --no-plugins itself.
    let own_remark = "Plugins have been disabled automatically as you are running as root";
    let lines = |out: &std::process::Output| -> Vec<String> {
        text(out)
            .lines()
            .filter(|l| !l.starts_with(own_remark))
            .map(str::to_owned)
            .collect()
    };
    assert!(!text(&with).contains(own_remark));
    assert_eq!(lines(&with), lines(&without));
    // The same requests crossed the wire, none of them with credentials.
    let shape = |log: &[serde_json::Value]| -> Vec<(String, String)> {
        log.iter()
            .map(|r| (r["path"].to_string(), r["refused"].to_string()))
            .collect()
    };
    assert_eq!(shape(&sent_with), shape(&server.requests()));
    assert!(
        !sent_with.is_empty() && sent_with.iter().all(|r| r["accepted"].is_null()),
        "{sent_with:?}"
    );
    assert!(!text(&with).contains("PHP Warning") && !text(&with).contains("Stack trace"));
    let verbose = composer(&t, &dir, &["install", "-v"]);
    let lines: Vec<_> = text(&verbose)
        .lines()
        .filter(|l| l.contains("composer-keyd"))
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), 1, "{}", text(&verbose));
    assert!(lines[0].contains("no composer-keyd daemon"), "{lines:?}");

    // Locked: the one clear line, then Composer goes on without the credential.
    let _d = t.start_daemon(&[]);
    t.ok(&["lock"], "");
    let out = composer(&t, &dir, &["install"]);
    assert!(!out.status.success());
    let lines: Vec<_> = text(&out)
        .lines()
        .filter(|l| l.contains("composer-keyd"))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        lines,
        ["composer-keyd is locked: run `composer-keyd unlock`"],
        "{}",
        text(&out)
    );
    t.ok(&["unlock"], "");

    // Disabled: one line naming it.
    t.ok(&["disable", &origin], "");
    let out = composer(&t, &dir, &["install"]);
    assert!(!out.status.success());
    let lines: Vec<_> = text(&out)
        .lines()
        .filter(|l| l.contains("composer-keyd"))
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), 1, "{}", text(&out));
    assert!(
        lines[0].contains(&format!("the credential for {origin} is disabled")),
        "{lines:?}"
    );
    t.ok(&["enable", &origin], "");
    let out = composer(&t, &dir, &["install"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_no_plaintext(&t, PRIV_A);
}

#[test]
fn prompted_credentials_go_to_the_daemon_not_auth_json() {
    let (t, _d) = composer_env();
    let (server, origin, dir) = one_repo(&t, json!([basic(PUB_A, PRIV_A, "pair-a")]));
    // An interactive run, as a person at a terminal: `script` gives Composer a pty.
    support::require("script", "bsdutils");
    let cmd = format!(
        "'{}' --no-ansi --working-dir='{}' install",
        composer_bin(),
        dir.display()
    );
    let child = t
        .command("script")
        .args(["-q", "-e", "-c", &cmd, "/dev/null"])
        .env_remove("COMPOSER_NO_INTERACTION")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = feed(child, &format!("{PUB_A}\n{PRIV_A}\ny\n"));
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains(&format!(
            "Store the credentials for {origin} in composer-keyd"
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "composer-keyd: stored the credentials for {origin} (created)"
        )),
        "{log}"
    );
    assert!(
        !log.contains("in auth.json ?"),
        "Composer's own offer is off: {log}"
    );
    assert!(!composer_home(&t).join("auth.json").exists());

    let list: serde_json::Value = serde_json::from_str(&t.ok(&["list", "--json"], "")).unwrap();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|c| c["origin"] == origin.as_str()),
        "{list}"
    );
    // The next run, non-interactive, is served by the daemon.
    server.clear();
    let _ = std::fs::remove_dir_all(&t.env["COMPOSER_CACHE_DIR"]);
    std::fs::remove_dir_all(dir.join("vendor")).unwrap();
    let out = composer(&t, &dir, &["install"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(server.accepted(0, "/dists/").iter().all(|l| l == "pair-a"));
    assert!(server.requests().iter().all(|r| r["status"] != 401));
    assert_no_plaintext(&t, PRIV_A);
}
