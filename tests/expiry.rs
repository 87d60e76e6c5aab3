//! Credentials that expire: `--expires`, the dates `check` learns from the forges (loopback
//! stand-ins answer with GitHub's `GitHub-Authentication-Token-Expiration` header and
//! GitLab's `/api/v4/personal_access_tokens/self`), `list --json`, and the one line
//! `composer install`, `exec` and `doctor` print before and after the date.

use crate::composer_fixture::*;
use crate::support;
use serde_json::{json, Value};

const PUB: &str = "3e1f5a7c9b2d4e6f8a0c1e3f5a7b9d1c";
const PRIV: &str = "9c7a5e3f1d2b4a6c8e0f2a4c6e8b0d2f";
const GH_TOKEN: &str = "ghp-5d2c8e1f7a3b9d4e6c0a2f8b1d3e5c7a";
const GL_TOKEN: &str = "glpat-8b3d1f6a2c9e4b7d0a5c3e1f9b2d6a4c";

/// 2026-12-10 12:00:00 UTC and 2026-12-10 00:00:00 UTC.
const GH_AT: u64 = 1_796_860_800 + 43_200;
const GL_AT: u64 = 1_796_860_800;

fn list_json(t: &support::TestEnv) -> Vec<Value> {
    serde_json::from_str::<Value>(&t.ok(&["list", "--json"], ""))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn expires_of(t: &support::TestEnv, origin: &str) -> Option<u64> {
    list_json(t)
        .iter()
        .find(|c| c["origin"] == origin)
        .unwrap_or_else(|| panic!("{origin} not listed"))
        .get("expires")
        .and_then(Value::as_u64)
}

/// `check --json` against the loopback stand-ins (plain http).
fn check_json(t: &support::TestEnv) -> std::process::Output {
    t.command(support::BIN)
        .args(["check", "--json"])
        .env("COMPOSER_KEYD_CHECK_SCHEME", "http")
        .output()
        .unwrap()
}

/// `doctor --offline` run in the project `dir`.
fn doctor_offline(t: &support::TestEnv, dir: &std::path::Path) -> std::process::Output {
    t.command(support::BIN)
        .args(["doctor", "--offline"])
        .current_dir(dir)
        .output()
        .unwrap()
}

#[test]
fn check_learns_the_expiry_from_github_and_gitlab_and_list_shows_it() {
    let (t, _d) = composer_env();
    let server = RepoServer::start(
        json!([
            {"host": "127.0.0.1", "port": 0, "github_expiry": "2026-12-10 12:00:00 UTC",
             "headers": [{"name": "Authorization", "value": format!("token {GH_TOKEN}"), "label": "gh"}]},
            {"host": "127.0.0.1", "port": 0, "gitlab_expires_at": "2026-12-10",
             "headers": [{"name": "PRIVATE-TOKEN", "value": GL_TOKEN, "label": "gl"}]},
        ]),
        json!({}),
        None,
    );
    let gh = format!("127.0.0.1:{}", server.ports[0]);
    let gl = format!("127.0.0.1:{}", server.ports[1]);
    add(&t, &gh, "github-oauth", None, &[GH_TOKEN]);
    add(&t, &gl, "gitlab-token", None, &[GL_TOKEN]);
    assert_eq!(expires_of(&t, &gh), None);

    let out = check_json(&t);
    assert!(out.status.success(), "check: {}", text(&out));
    assert_eq!(server.accepted(0, "/api/v3/user"), ["gh"]);
    assert_eq!(
        server.accepted(1, "/api/v4/personal_access_tokens/self"),
        ["gl"]
    );
    assert_eq!(expires_of(&t, &gh), Some(GH_AT));
    assert_eq!(expires_of(&t, &gl), Some(GL_AT));
    // Metadata only: the secrets are the same, nothing was rotated.
    let creds = list_json(&t);
    assert!(
        creds.iter().all(|c| c["has_previous"] == false),
        "{creds:?}"
    );
    assert_eq!(
        t.credential(&gh, None)["token"],
        GH_TOKEN,
        "the token itself is unchanged"
    );
    let table = t.ok(&["list"], "");
    assert!(
        table.contains("EXPIRES") && table.contains("2026-12-10"),
        "{table}"
    );
}

#[test]
fn marketplace_pairs_take_no_expiry() {
    let (t, _d) = composer_env();
    let out = t.cli(
        &["add", "repo.magento.com", "--expires", "30d"],
        &format!("{PUB}\n{PRIV}\n"),
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("do not expire"), "{}", text(&out));
    let out = t.cli(&["add", "a.example", "--expires", "30"], "u\np\n");
    assert!(
        !out.status.success(),
        "a bare number is refused: {}",
        text(&out)
    );
}

/// A project on a loopback repository whose credential was added with `--expires WHEN`.
fn expiring_project(t: &support::TestEnv, when: &str) -> (RepoServer, String, std::path::PathBuf) {
    let server = RepoServer::start(
        json!([{"host": "127.0.0.1", "port": 0, "basic": [basic(PUB, PRIV, "pair")],
                "packages": ["acme/alpha"]}]),
        json!({"acme/alpha": [package("1.0.0", "Alpha")]}),
        None,
    );
    let origin = format!("127.0.0.1:{}", server.ports[0]);
    t.ok(
        &["add", &origin, "--expires", when],
        &format!("{PUB}\n{PRIV}\n"),
    );
    let dir = project(
        t,
        "shop",
        vec![json!({"type": "composer", "url": format!("http://{origin}")})],
        json!({"acme/alpha": "^1.0"}),
    );
    (server, origin, dir)
}

fn lines_with<'a>(shown: &'a str, needle: &str) -> Vec<&'a str> {
    shown.lines().filter(|l| l.contains(needle)).collect()
}

