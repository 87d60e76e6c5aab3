//! The Composer plugin embedded in the binary, and its global install: the copy in the
//! data dir, the wiring in COMPOSER_HOME's composer.json, and what is installed now.

pub mod manifest;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The plugin's Composer package name.
pub const PACKAGE: &str = crate::composer_home::PLUGIN_PACKAGE;

/// The plugin's files, relative to its directory; one binary installs its own plugin.
pub const FILES: [(&str, &str); 8] = [
    (
        "composer.json",
        include_str!("../composer-plugin/composer.json"),
    ),
    (
        "src/Client.php",
        include_str!("../composer-plugin/src/Client.php"),
    ),
    (
        "src/Credentials.php",
        include_str!("../composer-plugin/src/Credentials.php"),
    ),
    (
        "src/DaemonException.php",
        include_str!("../composer-plugin/src/DaemonException.php"),
    ),
    (
        "src/GitCredentials.php",
        include_str!("../composer-plugin/src/GitCredentials.php"),
    ),
    (
        "src/Plugin.php",
        include_str!("../composer-plugin/src/Plugin.php"),
    ),
    (
        "src/ProjectOrigins.php",
        include_str!("../composer-plugin/src/ProjectOrigins.php"),
    ),
    (
        "src/SocketTrust.php",
        include_str!("../composer-plugin/src/SocketTrust.php"),
    ),
];

/// The `extra` key of the plugin's composer.json that holds [`build_id`].
pub const BUILD_KEY: &str = "composer-keyd-build";

/// The `extra` key of the installed plugin's composer.json that names the binary that
/// installed it, for the plugin's git credential helper.
pub const BIN_KEY: &str = "composer-keyd-bin";

/// Why a shim operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    /// A file or directory of the shim could not be read, written or removed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// A JSON file Composer owns does not parse; it is left as it is.
    #[error("{path} is not valid JSON ({source}); fix it, then run the command again")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        source: serde_json::Error,
    },
    /// composer.json has a shape the edit cannot handle; it is left as it is.
    #[error("cannot edit {path}: {source}")]
    Manifest {
        /// The COMPOSER_HOME's composer.json.
        path: PathBuf,
        /// What is wrong with it.
        source: manifest::ManifestError,
    },
    /// The plugin directory's path is not UTF-8; holds it.
    #[error("{0} is not valid UTF-8, which a Composer repository URL must be")]
    NotUtf8(PathBuf),
    /// Composer could not be started.
    #[error("cannot run `{program}` ({source}); install Composer (Debian package `composer`) or pass --composer PATH")]
    Spawn {
        /// The Composer command as given (`--composer`, or `composer` on PATH).
        program: String,
        /// What the system said.
        source: io::Error,
    },
    /// Composer ran and failed; holds the command line (its output went to the terminal).
    #[error("`{0}` failed; see its output above")]
    Composer(String),
    #[error(
        "Composer finished but {0} does not list {PACKAGE} at this version; see its output above"
    )]
    /// Composer succeeded but installed.json lacks the plugin at this version; holds
    /// installed.json's path.
    NotInstalled(PathBuf),
    /// The data directory for the plugin's copy could not be worked out.
    #[error(transparent)]
    Paths(#[from] crate::paths::PathError),
}

type Result<T, E = ShimError> = std::result::Result<T, E>;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ShimError + '_ {
    move |source| ShimError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A stable digest of the embedded files (FNV-1a 64), so that a changed plugin
