//! The second floor (a minimal hyper 1.x server with the daemon's canned reply) and the daemon's memory probes.
//!
//! (A directory of its own, so that cargo does not build it as a bench target.)
//!
//! The raw floor in `wire.rs` is the limit of the socket; this one is the limit of the
//! stack the daemon chose (hyper on tokio's current-thread runtime), so a ratio to it
//! shows what the daemon's own code costs.

use std::convert::Infallible;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A hyper http1 server that answers every request with the same status line's 200, content
/// type and body as the captured daemon reply. Same runtime flavour as the daemon.
pub struct HyperFloor {
    pub socket: PathBuf,
}

impl HyperFloor {
    pub fn start(dir: &Path, canned: &[u8]) -> HyperFloor {
        let (content_type, body) = split_reply(canned);
        let socket = dir.join("hyper-floor.sock");
        let std_listener = UnixListener::bind(&socket).expect("bind the hyper floor socket");
        std_listener.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::UnixListener::from_std(std_listener).unwrap();
                let body = bytes::Bytes::from(body);
                let ct = hyper::header::HeaderValue::from_str(&content_type).unwrap();
                while let Ok((s, _)) = listener.accept().await {
                    let (body, ct) = (body.clone(), ct.clone());
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |_req| {
                            let mut resp =
                                hyper::Response::new(http_body_util::Full::new(body.clone()));
                            resp.headers_mut()
                                .insert(hyper::header::CONTENT_TYPE, ct.clone());
                            async move { Ok::<_, Infallible>(resp) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(s), service)
                            .await;
                    });
                }
            });
        });
        HyperFloor { socket }
    }
}

/// The content type and body of a captured HTTP/1.1 response.
fn split_reply(canned: &[u8]) -> (String, Vec<u8>) {
    let end = canned
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = String::from_utf8_lossy(&canned[..end]);
    let ct = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_else(|| "application/json".into());
    (ct, canned[end + 4..].to_vec())
}

/// `value` against both floors, as "raw× / hyper×".
pub fn vs_both(value: f64, raw: f64, hyper: f64) -> String {
    format!("{:.2}× / {:.2}×", value / raw, value / hyper)
}

/// Resident, proportional and locked memory of a process, in kB.
#[derive(Clone, Copy, Debug)]
pub struct Mem {
    pub rss: u64,
    pub pss: u64,
    pub lck: u64,
    pub threads: usize,
}

impl Mem {
    pub fn of(pid: u32) -> Mem {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let rollup =
            std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
        Mem {
            rss: kb_field(&status, "VmRSS:"),
            pss: kb_field(&rollup, "Pss:"),
            lck: kb_field(&status, "VmLck:"),
            threads: std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count()),
        }
    }

    pub fn show(&self) -> String {
        format!(
            "RSS {} kB, PSS {} kB, VmLck {} kB, {} threads",
            self.rss, self.pss, self.lck, self.threads
        )
    }
}

fn kb_field(text: &str, field: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Opens `n` connections, makes one lookup on each so every one holds its buffers, keeps
/// them all open at once, then closes them. Needs `n` + a few open files in this process.
pub fn idle_connections(sock: &Path, req: &[u8], n: usize) {
    raise_nofile();
    let mut open = Vec::with_capacity(n);
    for _ in 0..n {
        let mut c = super::wire::Conn::open(sock);
        c.round_trip(req);
        open.push(c);
    }
    drop(open);
}

fn raise_nofile() {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read or write only the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

/// Memory rows for the daemon `pid`: after a lookup burst, and 10 s after ~4,000 idle
/// connections close (the daemon's idle time-out ends none of them before the client does).
pub fn memory_after_probes(report: &mut super::Report, pid: u32, sock: &Path, req: &[u8]) {
    let idle = Mem::of(pid);
    super::wire::throughput(sock, req, 64, 200);
    report.row(
        "memory after 64-client burst",
        Mem::of(pid).show(),
        "".into(),
        "",
    );
    idle_connections(sock, req, 4000);
    let held = Mem::of(pid);
    std::thread::sleep(Duration::from_secs(10));
    let after = Mem::of(pid);
    report.row(
        "memory with 4,000 connections open",
        held.show(),
        "".into(),
        "",
    );
    report.row(
        "memory 10 s after 4,000 connections close",
        after.show(),
        format!("{:+} kB RSS vs idle", after.rss as i64 - idle.rss as i64),
        "RSS within 2 MB of idle",
    );
}
