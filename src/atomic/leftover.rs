//! The temp files a write leaves when it is killed before its rename: their name pattern,
//! and finding or removing them next to the files they belonged to.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// How every temp file of [`super::write()`] ends: `.NAME.<12 random>.keyd-tmp`.
pub const TEMP_SUFFIX: &str = ".keyd-tmp";

/// The file a temp file name belongs to, when `name` is one of ours: today's
/// `.NAME.<12 random>.keyd-tmp`, or the `.NAME.tmp.<pid>` of versions before it.
pub fn leftover_base(name: &str) -> Option<&str> {
    let inner = name.strip_prefix('.')?;
    if let Some(rest) = inner.strip_suffix(TEMP_SUFFIX) {
        let (base, random) = rest.rsplit_once('.')?;
        let ok = random.len() == 12 && random.chars().all(|c| c.is_ascii_alphanumeric());
        return (ok && !base.is_empty()).then_some(base);
    }
    let (base, pid) = inner.rsplit_once(".tmp.")?;
    let ok = !pid.is_empty() && pid.len() <= 10 && pid.chars().all(|c| c.is_ascii_digit());
    (ok && !base.is_empty()).then_some(base)
}

/// Regular files in `dir` named like a temp file of `base` (any base when `None`). Symlinks
/// and other types are never ours, so they are not listed.
pub fn find_leftovers(dir: &Path, base: Option<&str>) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = rd
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let Some(b) = name.to_str().and_then(leftover_base) else {
                return false;
            };
            base.is_none_or(|want| want == b) && e.file_type().is_ok_and(|t| t.is_file())
        })
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// Removes the leftovers of `base` in `dir` that the caller owns (another user's file with
/// a name like ours is not ours to delete), returning what was removed.
pub fn remove_leftovers(dir: &Path, base: &str) -> Vec<PathBuf> {
    let me = crate::paths::euid();
    find_leftovers(dir, Some(base))
        .into_iter()
        .filter(|p| {
            // lstat again just before the unlink: remove_file never follows a symlink, and
            // a name swapped in since the listing is checked once more.
            std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file() && m.uid() == me)
                && std::fs::remove_file(p).is_ok()
        })
        .collect()
}