/// changes its composer.json and with it the path repository's dist reference.
pub fn build_id() -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (name, text) in FILES {
        for b in name.bytes().chain([0]).chain(text.bytes()).chain([0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// The plugin's version as its composer.json states it.
pub fn plugin_version() -> String {
    let doc: Value = serde_json::from_str(FILES[0].1)
        .expect("the embedded composer.json is valid JSON (tested)");
    doc["version"].as_str().unwrap_or_default().to_owned()
}

/// The files as written to disk: composer.json carries [`build_id`] in `extra`.
pub fn rendered_files() -> Vec<(&'static str, Vec<u8>)> {
    FILES
        .iter()
        .map(|(name, text)| {
            if *name != "composer.json" {
                return (*name, text.as_bytes().to_vec());
            }
            let mut doc: Value = serde_json::from_str(text)
                .expect("the embedded composer.json is valid JSON (tested)");
            doc["extra"][BUILD_KEY] = Value::String(build_id());
            // The plugin points git at this binary; Composer run from cron or an IDE may
            // not have its directory on PATH.
            if let Some(exe) = std::env::current_exe()
                .ok()
                .and_then(|p| p.to_str().map(str::to_owned))
            {
                doc["extra"][BIN_KEY] = Value::String(exe);
            }
            (*name, manifest::to_pretty(&doc))
        })
        .collect()
}

/// What install changed in one COMPOSER_HOME, so that uninstall reverses exactly that.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallRecord {
    /// composer.json did not exist before install.
    pub created_file: bool,
    /// composer.lock did not exist before install.
    pub created_lock: bool,
    /// The vendor dir did not exist before install.
    pub created_vendor: bool,
    /// Containers install created inside composer.json (see [`manifest::Edit::created`]).
    pub created: Vec<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    homes: BTreeMap<String, InstallRecord>,
}

/// The plugin as Composer installed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Installed {
    /// The version in vendor/composer/installed.json.
    pub version: String,
    /// The [`BUILD_KEY`] it was installed with; `None` for a plugin from before builds were
    /// stamped.
    pub build: Option<String>,
}

/// What `shim status` reports.
#[derive(Debug)]
pub struct Status {
    /// The COMPOSER_HOME looked at.
    pub home: PathBuf,
    /// Where the plugin's files are copied, for Composer's path repository.
    pub plugin_dir: PathBuf,
    /// Whether composer.json's `require` names the plugin.
    pub required: bool,
    /// Whether composer.json lists the path repository pointing at `plugin_dir`.
    pub repository: bool,
    /// `None` when composer.json says nothing about allow-plugins.
    pub allowed: Option<bool>,
    /// The plugin as Composer installed it; `None` when it is not installed.
    pub installed: Option<Installed>,
}

impl Status {
    /// Installed, allowed, and the same plugin this binary embeds.
    pub fn is_current(&self) -> bool {
        self.allowed == Some(true)
            && self.installed.as_ref().is_some_and(|i| {
                i.version == plugin_version() && i.build.as_deref() == Some(build_id().as_str())
            })
    }
}

/// What install or uninstall did.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The plugin's copy under `plugin_dir` was written or removed.
    pub files_changed: bool,
    /// composer.json was edited.
    pub manifest_changed: bool,
    /// Composer was run to install or remove the package.
    pub ran_composer: bool,
}

/// The plugin's install in one COMPOSER_HOME.
#[derive(Debug)]
pub struct Shim {
    home: PathBuf,
    plugin_dir: PathBuf,
    state_file: PathBuf,
    composer: OsString,
}

impl Shim {
    /// `data_dir` holds the plugin's copy and the install records; `composer` is the program to run.
    pub fn new(home: PathBuf, data_dir: &Path, composer: OsString) -> Shim {
        Shim {
            home,
            plugin_dir: data_dir.join(crate::paths::PLUGIN_DIR_NAME),
            state_file: data_dir.join("shim-state.json"),
            composer,
        }
    }

    /// The COMPOSER_HOME this shim edits.
    pub fn home(&self) -> &Path {
        &self.home
    }

    fn manifest_path(&self) -> PathBuf {
        self.home.join("composer.json")
    }

    fn dir_str(&self) -> Result<&str> {
        self.plugin_dir
            .to_str()
            .ok_or_else(|| ShimError::NotUtf8(self.plugin_dir.clone()))
    }

