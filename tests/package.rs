//! What packages ship besides the binary, generated from the CLI: completion scripts that the
//! shells load, a man page per subcommand that man renders, and the packaged units. The whole
//! package in a throwaway Debian root is scripts/package-test (too slow for `cargo test`).

use crate::support;

use std::path::Path;
use std::process::{Command, Output};
use support::{require, BIN};

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("start the command");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn bash_loads_the_completion_script_and_completes_subcommands() {
    require("bash", "bash");
    let script = run(Command::new(BIN).args(["completions", "bash"])).stdout;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("composer-keyd.bash");
    std::fs::write(&file, script).unwrap();
    // Ask the completion function itself, as bash does on <TAB> after "composer-keyd ser".
    let probe = format!(
        "source '{}' && complete -p composer-keyd && \
         COMP_WORDS=(composer-keyd ser) COMP_CWORD=1 COMP_LINE='composer-keyd ser' COMP_POINT=17 && \
         _composer__keyd composer-keyd ser composer-keyd && printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        file.display()
    );
    let out = run(Command::new("bash").args(["--norc", "-c", &probe]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("-F _composer__keyd composer-keyd"), "{text}");
    let words: Vec<&str> = text.lines().skip(1).collect();
    assert!(words.contains(&"serve"), "{words:?}");
    assert!(words.contains(&"service"), "{words:?}");
    assert!(
        !words.contains(&"dist-files"),
        "a hidden command: {words:?}"
    );
}

#[test]
fn every_shell_gets_a_script_and_bad_shells_are_refused() {
    for (shell, marker) in [
        ("zsh", "#compdef composer-keyd"),
        ("fish", "complete -c composer-keyd"),
    ] {
        let out = run(Command::new(BIN).args(["completions", shell]));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(marker), "{shell}: {text}");
    }
    let out = Command::new(BIN)
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value 'tcsh'"));
}

#[test]
fn dist_files_writes_man_pages_for_every_subcommand_and_the_packaged_units() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    run(Command::new(BIN).arg("dist-files").arg(d));

    // One page per visible subcommand, nested ones included; none for the hidden one.
    let help = String::from_utf8_lossy(&run(Command::new(BIN).arg("--help")).stdout).into_owned();
    let listed: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(listed.len() > 20, "{help}");
    for cmd in &listed {
        let page = d.join(format!("man/composer-keyd-{cmd}.1"));
        assert!(page.is_file(), "no man page for {cmd}");
    }
    for nested in ["service-install", "service-status", "shim-install"] {
        assert!(d.join(format!("man/composer-keyd-{nested}.1")).is_file());
    }
    assert!(!d.join("man/composer-keyd-dist-files.1").exists());
    let main = std::fs::read_to_string(d.join("man/composer-keyd.1")).unwrap();
    assert!(main.starts_with(".ie \\n(.g .ds Aq"), "roff: {main}");
    assert!(main.contains("composer\\-keyd\\-setup(1)"), "{main}");

    // man renders it (the package test checks `man -w` in a Debian root).
    require("man", "man-db");
    let out = run(Command::new("man").arg(d.join("man/composer-keyd-setup.1")));
    assert!(String::from_utf8_lossy(&out.stdout).contains("--no-import"));

    let service = std::fs::read_to_string(d.join("systemd/composer-keyd.service")).unwrap();
    assert!(service.contains("\nExecStart=/usr/bin/composer-keyd serve\n"));
    assert!(!service.contains("@BIN@"));
    assert!(d.join("systemd/composer-keyd.socket").is_file());
    let link = std::fs::read_link(d.join("systemd/sockets.target.wants/composer-keyd.socket"));
    assert_eq!(link.unwrap(), Path::new("../composer-keyd.socket"));
    for f in ["composer-keyd", "_composer-keyd", "composer-keyd.fish"] {
        assert!(d.join("completions").join(f).is_file(), "{f}");
    }

    // A second run over the same directory replaces everything (package builds rerun it).
    run(Command::new(BIN)
        .arg("dist-files")
        .arg(d)
        .args(["--bin", "/opt/ckd/bin/composer-keyd"]));
    let service = std::fs::read_to_string(d.join("systemd/composer-keyd.service")).unwrap();
    assert!(service.contains("\nExecStart=/opt/ckd/bin/composer-keyd serve\n"));
}

