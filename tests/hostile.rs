//! Hostile input against the real daemon: garbage bytes, an HTTP/2 preface, a 1 MB header, 1,000 pipelined
//! requests, bad origins and bad bodies. After each, the daemon answers correctly and has lost nothing.

use crate::support;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::Duration;
use support::net::{read_response, send_raw, Rng};
use support::{request, TestEnv};

const PUB: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
const PRIV: &str = "0f9e8d7c6b5a49382716f5e4d3c2b1a0";

/// The kinds a client may see; any 4xx must carry one of them.
const KINDS: [&str; 9] = [
    "not-found",
    "disabled",
    "locked",
    "bad-request",
    "unsupported-type",
    "too-large",
    "forbidden",
    "unknown-route",
    "wrong-passphrase",
];

fn setup() -> (TestEnv, support::Daemon) {
    let t = TestEnv::with_keyring(true);
    let d = t.start_daemon(&[]);
    t.ok(&["add", "repo.magento.com"], &format!("{PUB}\n{PRIV}\n"));
    (t, d)
}

/// The daemon still answers, with the stored secret intact.
fn intact(t: &TestEnv) {
    let r = request(&t.socket(), "GET", "/v1/credentials/repo.magento.com", None).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["credential"]["password"], PRIV);
}

#[test]
fn garbage_bytes_and_an_http2_preface() {
    let (t, d) = setup();
    let sock = t.socket();
    let mut rng = Rng::new(0x5eed);
    for round in 0..200 {
        let len = 1 + rng.below(4096) as usize;
        let mut bytes = rng.bytes(len);
        // Half the rounds look like HTTP at first, to get past the first byte.
        if round % 2 == 0 {
            let mut b = b"GET /v1/".to_vec();
            b.append(&mut bytes);
            bytes = b;
        }
        if let Some(r) = send_raw(&sock, &bytes) {
            assert!(
                (400..500).contains(&r.status),
                "round {round}: {} {}",
                r.status,
                r.body
            );
        }
        if round % 50 == 0 {
            intact(&t);
        }
    }
    intact(&t);

    let mut h2 = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    // An empty SETTINGS frame, as a real HTTP/2 client sends next.
    h2.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    if let Some(r) = send_raw(&sock, &h2) {
        assert!(r.status >= 400, "HTTP/2 was not served: {}", r.status);
    }
    intact(&t);
    assert!(d.child.id() > 0 && std::fs::metadata(&sock).is_ok());
}

