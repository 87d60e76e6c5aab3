//! What `composer-keyd ssh` says to the remote side: the POSIX sh scripts that make the forwarded socket's 0700 directory where the plugin looks by default, remove the socket after, and install the plugin into the remote COMPOSER_HOME; and the `~/.ssh/config` form of a forward.
//!
//! The remote needs a POSIX `sh`, PHP and Composer, never composer-keyd. Each script is
//! run as `sh -c '...'`, so the remote login shell (fish, csh) does not matter.

use std::path::Path;

/// The line the directory script prints before the directory, so the login banner or a
/// noisy shell profile cannot be taken for it.
pub const DIR_MARK: &str = "composer-keyd-remote-dir:";

/// Quotes `s` for a POSIX shell as one word.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A remote command line (ssh joins its words with spaces for the remote shell): `sh -c
/// SCRIPT`, quoted as one word.
pub fn sh_c(script: &str) -> String {
    format!("sh -c {}", sh_quote(script))
}

/// Makes the socket's directory where the remote plugin looks with no configuration
/// (`$XDG_RUNTIME_DIR/composer-keyd` when the runtime dir is the user's, else
/// `${TMPDIR:-/tmp}/composer-keyd-UID`), 0700 and the user's own, never through a link;
/// removes a socket left at `agent.sock` (sshd leaves it after a session); prints
/// [`DIR_MARK`] and the directory. The plugin's `Client::defaultSocket` picks the runtime
/// dir by the same rule, so both name the same path.
pub fn dir_script() -> String {
    format!(
        r#"set -u
if [ -n "${{XDG_RUNTIME_DIR:-}}" ] && [ -d "$XDG_RUNTIME_DIR" ] && [ -O "$XDG_RUNTIME_DIR" ]; then
  d="$XDG_RUNTIME_DIR/composer-keyd"
else
  d="${{TMPDIR:-/tmp}}"; d="${{d%/}}/composer-keyd-$(id -u)"
fi
umask 077
if [ -L "$d" ]; then echo "composer-keyd: $d is a symbolic link; remove it" >&2; exit 3; fi
[ -d "$d" ] || mkdir "$d" || exit 3
if [ -L "$d" ] || [ ! -O "$d" ]; then echo "composer-keyd: $d is not yours; remove it" >&2; exit 3; fi
chmod 700 "$d" || exit 3
if [ -e "$d/agent.sock" ] && [ ! -S "$d/agent.sock" ]; then echo "composer-keyd: $d/agent.sock is not a socket; remove it" >&2; exit 3; fi
rm -f "$d/agent.sock"
printf '%s%s\n' '{DIR_MARK}' "$d"
"#
    )
}

/// The directory from [`dir_script`]'s output, if it printed one.
pub fn parse_dir(output: &str) -> Option<&str> {
    output
        .lines()
        .filter_map(|l| l.strip_prefix(DIR_MARK))
        .next_back()
        .filter(|d| d.starts_with('/') && !d.contains('\0'))
}

/// Removes the forwarded socket after the session (sshd leaves the file behind); only a
/// socket, never what another file became.
pub fn cleanup_script(socket: &str) -> String {
    format!(
        "s={}; if [ -S \"$s\" ] && [ ! -L \"$s\" ]; then rm -f \"$s\"; fi",
        sh_quote(socket)
    )
}

/// Copies the plugin's files into `$COMPOSER_HOME/composer-keyd-plugin` (read from the
/// remote Composer: `composer config --global home`), points the global composer.json at
/// that copy as a path repository, allows the plugin and requires it. The files travel in
/// the script (heredocs with a delimiter none of them contains).
pub fn install_script(files: &[(&str, Vec<u8>)]) -> Result<String, String> {
    let mark = "COMPOSER_KEYD_PLUGIN_FILE_END";
    let mut s = String::from(
        r#"set -eu
command -v composer >/dev/null 2>&1 || { echo "composer-keyd: Composer is not installed on this machine" >&2; exit 4; }
home=$(composer config --global home --no-interaction 2>/dev/null | tail -n 1)
[ -n "$home" ] || { echo "composer-keyd: Composer did not say where its COMPOSER_HOME is" >&2; exit 4; }
mkdir -p "$home"
dir="$home/composer-keyd-plugin"
umask 022
mkdir -p "$dir/src"
"#,
    );
    for (name, bytes) in files {
        let text = std::str::from_utf8(bytes).map_err(|_| format!("{name} is not UTF-8"))?;
        if text.lines().any(|l| l == mark) || !is_plain_path(name) {
            return Err(format!("{name} cannot be sent in a heredoc"));
        }
        s.push_str(&format!("cat > \"$dir/{name}\" <<'{mark}'\n{text}"));
        if !text.ends_with('\n') {
            s.push('\n');
        }
        s.push_str(mark);
        s.push('\n');
    }
    let pkg = crate::shim::PACKAGE;
    s.push_str(&format!(
        r#"export COMPOSER_HOME="$home"
composer global config --no-interaction repositories.composer-keyd path "$dir"
composer global config --no-interaction allow-plugins.{pkg} true
composer global require --no-interaction '{pkg}:*'
echo "composer-keyd: the plugin is installed in $home"
"#
    ));
    Ok(s)
}

fn is_plain_path(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '-' | '_'))
        && !name.split('/').any(|p| p.is_empty() || p == "..")
}

/// The plugin's files as the remote gets them: without the local binary's path, which means
/// nothing there (the plugin then stops git with one line instead of running a helper).
pub fn remote_plugin_files() -> Vec<(&'static str, Vec<u8>)> {
    crate::shim::rendered_files()
        .into_iter()
        .map(|(name, bytes)| {
            if name != "composer.json" {
                return (name, bytes);
            }
            let mut doc: serde_json::Value =
                serde_json::from_slice(&bytes).expect("rendered composer.json is JSON");
            if let Some(extra) = doc.get_mut("extra").and_then(|e| e.as_object_mut()) {
                extra.remove(crate::shim::BIN_KEY);
            }
            (name, crate::shim::manifest::to_pretty(&doc))
        })
        .collect()
}

