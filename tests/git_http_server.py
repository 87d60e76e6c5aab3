#!/usr/bin/env python3
"""A private git host on loopback for tests/git_e2e.rs.

Usage: git_http_server.py CONFIG.json, where CONFIG is
  {"ready": PATH, "log": PATH, "git_root": PATH, "user": U, "token": T,
   "packages_json": TEXT}
Every path demands HTTP basic auth with U and T (401 + WWW-Authenticate
otherwise). /git/NAME.git/... is `git http-backend` over git_root (CGI);
/dist/NAME.git/REF.zip is `git archive --format=zip REF`; /packages.json is
packages_json with %BASE% replaced by this server's URL. The secret is read
from the config file, never from argv or the environment, and is not passed
to the CGI. Each request is logged as one JSON line: method, path, accepted.
"""

import base64
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

with open(sys.argv[1]) as f:
    CONFIG = json.load(f)
LOCK = threading.Lock()


def log(entry):
    with LOCK, open(CONFIG["log"], "a") as f:
        f.write(json.dumps(entry) + "\n")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, status, body, ctype="application/json", extra=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def authorized(self):
        want = base64.b64encode(("%s:%s" % (CONFIG["user"], CONFIG["token"])).encode()).decode()
        return self.headers.get("Authorization", "") == "Basic " + want

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        entry = {"method": self.command, "path": path, "accepted": self.authorized(),
                 "agent": self.headers.get("User-Agent", "")}
        log(entry)
        if not entry["accepted"]:
            self.send(401, b'{"error":"auth required"}',
                      extra={"WWW-Authenticate": 'Basic realm="private git"'})
            return
        if path == "/packages.json":
            base = "http://%s" % self.headers.get("Host")
            self.send(200, CONFIG["packages_json"].replace("%BASE%", base).encode())
        elif path.startswith("/dist/") and path.endswith(".zip"):
            repo, _, ref = path[len("/dist/"):-len(".zip")].rpartition("/")
            out = subprocess.run(["git", "archive", "--format=zip", ref],
                                 cwd=os.path.join(CONFIG["git_root"], os.path.basename(repo)),
                                 capture_output=True, timeout=60)
            if out.returncode:
                self.send(404, b"{}")
            else:
                self.send(200, out.stdout, "application/zip")
        elif path.startswith("/git/"):
            self.git(body)
        else:
            self.send(404, b"{}")

    def git(self, body):
        path, _, query = self.path.partition("?")
        env = dict(os.environ, GIT_PROJECT_ROOT=CONFIG["git_root"], GIT_HTTP_EXPORT_ALL="1",
                   PATH_INFO=path[len("/git"):], QUERY_STRING=query, REQUEST_METHOD=self.command,
                   CONTENT_TYPE=self.headers.get("Content-Type", ""), CONTENT_LENGTH=str(len(body)),
                   REMOTE_USER=CONFIG["user"], REMOTE_ADDR="127.0.0.1")
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        out = subprocess.run(["git", "http-backend"], input=body, env=env,
                             capture_output=True, timeout=60).stdout
        head, sep, payload = out.partition(b"\r\n\r\n")
        if not sep:
            head, _, payload = out.partition(b"\n\n")
        status, headers = 200, {}
        for line in head.decode().splitlines():
            k, _, v = line.partition(":")
            if k.lower() == "status":
                status = int(v.strip().split()[0])
            elif k.lower() != "content-length":
                headers[k.strip()] = v.strip()
        ctype = headers.pop("Content-Type", "application/octet-stream")
        self.send(status, payload, ctype, headers)

    do_GET = do_POST = do_HEAD = handle_any


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    tmp = CONFIG["ready"] + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"port": server.server_address[1]}, f)
    os.rename(tmp, CONFIG["ready"])
    # Served until the test kills it; a bounded lifetime in case the test dies first.
    threading.Event().wait(600)


if __name__ == "__main__":
    main()
