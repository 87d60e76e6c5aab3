//! Per-credential policy (`--confirm` through askpass, `--allow-exe`) and the audit log (`composer-keyd log`,
//! rotation, journald), against the real daemon and keyring; and no secret anywhere at trace level.

use crate::support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use support::{request, TestEnv, PYTHON};

const TOKEN: &str = "policy-secret-token-4242";

fn script(t: &TestEnv, name: &str, body: &str) -> PathBuf {
    let p = t.dir.path().join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn py_get(t: &TestEnv, origin: &str) -> String {
    support::python_get(t, origin)
}

fn audit_records(t: &TestEnv, extra: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["log", "--json"];
    args.extend_from_slice(extra);
    t.ok(&args, "")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn audit_path(t: &TestEnv) -> PathBuf {
    t.home().join(".local/state/composer-keyd/audit.log")
}

#[test]
fn confirm_asks_askpass_and_a_denial_or_time_out_refuses() {
    let t = TestEnv::with_keyring(true);
    let asked = t.dir.path().join("asked.txt");
    let no = script(
        &t,
        "no.sh",
        &format!("echo \"$1\" >> {}; exit 1", asked.display()),
    );
    let mut d = t.start_daemon(&["--askpass", no.to_str().unwrap()]);
    t.ok(
        &["add", "x.example", "--type", "bearer", "--confirm"],
        &format!("{TOKEN}\n"),
    );
    t.ok(&["add", "y.example", "--type", "bearer"], "plain-token\n");
    let r = t.lookup("x.example", None);
    assert_eq!(
        (r.status, r.kind().as_str()),
        (403, "forbidden"),
        "{}",
        r.body
    );
    assert!(r.body.contains("did not confirm"), "{}", r.body);
    assert!(!r.body.contains(TOKEN));
    assert_eq!(
        t.lookup("y.example", None).status,
        200,
        "no policy, no dialog"
    );
    let prompts = std::fs::read_to_string(&asked).unwrap();
    assert_eq!(
        prompts.lines().count(),
        1,
        "asked once, for x only: {prompts}"
    );
    assert!(
        prompts.contains("x.example") && prompts.contains("pid "),
        "{prompts}"
    );
    let list: serde_json::Value = serde_json::from_str(&t.ok(&["list", "--json"], "")).unwrap();
    let x = &list.as_array().unwrap()[0];
    assert_eq!(
        (x["origin"].as_str(), x["confirm"].as_bool()),
        (Some("x.example"), Some(true))
    );
    d.stop();

    let yes = script(&t, "yes.sh", "exit 0");
    let mut d = t.start_daemon(&["--askpass", yes.to_str().unwrap()]);
    let r = t.lookup("x.example", None);
    assert_eq!(r.json()["credential"]["token"], TOKEN, "{}", r.body);
    // Rotation keeps the policy.
    t.ok(&["rotate", "x.example"], "rotated-policy-token\n");
    let list: serde_json::Value = serde_json::from_str(&t.ok(&["list", "--json"], "")).unwrap();
    assert_eq!(list[0]["confirm"], true);
    d.stop();

    let slow = script(&t, "slow.sh", "sleep 20");
    let mut d = t.start_daemon(&[
        "--askpass",
        slow.to_str().unwrap(),
        "--confirm-timeout",
        "1s",
    ]);
    let r = t.lookup("x.example", None);
    assert_eq!(r.kind(), "forbidden");
    assert!(r.body.contains("not confirmed within 1 s"), "{}", r.body);
    d.stop();

    // No askpass at all: refused, saying how to configure one.
    let mut d = t.start_daemon(&[]);
    let r = t.lookup("x.example", None);
    assert_eq!(r.kind(), "forbidden");
    assert!(r.body.contains("COMPOSER_KEYD_ASKPASS"), "{}", r.body);
    // Lifting it needs the same confirmation, which nobody can give here.
    let out = t.cli(
        &["add", "x.example", "--type", "bearer", "--no-confirm"],
        &format!("{TOKEN}\n"),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("askpass"));
    // Removing it and adding it again does not release the old secret, and is open.
    t.ok(&["remove", "x.example"], "");
    t.ok(
        &["add", "x.example", "--type", "bearer"],
        &format!("{TOKEN}\n"),
    );
    assert_eq!(t.lookup("x.example", None).status, 200);
    d.stop();
}

#[test]
fn allow_exe_releases_only_to_that_program_and_the_audit_log_says_who() {
    support::require("python3", "python3");
    let t = TestEnv::with_keyring(true);
    let _d = t.start_daemon(&[]);
    let python = std::fs::canonicalize(PYTHON).unwrap();
    let me = std::env::current_exe().unwrap();
    t.ok(
        &[
            "add",
            "repo.example",
            "--type",
            "bearer",
            "--allow-exe",
            PYTHON,
        ],
        &format!("{TOKEN}\n"),
    );
    let list: serde_json::Value = serde_json::from_str(&t.ok(&["list", "--json"], "")).unwrap();
    assert_eq!(
        list[0]["allow_exe"][0],
        python.to_str().unwrap(),
        "stored canonical"
    );

    let r = t.lookup("repo.example", None);
    assert_eq!(
        (r.status, r.kind().as_str()),
        (403, "forbidden"),
        "{}",
        r.body
    );
    assert!(r.body.contains(me.to_str().unwrap()), "{}", r.body);
    assert!(!r.body.contains(TOKEN));
    let out = py_get(&t, "repo.example");
    assert!(
        out.starts_with("HTTP/1.1 200") && out.contains(TOKEN),
        "{out}"
    );

    t.ok(&["rotate", "repo.example"], "rotated-allow-token\n");
    assert!(py_get(&t, "repo.example").contains("rotated-allow-token"));
    assert_eq!(
        t.lookup("repo.example", None).status,
        403,
        "rotation kept the policy"
    );

    let all = audit_records(&t, &[]);
    let release = all
        .iter()
        .find(|r| r["event"] == "release")
        .expect("a release is recorded");
    assert_eq!(release["origin"], "repo.example");
    assert_eq!(release["exe"], python.to_str().unwrap());
    assert!(release["pid"].as_i64().unwrap() > 0);
    assert_eq!(release["uid"], 0);
    let refusal = all
        .iter()
        .find(|r| r["event"] == "refuse" && r["kind"] == "forbidden")
        .expect("the refusal is recorded");
    assert_eq!(refusal["exe"], me.to_str().unwrap());
    assert_eq!(refusal["origin"], "repo.example");
    assert!(all.iter().any(|r| r["event"] == "store"));

    // Only an allowed program may lift the policy; removing and adding again starts afresh.
    let out = t.cli(
        &["add", "repo.example", "--type", "bearer", "--allow-any-exe"],
        "any-exe-token\n",
    );
    assert!(!out.status.success());
    t.ok(&["remove", "repo.example"], "");
    t.ok(
        &["add", "repo.example", "--type", "bearer"],
        "any-exe-token\n",
    );
    assert_eq!(
        t.lookup("repo.example", None).json()["credential"]["token"],
        "any-exe-token"
    );

    let human = t.ok(&["log", "--since", "1h"], "");
    assert!(human
        .lines()
        .any(|l| l.contains("release") && l.contains("repo.example")));
    assert!(audit_records(&t, &["--since", "2099-01-01T00:00:00Z"]).is_empty());
    let text = std::fs::read_to_string(audit_path(&t)).unwrap();
    for s in [TOKEN, "rotated-allow-token", "any-exe-token"] {
        assert!(!text.contains(s), "the audit log holds a secret");
    }
    let bad = t.cli(&["log", "--since", "10"], "");
    assert_eq!(bad.status.code(), Some(1));
}

#[test]
fn audit_log_rotates_and_goes_to_journald_under_systemd() {
    let mut t = TestEnv::with_keyring(true);
    let journal = t.dir.path().join("journal.txt");
    let file = std::fs::File::create(&journal).unwrap();
    let meta = file.metadata().unwrap();
    use std::os::unix::fs::MetadataExt;
    // systemd names stderr's device and inode; here stderr is this file.
    t.env.insert(
        "JOURNAL_STREAM".into(),
        format!("{}:{}", meta.dev(), meta.ino()),
    );
    let mut child = t
        .command(support::BIN)
        .args(["serve", "--audit-max-size", "4096", "--audit-keep", "2"])
        .stderr(file)
        .spawn()
        .unwrap();
    // Bounded: 200 x 25 ms until it answers.
    let up = (0..200).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(25));
        request(&t.socket(), "GET", "/v1/status", None).is_ok()
    });
    assert!(up);
    t.ok(
        &["add", "x.example", "--type", "bearer"],
        "rotation-token-7\n",
    );
    for _ in 0..200 {
        assert_eq!(t.lookup("x.example", None).status, 200);
    }
    assert_eq!(t.lookup("absent.example", None).status, 404);
    let dir = audit_path(&t).parent().unwrap().to_path_buf();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    // Releases and changes rotate apart from refusals (`refusals.log`, here the one 404).
    assert_eq!(
        names,
        ["audit.log", "audit.log.1", "audit.log.2", "refusals.log"]
    );
    for n in &names {
        assert!(std::fs::metadata(dir.join(n)).unwrap().len() <= 4096, "{n}");
        let mode = std::fs::metadata(dir.join(n)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{n}");
    }
    let recent = audit_records(&t, &[]);
    assert_eq!(recent.last().unwrap()["origin"], "absent.example");
    assert_eq!(recent.last().unwrap()["kind"], "not-found");
    // SAFETY: kill has no memory effects; the pid is this test's daemon.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    let j = std::fs::read_to_string(&journal).unwrap();
    assert!(j.contains("<5>audit: ") && j.contains("release") && j.contains("x.example"));
    assert!(!j.contains("\x1b["), "no colours in the journal");
    assert!(!j.contains("rotation-token-7"));
}

