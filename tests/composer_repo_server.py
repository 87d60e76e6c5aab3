#!/usr/bin/env python3
"""A loopback Composer repository that demands credentials the way repo.magento.com does.

Usage: repo_server.py CONFIG.json

CONFIG:
  {"ready": PATH, "log": PATH, "git_root": PATH|null,
   "packages": {"acme/alpha": [{"version": "1.0.0", "files": {"src/A.php": "..."}}]},
   "listeners": [{"host": "127.0.0.1", "port": 0,
                  "basic": [{"user": U, "pass": P, "label": L}],
                  "bearer": [{"token": T, "label": L}],
                  "headers": [{"name": N, "value": V, "label": L}],
                  "tls": {"cert": PEM, "key": PEM, "client_ca": PEM, "label": L},
                  "packages": ["acme/alpha"],
                  "dist_host": "LOCALHOST:{port}"}]}

With "tls" the listener speaks HTTPS and demands a client certificate signed by
client_ca: the TLS handshake fails without one, and a request over it is accepted
under that label. Every other path answers 401 with `WWW-Authenticate: Basic` unless the request carries
credentials the listener accepts. Each request is logged as one JSON line with
the listener index, the path and the *label* of the accepted credential (never the
secret), so a test can prove which credentials crossed the wire.
/packages.json names `metadata-url` /p2/%package%.json; dists are zips built on the
fly; /git/NAME.git/... is served by `git http-backend` from git_root. After binding,
the actual ports are written to `ready` as JSON.
"""

import base64
import hashlib
import io
import json
import os
import ssl
import subprocess
import sys
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CONFIG = json.load(open(sys.argv[1]))
LOG_LOCK = threading.Lock()


def log(entry):
    with LOG_LOCK, open(CONFIG["log"], "a") as f:
        f.write(json.dumps(entry) + "\n")


def build_zip(name, version):
    spec = next(v for v in CONFIG["packages"][name] if v["version"] == version)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        manifest = {"name": name, "version": version, "autoload": {"psr-4": {"Acme\\": "src/"}}}
        # A fixed date makes the same package the same bytes, and so the same reference.
        z.writestr(zipfile.ZipInfo("composer.json", (2020, 1, 1, 0, 0, 0)), json.dumps(manifest))
        for path, text in spec.get("files", {}).items():
            z.writestr(zipfile.ZipInfo(path, (2020, 1, 1, 0, 0, 0)), text)
    return buf.getvalue()


def make_handler(index, listener):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def accepted(self):
            # A custom header (Composer 2.9's custom-headers) stands beside Authorization.
            tls = listener.get("tls")
            if tls and self.connection.getpeercert():
                return tls["label"], None
            for c in listener.get("headers", []):
                if self.headers.get(c["name"]) == c["value"]:
                    return c["label"], None
            header = self.headers.get("Authorization", "")
            if header.startswith("Basic "):
                try:
                    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
                except Exception:
                    return None, "malformed basic"
                for c in listener.get("basic", []):
                    if c["user"] == user and c["pass"] == password:
                        return c["label"], None
                return None, "wrong basic"
            if header.startswith("Bearer "):
                for c in listener.get("bearer", []):
                    if c["token"] == header[7:]:
                        return c["label"], None
                return None, "wrong bearer"
            return None, "none"

        def send(self, status, body, ctype="application/json", extra=None):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def handle_any(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            label, why = self.accepted()
            entry = {"listener": index, "method": self.command, "path": self.path,
                     "host": self.headers.get("Host")}
            if label is None:
                entry.update(status=401, refused=why)
                log(entry)
                self.send(401, b'{"error":"auth required"}',
                          extra={"WWW-Authenticate": 'Basic realm="Repository"'})
                return
            entry["accepted"] = label
            status = self.route(body)
            entry["status"] = status
            log(entry)

        def route(self, body):
            path = self.path.split("?", 1)[0]
            names = listener.get("packages", [])
            if path == "/packages.json":
                doc = {"packages": [], "metadata-url": "/p2/%package%.json", "available-packages": names}
                self.send(200, json.dumps(doc).encode())
                return 200
            if path.startswith("/p2/") and path.endswith(".json"):
                name = path[4:-5]
                if name not in names:
                    self.send(404, b"{}")
                    return 404
                host = listener.get("dist_host", "{host}").format(
                    host=self.headers.get("Host"), port=self.server.server_address[1])
                versions = []
                for v in CONFIG["packages"][name]:
                    zipped = build_zip(name, v["version"])
                    versions.append({
                        "name": name, "version": v["version"],
                        "autoload": {"psr-4": {"Acme\\": "src/"}},
                        "dist": {"type": "zip", "url": "%s://%s/dists/%s/%s.zip" % (
                                     "https" if listener.get("tls") else "http", host, name, v["version"]),
                                 "reference": hashlib.sha1(zipped).hexdigest(), "shasum": ""},
                    })
                self.send(200, json.dumps({"packages": {name: versions}}).encode())
                return 200
            if path.startswith("/dists/") and path.endswith(".zip"):
                name, _, version = path[7:-4].rpartition("/")
                if name not in names:
                    self.send(404, b"{}")
                    return 404
                self.send(200, build_zip(name, version), "application/zip")
                return 200
            if path.startswith("/git/") and CONFIG.get("git_root"):
                return self.git(body)
            self.send(404, b"{}")
            return 404

        def git(self, body):
            path, _, query = self.path.partition("?")
            env = dict(os.environ, GIT_PROJECT_ROOT=CONFIG["git_root"], GIT_HTTP_EXPORT_ALL="1",
                       PATH_INFO=path[4:], QUERY_STRING=query, REQUEST_METHOD=self.command,
                       CONTENT_TYPE=self.headers.get("Content-Type", ""), CONTENT_LENGTH=str(len(body)),
                       REMOTE_USER="composer", REMOTE_ADDR="127.0.0.1")
            if self.headers.get("Content-Encoding"):
                env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
            if self.headers.get("Git-Protocol"):
                env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
            out = subprocess.run(["git", "http-backend"], input=body, env=env,
                                 capture_output=True, timeout=60).stdout
            head, _, payload = out.partition(b"\r\n\r\n")
            if not _:
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

        do_GET = do_POST = do_HEAD = handle_any

    return Handler


def main():
    ports = []
    servers = []
    for i, listener in enumerate(CONFIG["listeners"]):
        server = ThreadingHTTPServer((listener["host"], listener["port"]), make_handler(i, listener))
        tls = listener.get("tls")
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls["cert"], tls["key"])
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(tls["client_ca"])
            server.socket = ctx.wrap_socket(server.socket, server_side=True)
        server.daemon_threads = True
        servers.append(server)
        ports.append(server.server_address[1])
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    tmp = CONFIG["ready"] + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"ports": ports}, f)
    os.rename(tmp, CONFIG["ready"])
    # Served until the test kills it; a bounded lifetime in case the test dies first.
    threading.Event().wait(600)


if __name__ == "__main__":
    main()
