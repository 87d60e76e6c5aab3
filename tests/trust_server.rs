//! The daemon's side of issue 11 against the real daemon and keyring: changes that could
//! release a guarded credential (a policy change, rotate + rollback, migrate, passwd) are held
//! to its policy and audited; the confirm prompt cannot be spoofed by an executable's path;
//! a slow body and a cap full of idle connections cannot shut the plugin out.

use crate::support;

use composer_keyd::audit::is_format;
use composer_keyd::secret::Secret;
use composer_keyd::store::age_file::AgeFileStore;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::net::{is_closed, read_response};
use support::{request, Reply, TestEnv};

const TOKEN: &str = "trust-server-secret-0042";
const PYTHON: &str = "/usr/bin/python3";
/// The plugin's socket read time-out (composer-plugin/src/Client.php): its contract.
const PLUGIN_DEADLINE: Duration = Duration::from_millis(1500);

/// One request from another program (Python): prints its pid, then the raw response.
const PY_REQUEST: &str = r#"
import os, socket, sys
print(os.getpid(), flush=True)
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
body = sys.argv[4].encode()
head = "%s %s HTTP/1.1\r\nHost: l\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % (sys.argv[2], sys.argv[3], len(body))
s.sendall(head.encode() + body)
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
sys.stdout.write(data.decode())
"#;

/// An askpass that records each prompt on a line of `prompts.txt` and answers with what
/// `answer.txt` says: `yes` confirms, anything else denies.
struct Askpass {
    program: PathBuf,
    prompts: PathBuf,
    answer: PathBuf,
}

impl Askpass {
    fn new(t: &TestEnv) -> Askpass {
        let dir = t.dir.path();
        let a = Askpass {
            program: dir.join("askpass.sh"),
            prompts: dir.join("prompts.txt"),
            answer: dir.join("answer.txt"),
        };
        std::fs::write(
            &a.program,
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"$1\" >> '{}'\n[ \"$(cat '{}')\" = yes ]\n",
                a.prompts.display(),
                a.answer.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&a.program, std::fs::Permissions::from_mode(0o755)).unwrap();
        a.answer("no");
        a
    }

    fn answer(&self, what: &str) {
        std::fs::write(&self.answer, what).unwrap();
    }

    fn prompts(&self) -> Vec<String> {
        std::fs::read_to_string(&self.prompts)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn arg(&self) -> &str {
        self.program.to_str().unwrap()
    }
}

fn call(t: &TestEnv, method: &str, path: &str, body: Option<&str>) -> Reply {
    request(&t.socket(), method, path, body).unwrap()
}

/// Runs `exe` (a Python) with [`PY_REQUEST`]; its pid and the response.
fn py_request(t: &TestEnv, exe: &Path, method: &str, path: &str, body: &str) -> (u32, String) {
    let out = t
        .command(exe)
        .args(["-c", PY_REQUEST])
        .arg(t.socket())
        .args([method, path, body])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (pid, resp) = text.split_once('\n').expect("the client printed its pid");
    (pid.trim().parse().unwrap(), resp.to_owned())
}

fn audit(t: &TestEnv) -> Vec<serde_json::Value> {
    t.ok(&["log", "--json"], "")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The refusal recorded for `request` (`"POST /v1/migrate"`), with its reason.
fn refusal<'a>(all: &'a [serde_json::Value], request: &str) -> &'a serde_json::Value {
    all.iter()
        .find(|r| r["event"] == "refuse" && r["kind"] == "forbidden" && r["detail"] == request)
        .unwrap_or_else(|| panic!("no refusal of {request} in the audit log: {all:#?}"))
}

fn list(t: &TestEnv) -> serde_json::Value {
    serde_json::from_str(&t.ok(&["list", "--json"], "")).unwrap()
}

const EMPTY_POLICY_ROTATE: &str = r#"{"credential":{"type":"bearer","token":"attacker-token"},"rotate":true,"confirm":false,"allow_exe":[]}"#;