#[test]
fn no_secret_anywhere_at_trace_level() {
    let mut t = TestEnv::with_keyring(true);
    t.env.insert("RUST_LOG".into(), "trace".into());
    let env_dump = t.dir.path().join("askpass-env.txt");
    let yes = script(
        &t,
        "yes.sh",
        &format!("env >> {0}; echo \"$@\" >> {0}; exit 0", env_dump.display()),
    );
    let mut d = t.start_daemon(&["--askpass", yes.to_str().unwrap()]);
    let secrets = [
        "trace-leak-token-1",
        "trace-leak-token-2",
        "trace-leak-pass-3",
    ];
    t.ok(
        &["add", "a.example", "--type", "bearer", "--confirm"],
        &format!("{}\n", secrets[0]),
    );
    t.ok(&["rotate", "a.example"], &format!("{}\n", secrets[1]));
    t.ok(
        &["add", "b.example", "--allow-exe", PYTHON],
        &format!("user\n{}\n", secrets[2]),
    );
    assert_eq!(t.lookup("a.example", None).status, 200);
    assert_eq!(t.lookup("b.example", None).status, 403);
    let body = format!(
        r#"{{"credential":{{"type":"bearer","token":{}}}}}"#,
        "1".repeat(30)
    );
    assert_eq!(
        request(&t.socket(), "PUT", "/v1/credentials/c.example", Some(&body))
            .unwrap()
            .status,
        400
    );
    // No process's argv or environment holds a secret while the daemon runs.
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        for f in ["cmdline", "environ"] {
            if let Ok(bytes) = std::fs::read(entry.path().join(f)) {
                for s in secrets {
                    assert!(
                        !support::contains(&bytes, s.as_bytes()),
                        "{:?}/{f}",
                        entry.path()
                    );
                }
            }
        }
    }
    assert!(d.stop().success());
    let log = d.log_text();
    assert!(log.contains("TRACE"), "trace logging was on");
    let audit = std::fs::read_to_string(audit_path(&t)).unwrap();
    let shown = t.ok(&["log", "--json"], "") + &t.ok(&["log"], "");
    assert!(std::fs::read_to_string(&env_dump)
        .unwrap()
        .contains("SSH_ASKPASS_PROMPT=confirm"));
    for s in secrets {
        assert!(!log.contains(s), "the daemon log holds a secret");
        assert!(!audit.contains(s), "the audit log holds a secret");
        assert!(!shown.contains(s), "`log` shows a secret");
        let files = t.files_containing(s);
        assert!(files.is_empty(), "a file holds a secret: {files:?}");
    }
    assert!(!log.contains(&"1".repeat(30)), "a bad body was echoed");
    assert!(Path::new(&audit_path(&t)).exists());
}
