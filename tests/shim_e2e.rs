//! `composer-keyd shim install|uninstall|status` against real Composer, in a COMPOSER_HOME
//! that already has a global package, its own keys and files of its own.

use crate::composer_fixture;
use crate::support;

use composer_fixture::*;
use serde_json::{json, Value};
use std::path::Path;

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn locked_names(home: &Path) -> Vec<String> {
    let lock = read_json(&home.join("composer.lock"));
    lock["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect()
}

fn shim(t: &support::TestEnv, action: &str) -> std::process::Output {
    t.command(support::BIN)
        .args(["shim", action])
        .output()
        .unwrap()
}

#[test]
fn install_and_uninstall_leave_composer_home_alone() {
    require_tools();
    let mut t = support::TestEnv::bare();
    isolate_composer(&mut t);
    let home = composer_home(&t);

    // A user's global setup: a package of theirs, keys of their own, a file of their own.
    let tool = t.dir.path().join("tool");
    std::fs::create_dir_all(&tool).unwrap();
    std::fs::write(
        tool.join("composer.json"),
        json!({"name": "acme/tool", "version": "1.2.0"}).to_string(),
    )
    .unwrap();
    let original = json!({
        "minimum-stability": "stable",
        "repositories": [{"packagist.org": false}, {"type": "path", "url": tool}],
        "require": {"acme/tool": "^1.2"},
        "config": {"secure-http": false, "sort-packages": true, "allow-plugins": {"other/plugin": false}},
        "extra": {"mine": {"keep": [1, 2, 3]}},
    });
    std::fs::write(
        home.join("composer.json"),
        serde_json::to_vec_pretty(&original).unwrap(),
    )
    .unwrap();
    std::fs::write(home.join("notes.txt"), "mine\n").unwrap();
    let out = t
        .command("composer")
        .args(["global", "update", "--no-ansi"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(locked_names(&home), ["acme/tool"]);

    let status = shim(&t, "status");
    assert_eq!(status.status.code(), Some(1), "{}", text(&status));
    assert!(
        text(&status).contains("installed:     no"),
        "{}",
        text(&status)
    );

    install_plugin(&t);
    let doc = read_json(&home.join("composer.json"));
    assert_eq!(doc["require"]["acme/tool"], "^1.2");
    assert_eq!(doc["require"]["composer-keyd/composer-plugin"], "*");
    assert_eq!(
        doc["config"]["allow-plugins"]["composer-keyd/composer-plugin"],
        true
    );
    assert_eq!(doc["config"]["allow-plugins"]["other/plugin"], false);
    assert_eq!(doc["extra"], original["extra"]);
    let keys: Vec<_> = doc.as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        keys,
        [
            "minimum-stability",
            "repositories",
            "require",
            "config",
            "extra"
        ],
        "key order kept"
    );
    assert_eq!(
        locked_names(&home),
        ["acme/tool", "composer-keyd/composer-plugin"]
    );
    assert!(home.join("vendor/acme/tool/composer.json").is_file());
    assert!(home
        .join("vendor/composer-keyd/composer-plugin/src/Plugin.php")
        .is_file());
    let status = shim(&t, "status");
    assert!(status.status.success(), "{}", text(&status));
    assert!(
        text(&status).contains("(same as this binary)"),
        "{}",
        text(&status)
    );
    assert!(
        text(&status).contains("allowed:       yes"),
        "{}",
        text(&status)
    );

    // Idempotent: the second install changes nothing and runs no Composer.
    let before = std::fs::read(home.join("composer.json")).unwrap();
    let lock_before = std::fs::read(home.join("composer.lock")).unwrap();
    let again = install_plugin(&t);
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("nothing changed"),
        "{}",
        text(&again)
    );
    assert_eq!(std::fs::read(home.join("composer.json")).unwrap(), before);
    assert_eq!(
        std::fs::read(home.join("composer.lock")).unwrap(),
        lock_before
    );

    // Composer loads the plugin: with no daemon it says so at -v, and only then.
    let out = t
        .command("composer")
        .args(["global", "show", "-v", "--no-ansi"])
        .output()
        .unwrap();
    assert!(
        text(&out).contains("no composer-keyd daemon"),
        "{}",
        text(&out)
    );

    let out = shim(&t, "uninstall");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(read_json(&home.join("composer.json")), original);
    assert_eq!(locked_names(&home), ["acme/tool"]);
    assert!(home.join("vendor/acme/tool/composer.json").is_file());
    assert!(!home.join("vendor/composer-keyd").exists());
    assert_eq!(
        std::fs::read_to_string(home.join("notes.txt")).unwrap(),
        "mine\n"
    );
    let status = shim(&t, "status");
    assert_eq!(status.status.code(), Some(1));
    assert!(
        text(&status).contains("installed:     no"),
        "{}",
        text(&status)
    );
}

#[test]
fn install_into_an_empty_home_and_back() {
    require_tools();
    let mut t = support::TestEnv::bare();
    isolate_composer(&mut t);
    let home = composer_home(&t);
    std::fs::remove_file(home.join("composer.json")).unwrap();
    // Packagist stays off through the global config.json, so no traffic leaves loopback.
    let config = r#"{"repositories": {"packagist.org": false}}"#;
    std::fs::write(home.join("config.json"), config).unwrap();

    install_plugin(&t);
    assert!(home
        .join("vendor/composer-keyd/composer-plugin/composer.json")
        .is_file());
    let out = shim(&t, "uninstall");
    assert!(out.status.success(), "{}", text(&out));
    // What install created is gone; Composer's own .htaccess guard may stay.
    let left: Vec<_> = std::fs::read_dir(&home)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".htaccess")
        .collect();
    assert_eq!(left, ["config.json"]);
    assert_eq!(
        std::fs::read_to_string(home.join("config.json")).unwrap(),
        config
    );
    let data = Path::new(&t.env["XDG_DATA_HOME"]).join("composer-keyd");
    assert!(!data.join("composer-plugin").exists());
}
