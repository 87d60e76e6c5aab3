//! Fuzzes request routing and body decoding: arbitrary bytes on one connection of the real server code
//! (`serve_connection` with the daemon's limits, routes and agent over an in-memory store). The server
//! never panics or hangs; every reply is well-formed HTTP/1.1; every error carries a typed kind; the
//! stored secrets appear only in `200` replies.

#![no_main]

use composer_keyd::agent::{Agent, AgentConfig};
use composer_keyd::credential::{CredentialType, Origin};
use composer_keyd::index::{new_meta, Index};
use composer_keyd::protocol::{ErrorBody, ErrorKind};
use composer_keyd::server::door::Main;
use composer_keyd::server::slots::Slots;
use composer_keyd::server::{serve_connection, Limits, Peer};
use composer_keyd::store::memory::MemoryStore;
use composer_keyd::store::{SecretKey, Which};
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "FUZZ-SECRET-6b1f";

fn dir() -> &'static tempfile::TempDir {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    // tmpfs where there is one: the index is written (and fsynced) on every change.
    DIR.get_or_init(|| {
        tempfile::Builder::new()
            .prefix("ckd-fuzz-")
            .tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .unwrap()
    })
}

/// A fresh agent per input: an open credential, one for PHP only, one that needs confirmation.
fn agent() -> Arc<Agent> {
    let store = Arc::new(MemoryStore::new());
    let mut index = Index::default();
    for (origin, confirm, exe) in [
        ("repo.example", false, None),
        ("php.example", false, Some("/usr/bin/php")),
        ("confirm.example", true, None),
    ] {
        let o = Origin::parse(origin).unwrap();
        let mut m = new_meta(o.clone(), None, CredentialType::Bearer, 1);
        m.confirm = confirm;
        m.allow_exe = exe.into_iter().map(String::from).collect();
        index.upsert(m);
        let json = format!(r#"{{"type":"bearer","token":"{SECRET}-{origin}"}}"#);
        store
            .set(&SecretKey::new(&o, None, Which::Current), json.as_bytes())
            .unwrap();
    }
    let cfg = AgentConfig {
        index_path: dir().path().join("index.json"),
        backend_timeout: Duration::from_secs(2),
        backend_reason: "fuzz".into(),
    };
    Arc::new(Agent::new(store, index, cfg))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Every reply is `HTTP/1.x NNN`, framed by its Content-Length, with a typed error body when it fails.
fn check(mut out: &[u8], input_has_secret: bool) {
    while !out.is_empty() {
        let end = find(out, b"\r\n\r\n").expect("a complete response head");
        let head = std::str::from_utf8(&out[..end]).expect("an ASCII head");
        // hyper answers an HTTP/1.0 request in HTTP/1.0.
        assert!(
            head.starts_with("HTTP/1.1 ") || head.starts_with("HTTP/1.0 "),
            "{head}"
        );
        let status: u16 = head[9..12].parse().expect("a status code");
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().unwrap())
            })
            .unwrap_or(0);
        let body = &out[end + 4..end + 4 + len];
        if status >= 400 && !body.is_empty() {
            let e: ErrorBody = serde_json::from_slice(body).expect("a JSON error body");
            assert_ne!(e.error.kind, ErrorKind::Unknown);
            assert_eq!(e.error.kind.status(), status);
        }
        // Unless the input itself spelled it (an error may quote the request path).
        if status != 200 && !input_has_secret {
            assert!(
                find(body, SECRET.as_bytes()).is_none(),
                "a secret in a {status}"
            );
        }
        out = &out[end + 4 + len..];
    }
}

fuzz_target!(|data: &[u8]| {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    // Paused time advances by itself when everything waits, so time-outs cost nothing.
    let rt = RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap()
    });
    let out = rt.block_on(async {
        let (client, server) = tokio::io::duplex(1 << 16);
        let peer = Peer::with_exe(1000, Some(4242), Some("/usr/bin/php".into()));
        let slot = Slots::new(1).acquire().await;
        let serve = serve_connection(
            server,
            Arc::new(Main::default()),
            agent(),
            Arc::new(Limits::default()),
            peer,
            slot,
        );
        let (mut rd, mut wr) = tokio::io::split(client);
        let write = async {
            let _ = wr.write_all(data).await; // the server may close first
            let _ = wr.shutdown().await;
        };
        let read = async {
            let mut out = Vec::new();
            let _ = rd.read_to_end(&mut out).await; // a closed pipe ends the reply
            out
        };
        let (_, (), out) = tokio::join!(serve, write, read);
        out
    });
    check(&out, find(data, SECRET.as_bytes()).is_some());
});
