#!/usr/bin/env python3
"""Measures the time the Composer plugin adds to `composer install`.

Usage: python3 tests/plugin_overhead.py [RUNS] [BINARY]   (default 30, target/debug/composer-keyd)
Environment: PACKAGES (default 50), IDLE_SECONDS (default 60; 0 skips the idle probe).

Sets up, under a throwaway HOME: a private D-Bus session with gnome-keyring, the
daemon holding one http-basic credential, the loopback repository of
tests/composer_repo_server.py (Marketplace-style: packages.json with a metadata-url, zip
dists, everything behind HTTP basic auth), and one project requiring PACKAGES packages
from it. Then it
times `composer install` (from the lock file, vendor/ removed, warm cache) in
two setups, alternating runs:
  plugin:    COMPOSER_HOME with the plugin (`composer-keyd shim install`), no auth.json
  plaintext: COMPOSER_HOME without the plugin, the same credential in auth.json
and prints the median of each, and the median and spread of the per-pair differences
(run i of one setup minus run i of the other), in wall time and in the CPU time of the
composer process. Then it counts the daemon requests one plugin run makes (through a
counting proxy socket) and times the first lookup after the daemon has been idle for
IDLE_SECONDS against the next ones, each on a new connection as the plugin makes them.
Traffic stays on loopback.
"""

import json
import os
import resource
import re
import shutil
import socket
import threading
import urllib.parse
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 30
BIN = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "target/debug/composer-keyd"))
PACKAGES = int(os.environ.get("PACKAGES", "50"))
IDLE_SECONDS = float(os.environ.get("IDLE_SECONDS", "60"))
USER, PASSWORD = "5f0e7a1c9b2d48e6a3c1f09d7e8b6a54", "b7c3e9f1a2d4065c8e1f3a7b9d2c4e60"


ACTIVATE = r"""
require '/usr/share/php/Composer/autoload.php';
foreach (glob($argv[1] . '/*.php') as $file) { require $file; }
// The project itself, as Composer loads it: its repository (the loopback origin that the
// daemon holds the credential for) and its composer.lock are what activate() reads.
chdir($argv[2]);
putenv('COMPOSER=' . $argv[2] . '/composer.json');
$composer = Composer\Factory::create(new Composer\IO\NullIO(), $argv[2] . '/composer.json', true);
$times = array();
for ($i = 0; $i < 200; $i++) {
    $io = new Composer\IO\NullIO();
    $plugin = new ComposerKeyd\Plugin();
    $start = hrtime(true);
    $plugin->activate($composer, $io);
    $times[] = (hrtime(true) - $start) / 1e6;
    if (!$io->hasAuthentication($argv[3])) { fwrite(STDERR, "no credential loaded for $argv[3]\n"); exit(1); }
}
sort($times);
printf("activate() against the daemon (1 origin): median %.2f ms, p90 %.2f ms over %d calls\n", $times[100], $times[180], count($times));
"""


class CountingProxy:
    """A Unix socket in a private directory that forwards every connection to the daemon's
    socket and counts the connections and the requests (request lines) sent through it."""

    LINE = re.compile(rb"(GET|PUT|POST|DELETE) (/[^ ?]*)(\?[^ ]*)? HTTP/1\.1\r\n")

    def __init__(self, path, target):
        self.path, self.target = path, target
        self.connections, self.requests = 0, []
        self.lock = threading.Lock()
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(16)
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.target)
            with self.lock:
                self.connections += 1
            threading.Thread(target=self.pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self.pump, args=(upstream, client, False), daemon=True).start()

    def pump(self, src, dst, count):
        pending = b""
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if count:
                    pending += data
                    for m in self.LINE.finditer(pending):
                        path = re.sub(rb"^/v1/credentials/[^/]+", b"/v1/credentials/{origin}", m.group(2))
                        query = b"?project=DIR" if m.group(3) else b""
                        with self.lock:
                            self.requests.append((m.group(1) + b" " + path + query).decode())
                    pending = pending[-200:] if not self.LINE.search(pending) else b""
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.server.close()


def one_request(sock_path, path):
    """One GET on a new connection, as the plugin makes it; its time in ms."""
    start = time.perf_counter()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock_path)
    s.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" % path).encode())
    reply = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        reply += chunk
    s.close()
    elapsed = (time.perf_counter() - start) * 1000
    if not reply.startswith(b"HTTP/1.1 200"):
        sys.exit("the lookup failed: %r" % reply[:200])
    return elapsed


def wait_for(pred, what, tries=200):
    for _ in range(tries):
        if pred():
            return
        time.sleep(0.025)
    sys.exit("timed out waiting for " + what)


