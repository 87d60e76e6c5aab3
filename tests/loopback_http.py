"""What the loopback test servers share: a quiet HTTP/1.1 handler, a JSON-lines request
log, `git http-backend` as CGI, and the ready file a test waits for."""

import json
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler


class JsonLog:
    """One JSON line per request; a lock because the servers are threaded."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()

    def __call__(self, entry):
        with self.lock, open(self.path, "a") as f:
            f.write(json.dumps(entry) + "\n")


class Replier(BaseHTTPRequestHandler):
    """Keep-alive HTTP/1.1 with exact lengths, and silent: stderr is the test's."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send(self, status, body, ctype="application/json", extra=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def git_http_backend(self, body, git_root, remote_user):
        """Serves /git/... from git_root through `git http-backend`; returns the status.
        The request's credentials are not passed to the CGI."""
        path, _, query = self.path.partition("?")
        env = dict(os.environ, GIT_PROJECT_ROOT=git_root, GIT_HTTP_EXPORT_ALL="1",
                   PATH_INFO=path[len("/git"):], QUERY_STRING=query, REQUEST_METHOD=self.command,
                   CONTENT_TYPE=self.headers.get("Content-Type", ""), CONTENT_LENGTH=str(len(body)),
                   REMOTE_USER=remote_user, REMOTE_ADDR="127.0.0.1")
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
        return status


def serve_until_killed(servers, ready_path, ready):
    """Serves every server, then writes `ready` atomically for the waiting test."""
    for server in servers:
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
    tmp = ready_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(ready, f)
    os.rename(tmp, ready_path)
    # Served until the test kills it; a bounded lifetime in case the test dies first.
    threading.Event().wait(600)
