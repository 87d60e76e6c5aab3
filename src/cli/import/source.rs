//! Which auth.json files `import` may read and scrub: symlinks, directories other users can
//! write, the scope a file's entries get, and temp files that a killed import left beside them.

use composer_keyd::atomic::{self, Untrusted};
use composer_keyd::authjson::{self, AuthDoc};
use composer_keyd::composer_home::Project;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

/// An auth.json file (or COMPOSER_AUTH) entries are imported from, and the scope they get
/// (a team source is something else: `team::sources`).
pub struct Input {
    /// As given or found; `None` for COMPOSER_AUTH.
    pub path: Option<PathBuf>,
    /// The real file when `path` is a symlink: what is read and scrubbed.
    pub target: Option<PathBuf>,
    pub scope: Option<String>,
    pub doc: AuthDoc,
}

impl Input {
    /// The file as the user knows it, with the real one when a symlink was followed.
    pub fn name(&self) -> String {
        match (&self.path, &self.target) {
            (None, _) => "$COMPOSER_AUTH".to_owned(),
            (Some(p), None) => p.display().to_string(),
            (Some(p), Some(t)) => format!("{} -> {}", p.display(), t.display()),
        }
    }

    /// The file to scrub.
    pub fn file(&self) -> Option<&Path> {
        self.target.as_deref().or(self.path.as_deref())
    }
}

/// What the user allowed on the command line.
pub struct Allow {
    pub shared_dir: bool,
    pub dry_run: bool,
}

/// Reads the auth.json at `path` when it is safe to, removing our leftover temp files beside
/// it. `Ok(None)`: no such file. `Err`: one line saying why it is not imported.
pub fn open(
    path: &Path,
    home: &Path,
    project: Option<&Project>,
    allow: &Allow,
) -> Result<Option<Input>, String> {
    let (Ok(dir), Some(name)) = (atomic::dir_of(path), path.file_name()) else {
        return Ok(None);
    };
    let at = dir.join(name);
    clean_leftovers(&dir, name, allow.dry_run);
    let meta = match std::fs::symlink_metadata(&at) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let here = atomic::check_target(&dir, &at);
    let target = if meta.file_type().is_symlink() {
        let target = std::fs::canonicalize(&at).map_err(|e| {
            format!(
                "{} is a symlink that cannot be followed: {e}",
                path.display()
            )
        })?;
        if let Err(u) = &here {
            // Whoever can write the link's directory picks the file it names.
            let q = format!(
                "{} is a symlink to {} in a place other users control: {}. Follow it?",
                path.display(),
                target.display(),
                u.reason
            );
            if !ask(&q) {
                return Err(format!(
                    "not following {} -> {}: {}; import {} itself if it is yours",
                    path.display(),
                    target.display(),
                    u.reason,
                    target.display()
                ));
            }
        }
        let tdir = atomic::dir_of(&target).map_err(|e| format!("{}: {e}", target.display()))?;
        if let Some(tname) = target.file_name() {
            clean_leftovers(&tdir, tname, allow.dry_run);
        }
        if !allow.shared_dir {
            atomic::check_target(&tdir, &target).map_err(refusal)?;
        }
        Some(target)
    } else {
        if !allow.shared_dir {
            here.map_err(refusal)?;
        }
        None
    };
    let scope = scope_of(&at, home, project);
    if let (Some(t), None) = (&target, &scope) {
        if !is_home(&dir, home) {
            return Err(format!(
                "{} is a symlink to {}, outside COMPOSER_HOME and any project, so its entries would apply to all projects; import {} itself for that, or link it from the project it belongs to",
                path.display(),
                t.display(),
                t.display()
            ));
        }
    }
    let file = target.as_deref().unwrap_or(&at);
    match authjson::read_file(file) {
        Ok(Some(f)) => Ok(Some(Input {
            path: Some(path.to_path_buf()),
            target,
            scope,
            doc: f.doc,
        })),
        Ok(None) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// The one line for a file import will not change, with the way to do it anyway.
fn refusal(u: Untrusted) -> String {
    format!("{u}; or pass --allow-shared-dir to import it anyway")
}

fn is_home(dir: &Path, home: &Path) -> bool {
    std::fs::canonicalize(home).is_ok_and(|h| h == dir)
}

/// The project a file's entries are bound to, from where the file (or the symlink to it) is,
/// never from where a symlink points: none for COMPOSER_HOME's auth.json; the project root for
/// an auth.json beside a composer.json or in `var/composer_home`.
fn scope_of(at: &Path, home: &Path, project: Option<&Project>) -> Option<String> {
    let dir = at.parent()?;
    if is_home(dir, home) {
        return None;
    }
    let root = if dir.ends_with("var/composer_home") {
        dir.parent()?.parent()?
    } else {
        dir
    };
    let is_project =
        project.is_some_and(|p| p.root == root) || root.join("composer.json").is_file();
    is_project.then(|| root.to_string_lossy().into_owned())
}

/// Removes (or, in a dry run, lists) the temp files a killed write of `name` left in `dir`:
/// they may hold the whole file in plaintext.
fn clean_leftovers(dir: &Path, name: &std::ffi::OsStr, dry_run: bool) {
    let Some(name) = name.to_str() else { return };
    if dry_run {
        for p in atomic::find_leftovers(dir, Some(name)) {
            println!(
                "Would remove {}, a temp file left by an interrupted write.",
                p.display()
            );
        }
        return;
    }
    for p in atomic::remove_leftovers(dir, name) {
        println!(
            "Removed {}, a temp file left by an interrupted write (it may have held secrets).",
            p.display()
        );
    }
}

/// Asks a yes/no question on a terminal; anything but yes, or no terminal, is no.
fn ask(question: &str) -> bool {
    if !std::io::stdin().is_terminal() {
        return false;
    }
    eprint!("composer-keyd: {question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim(), "y" | "Y" | "yes" | "Yes")
}
