//! Magento's in-process Composer: `bin/magento sampledata:deploy` runs Composer inside the
//! Magento process under `COMPOSER_HOME=<root>/var/composer_home`, where the global plugin is
//! not loaded. A stand-in `bin/magento` does what Magento's source does (see
//! `magento_stand_in`), against a loopback repository that demands a Marketplace key pair.

use crate::composer_fixture;
use crate::support;

use composer_fixture::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

const PUB: &str = "7d1e5c3a9b0f42e8a6c4d2b0f8e6a4c2";
const PRIV: &str = "a2c4e6f8b0d2f4a6c8e0b2d4f6a8c0e2";

/// Where the stand-in loads Composer's classes from: beside `$COMPOSER_BIN` when the opt-in
/// matrix gives one (its archive has `vendor/autoload.php`), else Debian's copy.
fn composer_autoload() -> PathBuf {
    if let Ok(bin) = std::env::var("COMPOSER_BIN") {
        if let Some(root) = Path::new(&bin).parent().and_then(Path::parent) {
            let a = root.join("vendor/autoload.php");
            if a.is_file() {
                return a;
            }
        }
    }
    let debian = PathBuf::from("/usr/share/php/Composer/autoload.php");
    assert!(
        debian.is_file(),
        "{} is missing (Debian package composer)",
        debian.display()
    );
    debian
}

/// A directory shaped like a Magento root whose `bin/magento sampledata:deploy` does what
/// Magento's does: `Magento\Framework\Composer\ComposerFactory`/`MagentoComposerApplication`
/// `putenv('COMPOSER_HOME=' . <root>/var/composer_home)` (putenv only, so `$_SERVER` keeps
/// whatever the shell exported); `SampleDataDeployCommand::createAuthFile` writes `{}` to
/// `var/composer_home/auth.json` when it is missing; then `new \Composer\Console\Application`,
/// `setAutoExit(false)`, and `run()` of `require PACKAGES --working-dir=<root> --no-progress`.
fn magento_root(t: &support::TestEnv, port: u16) -> PathBuf {
    let root = t.dir.path().join("projects/magento");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("app/etc")).unwrap();
    std::fs::create_dir_all(root.join("var")).unwrap();
    let doc = json!({
        "name": "magento/project-community-edition",
        "type": "project",
        "version": "2.4.7",
        "repositories": [
            {"type": "composer", "url": format!("http://127.0.0.1:{port}")},
            {"packagist.org": false},
        ],
        "require": {},
        "config": {"secure-http": false},
        "minimum-stability": "dev",
        "prefer-stable": true,
    });
    std::fs::write(
        root.join("composer.json"),
        serde_json::to_vec_pretty(&doc).unwrap(),
    )
    .unwrap();
    // As Magento ships it: a `#!/usr/bin/env php` script with the executable bit, so that
    // `bin/magento sampledata:deploy` runs as its docs (and this project's README) show.
    let script = format!(
        r#"#!/usr/bin/env php
<?php
// A stand-in for Magento's bin/magento sampledata:deploy (see tests/magento.rs).
require {autoload};
use Composer\Console\Application;
use Symfony\Component\Console\Input\ArrayInput;
use Symfony\Component\Console\Output\ConsoleOutput;
if (($argv[1] ?? '') !== 'sampledata:deploy') {{ fwrite(STDERR, "unknown command\n"); exit(1); }}
$root = dirname(__DIR__);
$home = $root . '/var/composer_home';
if (!is_dir($home)) {{ mkdir($home, 0777, true); }}
putenv('COMPOSER_HOME=' . $home);
if (!file_exists($home . '/auth.json')) {{ file_put_contents($home . '/auth.json', '{{}}'); }}
$application = new Application();
$application->setAutoExit(false);
$input = new ArrayInput(['command' => 'require', 'packages' => ['magento/module-sample-data:^1.0'],
    '--working-dir' => $root, '--no-progress' => 1]);
$result = $application->run($input, new ConsoleOutput());
if ($result !== 0) {{ echo "There is an error during sample data deployment.\n"; }}
exit($result);
"#,
        autoload = serde_json::to_string(&composer_autoload().to_string_lossy()).unwrap()
    );
    std::fs::write(root.join("bin/magento"), script).unwrap();
    support_chmod(&root.join("bin/magento"));
    root
}

