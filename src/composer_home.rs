//! Where Composer keeps things: COMPOSER_HOME resolved as Composer resolves it, the current
//! project's root, Composer's `cafile` settings and the global plugin's install state.

use serde_json::Value;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The plugin's Composer package name.
pub const PLUGIN_PACKAGE: &str = "composer-keyd/composer-plugin";

/// Why Composer's home could not be found.
#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    /// Neither `COMPOSER_HOME` nor `HOME` gives a directory.
    #[error("no home directory: set HOME or COMPOSER_HOME")]
    NoHome,
}

/// COMPOSER_HOME as Composer's `Factory::getHomeDir` computes it on Unix: `$COMPOSER_HOME`;
/// else the first existing of `$XDG_CONFIG_HOME/composer` (only when XDG is in use: any
/// `XDG_*` variable is set or `/etc/xdg` exists) and `~/.composer`; else the first of them.
pub fn composer_home() -> Result<PathBuf, HomeError> {
    let xdg_in_use = std::env::vars_os().any(|(k, _)| k.to_string_lossy().starts_with("XDG_"))
        || Path::new("/etc/xdg").is_dir();
    resolve_home(
        std::env::var_os("COMPOSER_HOME"),
        std::env::var_os("HOME"),
        xdg_in_use,
        std::env::var_os("XDG_CONFIG_HOME"),
        &|p| p.is_dir(),
    )
}

/// The pure part of [`composer_home`], with its inputs spelled out.
pub fn resolve_home(
    composer_home: Option<OsString>,
    home: Option<OsString>,
    xdg_in_use: bool,
    xdg_config_home: Option<OsString>,
    is_dir: &dyn Fn(&Path) -> bool,
) -> Result<PathBuf, HomeError> {
    // PHP treats an empty variable as unset.
    let set = |v: Option<OsString>| v.filter(|v| !v.is_empty());
    if let Some(h) = set(composer_home) {
        return Ok(PathBuf::from(h));
    }
    let user = PathBuf::from(set(home).ok_or(HomeError::NoHome)?);
    let mut dirs = Vec::with_capacity(2);
    if xdg_in_use {
        let config = set(xdg_config_home).map_or_else(|| user.join(".config"), PathBuf::from);
        dirs.push(config.join("composer"));
    }
    dirs.push(user.join(".composer"));
    match dirs.iter().find(|d| is_dir(d)) {
        Some(d) => Ok(d.clone()),
        None => Ok(dirs.swap_remove(0)),
    }
}

/// A Composer project: the directory holding its composer.json.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Project {
    /// The project root, canonical.
    pub root: PathBuf,
    /// Its composer.json (or the file `$COMPOSER` names).
    pub composer_json: PathBuf,
}

impl Project {
    /// The auth.json Composer reads beside the project's composer.json.
    pub fn auth_json(&self) -> PathBuf {
        self.composer_json.with_file_name("auth.json")
    }

    /// The project-local Composer home Magento's web setup uses.
    pub fn magento_auth_json(&self) -> PathBuf {
        self.root.join("var/composer_home/auth.json")
    }
}

/// The project containing `cwd`: the nearest directory upward holding composer.json (or the
/// file named by `$COMPOSER`; a `$COMPOSER` with a slash is a path from `cwd`, as in Composer).
pub fn find_project(cwd: &Path) -> Option<Project> {
    let name = std::env::var("COMPOSER")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "composer.json".to_owned());
    find_project_named(cwd, &name)
}

/// [`find_project`] with the composer.json name given.
pub fn find_project_named(cwd: &Path, name: &str) -> Option<Project> {
    let found = if name.contains('/') {
        Some(cwd.join(name)).filter(|p| p.is_file())
    } else {
        cwd.ancestors().map(|d| d.join(name)).find(|p| p.is_file())
    }?;
    let composer_json = std::fs::canonicalize(&found).ok()?;
    let root = composer_json.parent()?.to_path_buf();
    Some(Project {
        root,
        composer_json,
    })
}

/// Reads a JSON file holding an object; `None` when it is missing or not a JSON object.
pub fn read_json_object(path: &Path) -> Option<serde_json::Map<String, Value>> {
    let bytes = std::fs::read(path).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// The CA files and directories Composer would add for TLS: `$COMPOSER_CAFILE`, then
/// `cafile`/`capath` from the project's composer.json and from the global config.json.
pub fn ca_locations(home: &Path, project: Option<&Project>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(f) = std::env::var_os("COMPOSER_CAFILE").filter(|v| !v.is_empty()) {
        out.push(PathBuf::from(f));
    }
    let sources = project
        .map(|p| p.composer_json.clone())
        .into_iter()
        .chain([home.join("config.json")]);
    for file in sources {
        let Some(doc) = read_json_object(&file) else {
            continue;
        };
        let base = file.parent().unwrap_or(Path::new("/"));
        for key in ["cafile", "capath"] {
            if let Some(v) = doc
                .get("config")
                .and_then(|c| c.get(key))
                .and_then(Value::as_str)
            {
                out.push(expand(v, home, base));
            }
        }
    }
    out
}

/// Expands `{$home}` and a leading `~/` the way Composer's Config does, and makes it absolute.
fn expand(value: &str, home: &Path, base: &Path) -> PathBuf {
    let v = value.replace("{$home}", &home.to_string_lossy());
    let p = match (v.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(h)) => Path::new(&h).join(rest),
        _ => PathBuf::from(v),
    };
    if p.is_absolute() {
        p
    } else {
        base.join(p)
    }
}

