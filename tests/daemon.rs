//! Integration tests of the daemon and CLI against a real gnome-keyring Secret Service.

use crate::support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use support::{request, TestEnv};

const PUB: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
const PRIV: &str = "0f9e8d7c6b5a49382716f5e4d3c2b1a0";

fn get(t: &TestEnv, origin: &str, project: Option<&Path>) -> support::Reply {
    t.lookup(origin, project)
}

/// One lifecycle: add, list, read, disable, enable, rotate, rollback, restart, remove.
fn lifecycle(t: &TestEnv, origin: &str, kind: &str, first: &str, second: &str, field: &str) {
    let mut d = t.start_daemon(&[]);
    t.ok(&["add", origin, "--type", kind, "--label", "ci"], first);
    let list: serde_json::Value = serde_json::from_str(&t.ok(&["list", "--json"], "")).unwrap();
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["origin"] == origin)
        .expect("listed");
    assert_eq!(entry["type"], kind);
    assert_eq!(entry["project"], serde_json::Value::Null);
    assert_eq!(entry["label"], "ci");
    assert_eq!(entry["enabled"], true);
    let first_value = first.lines().last().unwrap();
    let second_value = second.lines().last().unwrap();
    let r = get(t, origin, None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["credential"][field], first_value);
    assert_eq!(r.json()["credential"]["type"], kind);

    t.ok(&["disable", origin], "");
    let r = get(t, origin, None);
    assert_eq!((r.status, r.kind().as_str()), (403, "disabled"));
    t.ok(&["enable", origin], "");
    assert_eq!(get(t, origin, None).status, 200);

    t.ok(&["rotate", origin], second);
    assert_eq!(
        get(t, origin, None).json()["credential"][field],
        second_value
    );
    t.ok(&["rotate", "--rollback", origin], "");
    assert_eq!(
        get(t, origin, None).json()["credential"][field],
        first_value
    );

    // Everything survives a restart: index on disk, secrets in the keyring.
    assert!(d.stop().success());
    let _d = t.start_daemon(&[]);
    let r = get(t, origin, None);
    assert_eq!(r.json()["credential"][field], first_value, "{}", r.body);
    let list: serde_json::Value = serde_json::from_str(&t.ok(&["list", "--json"], "")).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);

    t.ok(&["remove", origin], "");
    let r = get(t, origin, None);
    assert_eq!((r.status, r.kind().as_str()), (404, "not-found"));
}

#[test]
fn lifecycle_http_basic() {
    let t = TestEnv::with_keyring(true);
    lifecycle(
        &t,
        "repo.magento.com",
        "http-basic",
        &format!("{PUB}\n{PRIV}\n"),
        "b1b2c3d4e5f60718293a4b5c6d7e8f90\n1f9e8d7c6b5a49382716f5e4d3c2b1a0\n",
        "password",
    );
}

#[test]
fn lifecycle_github_oauth() {
    let t = TestEnv::with_keyring(true);
    lifecycle(
        &t,
        "github.com",
        "github-oauth",
        "ghp_first\n",
        "ghp_second\n",
        "token",
    );
}

#[test]
fn lifecycle_bearer_with_port() {
    let t = TestEnv::with_keyring(true);
    lifecycle(
        &t,
        "127.0.0.1:8080",
        "bearer",
        "tok-one\n",
        "tok-two\n",
        "token",
    );
}

#[test]
fn lifecycle_forgejo_token() {
    let t = TestEnv::with_keyring(true);
    lifecycle(
        &t,
        "codeberg.org",
        "forgejo-token",
        "me\nfj-1\n",
        "me\nfj-2\n",
        "token",
    );
}

