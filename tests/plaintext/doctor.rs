//! `doctor` on a broken set-up lists each problem with its fix, and passes once they are fixed.

use super::server::RepoServer;
use super::*;
use crate::support::{require, TestEnv};
use serde_json::json;
use std::os::unix::fs::PermissionsExt;

/// Asserts a `PROBLEM  what: ...` line whose next line is a fix containing `fix`.
fn assert_problem(out: &str, what: &str, fix: &str) {
    let lines: Vec<&str> = out.lines().collect();
    let found = lines.windows(2).any(|w| {
        w[0].starts_with(&format!("PROBLEM  {what}"))
            && w[1].trim_start().starts_with("fix:")
            && w[1].contains(fix)
    });
    assert!(found, "no problem `{what}` with fix `{fix}` in:\n{out}");
}

#[test]
fn doctor_lists_each_problem_with_its_fix_and_passes_when_fixed() {
    require("php", "php-cli");
    require("composer", "composer");
    let t = TestEnv::with_keyring(true);
    let proj = project(&t, "shop");
    write_mode(
        &proj.join("auth.json"),
        &json!({"http-basic": {"repo.magento.com": {"username": PUB, "password": PRIV}}})
            .to_string(),
        0o600,
    );
    // An unsafe socket directory, no daemon, no plugin, plaintext in the project.
    let sock_dir = t.socket().parent().unwrap().to_path_buf();
    std::fs::create_dir_all(&sock_dir).unwrap();
    std::fs::set_permissions(&sock_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = t.run_in(&proj, &["doctor", "--offline"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    // The client refuses the unsafe directory before it looks for a daemon in it.
    assert_problem(
        &shown,
        "daemon: not asked: refusing to use",
        "composer-keyd service install",
    );
    assert_problem(
        &shown,
        "socket directory",
        &format!("rm -r {}", sock_dir.display()),
    );
    assert_problem(&shown, "plugin", "composer-keyd shim install");
    assert_problem(
        &shown,
        &format!(
            "plaintext: {}: http-basic for repo.magento.com",
            proj.join("auth.json").display()
        ),
        &format!("composer-keyd import {}", proj.join("auth.json").display()),
    );
    assert!(shown.contains("\nok       php: "), "{shown}");
    assert!(
        shown.contains("\nok       composer: Composer version 2"),
        "{shown}"
    );
    assert!(shown.contains("4 problem(s) found."), "{shown}");
    assert_no_secret(&text(&out), &[PUB, PRIV]);

    // Fix each problem the way the report says.
    std::fs::set_permissions(&sock_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let _d = t.start_daemon(&[]);
    let imp = t.run_in(&proj, &["import"], &[]);
    assert!(imp.status.success(), "{}", text(&imp));
    let home = composer_home(&t);
    std::fs::write(
        home.join("composer.json"),
        json!({"require": {"composer-keyd/composer-plugin": "*"}, "config": {"allow-plugins": {"composer-keyd/composer-plugin": true}}}).to_string(),
    )
    .unwrap();
    std::fs::create_dir_all(home.join("vendor/composer-keyd/composer-plugin")).unwrap();
    let server = RepoServer::start(t.dir.path(), PUB, PRIV, None);
    let to_server = format!("repo.magento.com=127.0.0.1:{}", server.port);
    let env = [
        ("COMPOSER_KEYD_CHECK_SCHEME", "http"),
        ("COMPOSER_KEYD_CHECK_CONNECT_TO", to_server.as_str()),
    ];
    let out = t.run_in(&proj, &["doctor"], &env);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("No problems found."), "{shown}");
    assert!(
        shown.contains("ok       check repo.magento.com (project "),
        "{shown}"
    );
    assert!(shown.contains("ok       backend: keyring"), "{shown}");
    assert!(server.log().contains("accepted GET /packages.json"));

    // A locked daemon is a problem with its own fix.
    t.ok(&["lock"], "");
    let out = t.run_in(&proj, &["doctor"], &env);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_problem(
        &String::from_utf8_lossy(&out.stdout),
        "backend",
        "composer-keyd unlock",
    );
}

/// With a forge token stored, `doctor` says whether other users can read command lines (where
/// Composer's own git retry would show the token), and says nothing of it without one.
#[test]
fn doctor_warns_of_readable_command_lines_only_with_a_forge_token() {
    require("unshare", "util-linux");
    let t = TestEnv::with_keyring(true);
    let _d = t.start_daemon(&[]);
    let line = "command lines:";
    let doctor =
        || String::from_utf8_lossy(&t.cli(&["doctor", "--offline"], "").stdout).into_owned();
    t.ok(
        &["add", "repo.magento.com", "--type", "http-basic"],
        "pub\npriv\n",
    );
    let plain = doctor();
    assert!(!plain.contains(line), "{plain}");

    t.ok(
        &["add", "github.com", "--type", "github-oauth"],
        "ghp_doctorcmdline0000000000000000000000\n",
    );
    let open = doctor();
    let warned = open
        .lines()
        .find(|l| l.starts_with(&format!("WARNING  {line}")))
        .unwrap_or_else(|| panic!("no warning in:\n{open}"));
    assert!(
        warned.contains("github.com") && warned.contains("hidepid=invisible"),
        "{warned}"
    );

    // The same doctor under a /proc mounted with hidepid (a mount namespace of its own).
    let out = t
        .command("unshare")
        .args(["--mount", "--pid", "--fork", "sh", "-c"])
        .arg(format!(
            "mount -t proc -o hidepid=invisible proc /proc && exec {} doctor --offline",
            crate::support::BIN
        ))
        .output()
        .expect("unshare (Debian package util-linux)");
    let hidden = String::from_utf8_lossy(&out.stdout);
    assert!(
        hidden
            .lines()
            .any(|l| l.starts_with(&format!("ok       {line}"))),
        "{hidden}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
