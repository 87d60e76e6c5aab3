//! Composer 2.9's `custom-headers` and `client-certificate`: add, list, rotate, import, scan
//! and exec, with the secrets kept out of every message.

use super::*;
use crate::support::TestEnv;
use serde_json::{json, Value};

#[test]
fn add_list_rotate_and_refuse_custom_headers() {
    let t = TestEnv::with_keyring(true);
    let _d = t.start_daemon(&[]);
    t.ok(
        &["add", "repo.example.com", "--type", "custom-headers"],
        "X-Api-Key: hdr-secret-1\nX-Tenant: acme\n\nignored: after the empty line\n",
    );
    assert_eq!(
        credential(&t, "repo.example.com", None),
        json!({"type": "custom-headers", "headers": ["X-Api-Key: hdr-secret-1", "X-Tenant: acme"]})
    );
    assert_eq!(list(&t)[0]["type"], "custom-headers");
    t.ok(&["rotate", "repo.example.com"], "X-Api-Key: hdr-secret-2\n");
    assert_eq!(
        credential(&t, "repo.example.com", None)["headers"],
        json!(["X-Api-Key: hdr-secret-2"])
    );
    // A header that would smuggle a second line, and an empty list: typed errors, no echo.
    for bad in [
        "X-A: 1\rX-Injected: hdr-secret-3\n",
        "no colon hdr-secret-3\n",
        "\n",
    ] {
        let out = t.cli(
            &["add", "other.example.com", "--type", "custom-headers"],
            bad,
        );
        assert!(!out.status.success(), "{bad:?} was accepted");
        let msg = text(&out);
        assert!(msg.contains("header"), "{msg}");
        assert_no_secret(&msg, &["hdr-secret-3"]);
    }
    assert_eq!(list(&t).len(), 1);
}

#[test]
fn add_client_certificate_stores_absolute_paths_and_the_passphrase() {
    let t = TestEnv::with_keyring(true);
    let _d = t.start_daemon(&[]);
    let certs = t.dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::write(certs.join("c.pem"), "cert").unwrap();
    std::fs::write(certs.join("k.pem"), "key").unwrap();
    let out = t
        .command(BIN)
        .args(["--no-autostart", "add", "certs.example.com", "--type"])
        .args([
            "client-certificate",
            "--local-cert",
            "c.pem",
            "--local-pk",
            "k.pem",
        ])
        .current_dir(&certs)
        .stdin(std::fs::File::open("/dev/null").unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let certs = std::fs::canonicalize(&certs).unwrap();
    assert_eq!(
        credential(&t, "certs.example.com", None),
        json!({"type": "client-certificate",
               "local-cert": certs.join("c.pem").to_str().unwrap(),
               "local-pk": certs.join("k.pem").to_str().unwrap()})
    );
    let cert = certs.join("c.pem");
    let cert = cert.to_str().unwrap();
    let args = [
        "add",
        "pp.example.com",
        "--type",
        "client-certificate",
        "--local-cert",
        cert,
    ];
    let out = t.ok(&args, "cert-pass-1\n");
    assert_no_secret(&out, &["cert-pass-1"]);
    assert_eq!(
        credential(&t, "pp.example.com", None),
        json!({"type": "client-certificate", "local-cert": cert, "passphrase": "cert-pass-1"})
    );
    let no_paths = t.cli(&["rotate", "pp.example.com"], "cert-pass-2\n");
    assert!(
        text(&no_paths).contains("needs --local-cert"),
        "{}",
        text(&no_paths)
    );
    t.ok(
        &["rotate", "pp.example.com", "--local-cert", cert],
        "cert-pass-2\n",
    );
    assert_eq!(
        credential(&t, "pp.example.com", None)["passphrase"],
        "cert-pass-2"
    );
    let listed = list(&t);
    assert!(listed.iter().all(|e| e["type"] == "client-certificate"));
    assert_no_secret(&t.ok(&["list"], ""), &["cert-pass-1", "cert-pass-2"]);
    let no_cert = t.cli(
        &["add", "x.example.com", "--type", "client-certificate"],
        "",
    );
    assert!(
        text(&no_cert).contains("needs --local-cert"),
        "{}",
        text(&no_cert)
    );
    let missing = t.cli(
        &[
            "add",
            "x.example.com",
            "--type",
            "client-certificate",
            "--local-cert",
            "/nonexistent/c.pem",
        ],
        "",
    );
    assert!(
        text(&missing).contains("not a readable file"),
        "{}",
        text(&missing)
    );
    let wrong = t.cli(
        &[
            "add",
            "x.example.com",
            "--type",
            "bearer",
            "--local-cert",
            cert,
        ],
        "t\n",
    );
    assert!(!wrong.status.success());
    assert_eq!(list(&t).len(), 2);
}

#[test]
fn import_scan_and_exec_carry_both_types() {
    let t = TestEnv::with_keyring(true);
    let home = composer_home(&t);
    let project = project(&t, "shop");
    let auth = json!({
        "custom-headers": {"repo.example.com": ["X-Api-Key: imp-secret-1"]},
        "client-certificate": {"certs.example.com": {"local_cert": "/c/client.pem", "local_pk": "/c/client.key", "passphrase": "imp-pass-1"}}
    });
    write_mode(&home.join("auth.json"), &auth.to_string(), 0o600);
    let scan = t.run_in(&project, &["scan", "--no-env"], &[]);
    let shown = text(&scan);
    assert!(
        shown.contains("custom-headers") && shown.contains("client-certificate"),
        "{shown}"
    );
    assert_no_secret(&shown, &["imp-secret-1", "imp-pass-1"]);

    let _d = t.start_daemon(&[]);
    let out = t.run_in(&project, &["import"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_no_secret(&text(&out), &["imp-secret-1", "imp-pass-1"]);
    assert!(
        !home.join("auth.json").exists(),
        "the moved entries were scrubbed"
    );
    assert_eq!(
        credential(&t, "repo.example.com", None),
        json!({"type": "custom-headers", "headers": ["X-Api-Key: imp-secret-1"]})
    );
    assert_eq!(
        credential(&t, "certs.example.com", None)["passphrase"],
        "imp-pass-1"
    );

    let env = t.run_in(
        &project,
        &["exec", "--", "sh", "-c", "printf %s \"$COMPOSER_AUTH\""],
        &[],
    );
    assert!(env.status.success(), "{}", text(&env));
    let seen: Value = serde_json::from_slice(&env.stdout).unwrap();
    assert_eq!(seen, auth, "COMPOSER_AUTH has auth.json's own shape");
}