#[test]
fn scopes_reach_the_right_project() {
    let t = TestEnv::with_keyring(true);
    let _d = t.start_daemon(&[]);
    let acme = t.home().join("clients/acme");
    let globex = t.home().join("clients/globex");
    let other = t.home().join("clients/other");
    for p in [&acme, &globex, &other] {
        std::fs::create_dir_all(p.join("sub")).unwrap();
    }
    t.ok(&["add", "repo.magento.com"], "globalpub\nglobalpriv\n");
    t.ok(
        &[
            "add",
            "repo.magento.com",
            "--project",
            acme.to_str().unwrap(),
        ],
        "acmepub\nacmepriv\n",
    );
    t.ok(
        &[
            "add",
            "repo.magento.com",
            "--project",
            globex.to_str().unwrap(),
        ],
        "globexpub\nglobexpriv\n",
    );
    let user =
        |p: &Path| get(&t, "repo.magento.com", Some(p)).json()["credential"]["username"].clone();
    assert_eq!(user(&acme), "acmepub");
    assert_eq!(user(&acme.join("sub")), "acmepub");
    assert_eq!(user(&globex), "globexpub");
    assert_eq!(user(&other), "globalpub");
    assert_eq!(
        get(&t, "repo.magento.com", None).json()["credential"]["username"],
        "globalpub"
    );

    let origins = request(
        &t.socket(),
        "GET",
        &format!("/v1/origins?project={}", acme.display()),
        None,
    )
    .unwrap()
    .json();
    assert_eq!(origins["origins"][0]["project"], acme.to_str().unwrap());

    // Disabling the acme pair does not fall back to the global one: the scoped one wins and says so.
    t.ok(
        &[
            "disable",
            "repo.magento.com",
            "--project",
            acme.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(get(&t, "repo.magento.com", Some(&acme)).kind(), "disabled");
    assert_eq!(user(&globex), "globexpub");
}

#[test]
fn another_uid_is_refused() {
    support::require("setpriv", "util-linux");
    let t = TestEnv::with_keyring(true);
    let d = t.start_daemon(&[]);
    t.ok(&["add", "repo.magento.com"], &format!("{PUB}\n{PRIV}\n"));
    // Open every directory on the way and the socket itself, so only the uid check stands.
    let mut p = t.socket();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777)).unwrap();
    while let Some(parent) = p.parent() {
        if parent == Path::new("/") || parent == Path::new("/tmp") {
            break;
        }
        std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755)).unwrap();
        p = parent.to_path_buf();
    }
    let bin = t.dir.path().join("composer-keyd");
    std::fs::copy(support::BIN, &bin).unwrap();
    let out = t
        .command("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .args(["--no-autostart", "status", "--json"])
        // For nobody, run/composer-keyd would be its own default socket directory, which the
        // CLI refuses before connecting (root owns it). Named explicitly, a root-owned socket
        // in root-owned directories passes the client's rule, so the daemon's check is tested.
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "nobody was served: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains(PUB));
    assert!(stderr.contains("closed the connection"), "{stderr}");
    // The daemon logged the refusal, and it still serves its own user.
    assert!(d
        .log_text()
        .contains("refused a connection from another user"));
    assert_eq!(get(&t, "repo.magento.com", None).status, 200);
}

#[test]
fn unsafe_socket_directories_are_refused() {
    let t = TestEnv::with_keyring(true);
    let open = t.dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = t
        .command(support::BIN)
        .env("COMPOSER_KEYD_SOCK", open.join("agent.sock"))
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("must be 0700"), "{err}");

    let real = t.dir.path().join("real");
    std::fs::create_dir(&real).unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700)).unwrap();
    let link = t.dir.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let out = t
        .command(support::BIN)
        .env("COMPOSER_KEYD_SOCK", link.join("agent.sock"))
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is a symlink"), "{err}");
}

