//! The floors' processes, the second floor (a minimal hyper 1.x server with the daemon's canned reply) and the daemon's memory probes.
//!
//! (A directory of its own, so that cargo does not build it as a bench target.)
//!
//! The raw floor in `wire.rs` is the limit of the socket; the hyper floor is the limit of
//! the stack the daemon chose (hyper on tokio's current-thread runtime), so a ratio to it
//! shows what the daemon's own code costs. Both run in child processes, as the daemon does.

use std::convert::Infallible;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A floor server in a process of its own, as the daemon is, so that every server measured
/// is reached across the same process boundary (a switch between threads of one process is
/// cheaper than one between processes, and favoured in-process floors).
pub struct Floor {
    /// Where it listens.
    pub socket: PathBuf,
    child: Child,
}

/// Which floor a child process serves.
#[derive(Clone, Copy)]
pub enum Kind {
    /// [`super::wire::serve_raw`]: reads heads, writes the canned bytes.
    Raw,
    /// [`serve_hyper`]: hyper with the canned content type and body.
    Hyper,
}

const KIND_VAR: &str = "BENCH_FLOOR";
const SOCKET_VAR: &str = "BENCH_FLOOR_SOCKET";
const REPLY_VAR: &str = "BENCH_FLOOR_REPLY";

impl Floor {
    /// Starts a floor of `kind` answering with `canned` on `dir/<kind>-floor.sock`, in a child
    /// process (this bench binary again, told by [`serve_if_asked`] what to serve).
    pub fn start(dir: &Path, kind: Kind, canned: &[u8]) -> Floor {
        Floor::start_as(dir, kind, "", canned)
    }

    /// [`Floor::start`] with `tag` in its file names, for a floor beside another of its kind.
    pub fn start_as(dir: &Path, kind: Kind, tag: &str, canned: &[u8]) -> Floor {
        let name = match kind {
            Kind::Raw => "raw",
            Kind::Hyper => "hyper",
        };
        let socket = dir.join(format!("{name}{tag}-floor.sock"));
        let reply = dir.join(format!("{name}{tag}-floor.reply"));
        std::fs::write(&reply, canned).unwrap();
        let child = Command::new(std::env::current_exe().unwrap())
            .env(KIND_VAR, name)
            .env(SOCKET_VAR, &socket)
            .env(REPLY_VAR, &reply)
            .stdin(Stdio::null())
            .spawn()
            .expect("start a floor process");
        let floor = Floor { socket, child };
        for _ in 0..500 {
            if UnixStream::connect(&floor.socket).is_ok() {
                return floor;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the {name} floor did not start listening");
    }

    /// The floor process's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// In a floor's child process, serves the floor it was started for and never returns;
/// anywhere else, returns at once.
pub fn serve_if_asked() {
    let Some(kind) = std::env::var_os(KIND_VAR) else {
        return;
    };
    let socket = std::env::var_os(SOCKET_VAR).expect("the floor's socket");
    let canned = std::fs::read(std::env::var_os(REPLY_VAR).expect("the floor's reply")).unwrap();
    let listener = UnixListener::bind(socket).expect("bind the floor socket");
    listener.set_nonblocking(true).unwrap();
    // The bench kills this process when it is done; this bounds it if the bench itself dies.
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(3600));
        std::process::exit(0);
    });
    match kind.to_str() {
        Some("raw") => super::wire::serve_raw(listener, canned),
        Some("hyper") => serve_hyper(listener, &canned),
        _ => panic!("unknown floor {kind:?}"),
    }
    std::process::exit(0);
}

/// A hyper http1 server that answers every request with the same status line's 200, content
/// type and body as the captured daemon reply. Same runtime flavour as the daemon.
fn serve_hyper(listener: UnixListener, canned: &[u8]) {
    let (content_type, body) = split_reply(canned);
    super::wire::on_current_thread(listener, |listener| async move {
        let body = bytes::Bytes::from(body);
        let ct = hyper::header::HeaderValue::from_str(&content_type).unwrap();
        while let Ok((s, _)) = listener.accept().await {
            let (body, ct) = (body.clone(), ct.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_req| {
                    let mut resp = hyper::Response::new(http_body_util::Full::new(body.clone()));
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
    /// The anonymous part of `rss` (heap, stacks), and the file-backed part (code, data).
    pub anon: u64,
    pub file: u64,
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
            anon: kb_field(&status, "RssAnon:"),
            file: kb_field(&status, "RssFile:"),
            pss: kb_field(&rollup, "Pss:"),
            lck: kb_field(&status, "VmLck:"),
            threads: std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count()),
        }
    }

    pub fn show(&self) -> String {
        format!(
            "RSS {} kB (anon {}, file {}), PSS {} kB, VmLck {} kB, {} threads",
            self.rss, self.anon, self.file, self.pss, self.lck, self.threads
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
/// connections close (the daemon's idle time-out ends none of them before the client does),
/// the last against `idle`, the "memory idle (3 s after start, settled)" row.
pub fn memory_after_probes(
    report: &mut super::Report,
    pid: u32,
    idle: Mem,
    sock: &Path,
    req: &[u8],
) {
    super::wire::throughput(sock, req, 64, 200);
    report.row(
        "memory after 64-client burst",
        Mem::of(pid).show(),
        "".into(),
        "",
    );
    // The daemon trims 2 s after its last connection closed (`harden::trim_after_bursts`).
    std::thread::sleep(Duration::from_secs(3));
    report.row(
        "memory 3 s after that burst (trimmed)",
        Mem::of(pid).show(),
        "".into(),
        "RSS ≤ 8 MB",
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
        format!(
            "{:+} kB RSS vs the idle row",
            after.rss as i64 - idle.rss as i64
        ),
        "RSS within 2 MB of idle",
    );
    // What giving the pages back costs: the first request faults its code in again.
    let first = super::wire::connect_latencies(sock, req, 1)[0];
    let mut next = super::wire::connect_latencies(sock, req, 50);
    report.row(
        "first connect-per-request lookup after that",
        format!("{:.0} µs", first.as_secs_f64() * 1e6),
        format!(
            "the next 50: p50 {:.0} µs",
            super::wire::quantile(&mut next, 0.5).as_secs_f64() * 1e6
        ),
        "",
    );
}