/// The `~/.ssh/config` form: a `Host` block whose `RemoteForward` puts `door` at `remote`
/// (the remote default path, as `composer-keyd ssh` found and made it). `Host` matches the
/// host name alone, so a `user@` prefix is dropped.
///
/// No `StreamLocalBindUnlink` in it: for `RemoteForward` only the server's sshd_config
/// decides whether a socket left by an earlier session is replaced (sshd's default is no),
/// and ssh's own setting is for local forwards. The comment says so, since plain ssh has
/// nothing that removes the socket first as `composer-keyd ssh` does.
pub fn config_block(host: &str, remote: &str, door: &Path) -> String {
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    format!(
        "# composer-keyd: forward door for {host} (make the door first: `composer-keyd forward add ...`)\n\
         # sshd keeps the remote socket after each session; unless the server's sshd_config has\n\
         # `StreamLocalBindUnlink yes`, the next session fails with \"remote port forwarding failed\"\n\
         # until it is removed (`rm {remote}` there, or one `composer-keyd ssh` session).\n\
         Host {host}\n    RemoteForward {remote} {}\n    ExitOnForwardFailure yes\n",
        door.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn sh(script: &str, env: &[(&str, &str)]) -> std::process::Output {
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .envs(env.iter().copied())
            .output()
            .unwrap()
    }

    #[test]
    fn quoting_survives_the_shell() {
        for s in ["plain", "it's", "a b", "$(id)", "'\"\\"] {
            let out = sh(&format!("printf %s {}", sh_quote(s)), &[]);
            assert_eq!(String::from_utf8_lossy(&out.stdout), s);
        }
    }

    #[test]
    fn dir_script_makes_a_private_dir_and_clears_a_stale_socket() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let tmp = t.path().to_str().unwrap();
        let out = sh(&dir_script(), &[("TMPDIR", tmp)]);
        let text = String::from_utf8_lossy(&out.stdout);
        let dir = parse_dir(&text).expect("a dir");
        let uid = crate::paths::euid();
        assert_eq!(dir, format!("{tmp}/composer-keyd-{uid}"));
        let mode = std::fs::metadata(dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let sock = format!("{dir}/agent.sock");
        let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        assert!(sh(&dir_script(), &[("TMPDIR", tmp)]).status.success());
        assert!(!Path::new(&sock).exists(), "a stale socket is removed");
        // A runtime dir of ours wins.
        let rt = t.path().join("rt");
        std::fs::create_dir(&rt).unwrap();
        let out = sh(&dir_script(), &[("XDG_RUNTIME_DIR", rt.to_str().unwrap())]);
        let want = format!("{}/composer-keyd", rt.display());
        assert_eq!(
            parse_dir(&String::from_utf8_lossy(&out.stdout)),
            Some(&*want)
        );
    }

    #[test]
    fn dir_script_refuses_a_link() {
        let t = tempfile::tempdir().unwrap();
        let tmp = t.path().to_str().unwrap();
        let uid = crate::paths::euid();
        std::os::unix::fs::symlink("/", t.path().join(format!("composer-keyd-{uid}"))).unwrap();
        let out = sh(&dir_script(), &[("TMPDIR", tmp)]);
        assert!(!out.status.success());
        assert_eq!(parse_dir(&String::from_utf8_lossy(&out.stdout)), None);
    }

    #[test]
    fn cleanup_removes_only_a_socket() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("agent.sock");
        std::fs::write(&file, "not a socket").unwrap();
        sh(&cleanup_script(file.to_str().unwrap()), &[]);
        assert!(file.exists());
        std::fs::remove_file(&file).unwrap();
        let _l = std::os::unix::net::UnixListener::bind(&file).unwrap();
        sh(&cleanup_script(file.to_str().unwrap()), &[]);
        assert!(!file.exists());
    }

    #[test]
    fn config_block_names_the_host_alone() {
        let b = config_block(
            "u@build.example",
            "/tmp/composer-keyd-1000/agent.sock",
            Path::new("/run/d/forward-x.sock"),
        );
        assert!(b.contains("\nHost build.example\n"), "{b}");
        assert!(
            b.contains("RemoteForward /tmp/composer-keyd-1000/agent.sock /run/d/forward-x.sock\n"),
            "{b}"
        );
        assert!(
            b.contains("sshd_config has\n# `StreamLocalBindUnlink yes`")
                && b.contains("`rm /tmp/composer-keyd-1000/agent.sock` there"),
            "{b}"
        );
    }

    #[test]
    fn install_script_carries_every_file_and_no_local_binary() {
        let files = remote_plugin_files();
        let s = install_script(&files).unwrap();
        for (name, _) in &files {
            assert!(s.contains(&format!("\"$dir/{name}\"")), "{name}");
        }
        let manifest = &files.iter().find(|(n, _)| *n == "composer.json").unwrap().1;
        let doc: serde_json::Value = serde_json::from_slice(manifest).unwrap();
        assert!(doc["extra"].get(crate::shim::BIN_KEY).is_none(), "{doc}");
        assert!(doc["extra"].get(crate::shim::BUILD_KEY).is_some(), "{doc}");
        assert!(install_script(&[("../x", b"a".to_vec())]).is_err());
        assert!(
            install_script(&[("a.php", b"x\nCOMPOSER_KEYD_PLUGIN_FILE_END\n".to_vec())]).is_err()
        );
    }
}