/// The Composer home Magento's in-process Composer runs use (`bin/magento sampledata:deploy`,
/// Magento's `ComposerFactory` and `MagentoComposerApplication`): they `putenv` it, so it
/// holds unless the shell exported `COMPOSER_HOME` (Composer reads `$_SERVER` first).
pub const MAGENTO_HOME: &str = "var/composer_home";

/// A Magento 2 root: `bin/magento` beside `app/etc/`.
pub fn is_magento_root(dir: &Path) -> bool {
    dir.join("bin/magento").is_file() && dir.join("app/etc").is_dir()
}

/// The Magento root whose [`MAGENTO_HOME`] `home` is, if it is one.
pub fn magento_root_of_home(home: &Path) -> Option<PathBuf> {
    let root = home.parent()?.parent()?;
    (home.ends_with(MAGENTO_HOME) && is_magento_root(root)).then(|| root.to_path_buf())
}

/// Why `dir` is not a Composer home to install a global plugin into: it is a project (a
/// Magento root, or its composer.json is a project's manifest). Magento itself writes only
/// `auth.json` and `packages.json` into its [`MAGENTO_HOME`] (`SampleDataDeployCommand`,
/// `PackagesAuth`), never a composer.json, so one there is a Composer home's.
pub fn not_a_home(dir: &Path) -> Option<String> {
    if is_magento_root(dir) {
        return Some(format!(
            "{} is a Magento root: its composer.json is the project's. The home Magento's own Composer runs use is {}",
            dir.display(),
            dir.join(MAGENTO_HOME).display()
        ));
    }
    let doc = read_json_object(&dir.join("composer.json"))?;
    let project = doc.get("type").and_then(Value::as_str) == Some("project");
    let magento = doc.get("require").and_then(Value::as_object).and_then(|r| {
        r.keys()
            .find(|k| k.starts_with("magento/product-") || k.as_str() == "magento/magento2-base")
    });
    match (project, magento) {
        (_, Some(m)) => Some(format!(
            "{}/composer.json is a Magento project's manifest (it requires {m}), not a Composer home's",
            dir.display()
        )),
        (true, None) => Some(format!(
            "{}/composer.json is a project's manifest (\"type\": \"project\"), not a Composer home's",
            dir.display()
        )),
        (false, None) => None,
    }
}

/// How far the Composer plugin is set up in the global Composer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginState {
    /// `$COMPOSER_HOME/composer.json` requires the plugin.
    pub required: bool,
    /// `config.allow-plugins` lets it run.
    pub allowed: bool,
    /// `vendor/composer-keyd/composer-plugin` exists.
    pub installed: bool,
}

/// Reads the plugin's state from the global Composer's files (nothing is run).
pub fn plugin_state(home: &Path) -> PluginState {
    let doc = read_json_object(&home.join("composer.json")).unwrap_or_default();
    let required = doc
        .get("require")
        .and_then(Value::as_object)
        .is_some_and(|r| r.contains_key(PLUGIN_PACKAGE));
    let allowed = match doc.get("config").and_then(|c| c.get("allow-plugins")) {
        Some(Value::Bool(b)) => *b,
        Some(Value::Object(m)) => m
            .iter()
            .filter(|(pattern, _)| pattern_matches(pattern, PLUGIN_PACKAGE))
            // Composer uses the first pattern that matches.
            .map(|(_, v)| v.as_bool() == Some(true))
            .next()
            .unwrap_or(false),
        _ => false,
    };
    let vendor = doc
        .get("config")
        .and_then(|c| c.get("vendor-dir"))
        .and_then(Value::as_str)
        .map_or_else(|| home.join("vendor"), |v| expand(v, home, home));
    PluginState {
        required,
        allowed,
        installed: vendor.join(PLUGIN_PACKAGE).is_dir(),
    }
}