#[test]
fn a_one_megabyte_header_is_refused() {
    let (t, _d) = setup();
    let mut big = b"GET /v1/status HTTP/1.1\r\nHost: l\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 1024 * 1024));
    big.extend_from_slice(b"\r\n\r\n");
    let r = send_raw(&t.socket(), &big);
    // hyper answers 431 once its 16 KiB head buffer is full, then closes.
    assert_eq!(r.map(|r| r.status), Some(431));
    // A megabyte of headers in many small lines: the same limit.
    let mut many = b"GET /v1/status HTTP/1.1\r\nHost: l\r\n".to_vec();
    for i in 0..20_000 {
        many.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    let r = send_raw(&t.socket(), &many);
    assert!(r.is_none_or(|r| r.status == 431 || r.status == 400));
    intact(&t);
}

#[test]
fn a_thousand_pipelined_requests() {
    let (t, _d) = setup();
    let mut s = UnixStream::connect(t.socket()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut all = Vec::new();
    for i in 0..1000 {
        let path = if i % 2 == 0 {
            "/v1/credentials/repo.magento.com"
        } else {
            "/v1/status"
        };
        let close = if i == 999 {
            "Connection: close\r\n"
        } else {
            ""
        };
        all.extend_from_slice(format!("GET {path} HTTP/1.1\r\nHost: l\r\n{close}\r\n").as_bytes());
    }
    let mut w = s.try_clone().unwrap();
    // Written from another thread: the daemon answers while we still send.
    let writer = std::thread::spawn(move || w.write_all(&all));
    let mut carry = Vec::new();
    for i in 0..1000 {
        let r = read_response(&mut s, &mut carry)
            .unwrap()
            .unwrap_or_else(|| panic!("closed after {i} responses"));
        assert_eq!(r.status, 200, "response {i}: {}", r.body);
        if i % 2 == 0 {
            assert_eq!(r.json()["credential"]["password"], PRIV, "response {i}");
        } else {
            assert_eq!(r.json()["protocol"], 1, "response {i}");
        }
    }
    writer.join().unwrap().unwrap();
    assert!(read_response(&mut s, &mut carry).unwrap().is_none());
    intact(&t);
}

#[test]
fn bad_origins_get_typed_4xx() {
    let (t, _d) = setup();
    let sock = t.socket();
    let long = "a".repeat(10 * 1024);
    let origins = [
        "..%2F..%2Fetc%2Fpasswd",
        "%2E%2E%2F%2E%2E%2Fetc",
        "repo.magento.com%2F..%2F..",
        "..",
        "x%00y.example",
        "repo.magento.com%00",
        "x%0D%0AX-Injected:%201",
        "x%0Ay",
        long.as_str(),
        "%FF%FE",
        "user%40host",
        "host:99999",
    ];
    let body = r#"{"credential":{"type":"bearer","token":"t"}}"#;
    for o in origins {
        for (method, suffix, body) in [
            ("GET", "", None),
            ("PUT", "", Some(body)),
            ("DELETE", "", None),
            ("POST", "/disable", None),
        ] {
            let path = format!("/v1/credentials/{o}{suffix}");
            let r = request(&sock, method, &path, body).unwrap();
            assert!(
                (400..500).contains(&r.status),
                "{method} {o:.40}: {}",
                r.status
            );
            assert!(
                KINDS.contains(&r.kind().as_str()),
                "{method} {o:.40}: {}",
                r.body
            );
        }
    }
    // Path traversal in the path itself never reaches a file: no such route.
    let r = request(&sock, "GET", "/v1/credentials/../../etc/passwd", None).unwrap();
    assert_eq!((r.status, r.kind().as_str()), (404, "unknown-route"));
    // Raw control bytes break HTTP framing: hyper refuses them before routing.
    for raw in [
        &b"GET /v1/credentials/x\0y HTTP/1.1\r\nHost: l\r\n\r\n"[..],
        b"GET /v1/credentials/x\r\nX-Injected: 1 HTTP/1.1\r\nHost: l\r\n\r\n",
        b"GET /v1/credentials/x y HTTP/1.1\r\nHost: l\r\n\r\n",
    ] {
        if let Some(r) = send_raw(&sock, raw) {
            assert!((400..500).contains(&r.status), "{}", r.status);
        }
    }
    // Bad projects.
    for q in [
        "relative/dir",
        "%2Fa%00b",
        &format!("%2F{}", "p".repeat(5000)),
    ] {
        let r = request(
            &sock,
            "GET",
            &format!("/v1/credentials/repo.magento.com?project={q}"),
            None,
        )
        .unwrap();
        assert_eq!(
            (r.status, r.kind().as_str()),
            (400, "bad-request"),
            "{q:.40}"
        );
    }
    intact(&t);
    let list: serde_json::Value = serde_json::from_str(&t.ok(&["list", "--json"], "")).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "nothing else was stored");
}

#[test]
fn bad_bodies_get_typed_4xx() {
    let (t, _d) = setup();
    let sock = t.socket();
    let deep = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
    let deep_obj = format!(
        r#"{{"credential":{}}}"#,
        "{\"a\":".repeat(5000) + "1" + &"}".repeat(5000)
    );
    let long_label = format!(
        r#"{{"credential":{{"type":"bearer","token":"t"}},"label":"{}"}}"#,
        "l".repeat(70_000)
    );
    let bodies: Vec<(&str, String)> = vec![
        ("empty", String::new()),
        ("null", "null".into()),
        ("array", "[]".into()),
        ("deep array", deep),
        ("deep object", deep_obj),
        ("no type", r#"{"credential":{"token":"t"}}"#.into()),
        (
            "extra field",
            r#"{"credential":{"type":"bearer","token":"t","x":1}}"#.into(),
        ),
        (
            "duplicate",
            r#"{"credential":{"type":"bearer","token":"t","token":"u"}}"#.into(),
        ),
        (
            "number",
            r#"{"credential":{"type":"bearer","token":1e999}}"#.into(),
        ),
        (
            "bad escape",
            r#"{"credential":{"type":"bearer","token":"\uD800"}}"#.into(),
        ),
        (
            "trailing",
            r#"{"credential":{"type":"bearer","token":"t"}} x"#.into(),
        ),
        (
            "blank secret",
            r#"{"credential":{"type":"http-basic","username":" ","password":"p"}}"#.into(),
        ),
        (
            "bad policy",
            r#"{"credential":{"type":"bearer","token":"t"},"allow_exe":["php"]}"#.into(),
        ),
        (
            "missing exe",
            r#"{"credential":{"type":"bearer","token":"t"},"allow_exe":["/nonexistent/php"]}"#
                .into(),
        ),
        (
            "confirm type",
            r#"{"credential":{"type":"bearer","token":"t"},"confirm":"yes"}"#.into(),
        ),
    ];
    for (what, body) in &bodies {
        let r = request(&sock, "PUT", "/v1/credentials/x.example", Some(body)).unwrap();
        assert!((400..500).contains(&r.status), "{what}: {}", r.status);
        assert!(KINDS.contains(&r.kind().as_str()), "{what}: {}", r.body);
    }
    // Over the body limit: refused from the Content-Length, before the body is read, so the
    // daemon may close while the client still writes (then the reply can be lost to a reset).
    let raw = format!(
        "PUT /v1/credentials/x.example HTTP/1.1\r\nHost: l\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{long_label}",
        long_label.len()
    );
    if let Some(r) = send_raw(&sock, raw.as_bytes()) {
        assert_eq!((r.status, r.kind().as_str()), (413, "too-large"));
    }
    // Bytes that are not UTF-8 at all.
    let mut body = br#"{"credential":{"type":"bearer","token":""#.to_vec();
    body.extend_from_slice(&[0xff, 0xfe]);
    body.extend_from_slice(br#""}}"#);
    let mut raw = format!(
        "PUT /v1/credentials/x.example HTTP/1.1\r\nHost: l\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(&body);
    let r = send_raw(&sock, &raw).unwrap();
    assert_eq!((r.status, r.kind().as_str()), (400, "bad-request"));
    // A body shorter than its Content-Length, then the client gives up.
    let short =
        b"PUT /v1/credentials/x.example HTTP/1.1\r\nHost: l\r\nContent-Length: 100\r\n\r\n{\"cred";
    if let Some(r) = send_raw(&sock, short) {
        assert!((400..500).contains(&r.status));
    }
    intact(&t);
    let r = request(&sock, "GET", "/v1/credentials/x.example", None).unwrap();
    assert_eq!((r.status, r.kind().as_str()), (404, "not-found"));
}