/// A `systemd --user` in a mount namespace where /usr/lib/systemd/user holds the units as the
/// package installs them (host units kept, ours added); killed when dropped. The CLI runs in
/// the same namespace through nsenter, so it sees the packaged units where a package puts them.
struct PackagedManager {
    child: std::process::Child,
    user_ns: bool,
}

impl PackagedManager {
    fn start(t: &support::TestEnv) -> PackagedManager {
        require("unshare", "util-linux");
        require("nsenter", "util-linux");
        require("systemctl", "systemd");
        let systemd = ["/lib/systemd/systemd", "/usr/lib/systemd/systemd"]
            .into_iter()
            .find(|p| Path::new(p).is_file())
            .expect("systemd's manager binary is missing: install the Debian package `systemd`");
        let vendor = t.dir.path().join("vendor-units");
        run(Command::new("cp")
            .arg("-a")
            .arg("/usr/lib/systemd/user/.")
            .arg(&vendor));
        let dist = t.dir.path().join("dist");
        let bin = Path::new(BIN).canonicalize().unwrap();
        run(Command::new(BIN)
            .arg("dist-files")
            .arg(&dist)
            .arg("--bin")
            .arg(&bin));
        run(Command::new("cp")
            .arg("-a")
            .arg(dist.join("systemd/."))
            .arg(&vendor));
        let runtime_units = Path::new(&t.env["XDG_RUNTIME_DIR"]).join("systemd/user");
        std::fs::create_dir_all(&runtime_units).unwrap();
        std::fs::write(
            runtime_units.join("ckd-test.target"),
            "[Unit]\nDescription=composer-keyd test session\n",
        )
        .unwrap();
        // SAFETY: geteuid has no preconditions.
        let user_ns = unsafe { libc::geteuid() } != 0;
        let ns: &[&str] = if user_ns {
            &["--map-root-user", "--mount", "--propagation", "private"]
        } else {
            &["--mount", "--propagation", "private"]
        };
        let child = t
            .command("unshare")
            .args(ns)
            .args(["sh", "-c"])
            .arg(
                "mount --bind \"$1\" /usr/lib/systemd/user && mount -t tmpfs tmpfs /run/systemd \
                 && mkdir /run/systemd/system && exec \"$0\" --user --unit=ckd-test.target",
            )
            .arg(systemd)
            .arg(&vendor)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(t.dir.path().join("manager.log")).unwrap())
            .spawn()
            .expect("start unshare");
        let mut m = PackagedManager { child, user_ns };
        let private = Path::new(&t.env["XDG_RUNTIME_DIR"]).join("systemd/private");
        // Bounded: 400 x 50 ms.
        let up = (0..400).any(|_| {
            assert!(
                m.child.try_wait().unwrap().is_none(),
                "systemd --user exited: {}",
                std::fs::read_to_string(t.dir.path().join("manager.log")).unwrap_or_default()
            );
            let ready = private.exists()
                && m.inside(t, "systemctl", &["--user", "show-environment"])
                    .status
                    .success();
            if !ready {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            ready
        });
        assert!(up, "systemd --user did not come up");
        m
    }

    /// Runs `program args` in the manager's mount namespace, with the test's environment.
    fn inside(&self, t: &support::TestEnv, program: &str, args: &[&str]) -> Output {
        let pid = self.child.id().to_string();
        let mut c = t.command("nsenter");
        c.args(["-t", &pid]);
        if self.user_ns {
            c.args(["--user", "--preserve-credentials"]);
        }
        c.args(["--mount", "--", program]).args(args);
        c.output().expect("run nsenter")
    }