/// Composer's allow-plugins patterns: `*` matches any run of characters.
fn pattern_matches(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern.eq_ignore_ascii_case(name);
    }
    let name = name.to_ascii_lowercase();
    let mut rest = name.as_str();
    for (i, part) in parts.iter().enumerate() {
        let part = part.to_ascii_lowercase();
        if i == 0 {
            match rest.strip_prefix(part.as_str()) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part.as_str());
        } else {
            match rest.find(part.as_str()) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> Option<OsString> {
        Some(OsString::from(s))
    }

    #[test]
    fn home_follows_composer() {
        let none = |_: &Path| false;
        assert_eq!(
            resolve_home(os("/ch"), os("/h"), true, None, &none).unwrap(),
            PathBuf::from("/ch")
        );
        // XDG in use, nothing exists: the XDG dir.
        assert_eq!(
            resolve_home(os(""), os("/h"), true, None, &none).unwrap(),
            PathBuf::from("/h/.config/composer")
        );
        assert_eq!(
            resolve_home(None, os("/h"), true, os("/x"), &none).unwrap(),
            PathBuf::from("/x/composer")
        );
        // ~/.composer wins when only it exists.
        let dot = |p: &Path| p == Path::new("/h/.composer");
        assert_eq!(
            resolve_home(None, os("/h"), true, os("/x"), &dot).unwrap(),
            PathBuf::from("/h/.composer")
        );
        assert_eq!(
            resolve_home(None, os("/h"), false, os("/x"), &none).unwrap(),
            PathBuf::from("/h/.composer")
        );
        assert!(resolve_home(None, None, false, None, &none).is_err());
    }

    #[test]
    fn project_is_found_upward() {
        let t = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(t.path()).unwrap();
        std::fs::create_dir_all(root.join("app/code")).unwrap();
        std::fs::write(root.join("composer.json"), "{}").unwrap();
        let p = find_project_named(&root.join("app/code"), "composer.json").unwrap();
        assert_eq!(p.root, root);
        assert_eq!(p.auth_json(), root.join("auth.json"));
        assert_eq!(
            p.magento_auth_json(),
            root.join("var/composer_home/auth.json")
        );
        assert!(find_project_named(&root.join("app"), "other.json").is_none());
        std::fs::write(root.join("app/x.json"), "{}").unwrap();
        let p = find_project_named(&root, "app/x.json").unwrap();
        assert_eq!(p.root, root.join("app"));
    }

    #[test]
    fn allow_plugins_patterns() {
        assert!(pattern_matches("composer-keyd/*", PLUGIN_PACKAGE));
        assert!(pattern_matches("*", PLUGIN_PACKAGE));
        assert!(pattern_matches("*/composer-plugin", PLUGIN_PACKAGE));
        assert!(pattern_matches(PLUGIN_PACKAGE, PLUGIN_PACKAGE));
        assert!(!pattern_matches("magento/*", PLUGIN_PACKAGE));
        assert!(!pattern_matches("composer-keyd/plugin", PLUGIN_PACKAGE));
    }

    #[test]
    fn a_project_manifest_is_not_a_home() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        assert_eq!(not_a_home(d), None, "an empty directory is a home to be");
        let write = |doc: &str| std::fs::write(d.join("composer.json"), doc).unwrap();
        write(r#"{"require":{"composer-keyd/composer-plugin":"*"}}"#);
        assert_eq!(not_a_home(d), None, "a global home's manifest");
        for (doc, named) in [
            (
                r#"{"require":{"magento/product-enterprise-edition":"2.4.7"}}"#,
                "magento/product-enterprise-edition",
            ),
            (
                r#"{"type":"library","require":{"magento/magento2-base":"2.4.7"}}"#,
                "magento/magento2-base",
            ),
            (r#"{"type":"project"}"#, "\"type\": \"project\""),
        ] {
            write(doc);
            let why = not_a_home(d).unwrap_or_else(|| panic!("{doc} taken for a home"));
            assert!(why.contains(named), "{why}");
        }
        std::fs::create_dir_all(d.join("bin")).unwrap();
        std::fs::create_dir_all(d.join("app/etc")).unwrap();
        std::fs::write(d.join("bin/magento"), "").unwrap();
        write("{}");
        assert!(not_a_home(d).unwrap().contains("Magento root"));
    }

    #[test]
    fn plugin_state_reads_files() {
        let t = tempfile::tempdir().unwrap();
        let h = t.path();
        assert_eq!(
            plugin_state(h),
            PluginState {
                required: false,
                allowed: false,
                installed: false
            }
        );
        std::fs::write(
            h.join("composer.json"),
            r#"{"require":{"composer-keyd/composer-plugin":"*"},"config":{"allow-plugins":{"composer-keyd/*":true}}}"#,
        )
        .unwrap();
        std::fs::create_dir_all(h.join("vendor/composer-keyd/composer-plugin")).unwrap();
        assert_eq!(
            plugin_state(h),
            PluginState {
                required: true,
                allowed: true,
                installed: true
            }
        );
    }
}
