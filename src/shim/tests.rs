use super::*;

#[test]
fn embedded_plugin_matches_this_binary() {
    assert_eq!(
        plugin_version(),
        env!("CARGO_PKG_VERSION"),
        "bump composer-plugin/composer.json"
    );
    let plugin = FILES
        .iter()
        .find(|(n, _)| *n == "src/Plugin.php")
        .unwrap()
        .1;
    let line = format!("const VERSION = '{}';", env!("CARGO_PKG_VERSION"));
    assert!(
        plugin.contains(&line),
        "bump Plugin::VERSION to {}",
        env!("CARGO_PKG_VERSION")
    );
    let doc: Value = serde_json::from_str(FILES[0].1).unwrap();
    assert_eq!(doc["name"], PACKAGE);
    assert_eq!(doc["type"], "composer-plugin");
    assert_eq!(doc["require"]["composer-plugin-api"], "^2.0");
    assert_eq!(
        doc["require"].as_object().unwrap().len(),
        2,
        "php and composer-plugin-api only"
    );
}

#[test]
fn rendered_manifest_carries_the_build() {
    let files = rendered_files();
    let doc: Value = serde_json::from_slice(&files[0].1).unwrap();
    assert_eq!(doc["extra"][BUILD_KEY], build_id().as_str());
    assert_eq!(
        doc["extra"][BIN_KEY],
        std::env::current_exe().unwrap().to_str().unwrap()
    );
    assert_eq!(doc["extra"]["class"], "ComposerKeyd\\Plugin");
    assert_eq!(build_id(), build_id());
    assert_eq!(build_id().len(), 16);
}

#[test]
fn files_are_written_once_and_stale_ones_removed() {
    let t = tempfile::tempdir().unwrap();
    let shim = Shim::new(
        t.path().join("home"),
        &t.path().join("data"),
        "composer".into(),
    );
    assert!(shim.write_files().unwrap());
    assert!(!shim.write_files().unwrap(), "second write changes nothing");
    let stale = t.path().join("data/composer-plugin/src/Old.php");
    std::fs::write(&stale, "<?php").unwrap();
    assert!(shim.write_files().unwrap());
    assert!(!stale.exists());
    for (name, text) in FILES.iter().skip(1) {
        assert_eq!(
            std::fs::read_to_string(t.path().join("data/composer-plugin").join(name)).unwrap(),
            *text
        );
    }
}

#[test]
fn status_reads_manifest_and_installed_json() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    let shim = Shim::new(home.clone(), &t.path().join("data"), "composer".into());
    let s = shim.status().unwrap();
    assert!(!s.required && !s.repository && s.allowed.is_none() && s.installed.is_none());
    let mut doc = serde_json::json!({"config": {"vendor-dir": "lib"}});
    manifest::add(&mut doc, PACKAGE, shim.dir_str().unwrap()).unwrap();
    shim.write_manifest(&doc).unwrap();
    std::fs::create_dir_all(home.join("lib/composer")).unwrap();
    let installed = serde_json::json!({"packages": [{"name": PACKAGE, "version": plugin_version(), "extra": {BUILD_KEY: build_id()}}]});
    std::fs::write(
        home.join("lib/composer/installed.json"),
        installed.to_string(),
    )
    .unwrap();
    let s = shim.status().unwrap();
    assert!(s.required && s.repository && s.allowed == Some(true));
    assert!(s.is_current());
}

#[test]
fn a_broken_manifest_is_reported_not_overwritten() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("composer.json"), "{ nope").unwrap();
    let shim = Shim::new(home.clone(), &t.path().join("data"), "composer".into());
    assert!(matches!(shim.install(), Err(ShimError::Json { .. })));
    assert_eq!(
        std::fs::read_to_string(home.join("composer.json")).unwrap(),
        "{ nope"
    );
}
