//! What packages ship besides the binary, generated from the CLI: completion scripts that the
//! shells load, a man page per subcommand that man renders, and the packaged units. The whole
//! package in a throwaway Debian root is scripts/package-test (too slow for `cargo test`).

mod support;

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
    assert!(!words.contains(&"dist-files"), "a hidden command: {words:?}");
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

    // man renders it (when man is here; the package test checks `man -w` in a Debian root).
    if Path::new("/usr/bin/man").is_file() {
        let out = run(Command::new("man").arg(d.join("man/composer-keyd-setup.1")));
        assert!(String::from_utf8_lossy(&out.stdout).contains("--no-import"));
    }

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
