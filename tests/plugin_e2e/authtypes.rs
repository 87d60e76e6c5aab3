//! Composer 2.9's custom-headers and client-certificate from the daemon: on Composer >= 2.9
//! (COMPOSER_BIN, as scripts/test runs the matrix) they reach the repository; on older Composer
//! (Debian's 2.5.5, 2.2) the plugin says in one line that the type needs 2.9, and the install
//! fails as it would without the plugin.

use super::{composer_repo, packages};
use crate::composer_fixture::*;
use crate::support::{self, TestEnv};
use serde_json::json;
use std::path::{Path, PathBuf};

const HEADER_KEY: &str = "hdr-4e1b9c7d2f6a8053e9b1c4d7a2f0e6b3";
const KEY_PASS: &str = "kp-7a1c3e5f9b2d4068a1c3e5f7b9d2e4a6";

/// The header crosses the wire for metadata and dists alike.
#[test]
fn custom_headers_from_the_daemon_need_composer_2_9() {
    let (t, _d) = composer_env();
    let server = RepoServer::start(
        json!([{"host": "127.0.0.1", "port": 0, "packages": ["acme/alpha"],
                "headers": [{"name": "X-Api-Key", "value": HEADER_KEY, "label": "header"}]}]),
        packages(),
        None,
    );
    let origin = format!("127.0.0.1:{}", server.ports[0]);
    let line = format!("X-Api-Key: {HEADER_KEY}");
    add(&t, &origin, "custom-headers", None, &[&line]);
    let dir = project(
        &t,
        "headers",
        vec![composer_repo(server.ports[0])],
        json!({"acme/alpha": "^1.0"}),
    );
    let version = composer_version(&t);
    let out = composer(&t, &dir, &["install"]);
    let shown = text(&out);
    let needs = "the custom-headers type needs Composer 2.9 or later";
    if version >= (2, 9) {
        assert!(
            out.status.success(),
            "composer {version:?} install failed: {shown}"
        );
        assert!(dir.join("vendor/acme/alpha/src/Alpha.php").is_file());
        for prefix in ["/packages.json", "/p2/", "/dists/"] {
            let seen = server.accepted(0, prefix);
            assert!(
                !seen.is_empty() && seen.iter().all(|l| l == "header"),
                "{prefix}: {seen:?}"
            );
        }
        assert!(!shown.contains(needs), "{shown}");
    } else {
        assert!(
            !out.status.success(),
            "composer {version:?} installed without the header: {shown}"
        );
        assert_eq!(shown.matches(needs).count(), 1, "{shown}");
        assert!(server.requests().iter().all(|r| r["accepted"].is_null()));
        assert!(server.requests().iter().any(|r| r["status"] == 401));
    }
    assert!(!shown.contains(HEADER_KEY), "{shown}");
    assert!(!composer_home(&t).join("auth.json").exists());
    assert!(!dir.join("auth.json").exists());
    assert_no_plaintext(&t, HEADER_KEY);
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate whose key is encrypted
/// with [`KEY_PASS`], made by openssl in `dir`. The passphrase reaches openssl by environment.
fn certificates(t: &TestEnv, dir: &Path) -> PathBuf {
    support::require("openssl", "openssl");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    let steps: Vec<Vec<&str>> = vec![
        [
            &["req", "-x509"][..],
            &ec,
            &["-nodes", "-keyout", "ca.key", "-out", "ca.pem"],
        ]
        .concat(),
        [
            &["req"][..],
            &ec,
            &["-nodes", "-keyout", "server.key", "-out", "server.csr"],
        ]
        .concat(),
        vec![
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
        [
            &["req"][..],
            &ec,
            &[
                "-passout",
                "env:CKD_KEY_PASS",
                "-keyout",
                "client.key",
                "-out",
                "client.csr",
            ],
        ]
        .concat(),
        vec![
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "client.pem",
            "-days",
            "2",
        ],
    ];
    for args in steps {
        let mut cmd = t.command("openssl");
        cmd.args(&args)
            .current_dir(dir)
            .env("CKD_KEY_PASS", KEY_PASS);
        if args[0] == "req" {
            // Distinct subjects: a leaf named like its CA would look self-signed.
            let cn = if args.contains(&"ca.key") {
                "ckd-test-ca"
            } else if args.contains(&"server.key") {
                "ckd-test-server"
            } else {
                "ckd-test-client"
            };
            cmd.args(["-subj", &format!("/CN={cn}"), "-days", "2"]);
        }
        let out = cmd.output().expect("run openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", text(&out));
    }
    dir.to_path_buf()
}

/// The client certificate and its passphrase open the TLS handshake the repository demands.
#[test]
fn client_certificate_from_the_daemon_need_composer_2_9() {
    let (t, _d) = composer_env();
    let certs = certificates(&t, &t.dir.path().join("certs"));
    let server = RepoServer::start(
        json!([{"host": "127.0.0.1", "port": 0, "packages": ["acme/alpha"],
                "tls": {"cert": certs.join("server.pem"), "key": certs.join("server.key"),
                        "client_ca": certs.join("ca.pem"), "label": "client-cert"}}]),
        packages(),
        None,
    );
    let origin = format!("127.0.0.1:{}", server.ports[0]);
    let (cert, key) = (certs.join("client.pem"), certs.join("client.key"));
    t.ok(
        &[
            "add",
            &origin,
            "--type",
            "client-certificate",
            "--local-cert",
            cert.to_str().unwrap(),
            "--local-pk",
            key.to_str().unwrap(),
        ],
        &format!("{KEY_PASS}\n"),
    );
    let repo = json!({"type": "composer", "url": format!("https://{origin}")});
    let dir = project(&t, "certs", vec![repo], json!({"acme/alpha": "^1.0"}));
    // Composer trusts the test CA for the server's certificate.
    let manifest = dir.join("composer.json");
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    doc["config"]["cafile"] = json!(certs.join("ca.pem"));
    std::fs::write(&manifest, doc.to_string()).unwrap();

    let version = composer_version(&t);
    let out = composer(&t, &dir, &["install"]);
    let shown = text(&out);
    let needs = "the client-certificate type needs Composer 2.9 or later";
    if version >= (2, 9) {
        assert!(
            out.status.success(),
            "composer {version:?} install failed: {shown}"
        );
        assert!(dir.join("vendor/acme/alpha/src/Alpha.php").is_file());
        for prefix in ["/packages.json", "/p2/", "/dists/"] {
            let seen = server.accepted(0, prefix);
            assert!(
                !seen.is_empty() && seen.iter().all(|l| l == "client-cert"),
                "{prefix}: {seen:?}"
            );
        }
    } else {
        assert!(
            !out.status.success(),
            "composer {version:?} installed without the certificate: {shown}"
        );
        assert_eq!(shown.matches(needs).count(), 1, "{shown}");
        assert!(server.requests().is_empty(), "{:?}", server.requests());
    }
    assert!(!shown.contains(KEY_PASS), "{shown}");
    assert!(!composer_home(&t).join("auth.json").exists());
    assert_no_plaintext(&t, KEY_PASS);
}