fn support_chmod(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Runs `argv` in the Magento root as a user who has not exported COMPOSER_HOME (the usual
/// case: then Magento's putenv decides the home).
fn in_root(t: &support::TestEnv, root: &Path, argv: &[&str]) -> Output {
    t.command(argv[0])
        .args(&argv[1..])
        .env_remove("COMPOSER_HOME")
        .current_dir(root)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn server() -> RepoServer {
    RepoServer::start(
        json!([{"host": "127.0.0.1", "port": 0, "basic": [basic(PUB, PRIV, "marketplace")],
                "packages": ["magento/module-sample-data"]}]),
        json!({"magento/module-sample-data": [package("1.0.0", "SampleData")]}),
        None,
    )
}

/// `bin/magento` by its full path, for runs without `exec`, where the test process starts
/// it (a relative program with `current_dir` is ambiguous in `std::process::Command`).
fn magento_bin(root: &Path) -> String {
    root.join("bin/magento").to_string_lossy().into_owned()
}

#[test]
fn sampledata_deploy_under_exec_installs_with_no_auth_json_anywhere() {
    let (t, _d) = composer_env();
    let server = server();
    let port = server.ports[0];
    add(
        &t,
        &format!("127.0.0.1:{port}"),
        "http-basic",
        None,
        &[PUB, PRIV],
    );
    let root = magento_root(&t, port);
    let magento = magento_bin(&root);

    // Without exec: the global plugin is not loaded under var/composer_home, so Composer has
    // no credentials and the repository refuses it. This is the case, not a guess.
    let plain = in_root(&t, &root, &[&magento, "sampledata:deploy"]);
    assert!(!plain.status.success(), "{}", text(&plain));
    assert!(
        !root.join("vendor/magento/module-sample-data").exists(),
        "{}",
        text(&plain)
    );
    assert!(
        server.accepted(0, "/").is_empty(),
        "{:?}",
        server.requests()
    );
    server.clear();

    // Exactly the README's command, from the Magento root: exec runs `bin/magento` relative to
    // its working directory, and the kernel runs PHP from the shebang.
    let out = in_root(
        &t,
        &root,
        &[
            support::BIN,
            "exec",
            "--",
            "bin/magento",
            "sampledata:deploy",
        ],
    );
    assert!(out.status.success(), "exec bin/magento: {}", text(&out));
    assert!(root
        .join("vendor/magento/module-sample-data/src/SampleData.php")
        .is_file());
    let seen = server.accepted(0, "/dists/");
    assert!(
        !seen.is_empty() && seen.iter().all(|l| l == "marketplace"),
        "{:?}",
        server.requests()
    );
    // Magento's createAuthFile left its empty auth.json; nothing wrote the pair to any file.
    let auth = std::fs::read_to_string(root.join("var/composer_home/auth.json")).unwrap();
    assert_eq!(auth.trim(), "{}");
    assert!(!root.join("auth.json").exists());
    assert_no_plaintext(&t, PRIV);
}

#[test]
fn the_plugin_in_var_composer_home_makes_the_plain_command_work() {
    let (t, _d) = composer_env();
    let server = server();
    let port = server.ports[0];
    add(
        &t,
        &format!("127.0.0.1:{port}"),
        "http-basic",
        None,
        &[PUB, PRIV],
    );
    let root = magento_root(&t, port);
    let home = root.join("var/composer_home");
    std::fs::create_dir_all(&home).unwrap();
    // The home Composer itself would find has no Packagist; this one must not ask it either.
    std::fs::write(
        home.join("composer.json"),
        json!({"repositories": [{"packagist.org": false}], "config": {"secure-http": false}})
            .to_string(),
    )
    .unwrap();

    // The Magento root itself is a project, not a Composer home: refused, nothing written.
    let before = std::fs::read(root.join("composer.json")).unwrap();
    let refused = t
        .command(support::BIN)
        .args(["shim", "install", "--composer-home"])
        .arg(&root)
        .output()
        .unwrap();
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        text(&refused).contains("var/composer_home"),
        "{}",
        text(&refused)
    );
    assert_eq!(std::fs::read(root.join("composer.json")).unwrap(), before);

    let out = t
        .command(support::BIN)
        .args(["shim", "install", "--composer-home"])
        .arg(&home)
        .output()
        .unwrap();
    assert!(out.status.success(), "shim install: {}", text(&out));
    assert!(text(&out).contains("bin/magento"), "{}", text(&out));

    let magento = magento_bin(&root);
    let plain = in_root(&t, &root, &[&magento, "sampledata:deploy"]);
    assert!(plain.status.success(), "bin/magento: {}", text(&plain));
    assert!(root
        .join("vendor/magento/module-sample-data/src/SampleData.php")
        .is_file());
    let seen = server.accepted(0, "/dists/");
    assert!(
        !seen.is_empty() && seen.iter().all(|l| l == "marketplace"),
        "{:?}",
        server.requests()
    );
    assert_no_plaintext(&t, PRIV);
}

#[test]
fn doctor_in_a_magento_root_names_the_case_and_the_fix() {
    let (t, _d) = composer_env();
    let root = magento_root(&t, 9);
    let out = t
        .command(support::BIN)
        .args(["--no-autostart", "doctor", "--offline"])
        .env_remove("COMPOSER_HOME")
        .current_dir(&root)
        .output()
        .unwrap();
    let shown = text(&out);
    let line = shown
        .lines()
        .find(|l| l.contains("magento"))
        .unwrap_or_else(|| panic!("no magento line: {shown}"));
    assert!(line.contains("var/composer_home"), "{shown}");
    assert!(
        shown.contains("composer-keyd exec -- bin/magento sampledata:deploy"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!(
            "composer-keyd shim install --composer-home {}/var/composer_home",
            root.canonicalize().unwrap().display()
        )),
        "{shown}"
    );

    // An exported COMPOSER_HOME wins over Magento's putenv() (Composer reads $_SERVER
    // first), so the global plugin is loaded: doctor says that instead of a fix.
    let out = t
        .command(support::BIN)
        .args(["--no-autostart", "doctor", "--offline"])
        .current_dir(&root)
        .output()
        .unwrap();
    let shown = text(&out);
    assert!(
        shown
            .lines()
            .any(|l| l.contains("magento") && l.contains("is exported and wins")),
        "{shown}"
    );

    // With the plugin there, doctor says so instead.
    let home = root.join("var/composer_home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join("composer.json"),
        json!({"repositories": [{"packagist.org": false}]}).to_string(),
    )
    .unwrap();
    let ins = t
        .command(support::BIN)
        .args(["shim", "install", "--composer-home"])
        .arg(&home)
        .output()
        .unwrap();
    assert!(ins.status.success(), "{}", text(&ins));
    let out = t
        .command(support::BIN)
        .args(["--no-autostart", "doctor", "--offline"])
        .env_remove("COMPOSER_HOME")
        .current_dir(&root)
        .output()
        .unwrap();
    let shown = text(&out);
    assert!(
        shown.lines().any(|l| l.starts_with("ok")
            && l.contains("magento")
            && l.contains("var/composer_home")),
        "{shown}"
    );
}

/// Every file under `dir` with its bytes, to show that nothing was written there.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p.clone());
                out.push((p, Vec::new()));
            } else {
                let bytes = std::fs::read(&p).unwrap();
                out.push((p, bytes));
            }
        }
    }
    out.sort();
    out
}