def main():
    t = tempfile.mkdtemp(prefix="ckd-overhead-")
    home, run = os.path.join(t, "home"), os.path.join(t, "run")
    os.makedirs(home, 0o700)
    os.makedirs(run, 0o700)
    env = {"HOME": home, "XDG_RUNTIME_DIR": run, "XDG_DATA_HOME": os.path.join(home, ".local/share"),
           "XDG_CONFIG_HOME": os.path.join(home, ".config"), "PATH": os.environ["PATH"],
           "COMPOSER_KEYD_SOCK": os.path.join(run, "composer-keyd/agent.sock"),
           "COMPOSER_NO_INTERACTION": "1", "COMPOSER_ALLOW_SUPERUSER": "1",
           "COMPOSER_CACHE_DIR": os.path.join(t, "cache")}
    procs = []
    try:
        bus = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--nopidfile", "--print-address=1",
                                "--address=unix:path=" + os.path.join(t, "bus")],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        procs.append(bus)
        env["DBUS_SESSION_BUS_ADDRESS"] = bus.stdout.readline().decode().strip()
        kr = subprocess.Popen(["gnome-keyring-daemon", "--foreground", "--components=secrets", "--unlock"],
                              env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(kr)
        kr.stdin.write(b"testpw")
        kr.stdin.close()
        owned = lambda: b"boolean true" in subprocess.run(
            ["dbus-send", "--session", "--print-reply", "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus",
             "org.freedesktop.DBus.NameHasOwner", "string:org.freedesktop.secrets"],
            env=env, capture_output=True).stdout
        wait_for(owned, "gnome-keyring")
        daemon = subprocess.Popen([BIN, "serve"], env=env, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(daemon)
        wait_for(lambda: os.path.exists(env["COMPOSER_KEYD_SOCK"]), "the daemon")

        server_dir = tempfile.mkdtemp(prefix="ckd-overhead-repo-")
        pkg = lambda v, c: {"version": v, "files": {"src/%s.php" % c: "<?php\nnamespace Acme;\nclass %s {}\n" % c}}
        names = ["acme/module-%02d" % i for i in range(1, PACKAGES + 1)]
        config = {"ready": os.path.join(server_dir, "ready"), "log": os.path.join(server_dir, "log"),
                  "git_root": None, "packages": {n: [pkg("1.0.%d" % i, "Module%02d" % i)] for i, n in enumerate(names, 1)},
                  "listeners": [{"host": "127.0.0.1", "port": 0, "packages": names,
                                 "basic": [{"user": USER, "pass": PASSWORD, "label": "pair"}]}]}
        json.dump(config, open(os.path.join(server_dir, "config.json"), "w"))
        server = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests/composer_repo_server.py"),
                                   os.path.join(server_dir, "config.json")])
        procs.append(server)
        wait_for(lambda: os.path.exists(config["ready"]), "the repository server")
        port = json.load(open(config["ready"]))["ports"][0]
        origin = "127.0.0.1:%d" % port
        subprocess.run([BIN, "--no-autostart", "add", origin], env=env, check=True,
                       input=("%s\n%s\n" % (USER, PASSWORD)).encode(), stdout=subprocess.DEVNULL)

        homes = {}
        for name in ("plugin", "plaintext"):
            h = os.path.join(t, "composer-home-" + name)
            os.makedirs(h)
            json.dump({"repositories": [{"packagist.org": False}], "config": {"secure-http": False}},
                      open(os.path.join(h, "composer.json"), "w"))
            homes[name] = h
        subprocess.run([BIN, "shim", "install"], env=dict(env, COMPOSER_HOME=homes["plugin"]), check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        json.dump({"http-basic": {origin: {"username": USER, "password": PASSWORD}}},
                  open(os.path.join(homes["plaintext"], "auth.json"), "w"))

        project = os.path.join(t, "project")
        os.makedirs(project)
        json.dump({"repositories": [{"type": "composer", "url": "http://" + origin}, {"packagist.org": False}],
                   "require": {n: "*" for n in names}, "config": {"secure-http": False}},
                  open(os.path.join(project, "composer.json"), "w"))
        # One update writes the lock and warms the cache; both setups then install from it.
        subprocess.run(["composer", "update", "-q", "-d", project], env=dict(env, COMPOSER_HOME=homes["plaintext"]), check=True)

        times = {"plugin": [], "plaintext": []}
        # CPU time (user + system) of each composer run: other processes on a loaded machine
        # stretch its wall time far more than its CPU time.
        cpu = {"plugin": [], "plaintext": []}
        for i in range(RUNS):
            for name in (("plugin", "plaintext") if i % 2 == 0 else ("plaintext", "plugin")):
                shutil.rmtree(os.path.join(project, "vendor"), ignore_errors=True)
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                start = time.perf_counter()
                r = subprocess.run(["composer", "install", "-q", "-d", project],
                                   env=dict(env, COMPOSER_HOME=homes[name]), capture_output=True)
                if r.returncode != 0:
                    sys.exit("composer install (%s) failed:\n%s" % (name, r.stderr.decode()))
                times[name].append(time.perf_counter() - start)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu[name].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        med = {k: statistics.median(v) for k, v in times.items()}
        # Runs i of both setups are neighbours in time, so their difference cancels most of
        # the machine's drift; the spread of these per-pair differences is the noise.
        diffs = [(p - q) * 1000 for p, q in zip(times["plugin"], times["plaintext"])]
        q1, q2, q3 = statistics.quantiles(diffs, n=4, method="inclusive")
        print("runs per setup: %d, alternating (composer install from lock, warm cache, vendor/ removed, %d packages)" % (RUNS, PACKAGES))
        for k in ("plaintext", "plugin"):
            print("%-9s median %.1f ms  (min %.1f, max %.1f)" % (k, med[k] * 1000, min(times[k]) * 1000, max(times[k]) * 1000))
        print("plugin overhead: %+.1f ms median of %d per-pair differences (IQR %+.1f .. %+.1f, min %+.1f, max %+.1f; plugin slower in %d of %d pairs)"
              % (statistics.median(diffs), len(diffs), q1, q3, min(diffs), max(diffs), sum(d > 0 for d in diffs), len(diffs)))
        print("difference of medians: %+.1f ms" % ((med["plugin"] - med["plaintext"]) * 1000))
        cdiffs = [(p - q) * 1000 for p, q in zip(cpu["plugin"], cpu["plaintext"])]
        c1, _, c3 = statistics.quantiles(cdiffs, n=4, method="inclusive")
        print("cpu time: plaintext median %.1f ms, plugin median %.1f ms" % (statistics.median(cpu["plaintext"]) * 1000, statistics.median(cpu["plugin"]) * 1000))
        print("plugin cpu overhead: %+.1f ms median of %d per-pair differences (IQR %+.1f .. %+.1f, min %+.1f, max %+.1f)"
              % (statistics.median(cdiffs), len(cdiffs), c1, c3, min(cdiffs), max(cdiffs)))
        # The whole-run difference drowns in process start-up noise; time activate() itself too.
        r = subprocess.run(["php", "-r", ACTIVATE, os.path.join(ROOT, "composer-plugin/src"), project, origin],
                           env=env, capture_output=True, check=True)
        print(r.stdout.decode().strip())

        # What one run asks the daemon: the same install through a counting proxy.
        proxy_dir = os.path.join(t, "proxy")
        os.makedirs(proxy_dir, 0o700)
        proxy = CountingProxy(os.path.join(proxy_dir, "agent.sock"), env["COMPOSER_KEYD_SOCK"])
        counted = []
        for _ in range(3):
            shutil.rmtree(os.path.join(project, "vendor"), ignore_errors=True)
            before = (proxy.connections, len(proxy.requests))
            subprocess.run(["composer", "install", "-q", "-d", project], check=True, capture_output=True,
                           env=dict(env, COMPOSER_HOME=homes["plugin"], COMPOSER_KEYD_SOCK=proxy.path))
            time.sleep(0.2)
            counted.append((proxy.connections - before[0], proxy.requests[before[1]:]))
        proxy.close()
        conns, reqs = counted[-1]
        kinds = {}
        for r in reqs:
            kinds[r] = kinds.get(r, 0) + 1
        print("daemon requests per composer install: %d on %d connection(s) (%s); the 3 runs: %s"
              % (len(reqs), conns, ", ".join("%d× %s" % (n, k) for k, n in sorted(kinds.items())),
                 " / ".join(str(len(r)) for _, r in counted)))

        if IDLE_SECONDS > 0:
            lookup = "/v1/credentials/%s?project=%s" % (urllib.parse.quote(origin, safe=""),
                                                        urllib.parse.quote(project, safe=""))
            for _ in range(5):
                one_request(env["COMPOSER_KEYD_SOCK"], lookup)
            time.sleep(IDLE_SECONDS)
            first = one_request(env["COMPOSER_KEYD_SOCK"], lookup)
            nexts = sorted(one_request(env["COMPOSER_KEYD_SOCK"], lookup) for _ in range(50))
            print("first lookup after %.0f s idle: %.2f ms (the next 50, each on a new connection: median %.2f ms, p90 %.2f ms)"
                  % (IDLE_SECONDS, first, nexts[25], nexts[45]))
    finally:
        for p in reversed(procs):
            p.kill()
            p.wait()
        shutil.rmtree(t, ignore_errors=True)


if __name__ == "__main__":
    main()
