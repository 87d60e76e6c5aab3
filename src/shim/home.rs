//! Where Composer keeps its global files (COMPOSER_HOME), found the way Composer finds it.

use super::{Result, ShimError};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Composer's home as `Factory::getHomeDir` finds it on Unix: `$COMPOSER_HOME`, else
/// `$XDG_CONFIG_HOME/composer` (when the system uses XDG) or `~/.composer`, whichever
/// exists first, else the first of them.
pub fn resolve_home(
    var: impl Fn(&str) -> Option<OsString>,
    uses_xdg: bool,
    is_dir: impl Fn(&Path) -> bool,
) -> Result<PathBuf> {
    let set = |k: &str| var(k).filter(|v| !v.is_empty());
    if let Some(home) = set("COMPOSER_HOME") {
        return Ok(PathBuf::from(home));
    }
    let user = set("HOME").ok_or(ShimError::NoHome)?;
    let user = PathBuf::from(user.to_string_lossy().trim_end_matches('/'));
    let mut dirs = Vec::new();
    if uses_xdg {
        let xdg = set("XDG_CONFIG_HOME").map_or_else(|| user.join(".config"), PathBuf::from);
        dirs.push(xdg.join("composer"));
    }
    dirs.push(user.join(".composer"));
    Ok(dirs.iter().find(|d| is_dir(d)).unwrap_or(&dirs[0]).clone())
}

/// [`resolve_home`] for this process; Composer counts any `XDG_*` variable, or /etc/xdg, as XDG.
pub fn composer_home() -> Result<PathBuf> {
    let uses_xdg = std::env::vars_os().any(|(k, _)| k.to_string_lossy().starts_with("XDG_"))
        || Path::new("/etc/xdg").is_dir();
    resolve_home(|k| std::env::var_os(k), uses_xdg, Path::is_dir)
}
