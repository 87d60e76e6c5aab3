//! `composer-keyd ssh` and forward doors end to end: a real sshd on loopback, a second real user (`remoteu`) as the remote side running the real Composer with the plugin, the real daemon on a real gnome-keyring, and a loopback repository that demands the Marketplace pair.

mod composer_fixture;
mod support;

use composer_fixture::*;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use support::sshd::{Sshd, USER};

const PUB: &str = "7e1f0a9c2b4d48e6a3c1f09d7e8b6a11";
const PRIV: &str = "c4a9e3f1b2d4065c8e1f3a7b9d2c4e22";

fn packages() -> serde_json::Value {
    json!({"acme/alpha": [package("1.0.0", "Alpha")]})
}

/// The local side: daemon, keyring, the Marketplace pair for a loopback repository.
struct Local {
    t: support::TestEnv,
    _d: support::Daemon,
    server: RepoServer,
    origin: String,
}

fn local() -> Local {
    let (t, d) = composer_env();
    local_with(t, d)
}

fn local_with(t: support::TestEnv, d: support::Daemon) -> Local {
    let server = RepoServer::start(
        json!([{"host": "127.0.0.1", "port": 0, "basic": [basic(PUB, PRIV, "pair")], "packages": ["acme/alpha"]}]),
        packages(),
        None,
    );
    let origin = format!("127.0.0.1:{}", server.ports[0]);
    add(&t, &origin, "http-basic", None, &[PUB, PRIV]);
    Local {
        t,
        _d: d,
        server,
        origin,
    }
}

/// remoteu's global Composer config (no Packagist: the test machine is offline) and a
/// project of remoteu's that needs `acme/alpha` from `origin`'s repository.
fn remote_project(s: &Sshd, origin: &str) -> PathBuf {
    let home = s.home.join(".config/composer");
    let proj = s.home.join("proj/shop");
    let global =
        json!({"repositories": [{"packagist.org": false}], "config": {"secure-http": false}});
    let doc = json!({
        "name": "remote/shop",
        "repositories": [{"type": "composer", "url": format!("http://{origin}")}, {"packagist.org": false}],
        "require": {"acme/alpha": "^1.0"},
        "config": {"secure-http": false},
    });
    for (dir, body) in [(&home, global), (&proj, doc)] {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("composer.json"), body.to_string()).unwrap();
    }
    let out = Command::new("chown")
        .args(["-R", &format!("{USER}:{USER}")])
        .arg(s.home.join(".config"))
        .arg(s.home.join("proj"))
        .output()
        .unwrap();
    assert!(out.status.success());
    proj
}

/// `composer-keyd ssh OURS... [ssh options] remoteu@127.0.0.1 -- CMD...` from the local side.
fn keyd_ssh(l: &Local, s: &Sshd, ours: &[&str], cmd: &[&str]) -> Command {
    let mut c = l.t.command(support::BIN);
    c.arg("ssh").args(ours).args(s.ssh_options()).arg(s.host());
    if !cmd.is_empty() {
        c.arg("--").args(cmd);
    }
    c.stdin(Stdio::null());
    c
}

fn install_plugin_remote(l: &Local, s: &Sshd) {
    let out = keyd_ssh(l, s, &["--install-plugin"], &[]).output().unwrap();
    assert!(out.status.success(), "--install-plugin: {}", text(&out));
}

fn remote_install(proj: &Path) -> String {
    format!(
        "cd {} && COMPOSER_NO_AUDIT=1 composer install --no-interaction --no-ansi -v",
        proj.display()
    )
}

/// Every file under `root` (not following links) whose bytes hold `needle`, but those under
/// `except`.
fn files_holding(root: &Path, needle: &str, except: &[&Path]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    support::walk(root, &mut |p| {
        if except.iter().any(|e| p.starts_with(e)) {
            return;
        }
        let Ok(meta) = std::fs::symlink_metadata(p) else {
            return;
        };
        if !meta.is_file() {
            return;
        }
        if let Ok(bytes) = std::fs::read(p) {
            if support::contains(&bytes, needle.as_bytes()) {
                hits.push(p.to_owned());
            }
        }
    });
    hits
}

#[test]
fn install_plugin_into_a_fresh_remote_composer_home_then_install_over_a_door() {
    let l = local();
    let s = Sshd::start(l.t.dir.path());
    let proj = remote_project(&s, &l.origin);
    let home = s.home.join(".config/composer");
    assert!(
        !home.join("vendor").exists(),
        "a COMPOSER_HOME that never saw the plugin"
    );

    install_plugin_remote(&l, &s);
    let installed = std::fs::read_to_string(home.join("vendor/composer/installed.json")).unwrap();
    assert!(
        installed.contains("composer-keyd/composer-plugin"),
        "{installed}"
    );
    let global: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(home.join("composer.json")).unwrap())
            .unwrap();
    assert_eq!(
        global["config"]["allow-plugins"]["composer-keyd/composer-plugin"],
        json!(true),
        "{global}"
    );
    // The remote files are remoteu's, none is the local binary's path.
    let plugin_json =
        std::fs::read_to_string(home.join("composer-keyd-plugin/composer.json")).unwrap();
    assert!(!plugin_json.contains(support::BIN), "{plugin_json}");

    // No socket: the plugin's one line, and Composer goes on (here to the repository's 401).
    let out = Command::new("ssh")
        .args(s.ssh_options())
        .arg(s.host())
        .arg(remote_install(&proj))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let shown = text(&out);
    assert!(
        shown.contains("continuing with Composer's own credentials"),
        "{shown}"
    );
    assert!(!proj.join("vendor/acme/alpha").exists());

    // Through a one-session door the install works.
    let out = keyd_ssh(&l, &s, &["--origin", &l.origin], &[&remote_install(&proj)])
        .output()
        .unwrap();
    assert!(out.status.success(), "remote install: {}", text(&out));
    assert!(proj.join("vendor/acme/alpha/src/Alpha.php").is_file());
    assert_eq!(l.server.accepted(0, "/dists/"), vec!["pair".to_string()]);
}