#[test]
fn rotate_to_an_empty_policy_then_rollback_is_refused_and_audited() {
    let t = TestEnv::with_keyring(true);
    let ask = Askpass::new(&t);
    let _d = t.start_daemon(&["--askpass", ask.arg()]);
    t.ok(
        &["add", "x.example", "--type", "bearer", "--confirm"],
        &format!("{TOKEN}\n"),
    );

    // The attack: replace the secret with one's own and drop the policy, then roll back.
    let put = call(
        &t,
        "PUT",
        "/v1/credentials/x.example",
        Some(EMPTY_POLICY_ROTATE),
    );
    assert_eq!(
        (put.status, put.kind().as_str()),
        (403, "forbidden"),
        "{}",
        put.body
    );
    let rb = call(&t, "POST", "/v1/credentials/x.example/rollback", None);
    assert_eq!(
        (rb.status, rb.kind().as_str()),
        (403, "forbidden"),
        "{}",
        rb.body
    );
    let get = call(&t, "GET", "/v1/credentials/x.example", None);
    assert_eq!(get.status, 403, "{}", get.body);
    for r in [&put, &rb, &get] {
        assert!(!r.body.contains(TOKEN));
    }
    let info = &list(&t)[0];
    assert_eq!(info["confirm"], true, "the policy stayed: {info}");
    assert_eq!(info["has_previous"], false, "nothing was rotated: {info}");

    // The user was asked each time, with the credential and the pid first.
    let prompts = ask.prompts();
    assert_eq!(prompts.len(), 3, "{prompts:#?}");
    assert!(prompts
        .iter()
        .all(|p| p.starts_with("composer-keyd: x.example - pid ")));
    assert!(prompts[0].contains("change its release policy (confirm -> none)"));
    assert!(prompts[1].contains("roll back"));

    let all = audit(&t);
    refusal(&all, "PUT /v1/credentials/x.example");
    refusal(&all, "POST /v1/credentials/x.example/rollback");

    // When the user agrees, the change is made, and audited as a policy change.
    ask.answer("yes");
    let put = call(
        &t,
        "PUT",
        "/v1/credentials/x.example",
        Some(EMPTY_POLICY_ROTATE),
    );
    assert_eq!(put.status, 200, "{}", put.body);
    let all = audit(&t);
    let change = all
        .iter()
        .find(|r| r["event"] == "policy")
        .expect("the policy change is audited");
    assert_eq!(change["origin"], "x.example");
    assert_eq!(change["detail"], "confirm -> none");
    assert!(change["pid"].as_i64().unwrap() > 0);
}

#[test]
fn removing_an_allow_exe_policy_is_refused_to_other_programs() {
    support::require("python3", "python3");
    let t = TestEnv::with_keyring(true);
    let _d = t.start_daemon(&[]);
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
    let open = r#"{"credential":{"type":"bearer","token":"other"},"allow_exe":[]}"#;
    let r = call(&t, "PUT", "/v1/credentials/repo.example", Some(open));
    assert_eq!(
        (r.status, r.kind().as_str()),
        (403, "forbidden"),
        "{}",
        r.body
    );
    assert!(r.body.contains("change its release policy"), "{}", r.body);
    // The CLI is not the allowed program either.
    let out = t.cli(
        &["add", "repo.example", "--type", "bearer", "--allow-any-exe"],
        "other\n",
    );
    assert!(!out.status.success());
    assert_eq!(
        list(&t)[0]["allow_exe"][0],
        std::fs::canonicalize(PYTHON).unwrap().to_str().unwrap()
    );
    let (_, resp) = py_request(
        &t,
        Path::new(PYTHON),
        "GET",
        "/v1/credentials/repo.example",
        "",
    );
    assert!(resp.contains(TOKEN), "the secret is unchanged: {resp}");
    refusal(&audit(&t), "PUT /v1/credentials/repo.example");

    // The allowed program may change it.
    let (_, resp) = py_request(
        &t,
        Path::new(PYTHON),
        "PUT",
        "/v1/credentials/repo.example",
        open,
    );
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(list(&t)[0].get("allow_exe").is_none());
    let all = audit(&t);
    let change = all.iter().find(|r| r["event"] == "policy").unwrap();
    assert!(change["detail"].as_str().unwrap().ends_with("-> none"));
}

