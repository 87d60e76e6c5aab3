//! Units a package installed (Debian's in /usr/lib/systemd/user): finding them, and telling
//! for each unit which copy systemd loads — the user's own, the administrator's or the package's.

use super::{SERVICE_UNIT, SOCKET_UNIT};
use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};

/// Where packages install user units, in systemd's order of precedence.
pub const PACKAGE_UNIT_DIRS: [&str; 2] = ["/usr/local/lib/systemd/user", "/usr/lib/systemd/user"];
/// Where an administrator puts user units for every user; it overrides the package's.
pub const ADMIN_UNIT_DIR: &str = "/etc/systemd/user";

/// Who put the unit file that systemd loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// `composer-keyd service install`, in `$XDG_CONFIG_HOME/systemd/user`.
    User,
    /// The administrator, in /etc/systemd/user.
    Admin,
    /// A package, in /usr/lib/systemd/user or /usr/local/lib/systemd/user.
    Package,
    /// Somewhere else systemd looks (a generator, a runtime directory).
    Other,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::User => "your copy, from `service install`",
            Origin::Admin => "administrator",
            Origin::Package => "package",
            Origin::Other => "other",
        })
    }
}

/// The package directory that holds both units, if a package installed them.
pub fn packaged_dir() -> Option<PathBuf> {
    let dirs = PACKAGE_UNIT_DIRS.map(Path::new);
    packaged_dir_in(&dirs)
}

fn packaged_dir_in(dirs: &[&Path]) -> Option<PathBuf> {
    dirs.iter()
        .find(|d| d.join(SOCKET_UNIT).is_file() && d.join(SERVICE_UNIT).is_file())
        .map(|d| d.to_path_buf())
}

/// Which file systemd would load for `unit`, judged from the files alone (for when no
/// manager runs to ask): the user's directory wins over /etc, which wins over the package's.
pub fn unit_source(user_dir: &Path, unit: &str) -> Option<(PathBuf, Origin)> {
    let package = PACKAGE_UNIT_DIRS.map(|d| (Path::new(d), Origin::Package));
    let order = [
        (user_dir, Origin::User),
        (Path::new(ADMIN_UNIT_DIR), Origin::Admin),
    ];
    unit_source_in(order.iter().chain(package.iter()), unit)
}

fn unit_source_in<'a>(
    mut dirs: impl Iterator<Item = &'a (&'a Path, Origin)>,
    unit: &str,
) -> Option<(PathBuf, Origin)> {
    dirs.find_map(|(dir, origin)| {
        let p = dir.join(unit);
        p.is_file().then_some((p, *origin))
    })
}

/// Classifies a path systemd reports (`FragmentPath`) by the directory it is in.
pub fn origin_of(path: &Path, user_dir: &Path) -> Origin {
    let dir = path.parent().unwrap_or(Path::new(""));
    if dir == user_dir {
        Origin::User
    } else if dir == Path::new(ADMIN_UNIT_DIR) {
        Origin::Admin
    } else if PACKAGE_UNIT_DIRS.iter().any(|d| dir == Path::new(d))
        || dir == Path::new("/lib/systemd/user")
    {
        Origin::Package
    } else {
        Origin::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(dir: &Path, unit: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(unit), "[Unit]\n").unwrap();
    }

    #[test]
    fn a_package_dir_counts_only_with_both_units() {
        let t = tempfile::tempdir().unwrap();
        let (local, usr) = (t.path().join("local"), t.path().join("usr"));
        assert_eq!(packaged_dir_in(&[&local, &usr]), None);
        put(&local, SOCKET_UNIT);
        put(&usr, SOCKET_UNIT);
        put(&usr, SERVICE_UNIT);
        assert_eq!(packaged_dir_in(&[&local, &usr]), Some(usr.clone()));
        put(&local, SERVICE_UNIT);
        assert_eq!(packaged_dir_in(&[&local, &usr]), Some(local));
    }

    #[test]
    fn the_users_copy_shadows_the_administrators_and_the_packages() {
        let t = tempfile::tempdir().unwrap();
        let (user, admin, pkg) = (t.path().join("u"), t.path().join("a"), t.path().join("p"));
        let order = [
            (user.as_path(), Origin::User),
            (admin.as_path(), Origin::Admin),
            (pkg.as_path(), Origin::Package),
        ];
        assert_eq!(unit_source_in(order.iter(), SOCKET_UNIT), None);
        put(&pkg, SOCKET_UNIT);
        assert_eq!(
            unit_source_in(order.iter(), SOCKET_UNIT),
            Some((pkg.join(SOCKET_UNIT), Origin::Package))
        );
        put(&admin, SOCKET_UNIT);
        assert_eq!(
            unit_source_in(order.iter(), SOCKET_UNIT).unwrap().1,
            Origin::Admin
        );
        put(&user, SOCKET_UNIT);
        assert_eq!(
            unit_source_in(order.iter(), SOCKET_UNIT).unwrap().1,
            Origin::User
        );
    }

    #[test]
    fn fragment_paths_are_classified_by_directory() {
        let user = Path::new("/home/u/.config/systemd/user");
        let o = |p: &str| origin_of(Path::new(p), user);
        assert_eq!(
            o("/home/u/.config/systemd/user/composer-keyd.socket"),
            Origin::User
        );
        assert_eq!(
            o("/usr/lib/systemd/user/composer-keyd.socket"),
            Origin::Package
        );
        assert_eq!(o("/lib/systemd/user/composer-keyd.socket"), Origin::Package);
        assert_eq!(o("/etc/systemd/user/composer-keyd.socket"), Origin::Admin);
        assert_eq!(o("/run/user/1/systemd/generator/x.socket"), Origin::Other);
    }
}