/// A directory that is not a Magento root but whose composer.json is a Magento project's
/// (it requires `magento/product-*`) or any project's (`"type": "project"`) is not a Composer
/// home: `shim install --composer-home` refuses it before writing anything.
#[test]
fn shim_install_refuses_a_home_whose_composer_json_is_a_project_s() {
    let t = support::TestEnv::bare();
    let cases = [
        (
            "magento-product",
            // No "type": the magento/product-* requirement alone makes it Magento's.
            json!({"name": "acme/shop", "require": {"magento/product-community-edition": "2.4.7"}}),
            "magento/product-community-edition",
        ),
        (
            "project-type",
            json!({"name": "acme/site", "type": "project", "require": {"php": ">=8.1"}}),
            "\"type\": \"project\"",
        ),
    ];
    for (name, doc, named) in cases {
        let dir = t.dir.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        // Odd spacing on purpose: any rewrite, even an equivalent one, would show.
        let manifest = format!("{}\n\n", serde_json::to_string_pretty(&doc).unwrap());
        std::fs::write(dir.join("composer.json"), &manifest).unwrap();
        let before = snapshot(&dir);
        let out = t
            .command(support::BIN)
            .args([
                "shim",
                "install",
                "--composer",
                "/bin/false",
                "--composer-home",
            ])
            .arg(&dir)
            .output()
            .unwrap();
        let shown = text(&out);
        assert!(!out.status.success(), "{name}: {shown}");
        assert!(
            shown.contains("not installing the plugin there") && shown.contains(named),
            "{name}: {shown}"
        );
        assert_eq!(snapshot(&dir), before, "{name}: the directory changed");
        assert_eq!(
            std::fs::read_to_string(dir.join("composer.json")).unwrap(),
            manifest
        );
    }
}