    /// The CLI in the namespace, asserted to succeed; its stdout.
    fn cli(&self, t: &support::TestEnv, args: &[&str]) -> String {
        let out = self.inside(t, BIN, args);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "composer-keyd {args:?} failed:\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }
}

impl Drop for PackagedManager {
    fn drop(&mut self) {
        // SAFETY: kill has no memory effects; the pid is our own child's (unshare, sh, exec).
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        // Bounded: 200 x 50 ms for the manager to stop its units, then SIGKILL.
        let gone = (0..200).any(|_| {
            let done = matches!(self.child.try_wait(), Ok(Some(_)));
            if !done {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            done
        });
        if !gone {
            // Best effort in a destructor: the process may have exited meanwhile.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn with_packaged_units_install_uses_them_and_status_says_where_each_unit_comes_from() {
    let t = support::TestEnv::bare();
    let m = PackagedManager::start(&t);
    let user_dir = t.home().join(".config/systemd/user");
    let units = |st: &serde_json::Value| -> Vec<(String, String, String)> {
        st["units"]
            .as_array()
            .expect("a units list")
            .iter()
            .map(|u| {
                let s = |k: &str| u[k].as_str().unwrap_or("-").to_owned();
                (s("path"), s("origin"), s("active"))
            })
            .collect()
    };
    let status = || -> serde_json::Value {
        serde_json::from_str(&m.cli(&t, &["service", "status", "--json"])).unwrap()
    };

    // --idle-exit needs a unit of the user's own: that copy shadows the package's.
    let out = m.cli(&t, &["service", "install", "--idle-exit", "30"]);
    assert!(out.contains("wrote "), "{out}");
    let st = status();
    let u = units(&st);
    let own = user_dir.join("composer-keyd.socket");
    assert_eq!(
        u[0],
        (own.display().to_string(), "user".into(), "active".into()),
        "{st:#}"
    );

    // A plain install goes back to the package's units and removes the shadowing copies.
    let out = m.cli(&t, &["service", "install"]);
    assert!(
        out.contains("using the package's units in /usr/lib/systemd/user"),
        "{out}"
    );
    assert!(out.contains(&format!("removed {}", own.display())), "{out}");
    for unit in ["composer-keyd.socket", "composer-keyd.service"] {
        assert!(
            !user_dir.join(unit).exists(),
            "a second copy of {unit} is left"
        );
    }
    let st = status();
    let u = units(&st);
    let pkg = |name: &str| format!("/usr/lib/systemd/user/{name}");
    assert_eq!(
        u[0],
        (
            pkg("composer-keyd.socket"),
            "package".into(),
            "active".into()
        ),
        "{st:#}"
    );
    assert_eq!(u[1].0, pkg("composer-keyd.service"), "{st:#}");
    assert_eq!(u[1].1, "package", "{st:#}");
    assert_eq!(st["socket"], t.socket().to_str().unwrap(), "{st:#}");
    let text = m.cli(&t, &["service", "status"]);
    assert!(
        text.contains("composer-keyd.socket active, from /usr/lib/systemd/user/composer-keyd.socket (package)"),
        "{text}"
    );

    // Nothing left to do the second time, and still no copy.
    let again = m.cli(&t, &["service", "install"]);
    assert!(again.contains("already enabled and listening"), "{again}");
    assert!(!user_dir.join("composer-keyd.socket").exists());

    // Uninstall stops the socket; the package's files stay and say how to turn it off.
    let out = m.cli(&t, &["service", "uninstall"]);
    assert!(
        out.contains("systemctl --user mask composer-keyd.socket"),
        "{out}"
    );
    let st = status();
    assert_ne!(units(&st)[0].2, "active", "{st:#}");
    drop(m);
}

#[test]
fn the_readme_stays_short_and_every_command_it_names_has_a_man_page() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(
        lines < 350,
        "README.md is the front door: {lines} lines, keep it under 350"
    );
    let dir = tempfile::tempdir().unwrap();
    run(Command::new(BIN).arg("dist-files").arg(dir.path()));
    // The Commands table: one row per command, its name first in backticks.
    let named: Vec<&str> = readme
        .lines()
        .skip_while(|l| *l != "## Commands")
        .take_while(|l| !l.starts_with("## How"))
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split(['`', ' ']).next())
        .collect();
    assert!(named.len() > 20, "the README's command table: {named:?}");
    for cmd in named {
        let page = dir.path().join(format!("man/composer-keyd-{cmd}.1"));
        assert!(
            page.is_file(),
            "README names `{cmd}`, which has no man page"
        );
    }
}
