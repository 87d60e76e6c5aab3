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
                  "dist_host": "LOCALHOST:{port}",
                  "github_expiry": "2026-12-10 12:00:00 UTC",
                  "gitlab_expires_at": "2026-12-10" | null}]}

As stand-ins for the forges, which cannot be reached here: with "github_expiry" every
accepted reply carries GitHub's `GitHub-Authentication-Token-Expiration` header, and
/user, /api/v3/user (GitHub) and /api/v4/user (GitLab) answer for an accepted token; with
"gitlab_expires_at" present, /api/v4/personal_access_tokens/self answers its value as
GitLab's `expires_at`. (GitHub's `Authorization: token T` is a "headers" entry.)

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
import ssl
import sys
import zipfile
from http.server import ThreadingHTTPServer

sys.dont_write_bytecode = True  # no __pycache__ in the checkout
from loopback_http import JsonLog, Replier, serve_until_killed  # noqa: E402

with open(sys.argv[1]) as f:
    CONFIG = json.load(f)
log = JsonLog(CONFIG["log"])


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
    class Handler(Replier):
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

        extra_headers = None

        def send(self, status, body, ctype="application/json", extra=None):
            merged = dict(self.extra_headers or {})
            merged.update(extra or {})
            super().send(status, body, ctype, merged)

        def handle_any(self):
            self.extra_headers = None
            body = self.read_body()
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
            if "github_expiry" in listener:
                self.extra_headers = {"GitHub-Authentication-Token-Expiration": listener["github_expiry"]}
            status = self.route(body)
            entry["status"] = status
            log(entry)

        def route(self, body):
            path = self.path.split("?", 1)[0]
            names = listener.get("packages", [])
            if path in ("/user", "/api/v3/user", "/api/v4/user"):
                self.send(200, b'{"login": "tester", "username": "tester"}')
                return 200
            if path == "/api/v4/personal_access_tokens/self" and "gitlab_expires_at" in listener:
                self.send(200, json.dumps({"id": 1, "expires_at": listener["gitlab_expires_at"]}).encode())
                return 200
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
                return self.git_http_backend(body, CONFIG["git_root"], "composer")
            self.send(404, b"{}")
            return 404

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
        servers.append(server)
        ports.append(server.server_address[1])
    serve_until_killed(servers, CONFIG["ready"], {"ports": ports})


if __name__ == "__main__":
    main()