#[test]
fn expiring_in_three_days_warns_once_and_installs() {
    let (t, _d) = composer_env();
    let (server, origin, dir) = expiring_project(&t, "3d");
    let out = composer(&t, &dir, &["install"]);
    let shown = text(&out);
    assert!(out.status.success(), "composer install: {shown}");
    assert!(dir.join("vendor/acme/alpha/src/Alpha.php").is_file());
    assert!(!server.accepted(0, "/dists/").is_empty());
    let warned = lines_with(&shown, "composer-keyd: the credential for");
    assert_eq!(warned.len(), 1, "{shown}");
    assert!(warned[0].contains("expires on"), "{shown}");
    assert!(warned[0].contains("(in 3 days)"), "{shown}");
    assert!(
        warned[0].contains(&format!("`composer-keyd rotate {origin}`")),
        "{shown}"
    );

    // exec and doctor say the same, in one line each.
    let ex = t
        .command(support::BIN)
        .args(["exec", "--", "true"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(ex.status.success(), "{}", text(&ex));
    assert_eq!(
        lines_with(&text(&ex), "expires on").len(),
        1,
        "{}",
        text(&ex)
    );
    let doc = doctor_offline(&t, &dir);
    let shown = text(&doc);
    let w = lines_with(&shown, "expires on");
    assert_eq!(w.len(), 1, "{shown}");
    assert!(w[0].starts_with("WARNING  expiry:"), "{shown}");

    // The window is configurable: at 2 days, a credential 3 days off is not mentioned.
    let cfg = std::path::PathBuf::from(&t.env["XDG_CONFIG_HOME"]).join("composer-keyd");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(cfg.join("config.toml"), "expiry_warning_days = 1\n").unwrap();
    let doc = doctor_offline(&t, &dir);
    assert!(
        lines_with(&text(&doc), "expires on").is_empty(),
        "{}",
        text(&doc)
    );
}

#[test]
fn an_expired_credential_is_still_sent_with_one_line_saying_so() {
    let (t, _d) = composer_env();
    let (server, origin, dir) = expiring_project(&t, "2020-01-01");
    let out = composer(&t, &dir, &["install"]);
    let shown = text(&out);
    // Documented: still released (the server decides), with the date and the fix.
    assert!(out.status.success(), "composer install: {shown}");
    assert!(!server.accepted(0, "/dists/").is_empty());
    let warned = lines_with(&shown, "composer-keyd: the credential for");
    assert_eq!(warned.len(), 1, "{shown}");
    assert!(warned[0].contains("expired on 2020-01-01"), "{shown}");
    assert!(
        warned[0].contains(&format!("`composer-keyd rotate {origin}`")),
        "{shown}"
    );
    // doctor counts it as a problem, one line with the date, and its fix is the rotate.
    let doc = doctor_offline(&t, &dir);
    let shown = text(&doc);
    assert!(
        !doc.status.success(),
        "an expired credential is a problem: {shown}"
    );
    let w = lines_with(&shown, "expired on 2020-01-01");
    assert_eq!(w.len(), 1, "{shown}");
    assert!(w[0].starts_with("PROBLEM  expiry:"), "{shown}");
    assert!(
        shown.contains(&format!("fix: composer-keyd rotate {origin}")),
        "{shown}"
    );
    // `rotate` with a new secret drops the old date unless given a new one.
    t.ok(
        &["rotate", &origin, "--expires", "90d"],
        &format!("{PUB}\n{PRIV}x\n"),
    );
    let at = expires_of(&t, &origin).unwrap();
    assert!(at > composer_keyd::expiry::now() + 80 * 86_400);
    t.ok(&["rotate", &origin], &format!("{PUB}\n{PRIV}\n"));
    assert_eq!(expires_of(&t, &origin), None);
}

/// `--expires` where no date would be kept (a team source's entry, or `rotate --rollback`)
/// is refused before anything is read or stored, rather than dropped.
#[test]
fn expires_with_team_or_rollback_is_refused() {
    let t = support::TestEnv::bare();
    for argv in [
        &["add", "github.com", "--team", "acme", "--expires", "30d"][..],
        &["rotate", "github.com", "--team", "acme", "--expires", "30d"],
        &["rotate", "github.com", "--rollback", "--expires", "30d"],
    ] {
        let out = t.cli(argv, "secret-never-read\n");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{argv:?}: {err}");
        let other = if argv.contains(&"--team") {
            "--team"
        } else {
            "--rollback"
        };
        assert!(
            err.contains("--expires") && err.contains("cannot be used with") && err.contains(other),
            "{argv:?}: {err}"
        );
    }
}

/// A team source's entry keeps no policy either: `add --team` with one is refused before
/// the secret is read, not silently stored without it.
#[test]
fn a_policy_with_team_is_refused() {
    let t = support::TestEnv::bare();
    for policy in [
        &["--confirm"][..],
        &["--confirm=program"],
        &["--allow-exe", "/usr/bin/php"],
    ] {
        let mut argv = vec!["add", "github.com", "--team", "acme"];
        argv.extend_from_slice(policy);
        let out = t.cli(&argv, "secret-never-read\n");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{argv:?}: {err}");
        assert!(err.contains("local credentials only"), "{argv:?}: {err}");
        assert!(!err.contains("secret-never-read"), "{argv:?}: {err}");
    }
}

/// GitLab answers `"expires_at": null` for a token that does not expire (one made before
/// 16.0, or extended without a date): `check` clears a stored date rather than keep it.
#[test]
fn gitlab_expires_at_null_clears_a_stored_date() {
    let (t, _d) = composer_env();
    let server = RepoServer::start(
        json!([{"host": "127.0.0.1", "port": 0, "gitlab_expires_at": null,
                "headers": [{"name": "PRIVATE-TOKEN", "value": GL_TOKEN, "label": "gl"}]}]),
        json!({}),
        None,
    );
    let gl = format!("127.0.0.1:{}", server.ports[0]);
    t.ok(
        &[
            "add",
            &gl,
            "--type",
            "gitlab-token",
            "--expires",
            "2026-12-10",
        ],
        &format!("{GL_TOKEN}\n"),
    );
    assert_eq!(expires_of(&t, &gl), Some(GL_AT));
    let out = check_json(&t);
    assert!(out.status.success(), "check: {}", text(&out));
    assert_eq!(
        server.accepted(0, "/api/v4/personal_access_tokens/self"),
        ["gl"]
    );
    assert_eq!(expires_of(&t, &gl), None, "{}", text(&out));
    assert_eq!(t.credential(&gl, None)["token"], GL_TOKEN);
}
