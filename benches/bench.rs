//! The benchmark harness: the daemon's cached lookups against a zero-work floor, cold paths, startup, memory and scale.
//!
//! Run with `cargo bench --bench bench`. Targets are ratios to the floor measured in the
//! same run; nothing here is asserted, because shared machines are noisy.

mod floor;
#[path = "../tests/support/mod.rs"]
mod support;
mod wire;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{request, TestEnv};

struct Report {
    rows: Vec<[String; 4]>,
}

impl Report {
    fn row(&mut self, what: &str, value: String, ratio: String, target: &str) {
        println!("{what:<48} {value:>16} {ratio:>10}   target {target}");
        self.rows.push([what.into(), value, ratio, target.into()]);
    }

    fn markdown(&self) -> String {
        let mut s = String::from(
            "| measure | result | vs floor (raw / hyper) | target |\n|---|---|---|---|\n",
        );
        for r in &self.rows {
            s.push_str(&format!("| {} | {} | {} | {} |\n", r[0], r[1], r[2], r[3]));
        }
        s
    }
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn ratio(a: f64, b: f64) -> String {
    format!("{:.2}×", a / b)
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn put(sock: &Path, origin: &str, user: &str) {
    let body = format!(
        r#"{{"credential":{{"type":"http-basic","username":"{user}","password":"p{user}"}}}}"#
    );
    let r = request(
        sock,
        "PUT",
        &format!("/v1/credentials/{origin}"),
        Some(&body),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Starts the daemon, reports its idle memory, then stores the credential every lookup row
/// asks for. Returns the daemon and that idle memory.
fn idle_daemon_with_one_credential(
    t: &TestEnv,
    report: &mut Report,
) -> (support::Daemon, floor::Mem) {
    let d = t.start_daemon(&[]);
    std::thread::sleep(Duration::from_millis(500));
    // Still holding what start-up and the status request that said it is up brought in:
    // the daemon gives that back 2 s after the last connection closes, and its blocking
    // thread ends 2 s after its last call (`harden::trim_after_bursts`, `cli/serve.rs`).
    let early = floor::Mem::of(d.pid());
    report.row("memory 500 ms after start", early.show(), "".into(), "");
    std::thread::sleep(Duration::from_millis(2_500));
    // What a daemon waiting in the background holds, as `scripts/idle-rss` measures too.
    let idle = floor::Mem::of(d.pid());
    report.row(
        "memory idle (3 s after start, settled)",
        idle.show(),
        "".into(),
        "RSS ≤ 5 MB",
    );
    put(
        &t.socket(),
        "repo.magento.com",
        "0123456789abcdef0123456789abcdef",
    );
    (d, idle)
}

/// The first `GET path` after a lock and an unlock, the median of 20: what reading the
/// backend (or a team's engine) once costs.
fn first_after_unlock(sock: &Path, path: &str) -> Duration {
    let v: Vec<Duration> = (0..20)
        .map(|_| {
            request(sock, "POST", "/v1/lock", None).unwrap();
            request(sock, "POST", "/v1/unlock", None).unwrap();
            let t0 = Instant::now();
            assert_eq!(request(sock, "GET", path, None).unwrap().status, 200);
            t0.elapsed()
        })
        .collect();
    median(v)
}

fn median(mut v: Vec<Duration>) -> Duration {
    wire::quantile(&mut v, 0.5)
}

/// The first quartile, median and third quartile of `v`.
fn quartiles(mut v: Vec<f64>) -> [f64; 3] {
    v.sort_by(f64::total_cmp);
    [v[v.len() / 4], v[v.len() / 2], v[v.len() * 3 / 4]]
}

fn main() {
    floor::serve_if_asked();
    let quick = std::env::var_os("BENCH_QUICK").is_some();
    let scale = if quick { 10 } else { 1 };
    let mut report = Report { rows: Vec::new() };
    // `BENCH_ONLY=vault cargo bench --bench bench`: the vault rows alone.
    if std::env::var("BENCH_ONLY").as_deref() == Ok("vault") {
        vault_cold_path(&mut report);
        println!("\n{}", report.markdown());
        return;
    }
    // `BENCH_ONLY=plugin`: the plugin rows alone (RUNS alternating runs per setup, default 30).
    if std::env::var("BENCH_ONLY").as_deref() == Ok("plugin") {
        let runs = std::env::var("RUNS").ok().and_then(|r| r.parse().ok());
        plugin_cost(&mut report, runs.unwrap_or(30));
        println!("\n{}", report.markdown());
        return;
    }
    // At the level an installed daemon logs at: at debug, every release writes a log line.
    let mut t = TestEnv::with_keyring(true);
    t.env.insert("RUST_LOG".into(), "info".into());
    // `BENCH_ONLY=lookup`: the cached lookup against both floors alone.
    if std::env::var("BENCH_ONLY").as_deref() == Ok("lookup") {
        let d = t.start_daemon(&[]);
        put(
            &t.socket(),
            "repo.magento.com",
            "0123456789abcdef0123456789abcdef",
        );
        let path = "/v1/credentials/repo.magento.com";
        lookup_rows(
            &mut report,
            t.dir.path(),
            (d.pid(), &t.socket()),
            path,
            scale,
        );
        requests_users_make(&mut report, &t, (d.pid(), &t.socket()), scale);
        println!("\n{}", report.markdown());
        return;
    }
    // `BENCH_ONLY=requests`: the plugin's requests against bare hyper alone.
    if std::env::var("BENCH_ONLY").as_deref() == Ok("requests") {
        let d = t.start_daemon(&[]);
        put(
            &t.socket(),
            "repo.magento.com",
            "0123456789abcdef0123456789abcdef",
        );
        requests_users_make(&mut report, &t, (d.pid(), &t.socket()), scale);
        println!("\n{}", report.markdown());
        return;
    }
    // `BENCH_ONLY=team`: a cached team lookup (OpenBao on loopback) against a cached local one.
    if std::env::var("BENCH_ONLY").as_deref() == Ok("team") {
        team_rows(&mut report, scale);
        println!("\n{}", report.markdown());
        return;
    }
    // `BENCH_ONLY=memory`: the memory rows alone (idle, after a burst, after 4,000 connections).
    if std::env::var("BENCH_ONLY").as_deref() == Ok("memory") {
        let (d, idle) = idle_daemon_with_one_credential(&t, &mut report);
        let sock = t.socket();
        let ka = wire::get_request("/v1/credentials/repo.magento.com", true);
        floor::memory_after_probes(&mut report, d.pid(), idle, &sock, &ka);
        println!("\n{}", report.markdown());
        return;
    }
    println!(
        "machine: {} cores, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model()
    );

    // Startup: exec to the first answer, median of 10.
    let startups: Vec<Duration> = (0..10).map(|_| exec_to_ready(&t)).collect();
    report.row(
        "startup: exec to first answer (median of 10)",
        ms(median(startups)),
        "".into(),
        "≤ 20 ms",
    );
    socket_activated_startup(&t, &mut report);

    let (d, idle) = idle_daemon_with_one_credential(&t, &mut report);
    let sock = t.socket();
    let path = "/v1/credentials/repo.magento.com";

    // Cold path: the first lookup after unlock reads the keyring.
    report.row(
        "cold lookup after unlock, keyring (median of 20)",
        ms(first_after_unlock(&sock, path)),
        "".into(),
        "",
    );

    vault_cold_path(&mut report);

    let n = lookup_rows(&mut report, t.dir.path(), (d.pid(), &sock), path, scale);
    requests_users_make(&mut report, &t, (d.pid(), &sock), scale);
    let ka = wire::get_request(path, true);

    floor::memory_after_probes(&mut report, d.pid(), idle, &sock, &ka);

    // Memory with 1,000 credentials, each looked up once (so all are cached).
    let n_creds = 1000 / scale;
    for i in 0..n_creds {
        put(&sock, &format!("repo{i}.example.com"), &format!("user{i}"));
    }
    for i in 0..n_creds {
        let r = request(
            &sock,
            "GET",
            &format!("/v1/credentials/repo{i}.example.com"),
            None,
        )
        .unwrap();
        assert_eq!(r.status, 200);
    }
    report.row(
        &format!("RSS with {n_creds} credentials"),
        format!("{} kB", rss_kb(d.pid())),
        "".into(),
        "≤ 12 MB",
    );

    // Scale: lookup cost with 10 credentials against all of them, keep-alive p50.
    let few = lookup_p50(&sock, 10, n / 2);
    let all = lookup_p50(&sock, n_creds, n / 2);
    report.row(
        "lookup p50 cycling over 10 credentials",
        us(few),
        "".into(),
        "",
    );
    report.row(
        &format!("lookup p50 cycling over {n_creds} credentials"),
        us(all),
        ratio(all.as_secs_f64(), few.as_secs_f64()),
        "equal within noise",
    );

    // RSS stays flat over 1,000,000 lookups.
    let total = 1_000_000 / scale;
    let mut samples = vec![rss_kb(d.pid())];
    for _ in 0..4 {
        wire::throughput(&sock, &ka, 4, total / 16);
        samples.push(rss_kb(d.pid()));
    }
    report.row(
        &format!("RSS over {total} lookups (kB, every quarter)"),
        samples
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(" → "),
        "".into(),
        "flat",
    );

    drop(d);
    plugin_cost(&mut report, if quick { 10 } else { 30 });

    let md = report.markdown();
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-report.md");
    let _ = std::fs::write(&out, &md);
    println!("\n{md}\n(written to {})", out.display());
}

/// The vault: unlock (scrypt at the real work factor) and the first lookup after it.
fn vault_cold_path(report: &mut Report) {
    let mut t = TestEnv::bare();
    t.env.insert("COMPOSER_KEYD_BACKEND".into(), "vault".into());
    t.env.insert("RUST_LOG".into(), "warn".into());
    let _d = t.start_daemon(&[]);
    let sock = t.socket();
    t.ok(&["unlock"], "bench-passphrase\nbench-passphrase\n");
    put(
        &sock,
        "repo.magento.com",
        "0123456789abcdef0123456789abcdef",
    );
    let path = "/v1/credentials/repo.magento.com";
    let body = r#"{"passphrase":"bench-passphrase"}"#;
    let (mut unlocks, mut firsts) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        request(&sock, "POST", "/v1/lock", None).unwrap();
        let t0 = Instant::now();
        assert_eq!(
            request(&sock, "POST", "/v1/unlock", Some(body))
                .unwrap()
                .status,
            200
        );
        unlocks.push(t0.elapsed());
        let t1 = Instant::now();
        assert_eq!(request(&sock, "GET", path, None).unwrap().status, 200);
        firsts.push(t1.elapsed());
    }
    report.row(
        "vault unlock, scrypt 2^18 (median of 5)",
        ms(median(unlocks)),
        "".into(),
        "",
    );
    report.row(
        "cold lookup after unlock, vault (median of 5)",
        ms(median(firsts)),
        "".into(),
        "",
    );
    vault_writes(&t, report);
}

/// Writes to an unlocked vault through the CLI, as a user makes them: `add`, `remove`, and
/// `import` of an auth.json with 10 credentials.
fn vault_writes(t: &TestEnv, report: &mut Report) {
    let timed = |args: &[&str], stdin: &str| {
        let t0 = Instant::now();
        t.ok(args, stdin);
        t0.elapsed()
    };
    let (mut adds, mut removes) = (Vec::new(), Vec::new());
    for i in 0..5 {
        let origin = format!("add{i}.example");
        adds.push(timed(
            &["add", &origin, "--type", "bearer"],
            "bench-token-0123456789\n",
        ));
        removes.push(timed(&["remove", &origin], ""));
    }
    report.row(
        "vault `add` after unlock, CLI (median of 5)",
        ms(median(adds)),
        "".into(),
        "≤ 50 ms",
    );
    report.row(
        "vault `remove` after unlock, CLI (median of 5)",
        ms(median(removes)),
        "".into(),
        "≤ 50 ms",
    );
    let imports: Vec<Duration> = (0..3)
        .map(|round| {
            let entries: Vec<String> = (0..10)
                .map(|i| {
                    format!(
                        r#""import{round}-{i}.example":{{"username":"u{i}","password":"bench-password-{i}"}}"#
                    )
                })
                .collect();
            let dir = t.dir.path().join(format!("import-{round}"));
            std::fs::create_dir_all(&dir).unwrap();
            let file = dir.join("auth.json");
            std::fs::write(&file, format!(r#"{{"http-basic":{{{}}}}}"#, entries.join(","))).unwrap();
            timed(&["import", file.to_str().unwrap()], "")
        })
        .collect();
    report.row(
        "vault `import` of 10 credentials, CLI (median of 3)",
        ms(median(imports)),
        "".into(),
        "≤ 1 s",
    );
}

/// The same `composer install` through the plugin and with a plaintext auth.json
/// (tests/plugin_overhead.py: alternating runs; the median and spread of the per-pair
/// differences), plus `activate()` alone.
fn plugin_cost(report: &mut Report, runs: usize) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/plugin_overhead.py");
    let out = Command::new("/usr/bin/python3")
        .arg(&script)
        .arg(runs.to_string())
        .arg(support::BIN)
        .output();
    let text = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        Ok(o) => {
            let why = String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("")
                .to_owned();
            report.row(
                "composer install, plugin vs auth.json",
                format!("n/a ({why})"),
                "".into(),
                "≤ 2 ms",
            );
            return;
        }
        Err(e) => {
            report.row(
                "composer install, plugin vs auth.json",
                format!("n/a ({e})"),
                "".into(),
                "≤ 2 ms",
            );
            return;
        }
    };
    let find = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .map(|l| l.trim_start_matches(prefix).trim().to_owned())
            .unwrap_or_default()
    };
    report.row(
        &format!("composer install of 50 packages, plaintext auth.json (median of {runs})"),
        find("plaintext"),
        "".into(),
        "",
    );
    report.row(
        &format!("composer install of 50 packages, through the plugin (median of {runs})"),
        find("plugin    "),
        "".into(),
        "",
    );
    report.row(
        "plugin overhead per composer install (per-pair differences)",
        find("plugin overhead:"),
        "".into(),
        "≤ 2 ms",
    );
    report.row(
        "composer install CPU time (user + system, medians)",
        find("cpu time:"),
        "".into(),
        "",
    );
    report.row(
        "plugin CPU time per composer install (per-pair differences)",
        find("plugin cpu overhead:"),
        "".into(),
        "",
    );
    report.row(
        "plugin activate() alone, 1 origin",
        find("activate() against the daemon (1 origin):"),
        "".into(),
        "",
    );
    report.row(
        "daemon requests per composer install (50 packages)",
        find("daemon requests per composer install:"),
        "".into(),
        "",
    );
    report.row(
        "first lookup after the daemon was idle 60 s (new connection)",
        find("first lookup after 60 s idle:"),
        "".into(),
        "",
    );
}

/// Spawns `serve` and polls (every 200 µs, at most 5 s) until the socket answers.
fn exec_to_ready(t: &TestEnv) -> Duration {
    let t0 = Instant::now();
    let mut child = t
        .command(support::BIN)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the daemon");
    let sock = t.socket();
    let mut elapsed = None;
    for _ in 0..25_000 {
        if request(&sock, "GET", "/v1/status", None).is_ok_and(|r| r.status == 200) {
            elapsed = Some(t0.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    kill_tree(&mut child);
    elapsed.expect("the daemon answered within 5 s")
}

/// Keep-alive p50 of lookups cycling over the first `k` of the `repoN.example.com` origins.
fn lookup_p50(sock: &Path, k: usize, n: usize) -> Duration {
    let reqs: Vec<Vec<u8>> = (0..k)
        .map(|i| wire::get_request(&format!("/v1/credentials/repo{i}.example.com"), true))
        .collect();
    let mut c = wire::Conn::open(sock);
    let mut v: Vec<Duration> = (0..n)
        .map(|i| {
            let t0 = Instant::now();
            c.round_trip(&reqs[i % k]);
            t0.elapsed()
        })
        .collect();
    wire::quantile(&mut v, 0.5)
}

/// Time from the first connection to the first answer when systemd-socket-activate
/// execs the daemon on demand.
fn socket_activated_startup(t: &TestEnv, report: &mut Report) {
    let what = "startup: socket-activated, connect to first answer";
    let sock = t.dir.path().join("activated.sock");
    let mut times = Vec::new();
    for _ in 0..5 {
        let _ = std::fs::remove_file(&sock);
        let Ok(mut act) = t
            .command("systemd-socket-activate")
            .arg("-l")
            .arg(&sock)
            .arg(support::BIN)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        else {
            report.row(
                what,
                "n/a (no systemd-socket-activate)".into(),
                "".into(),
                "",
            );
            return;
        };
        // Bounded wait for the activator's listening socket.
        for _ in 0..200 {
            if sock.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // The activator binds before it listens, and a refused connect starts nothing: try
        // again (bounded), timing only the attempt that got through.
        let (mut ok, mut e) = (false, Duration::ZERO);
        for _ in 0..100 {
            let t0 = Instant::now();
            let r = request(&sock, "GET", "/v1/status", None);
            e = t0.elapsed();
            match r {
                Ok(r) => ok = r.status == 200,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
                    ) =>
                {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
                Err(_) => {}
            }
            break;
        }
        kill_tree(&mut act);
        if !ok {
            report.row(
                what,
                "n/a (no answer on the inherited socket)".into(),
                "".into(),
                "",
            );
            return;
        }
        times.push(e);
    }
    report.row(what, ms(median(times)), "".into(), "");
}

fn kill_tree(child: &mut std::process::Child) {
    // SAFETY: signals our own child, which execs into the daemon.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default()
}

/// How many turns each server takes in the latency rows.
const ROUNDS: usize = 10;

/// How many turns each server takes in the throughput rows, whose ratios are medians over
/// the rounds. A round's ratio swings by ±15% on these shared machines; the median of 60
/// moved by a few per cent between runs (0.90× to 0.94× bare hyper at 64 clients).
const THROUGHPUT_ROUNDS: usize = 60;

/// Requests per round in the throughput rows, shared among the clients.
const THROUGHPUT_ROUND: usize = 3_000;

/// Runs `measure(i)` for servers 0, 1 and 2 in turns, `rounds` times, each round starting
/// with the next server: a drift in the machine (another VM's load, a frequency change)
/// then falls on all three alike rather than on whichever was measured during it.
fn in_turns(rounds: usize, measure: impl FnMut(usize)) {
    in_turns_of(3, rounds, measure);
}

/// [`in_turns`] over `servers` servers.
fn in_turns_of(servers: usize, rounds: usize, mut measure: impl FnMut(usize)) {
    for round in 0..rounds {
        for k in 0..servers {
            measure((round + k) % servers);
        }
    }
}

/// The cached lookup against both floors: keep-alive p50/p99, connect-per-request, and
/// throughput with 1, 8 and 64 clients, from the daemon with pid `daemon` listening on `sock`.
/// Returns the keep-alive sample size.
fn lookup_rows(
    report: &mut Report,
    dir: &Path,
    (daemon, sock): (u32, &Path),
    path: &str,
    scale: usize,
) -> usize {
    let canned = wire::capture(sock, path);
    let floor = floor::Floor::start(dir, floor::Kind::Raw, &canned);
    let hyper = floor::Floor::start(dir, floor::Kind::Hyper, &canned);
    let ka = wire::get_request(path, true);
    let close = wire::get_request(path, false);
    let n = 20_000 / scale;
    // Floor, bare hyper and daemon, measured in turns (`in_turns`).
    let servers = [
        (floor.pid(), floor.socket.as_path()),
        (hyper.pid(), hyper.socket.as_path()),
        (daemon, sock),
    ];
    let mut lat: [Vec<Duration>; 3] = Default::default();
    in_turns(ROUNDS, |i| {
        let (pid, socket) = servers[i];
        // Each server on the client's CPU while it is measured: see `wire::on_one_cpu`.
        lat[i].extend(wire::on_one_cpu(pid, || {
            wire::latencies(socket, &ka, n / ROUNDS / 10);
            wire::latencies(socket, &ka, n / ROUNDS)
        }));
    });
    let [mut f, mut h, mut m] = lat;
    let (f50, f99) = (wire::quantile(&mut f, 0.5), wire::quantile(&mut f, 0.99));
    let (h50, h99) = (wire::quantile(&mut h, 0.5), wire::quantile(&mut h, 0.99));
    let (m50, m99) = (wire::quantile(&mut m, 0.5), wire::quantile(&mut m, 0.99));
    let secs = |d: Duration| d.as_secs_f64();
    report.row("floor keep-alive p50", us(f50), "1.00×".into(), "");
    report.row("floor keep-alive p99", us(f99), "1.00×".into(), "");
    report.row(
        "bare hyper keep-alive p50",
        us(h50),
        ratio(secs(h50), secs(f50)),
        "",
    );
    report.row(
        "bare hyper keep-alive p99",
        us(h99),
        ratio(secs(h99), secs(f99)),
        "",
    );
    report.row(
        "cached lookup keep-alive p50",
        us(m50),
        floor::vs_both(secs(m50), secs(f50), secs(h50)),
        "≤ 1.15× hyper",
    );
    report.row(
        "cached lookup keep-alive p99",
        us(m99),
        floor::vs_both(secs(m99), secs(f99), secs(h99)),
        "≤ 3× raw",
    );

    let nc = 5_000 / scale / ROUNDS;
    let mut lat: [Vec<Duration>; 3] = Default::default();
    in_turns(ROUNDS, |i| {
        lat[i].extend(wire::connect_latencies(servers[i].1, &close, nc))
    });
    let [mut fc, mut hc, mut mc] = lat;
    let (fc50, mc50) = (wire::quantile(&mut fc, 0.5), wire::quantile(&mut mc, 0.5));
    let hc50 = wire::quantile(&mut hc, 0.5);
    report.row(
        "floor connect-per-request p50",
        us(fc50),
        "1.00×".into(),
        "",
    );
    report.row(
        "bare hyper connect-per-request p50",
        us(hc50),
        ratio(secs(hc50), secs(fc50)),
        "",
    );
    report.row(
        "cached lookup connect-per-request p50",
        us(mc50),
        floor::vs_both(secs(mc50), secs(fc50), secs(hc50)),
        "≤ 2× raw",
    );

    for clients in [1, 8, 64] {
        let per = (THROUGHPUT_ROUND / scale / clients).max(1);
        // Each server's rate in each round, taking turns as above.
        let mut rates: [Vec<f64>; 3] = Default::default();
        let mut cpu: [Vec<f64>; 3] = Default::default();
        in_turns(THROUGHPUT_ROUNDS, |i| {
            let (spid, socket) = servers[i];
            let (rate, each) = wire::throughput_and_cpu(socket, &ka, clients, per, spid);
            rates[i].push(rate);
            cpu[i].push(each.as_secs_f64());
        });
        // The rate over all rounds: requests served over the time they took.
        let overall = |r: &[f64]| r.len() as f64 / r.iter().map(|x| 1.0 / x).sum::<f64>();
        // A ratio is the median of the rounds' ratios: the two servers of a round met the
        // same machine, and a round that met a burst of load moves the median little.
        let vs = |a: &[f64], b: &[f64]| quartiles(a.iter().zip(b).map(|(x, y)| x / y).collect());
        let [f, h, m] = &rates;
        let target = if clients == 64 { "≥ 0.9× hyper" } else { "" };
        report.row(
            &format!("floor throughput, {clients} clients"),
            format!("{:.0}/s", overall(f)),
            "1.00×".into(),
            "",
        );
        report.row(
            &format!("bare hyper throughput, {clients} clients"),
            format!("{:.0}/s", overall(h)),
            format!("{:.2}×", vs(h, f)[1]),
            "",
        );
        report.row(
            &format!("daemon throughput, {clients} clients"),
            format!("{:.0}/s", overall(m)),
            {
                let [q1, mid, q3] = vs(m, h);
                format!("{:.2}× / {mid:.2}× (rounds {q1:.2}–{q3:.2})", vs(m, f)[1])
            },
            target,
        );
        if clients == 64 {
            let [_, hc, mc] = &cpu;
            cpu_row(report, "daemon CPU per request, 64 clients", mc, hc);
        }
    }

    n
}

/// A cached team lookup against a cached local one, both with `?project=` (with a team set
/// up, both ask the team cache), and the first lookup's added time against a loopback OpenBao.
fn team_rows(report: &mut Report, scale: usize) {
    let bao = support::openbao::Bao::dev();
    bao.policy(
        "composer-read",
        "path \"secret/data/composer/*\" { capabilities = [\"read\"] }\n",
    );
    bao.kv_put(
        "composer/team.example",
        &[("type", "http-basic"), ("username", "u"), ("password", "p")],
    );
    let t = TestEnv::with_keyring(true);
    t.ok(&["team", "add", "acme", "--addr", bao.addr()], "");
    let token = bao.token(&["composer-read"], "1h");
    std::fs::write(t.home().join(".vault-token"), token).unwrap();
    let d = t.start_daemon(&[]);
    let sock = t.socket();
    put(&sock, "local.example", "0123456789abcdef0123456789abcdef");
    let dir = t.dir.path().join("p");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("composer.json"), r#"{"name": "bench/p"}"#).unwrap();
    // As in a project at rest: the daemon remembers the name of a composer.json whose times
    // are SETTLED in the past, and reads one written just now on every lookup.
    std::thread::sleep(composer_keyd::file_memo::SETTLED + Duration::from_millis(200));
    let q = format!("?project={}", dir.display());
    let local = format!("/v1/credentials/local.example{q}");
    let team = format!("/v1/credentials/team.example{q}");
    let n = 5_000 / scale;
    let mut lat: [Vec<Duration>; 2] = Default::default();
    for path in [&local, &team] {
        assert_eq!(request(&sock, "GET", path, None).unwrap().status, 200);
    }
    // The two in turns, each round starting with the other (as `in_turns` does for three).
    for i in (0..ROUNDS).flat_map(|round| [round % 2, (round + 1) % 2]) {
        let path = if i == 0 { &local } else { &team };
        let req = wire::get_request(path, true);
        lat[i].extend(wire::on_one_cpu(d.pid(), || {
            wire::latencies(&sock, &req, n / ROUNDS / 10);
            wire::latencies(&sock, &req, n / ROUNDS)
        }));
    }
    let [mut l, mut m] = lat;
    let (l50, m50) = (wire::quantile(&mut l, 0.5), wire::quantile(&mut m, 0.5));
    report.row(
        "cached local lookup ?project p50 (teams set up)",
        us(l50),
        "1.00×".into(),
        "",
    );
    report.row(
        "cached team lookup ?project p50",
        us(m50),
        ratio(m50.as_secs_f64(), l50.as_secs_f64()),
        "≤ 1.10× local",
    );
    // A Composer run's first lookup of a team origin (`fresh=1`, read through past the cache),
    // against the cached one, each on a new connection as the plugin makes them.
    let fresh = format!("{team}&fresh=1");
    let new_conn = |path: &str| {
        let req = wire::get_request(path, false);
        median(wire::connect_latencies(&sock, &req, 200 / scale.min(10)))
    };
    let (cached, through) = (new_conn(&team), new_conn(&fresh));
    report.row(
        "cached team lookup, new connection (median of 200; 20 with BENCH_QUICK)",
        ms(cached),
        "".into(),
        "",
    );
    report.row(
        "a run's first team lookup (fresh=1, read through), new connection (median of 200; 20 with BENCH_QUICK)",
        ms(through),
        ratio(through.as_secs_f64(), cached.as_secs_f64()),
        "reported",
    );
    // The first lookup after unlock: the local one reads the keyring, the team one OpenBao.
    let (fl, ft) = (
        first_after_unlock(&sock, &local),
        first_after_unlock(&sock, &team),
    );
    report.row(
        "first local lookup after unlock (median of 20)",
        ms(fl),
        "".into(),
        "",
    );
    report.row(
        "first team lookup after unlock, loopback OpenBao (median of 20)",
        ms(ft),
        ratio(ft.as_secs_f64(), fl.as_secs_f64()),
        "reported",
    );
}

/// The requests the PHP plugin makes, each against a bare hyper server answering with the
/// daemon's own reply to it, measured in the same run and in turns (`in_turns` over two
/// servers): the scoped lookup `?project=DIR` of a credential that is not scoped (what
/// nearly every lookup is), the same from a project an origin has a scoped credential for
/// (the project is then resolved on every request), and `GET /v1/origins?project=DIR`
/// (the plugin's first request). Each gets keep-alive p50 (with the spread of the rounds'
/// ratios), the first request on a new connection (the plugin opens one per Composer run),
/// and throughput with 64 clients.
fn requests_users_make(report: &mut Report, t: &TestEnv, daemon: (u32, &Path), scale: usize) {
    let (pid, sock) = daemon;
    let shop = t.dir.path().join("projects/shop");
    std::fs::create_dir_all(&shop).unwrap();
    let shop = std::fs::canonicalize(shop).unwrap();
    // rawurlencode, as the plugin sends it.
    let dir: String = shop.to_str().unwrap().replace('/', "%2F");
    let body = r#"{"credential":{"type":"bearer","token":"0123456789abcdef0123456789abcdef"}}"#;
    let scoped = format!("/v1/credentials/scoped.example?project={dir}");
    let r = request(sock, "PUT", &scoped, Some(body)).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let rows = [
        (
            "scoped lookup (the plugin's)",
            format!("/v1/credentials/repo.magento.com?project={dir}"),
        ),
        ("scoped lookup, project-scoped credential", scoped),
        ("origins of a project", format!("/v1/origins?project={dir}")),
    ];
    for (tag, (what, path)) in rows.iter().enumerate() {
        let canned = wire::capture(sock, path);
        let hyper =
            floor::Floor::start_as(t.dir.path(), floor::Kind::Hyper, &tag.to_string(), &canned);
        let servers = [(hyper.pid(), hyper.socket.as_path()), (pid, sock)];
        let ka = wire::get_request(path, true);
        let close = wire::get_request(path, false);
        let n = 20_000 / scale / ROUNDS;
        // Per round and server: the keep-alive p50, then the first-request p50.
        let mut p50: [Vec<Duration>; 2] = Default::default();
        let mut all: [Vec<Duration>; 2] = Default::default();
        in_turns_of(2, ROUNDS, |i| {
            let (spid, socket) = servers[i];
            let mut v = wire::on_one_cpu(spid, || {
                wire::latencies(socket, &ka, n / 10);
                wire::latencies(socket, &ka, n)
            });
            p50[i].push(wire::quantile(&mut v, 0.5));
            all[i].extend(v);
        });
        let [mut h, mut m] = all;
        let (h50, m50) = (wire::quantile(&mut h, 0.5), wire::quantile(&mut m, 0.5));
        let rounds: Vec<f64> = p50[1]
            .iter()
            .zip(&p50[0])
            .map(|(m, h)| m.as_secs_f64() / h.as_secs_f64())
            .collect();
        let [q1, _, q3] = quartiles(rounds);
        report.row(
            &format!("{what}: keep-alive p50"),
            us(m50),
            format!(
                "{} (hyper {}, rounds {q1:.2}–{q3:.2})",
                ratio(m50.as_secs_f64(), h50.as_secs_f64()),
                us(h50)
            ),
            "≤ 1.15× hyper",
        );

        let nc = 5_000 / scale / ROUNDS;
        let mut first: [Vec<Duration>; 2] = Default::default();
        in_turns_of(2, ROUNDS, |i| {
            first[i].extend(wire::connect_latencies(servers[i].1, &close, nc));
        });
        let [mut h, mut m] = first;
        let (h50, m50) = (wire::quantile(&mut h, 0.5), wire::quantile(&mut m, 0.5));
        report.row(
            &format!("{what}: first request on a new connection, p50"),
            us(m50),
            format!(
                "{} (hyper {})",
                ratio(m50.as_secs_f64(), h50.as_secs_f64()),
                us(h50)
            ),
            "",
        );

        let clients = 64;
        let per = (THROUGHPUT_ROUND / scale / clients).max(1);
        let mut rates: [Vec<f64>; 2] = Default::default();
        let mut cpu: [Vec<f64>; 2] = Default::default();
        in_turns_of(2, THROUGHPUT_ROUNDS / 3, |i| {
            let (spid, socket) = servers[i];
            let (rate, each) = wire::throughput_and_cpu(socket, &ka, clients, per, spid);
            rates[i].push(rate);
            cpu[i].push(each.as_secs_f64());
        });
        let [h, m] = &rates;
        let [q1, mid, q3] = quartiles(m.iter().zip(h).map(|(x, y)| x / y).collect());
        let overall = |r: &[f64]| r.len() as f64 / r.iter().map(|x| 1.0 / x).sum::<f64>();
        report.row(
            &format!("{what}: throughput, 64 clients"),
            format!("{:.0}/s", overall(m)),
            format!(
                "{mid:.2}× (hyper {:.0}/s, rounds {q1:.2}–{q3:.2})",
                overall(h)
            ),
            "≥ 0.9× hyper",
        );
        let [hc, mc] = &cpu;
        cpu_row(
            report,
            &format!("{what}: server CPU per request, 64 clients"),
            mc,
            hc,
        );
    }
}

/// A row of the server's CPU seconds per request over throughput rounds (`daemon`), as the
/// median of the rounds' ratios to bare hyper's (`hyper`, the same rounds), with the means.
fn cpu_row(report: &mut Report, what: &str, daemon: &[f64], hyper: &[f64]) {
    let [q1, mid, q3] = quartiles(daemon.iter().zip(hyper).map(|(x, y)| x / y).collect());
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    report.row(
        what,
        format!("{:.2} µs", mean(daemon) * 1e6),
        format!(
            "{mid:.2}× (hyper {:.2} µs, rounds {q1:.2}–{q3:.2})",
            mean(hyper) * 1e6
        ),
        "",
    );
}