#[test]
fn bad_input_gets_typed_errors_and_loses_nothing() {
    let t = TestEnv::with_keyring(true);
    let _d = t.start_daemon(&[]);
    t.ok(&["add", "repo.magento.com"], &format!("{PUB}\n{PRIV}\n"));
    let sock = t.socket();
    let put = |origin: &str, body: &str| {
        request(
            &sock,
            "PUT",
            &format!("/v1/credentials/{origin}"),
            Some(body),
        )
        .unwrap()
    };
    let cases: Vec<(support::Reply, u16, &str)> = vec![
        (put("x.example", "{not json"), 400, "bad-request"),
        (
            put("x.example", r#"{"credential":{"type":"ftp","token":"t"}}"#),
            400,
            "unsupported-type",
        ),
        (
            put(
                "x.example",
                r#"{"credential":{"type":"bearer","token":""}}"#,
            ),
            400,
            "bad-request",
        ),
        (
            put("x.example", r#"{"credential":{"type":"bearer","token":7}}"#),
            400,
            "bad-request",
        ),
        (
            put(
                "x.example%2Fpath",
                r#"{"credential":{"type":"bearer","token":"t"}}"#,
            ),
            400,
            "bad-request",
        ),
        (
            put(
                "x%20example",
                r#"{"credential":{"type":"bearer","token":"t"}}"#,
            ),
            400,
            "bad-request",
        ),
        (
            put(
                "x%0Aexample",
                r#"{"credential":{"type":"bearer","token":"t"}}"#,
            ),
            400,
            "bad-request",
        ),
        (
            put(
                "x%00example",
                r#"{"credential":{"type":"bearer","token":"t"}}"#,
            ),
            400,
            "bad-request",
        ),
        (
            request(&sock, "GET", "/v1/nope", None).unwrap(),
            404,
            "unknown-route",
        ),
        (
            request(&sock, "PATCH", "/v1/status", None).unwrap(),
            404,
            "unknown-route",
        ),
    ];
    for (reply, status, kind) in cases {
        assert_eq!(
            (reply.status, reply.kind().as_str()),
            (status, kind),
            "{}",
            reply.body
        );
    }
    // A body of several MB is refused from its Content-Length, before it is read.
    let big = format!(
        "PUT /v1/credentials/x.example HTTP/1.1\r\nHost: l\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        8 * 1024 * 1024
    );
    let r = support::raw_request(&sock, big.as_bytes()).unwrap();
    assert_eq!((r.status, r.kind().as_str()), (413, "too-large"));
    // Chunked, with no length up front: refused once it passes the limit.
    let mut chunked = b"PUT /v1/credentials/x.example HTTP/1.1\r\nHost: l\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..40 {
        chunked.extend_from_slice(format!("{:x}\r\n", 64 * 1024).as_bytes());
        chunked.extend(std::iter::repeat_n(b'a', 64 * 1024));
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let r = support::raw_request(&sock, &chunked).unwrap_or(support::Reply {
        status: 413,
        body: r#"{"error":{"kind":"too-large"}}"#.into(),
    });
    assert_eq!(r.status, 413);

    let r = get(&t, "repo.magento.com", None);
    assert_eq!(
        r.json()["credential"]["password"],
        PRIV,
        "the stored credential is intact"
    );
    let list: serde_json::Value = serde_json::from_str(&t.ok(&["list", "--json"], "")).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "nothing else was stored");
}

#[test]
fn cli_refuses_bad_input_with_one_line() {
    let t = TestEnv::with_keyring(true);
    let _d = t.start_daemon(&[]);
    let out = t.cli(&["add", "repo.magento.com/path"], "a\nb\n");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let out = t.cli(&["add", "x.example", "--type", "ftp"], "t\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown credential type"));
    let out = t.cli(&["add", "x.example", "--type", "bearer"], "");
    assert_eq!(out.status.code(), Some(1), "stdin ended early");
    let out = t.cli(&["frobnicate"], "");
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
    let out = t.cli(&["add", "repo.magento.com"], "short\nkey\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("32 characters"));
    let out = t.cli(&["add", "repo.magento.com"], "only-the-public-key\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("before the private-key"), "{err}");
    assert!(err.contains("(public-key, private-key)"), "{err}");
}

/// At a terminal, `add repo.magento.com` asks in the Marketplace's words.
#[test]
fn magento_prompt_names_public_and_private_key() {
    support::require("script", "bsdutils");
    let t = TestEnv::with_keyring(true);
    let _d = t.start_daemon(&[]);
    let cmd = format!("{} --no-autostart add repo.magento.com", support::BIN);
    let out = t
        .command("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            // The pty echoes nothing once rpassword turns echo off; both lines are read whole.
            c.stdin
                .take()
                .unwrap()
                .write_all(format!("{PUB}\n{PRIV}\n").as_bytes())?;
            c.wait_with_output()
        })
        .expect("run script(1)");
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(screen.contains("repo.magento.com public key: "), "{screen}");
    assert!(
        screen.contains("repo.magento.com private key: "),
        "{screen}"
    );
    assert!(!screen.contains("username"), "{screen}");
    assert_eq!(t.credential("repo.magento.com", None)["username"], PUB);
}

#[test]
fn locked_keyring_answers_backend_unavailable() {
    let t = TestEnv::with_keyring(false);
    let _d = t.start_daemon(&["--backend-timeout", "3"]);
    let r = request(
        &t.socket(),
        "PUT",
        "/v1/credentials/repo.magento.com",
        Some(r#"{"credential":{"type":"bearer","token":"t"}}"#),
    )
    .unwrap();
    assert_eq!(
        (r.status, r.kind().as_str()),
        (503, "backend-unavailable"),
        "{}",
        r.body
    );
    // Still serving.
    assert_eq!(
        request(&t.socket(), "GET", "/v1/status", None)
            .unwrap()
            .status,
        200
    );
}

#[test]
fn no_keyring_at_all_answers_backend_unavailable() {
    let mut t = TestEnv::bare();
    // Configured for the keyring: left to `auto`, a machine without one gets the vault.
    t.env
        .insert("COMPOSER_KEYD_BACKEND".into(), "keyring".into());
    let _d = t.start_daemon(&[]);
    let out = t.cli(&["add", "x.example", "--type", "bearer"], "tok\n");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("keyring is unavailable"), "{err}");
}

#[test]
fn second_serve_and_stale_socket() {
    let t = TestEnv::with_keyring(true);
    let mut d = t.start_daemon(&[]);
    let out = t.command(support::BIN).arg("serve").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already running"));
    // SIGTERM drains and removes the socket.
    assert!(d.stop().success());
    assert!(!t.socket().exists(), "socket removed at shutdown");
    // A stale socket (kill -9 leaves one) is replaced.
    let mut d = t.start_daemon(&[]);
    d.kill9();
    assert!(t.socket().exists());
    let _d = t.start_daemon(&[]);
}

#[test]
fn no_secret_leaks_at_trace_level() {
    let mut t = TestEnv::with_keyring(true);
    t.env.insert("RUST_LOG".into(), "trace".into());
    let mut d = t.start_daemon(&[]);
    let project = t.home().join("shop");
    std::fs::create_dir_all(&project).unwrap();
    t.ok(&["add", "repo.magento.com"], &format!("{PUB}\n{PRIV}\n"));
    t.ok(
        &[
            "add",
            "repo.magento.com",
            "--project",
            project.to_str().unwrap(),
        ],
        "scopedpublickey00000000000000000\nscopedprivatekey0000000000000000\n",
    );
    t.ok(
        &["add", "github.com", "--type", "github-oauth"],
        "ghp_leakcheck_token\n",
    );
    t.ok(&["rotate", "github.com"], "ghp_leakcheck_rotated\n");
    assert_eq!(get(&t, "repo.magento.com", Some(&project)).status, 200);
    assert_eq!(get(&t, "github.com", None).status, 200);
    let secrets = [
        PUB,
        PRIV,
        "scopedprivatekey",
        "ghp_leakcheck_token",
        "ghp_leakcheck_rotated",
    ];

    // No process's argv holds a secret while the daemon runs.
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            for s in secrets {
                assert!(
                    !support::contains(&cmdline, s.as_bytes()),
                    "argv of {:?} holds a secret",
                    entry.path()
                );
            }
        }
    }
    assert!(d.stop().success());
    let log = d.log_text();
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "trace logging was on"
    );
    for s in secrets {
        assert!(!log.contains(s), "the daemon log holds a secret");
        assert!(
            t.files_containing(s).is_empty(),
            "a file holds a secret: {:?}",
            t.files_containing(s)
        );
    }
}
