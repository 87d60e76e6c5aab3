//! What the team tests share: the test pair, the policies for readers and writers, a team
//! source over a real OpenBao for the library's read path, a fake engine that answers
//! garbage or hangs, and RS256 JWTs signed with a key the test makes.

use super::openbao::Bao;
use composer_keyd::team::sources::Freshness;
use composer_keyd::team::sources::{Sources, Team};
use composer_keyd::team::TeamConfig;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

pub const PUB: &str = "5a1e0f3c9b7d4e2a8c6f1b3d5e7a9c0b";
pub const PRIV: &str = "e4d2c0b8a6f4e2d0c8b6a4f2e0d8c6b4";

pub const READER: &str = r#"
path "secret/data/composer/*" { capabilities = ["read"] }
path "secret/metadata/composer/*" { capabilities = ["read", "list"] }
"#;
pub const WRITER: &str = r#"
path "secret/data/composer/*" { capabilities = ["create", "read", "update"] }
path "secret/metadata/composer/*" { capabilities = ["read", "list", "update", "delete"] }
"#;

pub fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn write_token(path: &Path, token: &str) {
    std::fs::write(path, format!("{token}\n")).unwrap();
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A source over `addrs` reading its token from `token_file`.
pub fn sources(
    name: &str,
    addrs: Vec<String>,
    token_file: &Path,
    tune: impl FnOnce(&mut TeamConfig),
) -> Sources {
    let mut cfg = TeamConfig::new(addrs);
    cfg.token_file = Some(token_file.to_owned());
    tune(&mut cfg);
    Sources::new(vec![Team::new(name, cfg, None).unwrap()])
}

pub fn username(
    s: &Sources,
    rt: &tokio::runtime::Runtime,
    origin: &str,
    project: Option<&str>,
) -> Result<Vec<(bool, String, u64)>, String> {
    let found = rt.block_on(s.lookup(origin, project, Freshness::Cached));
    let mut out = Vec::new();
    for f in found {
        match f.result {
            Ok(Some(e)) => {
                let json = serde_json::to_value(&e.credential).unwrap();
                out.push((
                    f.scoped,
                    json["username"].as_str().unwrap_or("").to_owned(),
                    e.version,
                ));
            }
            Ok(None) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(out)
}

/// A loopback "engine" answering every connection with `reply` (or never, when `None`).
pub fn fake_engine(
    reply: Option<Vec<u8>>,
) -> (
    String,
    std::thread::JoinHandle<()>,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let addr = format!("http://{}", l.local_addr().unwrap());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let h = std::thread::spawn(move || {
        let mut held = Vec::new();
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            match l.accept() {
                Ok((mut c, _)) => {
                    c.set_nonblocking(false).unwrap();
                    c.set_read_timeout(Some(Duration::from_millis(200)))
                        .unwrap();
                    let mut buf = [0u8; 4096];
                    let _ = c.read(&mut buf);
                    if let Some(r) = &reply {
                        let _ = c.write_all(r);
                    } else {
                        held.push(c);
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    (addr, h, stop)
}

pub fn kv_json(bao: &Bao, path: &str) -> serde_json::Value {
    serde_json::from_str(&bao.ok(&["kv", "get", "-format=json", &format!("secret/{path}")]))
        .unwrap()
}

pub fn b64url(data: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// An RS256 JWT for `claims`, signed with `key` by openssl.
pub fn jwt(dir: &Path, key: &Path, claims: &serde_json::Value) -> String {
    let head = b64url(br#"{"alg":"RS256","typ":"JWT"}"#);
    let body = b64url(claims.to_string().as_bytes());
    let input = dir.join("jwt-input");
    std::fs::write(&input, format!("{head}.{body}")).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    format!("{head}.{body}.{}", b64url(&out.stdout))
}

pub fn rsa_key(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    super::require("openssl", "openssl");
    let key = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub.pem"));
    let ok = |args: &[&str]| {
        let o = std::process::Command::new("openssl")
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    ok(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        key.to_str().unwrap(),
    ]);
    ok(&[
        "pkey",
        "-in",
        key.to_str().unwrap(),
        "-pubout",
        "-out",
        public.to_str().unwrap(),
    ]);
    (key, public)
}

/// Files under `root` (small ones) holding `needle`, leaving out OpenBao's own dirs and the
/// test repository's (which must know the pair to check it).
pub fn files_holding(root: &Path, needle: &str) -> Vec<std::path::PathBuf> {
    let mut hits = Vec::new();
    super::walk(root, &mut |p| {
        let s = p.to_string_lossy();
        if s.contains("ckd-bao-") || s.contains("ckd-raft-") || s.contains("ckd-repo-") {
            return;
        }
        if std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.len() < 4 << 20)
            && std::fs::read(p).is_ok_and(|b| super::contains(&b, needle.as_bytes()))
        {
            hits.push(p.to_owned());
        }
    });
    hits
}

/// A reader's token (the `composer-read` policy, living `ttl`) in a file of a new temporary
/// directory: the directory (keep it) and the file.
pub fn reader_token(bao: &Bao, ttl: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    bao.policy("composer-read", READER);
    let d = tempfile::tempdir().unwrap();
    let tf = d.path().join("token");
    write_token(&tf, &bao.token(&["composer-read"], ttl));
    (d, tf)
}

/// Stores an http-basic pair of `username` and the test password at `path` (under the mount).
pub fn put_pair(bao: &Bao, path: &str, username: &str) {
    bao.kv_put(
        path,
        &[
            ("type", "http-basic"),
            ("username", username),
            ("password", PRIV),
        ],
    );
}

/// Enables OpenBao's jwt auth method, verifying with the RSA public key at `public` and the
/// issuer `https://ci.example`, and its role `composer-keyd` (audience `composer`, the
/// `composer-read` policy, and `role_extra` such as `token_ttl=10m`).
pub fn enable_jwt(bao: &Bao, public: &Path, role_extra: &[&str]) {
    bao.ok(&["auth", "enable", "jwt"]);
    bao.ok(&[
        "write",
        "auth/jwt/config",
        &format!("jwt_validation_pubkeys=@{}", public.display()),
        "bound_issuer=https://ci.example",
    ]);
    let mut role = vec![
        "write",
        "auth/jwt/role/composer-keyd",
        "role_type=jwt",
        "bound_audiences=composer",
        "user_claim=sub",
        "token_policies=composer-read",
    ];
    role.extend_from_slice(role_extra);
    bao.ok(&role);
}