#[test]
fn migrate_and_passwd_are_held_to_the_strictest_policy_and_audited() {
    let mut t = TestEnv::with_keyring(true);
    t.env
        .insert("COMPOSER_KEYD_TEST_SCRYPT_LOG_N".into(), "12".into());
    let ask = Askpass::new(&t);
    let _d = t.start_daemon(&["--askpass", ask.arg()]);
    t.ok(&["add", "open.example", "--type", "bearer"], "open-token\n");
    t.ok(
        &["add", "x.example", "--type", "bearer", "--confirm"],
        &format!("{TOKEN}\n"),
    );
    let vault = PathBuf::from(&t.env["XDG_DATA_HOME"]).join("composer-keyd/vault.age");

    // A vault with a passphrase of the caller's choosing would hold every secret.
    let body = r#"{"to":"vault","passphrase":"attacker-pass"}"#;
    let r = call(&t, "POST", "/v1/migrate", Some(body));
    assert_eq!(
        (r.status, r.kind().as_str()),
        (403, "forbidden"),
        "{}",
        r.body
    );
    assert!(!vault.exists(), "no vault was made");
    let s = call(&t, "GET", "/v1/status", None).json();
    assert_eq!(s["backend"], "keyring");
    let prompts = ask.prompts();
    assert!(
        prompts[0].starts_with("composer-keyd: every credential - pid ")
            && prompts[0].contains("move every credential to the age file"),
        "{prompts:#?}"
    );
    refusal(&audit(&t), "POST /v1/migrate");

    ask.answer("yes");
    let r = call(&t, "POST", "/v1/migrate", Some(body));
    assert_eq!(r.status, 200, "{}", r.body);
    let all = audit(&t);
    let m = all
        .iter()
        .find(|r| r["event"] == "migrate")
        .expect("migrate is audited");
    assert!(m["detail"].as_str().unwrap().contains("2 copied"), "{m}");

    // passwd on the vault now in use: refused unless confirmed, and audited either way.
    ask.answer("no");
    let pw = r#"{"passphrase":"attacker-pass","new_passphrase":"second-pass"}"#;
    let r = call(&t, "POST", "/v1/passwd", Some(pw));
    assert_eq!(
        (r.status, r.kind().as_str()),
        (403, "forbidden"),
        "{}",
        r.body
    );
    let v = AgeFileStore::new(vault.clone());
    v.unlock(Some(&Secret::from("attacker-pass")))
        .expect("the passphrase is unchanged");
    refusal(&audit(&t), "POST /v1/passwd");
    ask.answer("yes");
    let r = call(&t, "POST", "/v1/passwd", Some(pw));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(audit(&t).iter().any(|r| r["event"] == "passwd"));
    let v = AgeFileStore::new(vault);
    v.unlock(Some(&Secret::from("second-pass"))).unwrap();
}

#[test]
fn the_confirm_prompt_leads_with_origin_and_pid_and_drops_format_characters() {
    support::require("python3", "python3");
    let t = TestEnv::with_keyring(true);
    let ask = Askpass::new(&t);
    // A copy of Python under a long path full of bidi controls and zero-width characters.
    let mut dir = t.dir.path().to_path_buf();
    for i in 0..6 {
        dir.push(format!(
            "{}\u{202E}gpj.{i}\u{2066}\u{200B}\u{FEFF}",
            "crafted-directory-".repeat(8)
        ));
    }
    std::fs::create_dir_all(&dir).unwrap();
    let py = dir.join("php\u{202E}8.2");
    std::fs::copy(std::fs::canonicalize(PYTHON).unwrap(), &py).unwrap();
    let _d = t.start_daemon(&["--askpass", ask.arg()]);
    t.ok(
        &["add", "x.example", "--type", "bearer", "--confirm"],
        &format!("{TOKEN}\n"),
    );
    let (pid, resp) = py_request(&t, &py, "GET", "/v1/credentials/x.example", "");
    assert!(resp.starts_with("HTTP/1.1 403"), "{resp}");
    let prompts = ask.prompts();
    assert_eq!(prompts.len(), 1, "{prompts:#?}");
    let p = &prompts[0];
    let head = format!("composer-keyd: x.example - pid {pid} asks to use this credential.");
    assert!(p.starts_with(&head), "{p}");
    assert!(!p.chars().any(|c| is_format(c) || c.is_control()), "{p:?}");
    assert!(
        p.contains("crafted-directory-"),
        "the program is still named: {p}"
    );

    // `log`, as lines and as JSON, shows the record with no format character either.
    let lines = t.ok(&["log"], "");
    let json = t.ok(&["log", "--json"], "");
    for text in [&lines, &json] {
        assert!(!text.chars().any(is_format), "{text:?}");
    }
    let rec: serde_json::Value = json
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| r["event"] == "refuse")
        .unwrap();
    assert_eq!(
        rec["exe"],
        py.to_str().unwrap(),
        "JSON keeps the exact path"
    );
}

