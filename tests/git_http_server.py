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
from http.server import ThreadingHTTPServer

sys.dont_write_bytecode = True  # no __pycache__ in the checkout
from loopback_http import JsonLog, Replier, serve_until_killed  # noqa: E402

with open(sys.argv[1]) as f:
    CONFIG = json.load(f)
log = JsonLog(CONFIG["log"])


class Handler(Replier):

    def authorized(self):
        want = base64.b64encode(("%s:%s" % (CONFIG["user"], CONFIG["token"])).encode()).decode()
        return self.headers.get("Authorization", "") == "Basic " + want

    def handle_any(self):
        body = self.read_body()
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
            self.git_http_backend(body, CONFIG["git_root"], CONFIG["user"])
        else:
            self.send(404, b"{}")

    do_GET = do_POST = do_HEAD = handle_any


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    serve_until_killed([server], CONFIG["ready"], {"port": server.server_address[1]})


if __name__ == "__main__":
    main()