    fn read_manifest(&self) -> Result<Option<Value>> {
        let path = self.manifest_path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| ShimError::Json { path, source }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    fn write_manifest(&self, doc: &Value) -> Result<()> {
        let path = self.manifest_path();
        let mode = std::fs::metadata(&path).map_or(0o644, |m| m.permissions().mode() & 0o7777);
        std::fs::create_dir_all(&self.home).map_err(io_err(&self.home))?;
        crate::atomic::write(&path, &manifest::to_pretty(doc), mode).map_err(io_err(&path))
    }

    fn vendor_dir(&self, doc: Option<&Value>) -> PathBuf {
        let dir = doc
            .and_then(|d| d.pointer("/config/vendor-dir"))
            .and_then(Value::as_str)
            .unwrap_or("vendor");
        self.home.join(dir)
    }

    fn load_state(&self) -> Result<State> {
        match std::fs::read(&self.state_file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| ShimError::Json {
                path: self.state_file.clone(),
                source,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(io_err(&self.state_file)(e)),
        }
    }

    fn save_state(&self, state: &State) -> Result<()> {
        let dir = self.state_file.parent().unwrap_or(Path::new("."));
        crate::paths::create_private_dir(dir).map_err(io_err(dir))?;
        let bytes = serde_json::to_vec_pretty(state).expect("the state always serializes");
        crate::atomic::write(&self.state_file, &bytes, 0o600).map_err(io_err(&self.state_file))
    }

    /// Writes the embedded files where they differ; removes files a newer plugin no longer has.
    fn write_files(&self) -> Result<bool> {
        let mut changed = false;
        // The data dir also holds the index; it is created private, as the daemon creates it.
        if let Some(data) = self.plugin_dir.parent() {
            crate::paths::create_private_dir(data).map_err(io_err(data))?;
        }
        let files = rendered_files();
        for (name, bytes) in &files {
            let path = self.plugin_dir.join(name);
            if std::fs::read(&path).ok().as_deref() == Some(bytes.as_slice()) {
                continue;
            }
            let dir = path.parent().unwrap_or(&self.plugin_dir);
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
            crate::atomic::write(&path, bytes, 0o644).map_err(io_err(&path))?;
            changed = true;
        }
        let src = self.plugin_dir.join("src");
        for entry in std::fs::read_dir(&src).map_err(io_err(&src))? {
            let path = entry.map_err(io_err(&src))?.path();
            let known = files.iter().any(|(n, _)| self.plugin_dir.join(n) == path);
            if !known {
                std::fs::remove_file(&path).map_err(io_err(&path))?;
                changed = true;
            }
        }
        Ok(changed)
    }

    /// What Composer installed, from `vendor/composer/installed.json`.
    pub fn installed(&self) -> Result<Option<Installed>> {
        let doc = self.read_manifest()?;
        let path = self
            .vendor_dir(doc.as_ref())
            .join("composer/installed.json");
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let v: Value =
            serde_json::from_slice(&bytes).map_err(|source| ShimError::Json { path, source })?;
        // Composer 2 wraps the list in {"packages": [...]}; Composer 1 wrote the bare list.
        let list = v
            .get("packages")
            .unwrap_or(&v)
            .as_array()
            .cloned()
            .unwrap_or_default();
        Ok(list
            .iter()
            .find(|p| p["name"] == PACKAGE)
            .map(|p| Installed {
                version: p["version"].as_str().unwrap_or_default().to_owned(),
                build: p["extra"][BUILD_KEY].as_str().map(str::to_owned),
            }))
    }

    /// `composer global update` of the plugin alone; `removing` loads no plugin, since ours is
    /// no longer allowed at that point and Composer refuses to load a plugin it may not run.
    fn run_composer(&self, removing: bool) -> Result<()> {
        // Composer cannot update one package without a lock file; with none, nothing is installed yet.
        let mut args = vec!["global", "update", "--no-interaction"];
        if self.home.join("composer.lock").exists() {
            args.push(PACKAGE);
        }
        if removing {
            args.push("--no-plugins");
        }
        let shown = format!("{} {}", self.composer.to_string_lossy(), args.join(" "));
        let status = Command::new(&self.composer)
            .args(args)
            .env("COMPOSER_HOME", &self.home)
            .status()
            .map_err(|source| ShimError::Spawn {
                program: self.composer.to_string_lossy().into_owned(),
                source,
            })?;
        if status.success() {
            Ok(())
        } else {
            Err(ShimError::Composer(shown))
        }
    }

    /// Installs or updates the plugin; a second run with the same binary changes nothing.
    pub fn install(&self) -> Result<Outcome> {
        let files_changed = self.write_files()?;
        let found = self.read_manifest()?;
        let lock_existed = self.home.join("composer.lock").exists();
        let vendor_existed = self.vendor_dir(found.as_ref()).exists();
        let mut doc = found
            .clone()
            .unwrap_or_else(|| Value::Object(Default::default()));
        let edit = manifest::add(&mut doc, PACKAGE, self.dir_str()?).map_err(|source| {
            ShimError::Manifest {
                path: self.manifest_path(),
                source,
            }
        })?;
        let key = self.home.to_string_lossy().into_owned();
        let mut state = self.load_state()?;
        // Recorded before Composer runs, so that an interrupted install can still be undone.
        if edit.changed || !state.homes.contains_key(&key) {
            let record = state.homes.entry(key).or_insert_with(|| InstallRecord {
                created_file: found.is_none(),
                created_lock: !lock_existed,
                created_vendor: !vendor_existed,
                created: Vec::new(),
            });
            for c in edit.created {
                if !record.created.contains(&c) {
                    record.created.push(c);
                }
            }
            self.save_state(&state)?;
        }
        if edit.changed {
            self.write_manifest(&doc)?;
        }
        let want = Installed {
            version: plugin_version(),
            build: Some(build_id()),
        };
        let ran_composer = files_changed || edit.changed || self.installed()? != Some(want.clone());
        if ran_composer {
            self.run_composer(false)?;
            if self.installed()? != Some(want) {
                return Err(ShimError::NotInstalled(self.home.clone()));
            }
        }
        Ok(Outcome {
            files_changed,
            manifest_changed: edit.changed,
            ran_composer,
        })
    }

    /// Removes exactly what install added, and the plugin from Composer's vendor dir.
    pub fn uninstall(&self) -> Result<Outcome> {
        let mut state = self.load_state()?;
        let record = state
            .homes
            .remove(&*self.home.to_string_lossy())
            .unwrap_or_default();
        let mut doc = self.read_manifest()?;
        let mut manifest_changed = false;
        if let Some(doc) = doc.as_mut() {
            if manifest::remove(doc, PACKAGE, self.dir_str()?, &record.created) {
                self.write_manifest(doc)?;
                manifest_changed = true;
            }
        }
        let ran_composer = self.installed()?.is_some();
        if ran_composer {
            self.run_composer(true)?;
        }
        // What install created goes too, once it holds nothing of the user's.
        let lock = self.home.join("composer.lock");
        if record.created_lock && self.lock_is_empty(&lock)? {
            remove_if_exists(&lock, false)?;
            if record.created_vendor {
                remove_if_exists(&self.vendor_dir(doc.as_ref()), true)?;
            }
        }
        let empty = doc
            .as_ref()
            .is_some_and(|d| d.as_object().is_some_and(|o| o.is_empty()));
        if record.created_file && empty {
            remove_if_exists(&self.manifest_path(), false)?;
        }
        let files_changed = state.homes.is_empty() && self.plugin_dir.exists();
        if files_changed {
            remove_if_exists(&self.plugin_dir, true)?;
        }
        self.save_state(&state)?;
        Ok(Outcome {
            files_changed,
            manifest_changed,
            ran_composer,
        })
    }

    /// Whether a lock file locks no package at all (absent counts as empty).
    fn lock_is_empty(&self, lock: &Path) -> Result<bool> {
        let bytes = match std::fs::read(lock) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
            Err(e) => return Err(io_err(lock)(e)),
        };
        let v: Value = serde_json::from_slice(&bytes).map_err(|source| ShimError::Json {
            path: lock.to_path_buf(),
            source,
        })?;
        let none = |k: &str| v.get(k).and_then(Value::as_array).is_none_or(Vec::is_empty);
        Ok(none("packages") && none("packages-dev"))
    }

    /// Whether the plugin is wired in, allowed, installed, and which version.
    pub fn status(&self) -> Result<Status> {
        let doc = self.read_manifest()?.unwrap_or(Value::Null);
        let dir = self.dir_str()?;
        let repository = match doc.get("repositories") {
            Some(Value::Array(list)) => list.iter().any(|r| r["url"] == dir),
            Some(Value::Object(map)) => map.values().any(|r| r["url"] == dir),
            _ => false,
        };
        Ok(Status {
            home: self.home.clone(),
            plugin_dir: self.plugin_dir.clone(),
            required: doc
                .pointer("/require")
                .and_then(|r| r.get(PACKAGE))
                .is_some(),
            repository,
            allowed: manifest::allowed(&doc, PACKAGE),
            installed: self.installed()?,
        })
    }
}

fn remove_if_exists(path: &Path, dir: bool) -> Result<()> {
    let r = if dir {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match r {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(path)(e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