#[test]
fn a_slow_body_is_cut_at_its_deadline() {
    let t = TestEnv::with_keyring(true);
    let _d = t.start_daemon(&["--body-timeout", "1s", "--header-timeout", "60s"]);
    let mut slow = UnixStream::connect(t.socket()).unwrap();
    slow.write_all(
        b"PUT /v1/credentials/x.example HTTP/1.1\r\nHost: l\r\nContent-Length: 100\r\n\r\n{",
    )
    .unwrap();
    // The bound is 30 times the deadline; without a deadline this read would never end.
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let r = read_response(&mut slow, &mut Vec::new())
        .expect("the daemon answered before the client's bound")
        .expect("a response, not a silent close");
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("did not arrive within"), "{}", r.body);
    let mut rest = Vec::new();
    assert_eq!(
        slow.read_to_end(&mut rest).unwrap(),
        0,
        "and the connection is closed"
    );
    assert_eq!(call(&t, "GET", "/v1/status", None).status, 200);
}

/// A connection that made one request and stays open, idle, as keep-alive allows.
fn kept_alive(t: &TestEnv) -> UnixStream {
    let mut s = UnixStream::connect(t.socket()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /v1/status HTTP/1.1\r\nHost: l\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, &mut Vec::new()).unwrap().unwrap();
    assert_eq!(r.status, 200);
    s
}

/// `GET /v1/status` on a fresh connection with the plugin's read deadline.
fn status_within_plugin_deadline(t: &TestEnv) -> std::io::Result<Option<Reply>> {
    let mut s = UnixStream::connect(t.socket())?;
    s.set_read_timeout(Some(PLUGIN_DEADLINE))?;
    s.write_all(b"GET /v1/status HTTP/1.1\r\nHost: l\r\nConnection: close\r\n\r\n")?;
    read_response(&mut s, &mut Vec::new())
}

#[test]
fn status_is_answered_within_the_plugins_deadline_when_the_cap_is_full_of_idle_connections() {
    let t = TestEnv::with_keyring(true);
    let _d = t.start_daemon(&["--max-connections", "4", "--header-timeout", "60s"]);
    let mut idle: Vec<UnixStream> = (0..4).map(|_| kept_alive(&t)).collect();
    for round in 0..3 {
        let r = status_within_plugin_deadline(&t)
            .unwrap_or_else(|e| {
                panic!("round {round}: no answer within the plugin's deadline: {e}")
            })
            .expect("a response");
        assert_eq!(r.status, 200);
    }
    // The oldest idle ones made room; the newest stays open and is served.
    assert!(
        is_closed(&mut idle[0]),
        "the longest-idle connection was closed"
    );
    let last = idle.last_mut().unwrap();
    assert!(!is_closed(last));
    last.write_all(b"GET /v1/status HTTP/1.1\r\nHost: l\r\n\r\n")
        .unwrap();
    assert_eq!(
        read_response(last, &mut Vec::new())
            .unwrap()
            .unwrap()
            .status,
        200
    );

    // Connections that never sent a byte are idle too.
    let _fresh: Vec<UnixStream> = (0..4)
        .map(|_| UnixStream::connect(t.socket()).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let r = status_within_plugin_deadline(&t)
        .expect("an answer within the plugin's deadline")
        .expect("a response");
    assert_eq!(r.status, 200);
}

#[test]
fn a_config_write_that_fails_answers_internal_and_switches_nothing() {
    let mut t = TestEnv::with_keyring(true);
    t.env
        .insert("COMPOSER_KEYD_TEST_SCRYPT_LOG_N".into(), "12".into());
    let _d = t.start_daemon(&[]);
    t.ok(&["add", "open.example", "--type", "bearer"], "open-token\n");
    // config.toml is a directory: writing it fails, through no fault of the request or backend.
    let cfg = PathBuf::from(&t.env["XDG_CONFIG_HOME"]).join("composer-keyd/config.toml");
    std::fs::create_dir_all(&cfg).unwrap();
    let body = r#"{"to":"vault","passphrase":"some-pass"}"#;
    let r = call(&t, "POST", "/v1/migrate", Some(body));
    assert_eq!(
        (r.status, r.kind().as_str()),
        (500, "internal"),
        "{}",
        r.body
    );
    assert_eq!(
        call(&t, "GET", "/v1/status", None).json()["backend"],
        "keyring"
    );
    assert_eq!(t.credential("open.example", None)["token"], "open-token");
}
