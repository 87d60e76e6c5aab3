//! `exec`: COMPOSER_AUTH reaches the command alone, never an argv; the exit code passes through.

use super::*;
use crate::support::{TestEnv, BIN};
use serde_json::{json, Value};
use std::process::Stdio;
use std::time::Duration;

/// Secrets of this test alone, so that no other process on the machine can hold them.
const XPUB: &str = "e7ec0000a1b2c3d4e5f60718293a4b5c";
const XPRIV: &str = "e7ec1111f9e8d7c6b5a49382716f5e4d";

/// The parent pid of `pid`, from /proc.
fn ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces; fields follow the last ')'.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn descends_from(mut pid: u32, root: u32) -> bool {
    // Bounded: a process tree is never deeper than this.
    for _ in 0..64 {
        if pid == root {
            return true;
        }
        match ppid(pid) {
            Some(p) if p > 1 => pid = p,
            _ => return false,
        }
    }
    false
}

fn pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

#[test]
fn exec_gives_the_command_composer_auth_and_no_argv_holds_a_secret() {
    let t = TestEnv::with_keyring(true);
    let _d = t.start_daemon(&[]);
    let proj = project(&t, "shop");
    let other = project(&t, "other");
    let p = proj.to_str().unwrap();
    t.ok(&["add", "repo.magento.com"], &format!("{XPUB}\n{XPRIV}\n"));
    t.ok(
        &[
            "add",
            "satis.shop.example:8080",
            "--project",
            p,
            "--type",
            "bearer",
        ],
        "bearer_exec_x1\n",
    );
    t.ok(
        &[
            "add",
            "github.com",
            "--project",
            other.to_str().unwrap(),
            "--type",
            "github-oauth",
        ],
        "ghp_other_x1\n",
    );
    t.ok(
        &["add", "packages.example.com", "--type", "bearer"],
        "bearer_disabled_x1\n",
    );
    t.ok(&["disable", "packages.example.com"], "");

    let out = t.dir.path().join("seen.json");
    let ready = t.dir.path().join("ready");
    let go = t.dir.path().join("go");
    let script = format!(
        "printf %s \"$COMPOSER_AUTH\" > '{}'; : > '{}'; i=0; while [ ! -e '{}' ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done; exit 7",
        out.display(),
        ready.display(),
        go.display()
    );
    let mut child = t
        .command(BIN)
        .args([
            "--no-autostart",
            "exec",
            "--project",
            p,
            "--",
            "sh",
            "-c",
            &script,
        ])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    // Bounded: 400 x 25 ms.
    for _ in 0..400 {
        if ready.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(ready.exists(), "the command did not start");

    let secrets = [
        XPUB,
        XPRIV,
        "bearer_exec_x1",
        "ghp_other_x1",
        "bearer_disabled_x1",
    ];
    let mut with_env = Vec::new();
    for pid in pids() {
        if let Ok(argv) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            let argv = String::from_utf8_lossy(&argv).replace('\0', " ");
            assert_no_secret(&argv, &secrets);
        }
        if let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) {
            if support::contains(&env, XPRIV.as_bytes()) {
                with_env.push(pid);
            }
        }
    }
    assert!(
        with_env.contains(&child.id()),
        "the command itself holds COMPOSER_AUTH"
    );
    for pid in &with_env {
        assert!(
            descends_from(*pid, child.id()),
            "pid {pid} is not the command or its child"
        );
    }

    std::fs::write(&go, "").unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(7), "the exit code passes through");
    let seen: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(
        seen,
        json!({
            "http-basic": {"repo.magento.com": {"username": XPUB, "password": XPRIV}},
            "bearer": {"satis.shop.example:8080": "bearer_exec_x1"}
        })
    );

    let missing = t.run_in(&proj, &["exec", "--", "no-such-command-x"], &[]);
    assert_eq!(missing.status.code(), Some(127), "{}", text(&missing));
    assert!(text(&missing).contains("command not found"));
    // From inside the project, without --project, the project's credentials apply.
    let env = t.run_in(
        &proj.join("app/code"),
        &["exec", "--", "sh", "-c", "printf %s \"$COMPOSER_AUTH\""],
        &[],
    );
    assert!(env.status.success(), "{}", text(&env));
    let seen: Value = serde_json::from_slice(&env.stdout).unwrap();
    assert_eq!(seen["bearer"]["satis.shop.example:8080"], "bearer_exec_x1");
}
